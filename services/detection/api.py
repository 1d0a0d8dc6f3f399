"""Detection HTTP routes: terminals post detections; admins manage the office registry and the terminals."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.detection import backfill, handlers
from services.detection.auth import AdminDep, BackfillerDep, ReaderDep, TerminalDep
from services.detection.schemas import (
    BackfillIn,
    BackfillReport,
    BatchIn,
    DetectionIn,
    OfficeImport,
    OfficeIn,
    Report,
    TerminalCreate,
    TerminalIssued,
)
from services.detection.store import Store
from shared.openapi import inline_defs
from shared.terminal_sdk import new_token

__all__ = ["router"]

router = APIRouter(prefix="/v1")
OFFICE_CSV_COLUMNS = ("office_id", "name", "commune_insee", "qpv", "rural", "france_services")


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]

# Written by hand (the route reads its body itself, to answer item by item), so self-contained: a `$ref` here
# would point into the OpenAPI document, where these models are not.
_BODY_SCHEMA = {
    "oneOf": [
        inline_defs(DetectionIn.model_json_schema(ref_template="#/$defs/{model}")),
        {
            "type": "object",
            "properties": {
                "office_id": {"type": "string"},
                "detections": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["detections"],
            "additionalProperties": False,
        },
    ]
}
_REPORT_SCHEMA = inline_defs(Report.model_json_schema(ref_template="#/$defs/{model}"))
_REFUSED = {"$ref": "#/components/schemas/Refusal"}
_FIELD_ERRORS = {"$ref": "#/components/schemas/HTTPValidationError"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_DETECTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _answer("a batch (every item answered; the accepted ones published), or one duplicate", _REPORT_SCHEMA),
    201: _answer("one detection, accepted and published", _REPORT_SCHEMA),
    202: _answer("accepted and stored; published later by the relay (Kafka was slow to acknowledge)", _REPORT_SCHEMA),
    422: _answer(
        "one detection, rejected (the report says why), or a body that is not one detection nor a batch",
        {"anyOf": [_REPORT_SCHEMA, _FIELD_ERRORS, _REFUSED]},
    ),
}


async def _json_body(request: Request) -> Any:
    """The body as JSON (its size, media type and nesting were checked by shared.limits)."""
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"the body is not JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise HTTPException(400, f"the body is not acceptable JSON: {exc}") from None


@router.post(
    "/detections",
    tags=["detections"],
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses=_DETECTION_RESPONSES,
)
async def post_detections(request: Request, terminal: TerminalDep, store: StoreDep) -> JSONResponse:
    """One detection (an object) or a backlog (`{"detections": [...]}`); each item is answered on its own:
    accepted (201/200), duplicate, or rejected with the reason. 202: accepted, published later by the relay.
    429 past the terminal's rate limit; 503 when Kafka does not answer (nothing recorded)."""
    settings = request.app.state.settings
    await request.app.state.terminal_limit.hit(terminal.terminal_id)
    doc = await _json_body(request)
    if not isinstance(doc, dict):
        raise HTTPException(422, 'the body must be a JSON object: one detection, or {"detections": [...]}')
    single = "detections" not in doc
    if single:
        doc = dict(doc)
        office_id = doc.pop("office_id", None)
        items = [doc]
    else:
        try:
            batch = BatchIn.model_validate(doc)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            detail = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in errors]
            raise HTTPException(422, detail) from None
        if len(batch.detections) > settings.max_batch:
            raise HTTPException(413, f"a batch holds at most {settings.max_batch} detections")
        office_id, items = batch.office_id, batch.detections
    if office_id is not None and office_id != terminal.office.office_id:
        raise HTTPException(403, f"this terminal may only submit detections for its own office, not {office_id}")
    report = await handlers.submit(
        items,
        terminal.office,
        terminal.terminal_id,
        journal=request.app.state.journal,
        publisher=request.app.state.publisher,
        rules=request.app.state.rules,
    )
    if single:
        status = {"accepted": 201, "duplicate": 200, "rejected": 422}[report.results[0].status]
    else:
        status = 200
    if report.accepted and not report.published:
        status = 202
    return JSONResponse(report.model_dump(mode="json"), status_code=status)


# --- backfill of past detections ------------------------------------------------------------------

_BACKFILL_REPORT = inline_defs(BackfillReport.model_json_schema(ref_template="#/$defs/{model}"))


@router.post(
    "/backfill/detections",
    tags=["backfill"],
    responses={
        200: _answer(
            "every item answered (accepted, duplicate, rejected); the accepted ones published", _BACKFILL_REPORT
        ),
        202: _answer(
            "accepted and stored; published later by the relay (Kafka was slow to acknowledge)", _BACKFILL_REPORT
        ),
    },
)
async def post_backfill(body: BackfillIn, request: Request, store: StoreDep, who: BackfillerDep) -> JSONResponse:
    """Past detections of one office with their original times, older than the live window too (a terminal
    offline for long, a network's counter files of an earlier year): a platform admin token, never a terminal's
    (403). Checked, keyed and hashed as live ones: a detection already sent (live or backfilled) is `duplicate`.
    Each request leaves an audit record (`backfill_id`, GET /v1/backfills). 413 past DETECTION_MAX_BATCH items,
    404 for an office not in the registry, 503 when Kafka does not answer (nothing recorded)."""
    settings = request.app.state.settings
    await request.app.state.backfill_limit.hit(who.subject)
    if len(body.detections) > settings.max_batch:
        raise HTTPException(413, f"a batch holds at most {settings.max_batch} detections")
    report = await backfill.backfill(
        body,
        who,
        store=store,
        journal=request.app.state.journal,
        publisher=request.app.state.publisher,
        rules=request.app.state.backfill_rules,
    )
    status = 202 if report.accepted and not report.published else 200
    return JSONResponse(report.model_dump(mode="json"), status_code=status)


@router.get("/backfills", tags=["backfill"])
async def list_backfills(
    store: StoreDep,
    who: AdminDep,
    office_id: str | None = None,
    by: Annotated[str | None, Query(description="the subject of the account that sent them")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    """The audit of backfills, newest first: who sent which office's past detections, when, and the outcome."""
    query: dict[str, Any] = {}
    if office_id:
        query["office_id"] = office_id
    if by:
        query["by"] = by
    heads = await store.backfills.find(query, sort=[("at", -1)], limit=limit)
    return [backfill.audit_public(h, results=False) for h in heads]


@router.get("/backfills/{backfill_id}", tags=["backfill"])
async def get_backfill(backfill_id: str, store: StoreDep, who: AdminDep) -> dict:
    """One backfill's audit record, with every item's outcome (detection id, status, event id)."""
    return await backfill.audit(store, backfill_id)


# --- office registry --------------------------------------------------------------------------------


def _office_public(doc: dict[str, Any]) -> dict[str, Any]:
    out = {("office_id" if k == "_id" else k): v for k, v in doc.items()}
    if "updated_at" in out:
        out["updated_at"] = out["updated_at"].isoformat()
    return out


@router.put("/offices/{office_id}", tags=["offices"])
async def put_office(office_id: str, body: OfficeIn, store: StoreDep, who: AdminDep, response: Response) -> dict:
    if body.office_id != office_id:
        raise HTTPException(422, "office_id in the path and the body differ")
    try:
        created = await store.put_office(body)
    except KeyError as exc:
        raise HTTPException(422, str(exc.args[0])) from None
    response.status_code = 201 if created else 200
    return {"office_id": office_id, "status": "created" if created else "replaced"}


def _parse_csv(text: str) -> list[dict[str, Any]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    flags = ("qpv", "rural", "france_services", "active")
    return [{k: (v.strip().lower() in ("1", "true", "yes") if k in flags else v) for k, v in r.items()} for r in rows]


@router.post("/offices/import", tags=["offices"])
async def import_offices(request: Request, store: StoreDep, who: AdminDep) -> dict[str, int]:
    """Load the registry: JSON `{"offices": [...]}` or CSV (`text/csv`, columns office_id,name,commune_insee,
    qpv,rural,france_services). All or nothing: one bad row refuses the file."""
    raw = await request.body()
    try:
        if request.headers.get("content-type", "").startswith("text/csv"):
            body = OfficeImport(offices=_parse_csv(raw.decode("utf-8-sig")))
        else:
            body = OfficeImport.model_validate_json(raw)
    except (ValidationError, UnicodeDecodeError) as exc:
        raise HTTPException(422, str(exc)[:2000]) from None
    try:
        return await store.import_offices(body.offices)
    except KeyError as exc:
        raise HTTPException(422, str(exc.args[0])) from None


@router.get("/offices/{office_id}", tags=["offices"])
async def get_office(office_id: str, store: StoreDep, who: ReaderDep) -> dict:
    return _office_public((await store.offices.require(office_id, "office")).head())


@router.get("/offices", tags=["offices"])
async def list_offices(
    store: StoreDep,
    who: ReaderDep,
    departement: str | None = None,
    qpv: bool | None = None,
    france_services: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    query: dict[str, Any] = {}
    if departement:
        query["departement"] = departement
    if qpv is not None:
        query["qpv"] = qpv
    if france_services is not None:
        query["france_services"] = france_services
    return [_office_public(d) for d in await store.list_offices(query, limit)]


# --- terminals --------------------------------------------------------------------------------------


@router.post("/terminals", status_code=201, response_model=TerminalIssued, tags=["terminals"])
async def register_terminal(body: TerminalCreate, store: StoreDep, who: AdminDep) -> TerminalIssued:
    """Registers a terminal to one office. The token is in this answer only: the platform keeps its hash."""
    office = await store.office(body.office_id)
    if office is None:
        raise HTTPException(404, f"no office {body.office_id}")
    terminal_id = body.terminal_id or f"t-{uuid.uuid4().hex[:16]}"
    token, hashed = new_token(terminal_id)
    if not await store.add_terminal(terminal_id, office.office_id, hashed, body.label):
        raise HTTPException(409, f"terminal {terminal_id} already exists (revoke it and register a new one)")
    return TerminalIssued(terminal_id=terminal_id, office_id=office.office_id, token=token)


def _terminal_public(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "terminal_id": doc["_id"],
        "office_id": doc["office_id"],
        "label": doc.get("label"),
        "revoked": doc.get("revoked", False),
        "created_at": doc["created_at"].isoformat() if doc.get("created_at") else None,
    }


@router.get("/terminals", tags=["terminals"])
async def list_terminals(
    store: StoreDep, who: AdminDep, office_id: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict]:
    query = {"office_id": office_id} if office_id else {}
    return [_terminal_public(d) for d in await store.list_terminals(query, limit)]


@router.post("/terminals/{terminal_id}/revocation", tags=["terminals"])
async def revoke_terminal(terminal_id: str, store: StoreDep, who: AdminDep) -> dict:
    return _terminal_public(await store.revoke_terminal(terminal_id))
