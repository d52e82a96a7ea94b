"""The catalogue's pages of the docs site, read in headless Chromium, offline.

Each test keeps one catalogue defect of issue 17 from coming back: heatmaps without a
legend, a colour scale, axis labels, row sums or marked zero-weight cells; case pages
missing from the navigation or without previous/next links; an index that is a wall of
headings or shows regexes as messages; case ids in prose that are not links; snippets
that call helpers the page does not show (the test runs setup + snippet as copied from
the page); unexplained seed-article file names; raw reST markup or ``python -m
catalogue`` commands. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalogue import Case, all_cases
from catalogue.taxonomy import TAGS
from tests.site_browser import ARTIFACTS, DESKTOP
from tests.site_browser import open_page as _open

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"
CASES = {c.id: c for c in all_cases()}
RAW_MARKUP = re.compile(r":(?:func|class|mod|data|attr|meth|exc|obj):|``")


# ---- Heatmaps -------------------------------------------------------------------------


def _heatmap_files(built: Path) -> list[Path]:
    return sorted((built / "catalogue" / "img").glob("*.svg"))


def test_every_heatmap_has_legend_scale_axes_row_sums_and_marked_zeros(built: Path) -> None:
    """Read each heatmap SVG: a legend with a colour scale, both axes named, a border on
    every cell, a × on every cell whose weight (its tooltip) is 0, a visible fill
    (not white) for it, and row sums equal to the sums of the cells' values."""
    svgs = _heatmap_files(built)
    assert len(svgs) >= 10
    zero_cells = 0
    for path in svgs:
        root = ET.parse(path).getroot()
        assert root.find(f".//{SVG}g[@class='legend']") is not None, path.name
        scale = root.find(f".//{SVG}g[@class='colour-scale']")
        assert scale is not None, path.name
        assert scale.find(f"{SVG}rect") is not None, path.name
        texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
        assert any("queries" in t for t in texts), path.name
        assert any("keys" in t for t in texts), path.name
        assert "row sum" in texts, path.name
        cells = [r for r in root.iter(f"{SVG}rect") if "cell" in r.get("class", "").split()]
        markers = {
            (float(t.get("x", 0)), float(t.get("y", 0)))
            for t in root.iter(f"{SVG}text")
            if t.get("class") == "zero-marker" and t.text == "×"
        }
        rows: dict[float, list[float]] = {}
        for rect in cells:
            assert rect.get("stroke") not in (None, "none"), path.name
            tip = rect.find(f"{SVG}title")
            assert tip is not None
            assert tip.text is not None
            value = float(tip.text.rsplit(":", 1)[1])
            rows.setdefault(float(rect.get("y", 0)), []).append(value)
            if value == 0:
                zero_cells += 1
                assert rect.get("fill") not in ("#fff", "#ffffff", "white", "rgb(255,255,255)")
                size = float(rect.get("width", 0))
                centre = (float(rect.get("x", 0)) + size / 2, float(rect.get("y", 0)) + size / 2)
                assert any(
                    abs(x - centre[0]) < 1 and abs(y - centre[1] - 4) < 1 for x, y in markers
                )
        sums = [
            float(t.text or "nan") for t in root.iter(f"{SVG}text") if t.get("class") == "row-sum"
        ]
        expected = [sum(rows[y]) for y in sorted(rows)]
        np.testing.assert_allclose(sums, expected, rtol=5e-3, atol=1e-3, err_msg=path.name)
    assert zero_cells > 0  # mask cases do have zero-weight cells to mark


def test_masked_heatmap_shows_every_cell_in_the_browser(site: str, browser: Any) -> None:
    """fully_masked_row_nan's fixed grid shows all its rows and columns (zeroed rows
    included): the image is as tall as its cells say, and the page shows no problem."""
    page, problems = _open(browser, f"{site}/catalogue/fully_masked_row_nan/", "catalogue-heatmaps")
    assert problems == []
    images = page.locator("article img.case-heatmap")
    assert images.count() == 2
    images.first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "catalogue-heatmap-closeup.png"))
    for i in range(2):
        assert images.nth(i).evaluate("img => img.naturalWidth") > 0
        assert "queries" in (images.nth(i).get_attribute("alt") or "")


# ---- Navigation -----------------------------------------------------------------------


def test_case_page_is_active_in_the_nav_with_previous_and_next(site: str, browser: Any) -> None:
    """A case page is the active nav entry, inside its family's section under Catalogue,
    and its footer links to the previous and next case pages."""
    case = CASES["softmax_over_query_axis"]
    page, problems = _open(browser, f"{site}/catalogue/{case.id}/", "catalogue-case")
    assert problems == []
    active = page.locator(".md-sidebar--primary .md-nav__link--active")
    assert active.count() >= 1
    title = re.sub(r"``?([^`]+?)``?", r"\1", case.title)
    assert any(title in active.nth(i).inner_text() for i in range(active.count()))
    nav_text = page.locator(".md-sidebar--primary").inner_text()
    assert "Numerics" in nav_text  # the family section of its first tag
    for side in ("prev", "next"):
        link = page.locator(f"a.md-footer__link--{side}")
        assert link.count() == 1, side
        href = link.get_attribute("href") or ""
        assert href.startswith("../"), (side, href)
        assert href != "../", (side, href)


def test_every_case_page_is_in_the_nav(built: Path) -> None:
    index = (built / "catalogue" / "index.html").read_text()
    for case_id in CASES:
        assert f'href="{case_id}/"' in index, case_id


# ---- The index ------------------------------------------------------------------------


def test_index_is_a_table_per_family_of_reasonable_height(site: str, browser: Any) -> None:
    page, problems = _open(browser, f"{site}/catalogue/", "catalogue-index")
    assert problems == []
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 6000, height
    families = {TAGS[c.tags[0]][0] for c in CASES.values()}
    for fam in families:
        table = page.locator(f"h2#{fam} + div.catalogue-table table")
        assert table.count() == 1, fam
    links = page.locator("article table a[href]")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert {f"{case_id}/" for case_id in CASES} <= hrefs
    header = page.locator("article table").first.locator("th").all_inner_texts()
    assert header == ["Case", "Kind", "Tags", "Frameworks"]


def test_index_shows_messages_not_regexes(site: str, browser: Any) -> None:
    """The message table holds real recorded messages with case titles; no regex syntax."""
    import json

    page, _ = _open(browser, f"{site}/catalogue/")
    page.locator("#messages ~ details summary").first.click()
    text = page.locator("article").inner_text()
    for syntax in (r"\d+", "(?:", r"\(", ".*", r"\s"):
        assert syntax not in text, syntax
    recorded = json.loads((ROOT / "catalogue" / "outcomes.json").read_text())
    message = recorded["qk_dim_mismatch"]["numpy"]["broken"]
    assert message.split(" (")[0] in text
    assert CASES["qk_dim_mismatch"].title.replace("``", "") in text.replace("`", "")


def test_index_explains_the_seed_articles(site: str, browser: Any) -> None:
    page, _ = _open(browser, f"{site}/catalogue/")
    section = page.locator("#seed-articles + p").inner_text()
    assert "000_acdb1d09df8d8964.txt" in section
    assert "What caused the exception in the attention_weight layer?" in section
    case_page, _ = _open(browser, f"{site}/catalogue/qk_dim_mismatch/")
    table = case_page.locator("#what-a-seed-article-claimed ~ div table").first
    assert table.locator("th").all_inner_texts() == ["Claim", "What running it shows"]
    assert "000_acdb1d09df8d8964" not in table.inner_text()


# ---- Case pages: links, markup, commands ----------------------------------------------


_TEXT_OUTSIDE_LINKS_AND_CODE_BLOCKS = """
() => {
  const article = document.querySelector("article").cloneNode(true);
  for (const el of article.querySelectorAll("a, pre, .md-typeset__scrollwrap th")) el.remove();
  return article.textContent;
}
"""


def test_case_ids_in_prose_are_links(site: str, browser: Any) -> None:
    """On every case page, a case id left in the text is inside a link (or a code block)."""
    page = browser.new_page(viewport=DESKTOP)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, CASES)) + r")\b")
    bare: dict[str, list[str]] = {}
    linked = 0
    for case_id in CASES:
        page.goto(f"{site}/catalogue/{case_id}/", wait_until="domcontentloaded")
        text = page.evaluate(_TEXT_OUTSIDE_LINKS_AND_CODE_BLOCKS)
        found = sorted(set(pattern.findall(text)))
        if found:
            bare[case_id] = found
        linked += page.locator("article a[href$='/'] code").count()
    assert bare == {}
    assert linked > 0  # some pages do cite other cases, as links


def test_no_raw_markup_and_the_cli_commands_on_catalogue_pages(site: str, browser: Any) -> None:
    """No Sphinx role or double backtick on any case page, the index or diagnose; the
    commands shown are ``refattn cases ...`` / ``refattn diagnose``."""
    page = browser.new_page(viewport=DESKTOP)
    paths = ["/catalogue/", "/diagnose/", *(f"/catalogue/{i}/" for i in CASES)]
    raw: dict[str, list[str]] = {}
    for path in paths:
        page.goto(site + path, wait_until="domcontentloaded")
        text = page.locator("article").inner_text()
        hits = [text[max(m.start() - 30, 0) : m.end() + 30] for m in RAW_MARKUP.finditer(text)]
        if hits:
            raw[path] = hits[:3]
        assert "python -m catalogue" not in text, path
        if path.count("/") == 3 and path != "/catalogue/":
            case_id = path.split("/")[2]
            assert f"refattn cases show {case_id}" in text, path
            assert f"refattn cases run {case_id}" in text, path
    assert raw == {}
    page.goto(site + "/diagnose/", wait_until="domcontentloaded")
    assert "refattn diagnose" in page.locator("article").inner_text()
    assert page.locator("article ol a[href*='catalogue/']").count() >= 4


# ---- Self-contained snippets ----------------------------------------------------------


def _numpy_tab_code(page: Any) -> tuple[str, str, str]:
    """The NumPy tab's setup, broken and fixed code, as text from the rendered page."""
    tab = page.locator(".tabbed-block").first
    setup = tab.locator("details.case-setup")
    # text_content: the setup block is collapsed (not rendered), as a reader first sees it
    setup_text = (setup.locator("pre code").text_content() or "") if setup.count() else ""
    broken = tab.locator(".case-broken pre code").text_content() or ""
    fixed_loc = tab.locator(".case-fixed pre code")
    fixed = (fixed_loc.text_content() or "") if fixed_loc.count() else ""
    return setup_text, broken, fixed


def _expect_outcome(case: Case, run_broken: Any) -> None:
    module = case.module
    if case.kind == "exception":
        with pytest.raises(module.EXPECTED, match=module.MATCH):
            run_broken()
        return
    result = run_broken()
    with pytest.raises(module.EXPECTED, match=module.MATCH):
        module.detect(result)


def test_numpy_snippets_run_as_copied_from_the_page(site: str, browser: Any) -> None:
    """For every case, setup + broken code taken from its rendered page, run in a fresh
    namespace, gives the case's outcome (its exception, or what its detector says); setup
    + fixed code runs and passes the detector."""
    page = browser.new_page(viewport=DESKTOP)
    failed: dict[str, str] = {}
    for case_id, case in CASES.items():
        page.goto(f"{site}/catalogue/{case_id}/", wait_until="domcontentloaded")
        setup, broken, fixed = _numpy_tab_code(page)
        try:
            namespace: dict[str, Any] = {"__name__": f"page_{case_id}"}
            exec(compile(setup + "\n\n" + broken, f"<{case_id} broken>", "exec"), namespace)
            _expect_outcome(case, namespace["broken"])
            if fixed:
                namespace = {"__name__": f"page_{case_id}"}
                exec(compile(setup + "\n\n" + fixed, f"<{case_id} fixed>", "exec"), namespace)
                result = namespace["fixed"]()
                if case.kind != "exception":
                    case.module.detect(result)
        except (
            Exception,
            pytest.fail.Exception,
        ) as error:  # every case's failure reported, not only the first
            failed[case_id] = f"{type(error).__name__}: {error}"[:300]
    assert failed == {}


def test_setup_block_is_collapsed_and_names_its_helpers(site: str, browser: Any) -> None:
    """softmax_over_query_axis calls ``_inputs`` and ``softmax``: its setup defines both."""
    page, _ = _open(browser, f"{site}/catalogue/softmax_over_query_axis/")
    details = page.locator(".tabbed-block").first.locator("details.case-setup")
    assert details.count() == 1
    assert details.get_attribute("open") is None
    code = details.locator("pre code").text_content() or ""
    for needed in ("def _inputs(", "def softmax(", "import numpy as np"):
        assert needed in code
