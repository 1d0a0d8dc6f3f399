"""Request limits of every service: size (413, declared or streamed), media type (415), JSON nesting (400),
and the shared refusals mapped to their status."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Request
from pydantic import BaseModel, Field

from shared.errors import Busy, Conflict
from shared.limits import too_deep
from shared.ratelimit import client_address, vouch_for_client
from shared.web import create_app

pytestmark = pytest.mark.unit


def app():
    application = create_app("test", title="test", max_body=1000)

    @application.post("/echo")
    async def echo(request: Request) -> dict:
        return {"got": len(await request.body())}

    @application.post("/conflict")
    async def conflict() -> None:
        raise Conflict("the workshop is full")

    @application.post("/busy")
    async def busy() -> None:
        raise Busy("try again")

    return application


async def client():
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://test")


async def test_small_json_passes_and_large_is_refused() -> None:
    async with await client() as http:
        assert (await http.post("/echo", json={"a": 1})).json() == {"got": len(b'{"a":1}')}
        big = await http.post("/echo", content=b"[" + b"1," * 600 + b"1]", headers={"content-type": "application/json"})
        assert big.status_code == 413 and "at most 1000 bytes" in big.json()["detail"]


async def test_a_streamed_body_is_cut_at_the_limit() -> None:
    async def chunks():
        for _ in range(50):
            yield b'"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",'

    async with await client() as http:
        r = await http.post("/echo", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


async def test_other_media_types_are_refused() -> None:
    async with await client() as http:
        r = await http.post("/echo", content=b'{"a": 1}', headers={"content-type": "text/plain"})
        assert r.status_code == 415 and "text/plain" in r.json()["detail"]
        assert (
            await http.post("/echo", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"})
        ).status_code == 200


async def test_deep_json_is_refused_before_parsing() -> None:
    async with await client() as http:
        r = await http.post("/echo", content=b"[" * 100 + b"]" * 100, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "nests deeper" in r.json()["detail"]


def test_depth_scan_ignores_brackets_inside_strings() -> None:
    assert not too_deep(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[[["}', limit=3)
    assert too_deep(b'{"a": [[[1]]]}', limit=3)


async def test_refusals_map_to_their_status() -> None:
    async with await client() as http:
        r = await http.post("/conflict")
        assert r.status_code == 409 and r.json() == {"detail": "the workshop is full"}
        r = await http.post("/busy")
        assert r.status_code == 409 and r.headers["retry-after"] == "1"


class Goal(BaseModel):
    goal: float = Field(gt=0, allow_inf_nan=False)


async def test_a_refused_infinite_number_is_a_422_not_a_500() -> None:
    application = app()

    @application.put("/goal")
    async def put_goal(body: Goal) -> dict:
        return body.model_dump()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as http:
        r = await http.put("/goal", content=b'{"goal": Infinity}', headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "goal"] and r.json()["detail"][0]["input"] == "inf"


def test_a_client_address_counts_only_when_vouched_for_with_the_platform_key() -> None:
    key = "k" * 32
    vouched = vouch_for_client(key, "203.0.113.7")
    assert client_address(vouched, "127.0.0.1", key) == "203.0.113.7"
    assert client_address(vouched, "127.0.0.1", "another-key-" + "x" * 20) == "127.0.0.1"
    assert client_address({**vouched, "X-Alliance-Client": "198.51.100.1"}, "127.0.0.1", key) == "127.0.0.1"
    assert client_address({}, None, key) == "unknown"
