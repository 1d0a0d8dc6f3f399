"""Seeds the demo: the office registry (the generated national network) and a few terminals, whose
credentials go to a git-ignored file so that a new user can try the API at once; then the year's detections so
far (demo_year.py: people later helped by the workshops demo, and others), sent to the running service.

    python -m services.detection.demo [--credentials .run/demo-credentials.json] [--offices 17000] [--year Y]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.detection import demo_year
from services.detection.network import generate
from services.detection.settings import DetectionSettings
from services.detection.store import Store
from services.workshops.demo import SCALE
from shared import geo
from shared.identity import Principal, Role, issue_token
from shared.layout import ensure_layout
from shared.mongo import mongo_client
from shared.terminal_sdk import new_token, split_token, token_hash

__all__ = ["seed", "main"]

DEFAULT_FILE = Path(".run/demo-credentials.json")


async def _still_valid(store: Store, terminals: list[dict[str, Any]]) -> bool:
    for t in terminals:
        doc = await store.terminal(str(t.get("terminal_id")))
        try:
            _, secret = split_token(t.get("token", ""))
        except ValueError:
            return False
        if doc is None or doc.get("revoked") or not hmac.compare_digest(doc["token_hash"], token_hash(secret)):
            return False
    return bool(terminals)


def default_url() -> str:
    """Where `make run` starts the detection service (deploy/local/services.sh passes --url itself)."""
    return f"http://127.0.0.1:{os.environ.get('DETECTION_PORT', '8003')}"


async def seed(
    settings: DetectionSettings,
    previous: dict[str, Any],
    *,
    offices: int = 17_000,
    terminals: int = 6,
    url: str | None = None,
) -> dict[str, Any]:
    mongo = mongo_client(settings.mongodb_uri, app_name="detection-demo")
    try:
        store = Store(mongo[settings.mongodb_database])
        await ensure_layout(store.docs, "detection")
        await store.ensure_indexes()
        network = generate(offices)
        loaded = await store.import_offices(network)
        issued = previous.get("terminals", [])
        if not await _still_valid(store, issued):
            # A few terminals in QPV offices (most detections come from there), France Services and others.
            picks = (
                [o for o in network if o.qpv][:3]
                + [o for o in network if o.france_services][:1]
                + [o for o in network if not o.qpv and not o.france_services][:: max(1, len(network) // 2)][:2]
            )[:terminals]
            issued = []
            for n, office in enumerate(picks, 1):
                terminal_id = f"demo-{office.office_id}-{n}-{secrets.token_hex(3)}"
                token, hashed = new_token(terminal_id)
                await store.add_terminal(terminal_id, office.office_id, hashed, f"guichet {n}")
                issued.append({"terminal_id": terminal_id, "office_id": office.office_id, "qpv": office.qpv,
                               "token": token})  # fmt: skip
        admin = issue_token(Principal("demo-admin", Role.ADMIN), settings.platform_token_key, ttl=timedelta(days=30))
        url = url or default_url()
        creds = {
            "detection_url": url,
            "admin_token": admin,
            "terminals": issued,
            "offices": loaded,
            "try": (
                f"curl -s -X POST {url}/v1/detections -H 'authorization: Bearer {issued[0]['token']}' "
                '-H \'content-type: application/json\' -d \'{"detection_id": "demo-1", "occurred_at": "'
                '\'$(date -u +%FT%TZ)\'", "needs": ["online_banking"], "client_reference": "DEMO-CLIENT-1", '
                '"consent": true}\''
            ),
        }
        return creds
    finally:
        await mongo.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--offices", type=int, default=17_000)
    parser.add_argument("--terminals", type=int, default=6)
    parser.add_argument("--url", default=None, help="the detection service's URL (default: on $DETECTION_PORT, 8003)")
    parser.add_argument("--year", type=int, default=datetime.now(ZoneInfo(geo.PARIS)).year, help="the detections' year")
    parser.add_argument("--scale", type=float, default=SCALE, help="the workshops demo's scale (whom it helps)")
    parser.add_argument("--no-detections", action="store_true", help="only the registry and the terminals")
    args = parser.parse_args(argv)
    path: Path = args.credentials
    previous = json.loads(path.read_text()) if path.exists() else {}
    creds = asyncio.run(seed(DetectionSettings(), previous, offices=args.offices, terminals=args.terminals,
                             url=args.url))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds, indent=2) + "\n")
    path.chmod(0o600)
    print(f"detection demo: offices {creds['offices']}, {len(creds['terminals'])} terminals")
    print(f"demo credentials (admin token, terminal tokens): {args.credentials}")
    if not args.no_detections:
        batches = demo_year.plan(args.year, args.scale, generate(args.offices), datetime.now(UTC))
        totals = demo_year.send(creds["detection_url"], creds["admin_token"], batches)
        print(f"detections of {args.year} so far, through the backfill path ({len(batches)} offices): {dict(totals)}")


if __name__ == "__main__":
    main()
