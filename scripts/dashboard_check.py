"""Looks at the dashboard as a person would, in headless Chromium: a screenshot, and what the demo promises.

    .venv/bin/python -m scripts.dashboard_check [--url http://127.0.0.1:8004] [--year 2026] [--out FILE.png]

After `make run`: every goal card at 10 % of its expected-to-date or more, the funnel's conversion above 0 %, no
raw id anywhere on the page (partner or record ids, demo references, person references), the goals labelled
when they are not the real ones, and the status beside "en direct" saying how far the counters are behind the
log. Prints the figures; exit status 1 when a check fails. The integration test of the demo runs the same check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.metrics.views import UNKNOWN_PARTNER

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "RAW_ID", "SYNC_TEXT", "Report", "check", "main"]

CHROMIUM = "/usr/bin/chromium"  # Debian's (the network is closed: no browser download)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# What no person should have to read: prefixed and bare UUIDs (pa-…, ps-…), keyed hashes, the demo's references.
RAW_ID = re.compile(
    r"\b[a-z]{2,3}-[0-9a-f]{8}-[0-9a-f]{4}|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-|\b[0-9a-f]{32,}\b"
    r"|\bdemo\d{4}-[a-z]|\bdemo-[a-z]"
)
SYNC_TEXT = re.compile(r"^(à jour|en retard de [\d\u00a0\u202f ]+ événements?)$")
MIN_PACE = 0.10  # a goal card below this share of its expected-to-date reads as a broken demo


@dataclass
class Report:
    year: int
    goals_label: str | None = None
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    funnel: dict[str, Any] = field(default_factory=dict)
    partners: list[str] = field(default_factory=list)
    sync: str = ""
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problems"}


def _digits(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def _same_as_the_api(page: Any, url: str, year: int, timeout: float = 30.0) -> dict[str, Any]:
    """The API's progress once every number on the page is the API's (read together: live traffic moves both)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = {
            i: page.locator(f'[data-indicator="{i}"]').get_attribute("data-value")
            for i in page.locator("[data-indicator]").evaluate_all("els => els.map(e => e.dataset.indicator)")
        }
        progress = httpx.get(f"{url}/v1/progress", params={"year": year}, timeout=30).json()
        api = {i["id"]: str(i["value"]) for i in progress["indicators"]}
        if shown == api or time.monotonic() > deadline:
            if shown != api:
                raise AssertionError(f"the page's numbers are not the API's: {shown} != {api}")
            return progress
        time.sleep(0.3)


def check(page: Any, url: str, year: int, *, screenshot: Path | None = None, expect_demo_goals: bool = True) -> Report:
    """Open the dashboard of `year` in `page` (a Playwright page) and check it against the API it reads."""
    from playwright.sync_api import expect

    report = Report(year)
    page.goto(f"{url}/?year={year}")
    expect(page.locator('[data-indicator="people_helped"]')).to_have_attribute("data-value", re.compile(r"^\d+$"))
    progress = _same_as_the_api(page, url, year)
    expect(page.locator("#partners tbody tr").first).to_be_visible()
    expect(page.locator("#funnel [data-funnel=conversion]")).to_have_text(re.compile(r"\d"))
    expect(page.locator("#sync")).to_have_text(SYNC_TEXT)
    report.goals_label = progress.get("goals_label")
    label = page.locator("#goals-label")
    if report.goals_label and not (label.is_visible() and report.goals_label in label.inner_text()):
        report.problems.append("the goals are the demo's but the page does not say so")
    if expect_demo_goals and not (report.goals_label or "").lower().startswith("objectifs de démonstration"):
        report.problems.append(f"the goals are not labelled as the demo's: {report.goals_label!r}")
    for item in progress["indicators"]:
        card = page.locator(f'[data-card="{item["id"]}"]')
        if not item["goal"] or not card.count():
            continue
        value, expected = item["value"], item["expected_to_date"] or 0
        pace = value / expected if expected else None
        report.cards[item["id"]] = {"value": value, "goal": item["goal"], "expected_to_date": expected, "pace": pace}
        shown = page.locator(f'[data-indicator="{item["id"]}"]').inner_text()
        if _digits(shown) != value:
            report.problems.append(f"{item['id']}: the card reads {shown!r}, not {value}")
        if pace is not None and pace < MIN_PACE:
            report.problems.append(f"{item['id']}: {value} is {pace:.1%} of the {expected:g} expected to date")
    conversion = page.locator("#funnel [data-funnel=conversion]").inner_text()
    report.funnel = {"conversion": conversion, "steps": page.locator("#funnel .num").all_inner_texts()}
    if _digits(conversion) == 0:
        report.problems.append(f"the funnel's conversion reads {conversion!r}")
    names = page.locator("#partners tbody tr[data-partner] .pname")
    try:  # the metrics service reads the partners registry on first use: the page asks again shortly
        expect(names.filter(has_text=UNKNOWN_PARTNER)).to_have_count(0, timeout=30_000)
    except AssertionError:
        pass  # reported below
    report.partners = names.all_inner_texts()
    unnamed = sum(1 for name in report.partners if name == UNKNOWN_PARTNER)
    if unnamed:
        report.problems.append(f"{unnamed} of the partners shown have no name in the partners registry")
    report.sync = page.locator("#sync").inner_text()
    text = page.locator("body").inner_text()
    for shown in sorted(set(RAW_ID.findall(text)))[:10]:
        report.problems.append(f"a raw id is visible on the page: {shown!r}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return report


def main(argv: list[str] | None = None) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8004", help="the metrics service (the dashboard)")
    parser.add_argument("--year", type=int, default=datetime.now(ZoneInfo("Europe/Paris")).year)
    parser.add_argument("--out", type=Path, default=Path(".run/screenshots/dashboard.png"))
    parser.add_argument("--real-goals", action="store_true", help="the goals are the real ones, not the demo's")
    args = parser.parse_args(argv)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="fr-FR")
            report = check(page, args.url.rstrip("/"), args.year, screenshot=args.out,
                           expect_demo_goals=not args.real_goals)  # fmt: skip
        finally:
            browser.close()
    print(json.dumps(report.figures(), ensure_ascii=False, indent=2))
    print(f"screenshot: {args.out}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("OK" if not report.problems else f"{len(report.problems)} problem(s)")
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
