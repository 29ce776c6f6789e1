"""Fixtures shared by the browser tests: one Chromium per module, and screenshots."""
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.web.browser import CHROMIUM_ARGS, ROOT, WAIT_MS, chromium_executable



@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path):
    """`shots(page, name)` saves a full-page screenshot (in SCREENSHOTS_DIR if set), toasts cleared unless asked."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page, name, toasts=False):
        if not toasts:
            page.evaluate("document.getElementById('toasts').replaceChildren()")
        page.screenshot(path=folder / f"{name}.png", full_page=True, animations="disabled")

    return shoot
