"""The APIs the portal calls, always with the signed-in person's own token: it reads and writes nothing else."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError", "Backends", "Api"]


class ApiError(Exception):
    """An API's refusal: its HTTP status and its `detail` (a reason, or pydantic's list of field errors)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


class Api:
    """One API as seen by one caller (a token, or none for the public metrics)."""

    def __init__(self, client: httpx.AsyncClient, token: str | None) -> None:
        self._client, self._token = client, token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = {**self._headers(), **kwargs.pop("headers", {})}
            response = await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(503, f"the service does not answer ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return (await self.request("GET", path, params=clean)).json()

    async def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return (await self.request("POST", path, **kwargs)).json()


class Backends:
    """The long-lived HTTP clients of the three APIs (connection pools shared by every request)."""

    def __init__(self, partners_url: str, workshops_url: str, metrics_url: str, timeout: float) -> None:
        self.partners_http = httpx.AsyncClient(base_url=partners_url, timeout=timeout)
        self.workshops_http = httpx.AsyncClient(base_url=workshops_url, timeout=timeout)
        self.metrics_http = httpx.AsyncClient(base_url=metrics_url, timeout=timeout)

    def partners(self, token: str | None) -> Api:
        return Api(self.partners_http, token)

    def workshops(self, token: str | None) -> Api:
        return Api(self.workshops_http, token)

    def metrics(self, token: str | None = None) -> Api:
        return Api(self.metrics_http, token)

    async def reachable(self) -> bool:
        for client in (self.partners_http, self.workshops_http, self.metrics_http):
            try:
                if (await client.get("/healthz", timeout=3)).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    async def close(self) -> None:
        for client in (self.partners_http, self.workshops_http, self.metrics_http):
            await client.aclose()
