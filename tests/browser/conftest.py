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
