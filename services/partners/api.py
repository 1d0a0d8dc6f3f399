"""Partners HTTP routes, one module per concern: identity, partners, partnerships, skills missions."""

from __future__ import annotations

from fastapi import APIRouter

from services.partners import api_identity, api_missions, api_partners, api_partnerships

__all__ = ["router"]

router = APIRouter()
for module in (api_identity, api_partners, api_partnerships, api_missions):
    router.include_router(module.router)
