"""The docs site: built strictly, served locally, read in headless Chromium, offline.

Screenshots land in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Build the site with --strict and serve it on a free localhost port."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        yield p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def _open(browser: Any, url: str, shot: str) -> tuple[Any, list[str]]:
    """Open ``url``; return the page and every problem seen: console errors, failed or
    off-machine requests, broken images."""
    page = browser.new_page()
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
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return page, problems


def test_home_page_renders_offline(site: str, browser: Any) -> None:
    page, problems = _open(browser, site + "/", "home")
    assert problems == []
    assert "refattn" in page.title()
    assert page.locator("pre code").count() >= 2  # the example and the error message


def test_math_renders_as_mathml(site: str, browser: Any) -> None:
    page, problems = _open(browser, site + "/math/", "math")
    assert problems == []
    maths = page.locator("math")
    assert maths.count() > 10
    box = maths.first.bounding_box()
    assert box is not None
    assert box["width"] > 0
    assert "$" not in page.locator("article").inner_text()  # no LaTeX left unrendered


def test_search_finds_a_page(site: str, browser: Any) -> None:
    page, problems = _open(browser, site + "/", "search-before")
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator("input.md-search__input").type("einsum", delay=50)
    results = page.locator(".md-search-result__item")
    try:
        results.first.wait_for(timeout=10000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "search.png"))
    assert results.count() > 0
    assert problems == []


def test_catalogue_case_pages_render(site: str, browser: Any) -> None:
    """A case page shows its broken and fixed code and the captured exception."""
    from catalogue import all_cases

    cases = all_cases()
    page, problems = _open(browser, site + f"/catalogue/{cases[0].id}/", "catalogue-case")
    assert problems == []
    assert page.locator("pre code").count() >= 3  # broken, its outcome, fixed
    assert cases[0].module.EXPECTED.__name__ in page.locator("article").inner_text()
    index, problems = _open(browser, site + "/catalogue/", "catalogue-index")
    assert problems == []
    assert index.locator("article a").count() >= len(cases)


def test_heatmaps_render_on_a_mask_case_page(site: str, browser: Any) -> None:
    """Mask and numerics cases that return weights show broken and fixed heatmaps."""
    from catalogue import all_cases
    from catalogue.taxonomy import TAGS

    for case in all_cases():
        families = {TAGS[t][0] for t in case.tags}
        if case.kind == "exception" or not families & {"mask", "numerics"}:
            continue
        page, problems = _open(browser, f"{site}/catalogue/{case.id}/", "catalogue-heatmaps")
        images = page.locator("article img")
        if images.count() == 2:
            assert problems == []
            for i in range(2):
                assert images.nth(i).evaluate("img => img.naturalWidth") > 0
            return
        page.close()
    pytest.fail("no mask or numerics case page shows heatmaps")


def test_benchmarks_page_shows_its_plot(site: str, browser: Any) -> None:
    page, problems = _open(browser, site + "/benchmarks/", "benchmarks")
    assert problems == []
    assert page.locator("article img").count() >= 1
    assert page.locator("article table").count() >= 3  # forward, fwd+bwd, long sequences
