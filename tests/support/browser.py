"""Driving the pages in Chromium (Playwright): signing in, collecting the page's errors,
and screenshots (also copied to ``$QUILT_BROWSER_ARTIFACTS`` when that is set)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.seed import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def watch_errors(page) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions: a test
    asserts it is empty at the end."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url} {m.location} {m.text}") if m.type == "error" else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def submit_login(page, username: str) -> None:
    """Fill in and send the login form the page shows."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def log_in(page, base: str, username: str, landing: str) -> None:
    """Sign in through the login page and land on ``landing`` (a path)."""
    page.goto(f"{base}/login?next={landing}")
    submit_login(page, username)
    page.wait_for_url(f"{base}{landing}")


def screenshot(page, folder: Path, name: str) -> Path:
    """A full-page PNG in ``folder``, copied to $QUILT_BROWSER_ARTIFACTS when set."""
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("QUILT_BROWSER_ARTIFACTS"):
        shutil.copy(path, Path(os.environ["QUILT_BROWSER_ARTIFACTS"]) / name)
    return path
