"""A bare FastAPI endpoint of the same shape as POST /v1/detections that does no work: the bench's baseline."""

from __future__ import annotations

from fastapi import FastAPI, Request

app = FastAPI(title="bare")


@app.post("/v1/detections")
async def detections(request: Request) -> dict[str, bool]:
    await request.body()
    return {"ok": True}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
