"""Opening a page of the built site in the shared headless Chromium, for the site tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}


def open_page(
    browser: Any, url: str, shot: str | None = None, viewport: dict[str, int] = DESKTOP
) -> tuple[Any, list[str]]:
    """Open ``url``; return the page and every problem seen: console errors, failed or
    off-machine requests, broken images."""
    page = browser.new_page(viewport=viewport)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
    page.on(
        "request",
        lambda r: (
            problems.append(f"off-machine request: {r.url}")
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else None
        ),
    )
    page.goto(url, wait_until="networkidle")
    broken = page.evaluate(
        "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    problems += [f"broken image: {src}" for src in broken]
    if shot is not None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return page, problems
