"""Which storage layout a service's database holds: a service refuses data written in a layout it cannot read."""

from __future__ import annotations

from shared.docstore import DocumentStore, DuplicateKey

__all__ = ["LAYOUT", "LayoutMismatch", "ensure_layout"]

META = "meta"
# 2: aggregates as immutable versions (`shared.aggregates`), outbox notes. 1 (unmarked): mutable documents
# with an outbox array inside.
LAYOUT = 2


class LayoutMismatch(RuntimeError):
    pass


async def ensure_layout(docs: DocumentStore, service: str) -> None:
    """Mark an empty database with this layout; refuse to start on one written in another layout."""
    marker = await docs.get(META, "layout")
    if marker is not None:
        if marker.get("version") != LAYOUT:
            raise LayoutMismatch(_message(service, f"layout {marker.get('version')}"))
        return
    names = [name for name in await docs.collection_names() if name != META and not name.startswith("system.")]
    existing = [name for name in names if await docs.find(name, limit=1)]
    if existing:
        raise LayoutMismatch(_message(service, f"an earlier layout (collections {sorted(existing)[:6]})"))
    try:
        await docs.insert(META, {"_id": "layout", "version": LAYOUT, "service": service})
    except DuplicateKey:
        pass  # a second replica marked it at the same moment


def _message(service: str, found: str) -> str:
    return (
        f"the {service} database holds data written in {found}; this version reads layout {LAYOUT} only. "
        "Run `make reset` to start from empty data (it deletes .data/), then `make run`."
    )
