"""Real Chromium (Playwright) against a live server: log in, approve a pair with the
keyboard, create a release from the admin page, and check the release on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Pair, Release, Role
from app.services.releases import release_dir, verify_release
from tests.support.browser import screenshot, submit_login, watch_errors
from tests.support.seed import make_pair, make_user, make_video, write_frame_jpeg

pytestmark = [pytest.mark.browser, pytest.mark.slow]


# One run is enough: SQLite, the embedded default (the API and page tests cover Postgres).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_review_with_keyboard_then_release(
    live_server: str,
    browser_page,
    session,
    settings,
    tmp_path: Path,
) -> None:
    make_user(session, "ada", Role.admin)
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    first = make_pair(
        session, video, priority=0.1, caption="Macrovesicular steatosis of hepatocytes."
    )
    second = make_pair(
        session, video, priority=0.2, caption="Portal tract with bile duct and hepatic artery."
    )
    page = browser_page
    problems = watch_errors(page)

    page.goto(f"{live_server}/review")
    assert page.url.startswith(f"{live_server}/login?next=/review")
    submit_login(page, "ada")
    page.wait_for_url(f"{live_server}/review")

    caption = page.locator("#caption")
    assert caption.input_value() == first.caption
    image = page.locator(".frame img")
    page.wait_for_function("document.querySelector('.frame img').naturalWidth > 0")
    assert image.evaluate("img => img.naturalWidth") == 640
    screenshot(page, tmp_path, "review.png")

    page.keyboard.press("a")
    page.wait_for_selector(f"text=Approved pair #{first.id}")
    assert page.locator("#caption").input_value() == second.caption
    page.wait_for_selector("#queue-counts >> text=1 approved")
    session.expire_all()
    assert session.get(Pair, first.id).status == "approved"
    assert session.get(Pair, second.id).status == "pending"

    # r, then 3: reject with the third reason (text does not match the image).
    page.keyboard.press("r")
    assert page.locator("#reject-hint").is_visible()
    page.keyboard.press("3")
    page.wait_for_selector(f"text=Rejected pair #{second.id}")
    page.wait_for_selector("text=Nothing to review")
    # The decision saves in the background; the counts refresh once it is stored.
    page.wait_for_selector("#queue-counts >> text=1 rejected")
    session.expire_all()
    rejected = session.get(Pair, second.id)
    assert (rejected.status, rejected.reject_reason) == ("rejected", "text_mismatch")

    page.goto(f"{live_server}/admin/releases")
    page.fill("input[name=version]", "v1.0")
    page.fill("textarea[name=notes]", "First release from the browser test.")
    page.click("#release-form button[type=submit]")
    page.wait_for_selector("text=Release v1.0 created with 1 pairs")
    assert page.locator("a.file", has_text="manifest.json").count() == 1
    screenshot(page, tmp_path, "releases.png")
    assert not problems, problems

    release = session.scalar(select(Release).where(Release.version == "v1.0"))
    assert release.status == "ready" and release.pair_count == 1
    folder = release_dir(release)
    assert (folder / "manifest.json").is_file()
    assert list((folder / "shards").glob("*.tar"))
    assert (folder / "metadata.parquet").is_file() and (folder / "metadata.csv").is_file()
    assert verify_release(folder, expected_manifest_sha256=release.manifest_sha256) == []
