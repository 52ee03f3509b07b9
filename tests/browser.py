"""Open built book pages in headless Chromium with every non-local request blocked."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium() -> str | None:
    """Path of a system Chromium, or None."""
    return os.environ.get("MMREPRO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageReport:
    url: str
    external: list[str] = field(default_factory=list)   # requests that left the machine (blocked)
    failed: list[str] = field(default_factory=list)     # local assets that did not load
    console_errors: list[str] = field(default_factory=list)
    math: int = 0                                        # rendered MathJax containers
    raw_tex: int = 0                                     # math left as raw \( \) / $$ text
    images: int = 0
    broken_images: list[str] = field(default_factory=list)


def inspect_pages(pages: list[Path], screenshot_dir: Path | None = None) -> list[PageReport]:
    from playwright.sync_api import sync_playwright

    reports = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        for page_path in pages:
            report = PageReport(page_path.as_uri())
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(r, report=report):
                if r.request.url.startswith(("file://", "data:", "blob:", "about:")):
                    r.continue_()
                else:
                    report.external.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("requestfailed", lambda req, report=report: None if req.url in report.external
                    else report.failed.append(req.url))
            page.on("console", lambda msg, report=report: report.console_errors.append(msg.text)
                    if msg.type == "error" else None)
            page.goto(report.url, wait_until="load")
            page.wait_for_timeout(1500)  # MathJax typesets after load
            report.math = page.locator("mjx-container").count()
            report.raw_tex = page.evaluate(
                "() => [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
            report.images = page.locator("img").count()
            report.broken_images = page.evaluate(
                "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
            if screenshot_dir is not None:
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot_dir / f"{page_path.stem}.png"), full_page=True)
            page.close()
            reports.append(report)
        browser.close()
    return reports
