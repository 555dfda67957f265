"""Browser tests drive Debian's Chromium (Playwright's own browser download fails offline)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-gpu"]  # fmt: skip


def launch_chromium(playwright):
    """Headless Chromium with the flags this offline machine needs."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture
def out_dir(request) -> Path:
    """test-output/<test name>/ for screenshots (ignored by git), for people to look at."""
    path = ROOT / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def orm_beside_playwright(monkeypatch):
    """The checks read the database between clicks, in the thread where Playwright's sync API
    runs an event loop; nothing here is concurrent, so Django's async guard may stand aside."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def page(orm_beside_playwright):
    """A laptop-sized Chromium page; a script error on any page fails the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.set_default_timeout(20_000)
        yield page
        browser.close()
    if errors:
        pytest.fail(f"script errors: {errors}")
