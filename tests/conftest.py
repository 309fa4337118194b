"""Shared fixtures. `../shared` (data beside the repository, never committed) is optional: tests that need it
are marked `shared` and skip with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared not found at {SHARED}: these tests need the shared data folder beside the repo")
    return SHARED


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def live_engines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engines folder for the session's live runs: the built assets and a seeded scratch QA-MoE
    (qamoe.build.scratch; about 10 s to make). Read-only to qamoe-live; a test that damages engines copies them."""
    from tests.support.live_fixtures import make_live_engines

    return make_live_engines(tmp_path_factory.mktemp("live-engines"))


@pytest.fixture()
def nats_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh `nats-server -js` on a free port with its store in tmp_path, stopped after the test; skips with
    the reason when the binary is absent (tests/support/nats.py)."""
    from tests.support.nats import NatsServer

    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """A headless Chromium for the web-view tests (tests/support/browser.py), one per test module; skips with
    the reason where the browser, its driver or Selenium is absent."""
    from tests.support.browser import headless_chromium

    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()
