"""How the page tests drive a real browser: Debian's chromium through Playwright (never `playwright
install`, which downloads), and where their screenshots go."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium launched through Playwright, closed on the way out (a module's page fixture)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(browser: Any, base: str, token: str, viewport: dict[str, int], home: str = "**/wall",
            init_script: str | None = None, **context: Any) -> Any:
    """A new browser context at the service, signed in with a token through the login form; its page once
    the role's home page (`home`, a URL glob) has loaded. `init_script`: run in every page before its own
    scripts; `context`: Playwright's new_context options."""
    made = browser.new_context(viewport=viewport, base_url=base, **context)
    if init_script:
        made.add_init_script(init_script)
    page = made.new_page()
    page.on("pageerror", lambda e: print("page error:", e))
    page.goto("/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(home)
    return page


def screenshot(page: Any, tmp: Path, name: str, *, full_page: bool = True) -> Path:
    """A screenshot in the test's directory, copied to var/screenshots/ to be looked at."""
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path
