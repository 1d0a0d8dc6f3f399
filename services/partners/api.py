"""Partners HTTP routes: sign-in, partners, partnerships (lifecycle, lists, CSV), skills missions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from services.partners import auth, handlers
from services.partners.csvio import PARTNER_EXPORT, PARTNERSHIP_EXPORT, render_csv
from services.partners.domain import Invalid, MissionStatus, PartnerKind, Refused, Status
from services.partners.imports import import_csv
from services.partners.schemas import (
    ActivateCommand,
    CompletionCommand,
    EndCommand,
    ImportReport,
    MissionCreate,
    MissionPublic,
    Page,
    PartnerCreate,
    PartnerPublic,
    PartnershipCreate,
    PartnershipPublic,
    PartnershipUpdate,
    PartnerUpdate,
    RenewCommand,
    SignCommand,
    TokenPublic,
    TokenRequest,
    UserCreate,
    UserPublic,
    VolunteerCreate,
)
from services.partners.store import Store
from shared.events import Commitment, DepartementCode, PartnershipType
from shared.identity import Principal, PrincipalDep, Role, issue_token, require_roles

__all__ = ["router", "install_error_handlers"]

router = APIRouter(prefix="/v1")
MAX_IMPORT_BYTES = 10 * 1024 * 1024


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]
Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MONITORING, Role.PARTNER))]
Writer = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.PARTNER))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=500)]


def install_error_handlers(app: FastAPI) -> None:
    async def refused(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(handlers.Conflict, refused)
    app.add_exception_handler(Invalid, invalid)
    app.add_exception_handler(handlers.NotFound, not_found)


# --- identity ---------------------------------------------------------------------------------------


@router.post("/auth/token", response_model=TokenPublic, tags=["identity"])
async def token(request: Request, store: StoreDep) -> TokenPublic:
    """Sign in (JSON or the OAuth2 password form): an access token the whole platform accepts."""
    try:
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = await request.form()
            creds = TokenRequest(username=str(form.get("username", "")), password=str(form.get("password", "")))
        else:
            creds = TokenRequest.model_validate(await request.json())
    except (ValidationError, ValueError):
        raise HTTPException(422, "username and password are required") from None
    principal = await auth.authenticate(store, creds.username, creds.password)
    if principal is None:
        raise HTTPException(401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"})
    settings = request.app.state.settings
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    return TokenPublic(
        access_token=issue_token(principal, settings.platform_token_key, ttl=ttl),
        expires_in=int(ttl.total_seconds()),
        role=principal.role,
        partner_id=principal.partner_id,
    )


@router.get("/auth/me", response_model=UserPublic, tags=["identity"])
async def me(principal: PrincipalDep) -> UserPublic:
    return UserPublic(id=principal.subject, role=principal.role, partner_id=principal.partner_id)


@router.post("/users", status_code=201, response_model=UserPublic, tags=["identity"])
async def create_user(body: UserCreate, store: StoreDep, _: Admin) -> UserPublic:
    if body.partner_id and not await store.exists(store.partners, body.partner_id):
        raise HTTPException(422, f"no partner {body.partner_id}")
    try:
        doc = await auth.create_user(store, body)
    except auth.UserExists as exc:
        raise HTTPException(409, str(exc)) from None
    return UserPublic(id=doc["_id"], role=doc["role"], partner_id=doc["partner_id"])


# --- shared helpers ---------------------------------------------------------------------------------


def _scope(principal: Principal, field: str = "partner_id") -> dict[str, Any]:
    """What a caller may see: a partner user only its own organisation's records."""
    return {field: principal.partner_id} if principal.role == Role.PARTNER else {}


async def _visible(coll: Any, doc_id: str, principal: Principal, what: str) -> dict[str, Any]:
    """The record if the caller may see it; 404 alike for a missing record and another partner's."""
    doc = await coll.find_one({"_id": doc_id})
    owner = doc.get("partner_id", doc["_id"]) if doc and what != "partner" else doc_id
    if doc is None or not principal.can_access_partner(owner):
        raise HTTPException(404, f"no {what} {doc_id}")
    return doc


async def _page(coll: Any, query: dict[str, Any], page: int, page_size: int, public: Any) -> dict[str, Any]:
    total = await coll.count_documents(query)
    cursor = coll.find(query).sort("_id", 1).skip((page - 1) * page_size).limit(page_size)
    items = [public(d) async for d in cursor]
    return {"items": items, "total": total, "page": page, "page_size": page_size}


def _csv(name: str, body: Any) -> StreamingResponse:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)


# --- partners ---------------------------------------------------------------------------------------


def partner_public(doc: dict[str, Any], *, contacts: bool = False) -> PartnerPublic:
    fields = {k: v for k, v in doc.items() if k in PartnerPublic.model_fields and k != "contacts"}
    return PartnerPublic(id=doc["_id"], **fields, contacts=doc.get("contacts", []) if contacts else None)


def _partner_query(
    principal: Principal, kind: PartnerKind | None, departement: str | None, skills_label: bool | None
) -> dict[str, Any]:
    query: dict[str, Any] = _scope(principal, "_id")
    if kind:
        query["kind"] = kind.value
    if departement:
        query["departements"] = departement
    if skills_label is not None:
        query["skills_label"] = skills_label
    return query


@router.post("/partners", status_code=201, response_model=PartnerPublic, tags=["partners"])
async def create_partner(body: PartnerCreate, store: StoreDep, _: Admin) -> PartnerPublic:
    return partner_public(await handlers.create_partner(store, body), contacts=True)


@router.get("/partners", response_model=Page[PartnerPublic], tags=["partners"])
async def list_partners(
    store: StoreDep,
    principal: Reader,
    kind: PartnerKind | None = None,
    departement: DepartementCode | None = None,
    skills_label: bool | None = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> dict[str, Any]:
    query = _partner_query(principal, kind, departement, skills_label)
    return await _page(store.partners, query, page, page_size, partner_public)


@router.get("/partners/export.csv", tags=["partners"], response_class=StreamingResponse)
async def export_partners(
    store: StoreDep,
    principal: Reader,
    kind: PartnerKind | None = None,
    departement: DepartementCode | None = None,
    skills_label: bool | None = None,
) -> StreamingResponse:
    """Organisations as CSV (never their contacts)."""
    query = _partner_query(principal, kind, departement, skills_label)

    async def rows():
        yield next(render_csv(PARTNER_EXPORT, []))
        async for doc in store.partners.find(query, {"contacts": 0}).sort("_id", 1):
            chunks = render_csv(PARTNER_EXPORT, [{**doc, **doc["address"], "id": doc["_id"]}])
            next(chunks)  # the header, already sent
            yield next(chunks)

    return _csv("partners.csv", rows())


@router.get("/partners/{partner_id}", response_model=PartnerPublic, tags=["partners"])
async def get_partner(partner_id: str, store: StoreDep, principal: Reader) -> PartnerPublic:
    doc = await _visible(store.partners, partner_id, principal, "partner")
    # Contacts are personal data: the organisation itself and La Poste admins see them, monitoring does not.
    return partner_public(doc, contacts=principal.role != Role.MONITORING)


@router.patch("/partners/{partner_id}", response_model=PartnerPublic, tags=["partners"])
async def update_partner(partner_id: str, body: PartnerUpdate, store: StoreDep, principal: Writer) -> PartnerPublic:
    await _visible(store.partners, partner_id, principal, "partner")
    return partner_public(await handlers.update_partner(store, partner_id, body), contacts=True)


class SkillsLabel(BaseModel):
    labelled: bool
    labelled_on: date | None = None


@router.put("/partners/{partner_id}/skills-label", response_model=PartnerPublic, tags=["skills sponsorship"])
async def put_skills_label(partner_id: str, body: SkillsLabel, store: StoreDep, _: Admin) -> PartnerPublic:
    """La Poste labels (or unlabels) an association for skills sponsorship."""
    return partner_public(await handlers.set_skills_label(store, partner_id, body.labelled, body.labelled_on))


# --- partnerships -----------------------------------------------------------------------------------


def partnership_public(doc: dict[str, Any]) -> PartnershipPublic:
    fields = {k: v for k, v in doc.items() if k in PartnershipPublic.model_fields}
    return PartnershipPublic(id=doc["_id"], **fields, published=not doc.get("outbox_pending", False))


def _partnership_query(
    principal: Principal,
    partner_id: str | None,
    partnership_type: PartnershipType | None,
    commitment: Commitment | None,
    departement: str | None,
    status: Status | None,
    signed_year: int | None,
) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if partner_id:
        query["partner_id"] = partner_id
    query.update(_scope(principal))  # last: a partner's own scope wins over any partner_id it asks for
    if partnership_type:
        query["partnership_type"] = partnership_type.value
    if commitment:
        query["commitments"] = commitment.value
    if departement:
        query["departements"] = departement
    if status:
        query["status"] = status.value
    if signed_year:
        query["signed_year"] = signed_year
    return query


class PartnershipFilters:
    def __init__(
        self,
        partner_id: str | None = None,
        partnership_type: PartnershipType | None = None,
        commitment: Commitment | None = None,
        departement: DepartementCode | None = None,
        status: Status | None = None,
        signed_year: Annotated[int | None, Query(ge=1990, le=2100)] = None,
    ) -> None:
        self.args = (partner_id, partnership_type, commitment, departement, status, signed_year)


Filters = Annotated[PartnershipFilters, Depends()]


@router.post("/partnerships", status_code=201, response_model=PartnershipPublic, tags=["partnerships"])
async def create_partnership(
    body: PartnershipCreate, store: StoreDep, principal: Writer, response: Response
) -> PartnershipPublic:
    """A draft partnership. A partner user creates its own; La Poste staff name the partner."""
    if principal.role == Role.PARTNER:
        if body.partner_id and body.partner_id != principal.partner_id:
            raise HTTPException(404, f"no partner {body.partner_id}")
        partner_id = principal.partner_id
    elif not body.partner_id:
        raise HTTPException(422, "partner_id is required")
    else:
        partner_id = body.partner_id
    assert partner_id is not None
    created, doc = await handlers.create_partnership(store, partner_id, body)
    if not created:
        response.status_code = 200
    return partnership_public(doc)


@router.get("/partnerships", response_model=Page[PartnershipPublic], tags=["partnerships"])
async def list_partnerships(
    store: StoreDep, principal: Reader, filters: Filters, page: PageNo = 1, page_size: PageSize = 50
) -> dict[str, Any]:
    query = _partnership_query(principal, *filters.args)
    return await _page(store.partnerships.collection, query, page, page_size, partnership_public)


@router.get("/partnerships/export.csv", tags=["partnerships"], response_class=StreamingResponse)
async def export_partnerships(store: StoreDep, principal: Reader, filters: Filters) -> StreamingResponse:
    query = _partnership_query(principal, *filters.args)
    coll = store.partnerships.collection

    async def rows():
        yield next(render_csv(PARTNERSHIP_EXPORT, []))
        partners: dict[str, dict[str, Any]] = {}
        async for doc in coll.find(query, {"outbox": 0}).sort("_id", 1):
            pid = doc["partner_id"]
            if pid not in partners:
                partners[pid] = await store.partners.find_one({"_id": pid}, {"name": 1, "legal_id": 1}) or {}
            row = {
                **doc,
                "id": doc["_id"],
                "partner_name": partners[pid].get("name"),
                "partner_legal_id": partners[pid].get("legal_id"),
                "renewals": len(doc.get("renewals", [])),
            }
            chunks = render_csv(PARTNERSHIP_EXPORT, [row])
            next(chunks)  # the header, already sent
            yield next(chunks)

    return _csv("partnerships.csv", rows())


@router.post("/partnerships/import", response_model=ImportReport, tags=["partnerships"])
async def import_partnerships(request: Request, store: StoreDep, _: Admin) -> ImportReport:
    """Bulk import (CSV body, or a multipart `file`): a report by line; the same file again changes nothing."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "send the CSV as the multipart field `file`")
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
    else:
        raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"the file is larger than {MAX_IMPORT_BYTES} bytes: split it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "the CSV must be UTF-8") from None
    return await import_csv(store, text)


async def _partnership(store: Store, partnership_id: str, principal: Principal) -> dict[str, Any]:
    return await _visible(store.partnerships.collection, partnership_id, principal, "partnership")


@router.get("/partnerships/{partnership_id}", response_model=PartnershipPublic, tags=["partnerships"])
async def get_partnership(partnership_id: str, store: StoreDep, principal: Reader) -> PartnershipPublic:
    return partnership_public(await _partnership(store, partnership_id, principal))


@router.patch("/partnerships/{partnership_id}", response_model=PartnershipPublic, tags=["partnerships"])
async def update_partnership(
    partnership_id: str, body: PartnershipUpdate, store: StoreDep, principal: Writer
) -> PartnershipPublic:
    doc = await _partnership(store, partnership_id, principal)
    return partnership_public(await handlers.update_partnership(store, doc, body))


@router.delete("/partnerships/{partnership_id}", status_code=204, tags=["partnerships"])
async def delete_partnership(partnership_id: str, store: StoreDep, principal: Writer) -> Response:
    await handlers.delete_draft(store, await _partnership(store, partnership_id, principal))
    return Response(status_code=204)


async def _transition(store: Store, partnership_id: str, principal: Principal, cmd: Any) -> PartnershipPublic:
    doc = await _partnership(store, partnership_id, principal)
    updated, published = await handlers.transition(store, doc, cmd)
    return partnership_public(updated).model_copy(update={"published": published})


@router.post("/partnerships/{partnership_id}/sign", response_model=PartnershipPublic, tags=["lifecycle"])
async def sign(partnership_id: str, body: SignCommand, store: StoreDep, principal: Admin) -> PartnershipPublic:
    """draft → signed (La Poste staff). Signing again with the same date is harmless."""
    return await _transition(store, partnership_id, principal, body)


@router.post("/partnerships/{partnership_id}/activate", response_model=PartnershipPublic, tags=["lifecycle"])
async def activate(partnership_id: str, body: ActivateCommand, store: StoreDep, principal: Admin) -> PartnershipPublic:
    """signed → active."""
    return await _transition(store, partnership_id, principal, body)


@router.post("/partnerships/{partnership_id}/renew", response_model=PartnershipPublic, tags=["lifecycle"])
async def renew(partnership_id: str, body: RenewCommand, store: StoreDep, principal: Admin) -> PartnershipPublic:
    """Extend a signed or active partnership: the same partnership (not a new one), a later end date."""
    return await _transition(store, partnership_id, principal, body)


@router.post("/partnerships/{partnership_id}/end", response_model=PartnershipPublic, tags=["lifecycle"])
async def end(partnership_id: str, body: EndCommand, store: StoreDep, principal: Admin) -> PartnershipPublic:
    """signed or active → ended, with a reason code."""
    return await _transition(store, partnership_id, principal, body)


# --- skills sponsorship -----------------------------------------------------------------------------


def mission_public(doc: dict[str, Any]) -> MissionPublic:
    fields = {k: v for k, v in doc.items() if k in MissionPublic.model_fields and k != "volunteers"}
    return MissionPublic(
        id=doc["_id"],
        **fields,
        volunteers=len(doc.get("volunteers", [])),
        published=not doc.get("outbox_pending", False),
    )


@router.post("/missions", status_code=201, response_model=MissionPublic, tags=["skills sponsorship"])
async def create_mission(body: MissionCreate, store: StoreDep, principal: Writer, response: Response) -> MissionPublic:
    """A labelled association announces a skills-sponsorship mission."""
    partner_id = principal.partner_id if principal.role == Role.PARTNER else body.partner_id
    if principal.role == Role.PARTNER and body.partner_id and body.partner_id != principal.partner_id:
        raise HTTPException(404, f"no partner {body.partner_id}")
    if not partner_id:
        raise HTTPException(422, "partner_id is required")
    partner = await _visible(store.partners, partner_id, principal, "partner")
    created, doc, published = await handlers.create_mission(store, partner, body)
    if not created:
        response.status_code = 200
    return mission_public(doc).model_copy(update={"published": published})


@router.get("/missions", response_model=Page[MissionPublic], tags=["skills sponsorship"])
async def list_missions(
    store: StoreDep,
    principal: Reader,
    partner_id: str | None = None,
    status: MissionStatus | None = None,
    departement: DepartementCode | None = None,
    commitment: Commitment | None = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> dict[str, Any]:
    query: dict[str, Any] = {"partner_id": partner_id} if partner_id else {}
    query.update(_scope(principal))
    for name, value in (("status", status), ("departement", departement), ("commitment", commitment)):
        if value:
            query[name] = str(value)
    return await _page(store.missions.collection, query, page, page_size, mission_public)


async def _mission(store: Store, mission_id: str, principal: Principal) -> dict[str, Any]:
    return await _visible(store.missions.collection, mission_id, principal, "mission")


@router.get("/missions/{mission_id}", response_model=MissionPublic, tags=["skills sponsorship"])
async def get_mission(mission_id: str, store: StoreDep, principal: Reader) -> MissionPublic:
    return mission_public(await _mission(store, mission_id, principal))


@router.post("/missions/{mission_id}/volunteers", response_model=MissionPublic, tags=["skills sponsorship"])
async def add_volunteer(mission_id: str, body: VolunteerCreate, store: StoreDep, principal: Admin) -> MissionPublic:
    """La Poste records a postal employee volunteering (the staff number stays here; events carry counts)."""
    mission = await _mission(store, mission_id, principal)
    return mission_public(await handlers.add_volunteer(store, mission, body.staff_id))


@router.post("/missions/{mission_id}/completion", response_model=MissionPublic, tags=["skills sponsorship"])
async def complete_mission(
    mission_id: str, body: CompletionCommand, store: StoreDep, principal: Writer
) -> MissionPublic:
    mission = await _mission(store, mission_id, principal)
    updated, published = await handlers.complete_mission(store, mission, body)
    return mission_public(updated).model_copy(update={"published": published})
