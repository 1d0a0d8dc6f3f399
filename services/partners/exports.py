"""The exports of organisations and partnerships: one row builder for both formats, and their XLSX columns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from services.partners.api_common import heads
from services.partners.store import Store
from shared.xlsx import Column, workbook

__all__ = ["PARTNER_XLSX", "PARTNERSHIP_XLSX", "partner_rows", "partnership_rows", "collect", "to_xlsx"]

# The CSV's columns (csvio.PARTNER_EXPORT, PARTNERSHIP_EXPORT) in the same order, under French headers and with
# their cell types; the values are the CSV's (codes stay codes).
PARTNER_XLSX = (
    Column("id", "Identifiant"),
    Column("name", "Nom", width=30),
    Column("kind", "Type d'organisation"),
    Column("legal_id", "SIREN, SIRET ou RNA"),
    Column("postcode", "Code postal"),
    Column("city", "Commune", width=20),
    Column("commune_insee", "Code commune (INSEE)"),
    Column("home_departement", "Département du siège"),
    Column("departements", "Départements d'intervention", "list"),
    Column("skills_label", "Label mécénat de compétences", "bool"),
)
PARTNERSHIP_XLSX = (
    Column("id", "Identifiant"),
    Column("external_ref", "Référence externe"),
    Column("partner_id", "Identifiant du partenaire"),
    Column("partner_legal_id", "SIREN, SIRET ou RNA du partenaire"),
    Column("partner_name", "Partenaire", width=30),
    Column("partnership_type", "Type de partenariat"),
    Column("commitments", "Engagements sociétaux", "list"),
    Column("departements", "Départements", "list"),
    Column("title", "Intitulé", width=30),
    Column("status", "Statut"),
    Column("starts_on", "Début", "date"),
    Column("ends_on", "Fin", "date"),
    Column("signed_on", "Signé le", "date"),
    Column("activated_on", "Activé le", "date"),
    Column("ended_on", "Terminé le", "date"),
    Column("end_reason", "Motif de fin"),
    Column("renewals", "Renouvellements", "number"),
)


async def partner_rows(store: Store, query: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    """Organisations matching `query` as export rows, a batch at a time (never their contacts)."""
    async for batch in heads(store.partners, query):
        yield [{**d, **d["address"], "id": d["_id"]} for d in batch]


async def partnership_rows(store: Store, query: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    """Partnerships matching `query` as export rows, with their partner's name and legal id."""
    partners: dict[str, dict[str, Any]] = {}
    async for batch in heads(store.partnerships, query):
        missing = sorted({d["partner_id"] for d in batch} - partners.keys())
        if missing:
            # One query per batch: FerretDB scans for `$in` anyway, and a scan beats a look-up per row.
            partners.update({p["_id"]: p for p in await store.partners.find({"_id": {"$in": missing}})})
        yield [
            {
                **d,
                "id": d["_id"],
                "partner_name": partners.get(d["partner_id"], {}).get("name"),
                "partner_legal_id": partners.get(d["partner_id"], {}).get("legal_id"),
                "renewals": len(d.get("renewals", [])),
            }
            for d in batch
        ]


async def collect(batches: AsyncIterator[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [row async for batch in batches for row in batch]


def to_xlsx(columns: tuple[Column, ...], rows: list[dict[str, Any]], sheet: str) -> bytes:
    return workbook(columns, rows, sheet=sheet)
