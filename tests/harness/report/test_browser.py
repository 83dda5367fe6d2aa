"""The report in a real browser: headless Chromium through selenium.

At 1000 px the page needs no horizontal scrolling, every image loads, and nothing is
fetched from anywhere but the file itself; printed (A4 width, print CSS) no table runs
off the page. Skipped, saying how to get one, where no Chromium is installed:
`make browser-test` installs Debian's chromium and chromium-driver and runs this file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_runs import make_run

from harness.report.page import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
HOW = "`make browser-test` installs chromium and chromium-driver (apt-get) and runs this test"

webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed; {HOW}")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        f"no headless Chromium (chromium, chromedriver) here; {HOW}", allow_module_level=True
    )

A4_PRINT_WIDTH_PX = 718  # 210 mm less the page's 2 x 12 mm margins, at 96 px per inch


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return write_report(make_run(tmp_path_factory.mktemp("browser") / "run1"))


def _open(browser, path: Path, width: int) -> None:
    browser.set_window_size(width, 900)
    browser.get(path.resolve().as_uri())
    browser.execute_script("return document.readyState")


def test_the_page_fits_1000_px_and_loads_every_image_from_itself(browser, report):
    browser.get_log("performance")  # what came before this page
    _open(browser, report, 1000)
    widths = browser.execute_script(
        "const d = document.documentElement;"
        "return [d.scrollWidth, d.clientWidth, window.innerWidth];"
    )
    scroll_width, client_width, inner_width = widths
    assert inner_width == 1000
    assert scroll_width <= client_width <= inner_width  # no horizontal scrolling
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);"
    )
    assert len(images) == 5 and all(done and width > 0 for done, width, _ in images), images
    requested = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if '"Network.requestWillBeSent"' in entry["message"]
    ]
    assert requested and all(url.startswith(("file:", "data:")) for url in requested), requested


def test_printed_on_a4_no_table_runs_off_the_page(browser, report):
    _open(browser, report, A4_PRINT_WIDTH_PX)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        overflow = browser.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return Array.from(document.querySelectorAll('table, img'))"
            "  .map(e => e.getBoundingClientRect().right - w).filter(x => x > 0.5);"
        )
        pdf = browser.execute_cdp_cmd("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69})
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert overflow == []
    assert len(pdf["data"]) > 10_000  # the page printed
