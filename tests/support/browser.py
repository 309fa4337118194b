"""A headless Chromium for the web-view tests: Debian's `chromium` and `chromium-driver` driven by Selenium,
pointed at the system binaries so that nothing is downloaded. `headless_chromium()` skips the calling test,
naming what is missing, where either the browser or Selenium is absent. The `browser` fixture (one per test
module) is in tests/conftest.py; `wait_for` polls the page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def headless_chromium(width: int = 1280, height: int = 900) -> Any:
    """A started `selenium.webdriver.Chrome` (headless); the caller quits it."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.skip(
                f"{path} not found: install the browser with `apt-get install chromium chromium-driver` "
                f"({package}; tools/setup_env.sh does)"
            )
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    """`predicate()`'s first truthy value, polled every 0.1 s; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:g} s")
        time.sleep(0.1)
