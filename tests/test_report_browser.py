"""The one HTML report in a real headless browser (Debian's Chromium, driven by Playwright): the page loads, every
image it references exists and decodes, and nothing overflows the page (wide tables scroll in their own box)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wbc_data.report.index import build_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def check_in_browser(page_path: Path, screenshot: Path | None = None) -> dict:
    """Open ``page_path`` in headless Chromium at a laptop width; return what the checks need."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        response = page.goto(page_path.as_uri(), wait_until="load")
        facts = page.evaluate(
            """() => ({
                title: document.title,
                images: [...document.images].map(i => ({src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0,
                                                       width: i.getBoundingClientRect().width})),
                pageWidth: document.documentElement.scrollWidth, viewWidth: window.innerWidth,
                wideBoxes: [...document.querySelectorAll('body *')].filter(e => {
                    const r = e.getBoundingClientRect();
                    return r.right > window.innerWidth + 1 && !e.closest('.table-wrap');
                }).map(e => e.tagName),
                sections: [...document.querySelectorAll('section')].map(s => s.id),
                links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
            })"""
        )
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=False)
        browser.close()
    facts["status_ok"] = response is None or response.ok
    facts["failed_requests"] = failed
    return facts


def assert_readable(facts: dict, page_dir: Path) -> None:
    assert facts["status_ok"] and not facts["failed_requests"], facts["failed_requests"]
    assert facts["images"] and all(i["ok"] for i in facts["images"]), [i for i in facts["images"] if not i["ok"]]
    assert all(i["width"] <= facts["viewWidth"] for i in facts["images"])
    assert facts["pageWidth"] <= facts["viewWidth"], "the page scrolls sideways"
    assert not facts["wideBoxes"], facts["wideBoxes"][:10]
    for href in facts["links"]:
        if not href.startswith(("#", "http", "data:")):
            assert (page_dir / href).is_file(), href


def test_demo_report_in_chromium(tmp_path):
    from typer.testing import CliRunner

    from wbc_data.cli import app

    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["demo", "-w", str(ws), "-j", "1"]).exit_code == 0
    index = build_index(ws / "reports", intro="demo")
    facts = check_in_browser(index, tmp_path / "index.png")
    assert_readable(facts, index.parent)
    assert {"manifest", "dedup", "split", "gap-report"} <= set(facts["sections"])
