"""Real Chromium against a live server: the review workspace as reviewers and admins use it.

- the keyboard flow: approve (the prefetched pair shows in < 100 ms), edit then approve,
  reject with a reason number, undo, back and forward through one's decisions, skip;
  zoom that persists from pair to pair; concepts highlighted with their name on hover;
- grid triage: click, shift-click, reject the selection with a reason number, approve;
- adjudication of a disputed pair by an admin, and the agreement and dashboard pages.
"""

from __future__ import annotations

import pytest

from app.models import Pair, PairStatus, Review, Role, TranscriptSegment
from tests.support.browser import log_in, screenshot, watch_errors
from tests.support.review import disputed_pair
from tests.support.seed import make_pair, make_user, make_video, write_frame_jpeg

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # SQLite, the embedded default; the page tests cover Postgres.
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SWAP_BUDGET_MS = 100.0


def _ready(page, pair_id: int) -> None:
    """The pair is on screen and the next one is prefetched with its image decoded."""
    page.wait_for_selector(f"#pair-form[data-pair-id='{pair_id}']")
    # Functions, not expressions: the page's CSP forbids eval, which polling strings use.
    page.wait_for_function(
        "(id) => document.documentElement.dataset.aheadFor === id", arg=str(pair_id)
    )


def _timed_press(page, key: str, old_id: int) -> float:
    """Milliseconds from the keydown to the next frame after the new pair is in the DOM."""
    page.evaluate(
        """([key, oldId]) => {
          window.__swap = null;
          let t0 = null;
          document.addEventListener("keydown", (e) => {
            if (e.key === key) t0 = performance.now();
          }, { capture: true, once: true });
          const observer = new MutationObserver(() => {
            const form = document.getElementById("pair-form");
            const img = document.getElementById("pair-image");
            if (t0 === null || !form || form.dataset.pairId === String(oldId)) return;
            observer.disconnect();
            const painted = img && img.complete && img.naturalWidth > 0;
            requestAnimationFrame(() => { window.__swap = { ms: performance.now() - t0, painted }; });
          });
          observer.observe(document.querySelector("main"), { childList: true, subtree: true });
        }""",
        [key, old_id],
    )
    page.keyboard.press(key)
    page.wait_for_function("() => window.__swap !== null")
    swap = page.evaluate("window.__swap")
    assert swap["painted"], "the prefetched image was not ready at the swap"
    return swap["ms"]


def test_keyboard_flow(live_server: str, browser_page, session, settings, tmp_path) -> None:
    make_user(session, "rita")
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    captions = [
        "Hepatocytes with macrovesicular steatosis.",
        "Portal tract with bile duct and hepatic artery.",
        "Granuloma with multinucleated giant cells.",
        "Cirrhosis with regenerative nodules.",
        "Normal lobule with central vein.",
        "Cholestasis with bile plugs.",
    ]
    pairs = [
        make_pair(
            session,
            video,
            priority=i / 10,
            caption=c,
            umls=["QC:239475", "QC:430647"],
            medical_text="hepatocytes around a bile duct",
        )
        for i, c in enumerate(captions)
    ]
    session.add_all(
        [
            TranscriptSegment(
                video_id=video.id, idx=0, start_s=40.0, end_s=50.0, text="Next slide."
            ),
            TranscriptSegment(
                video_id=video.id,
                idx=1,
                start_s=61.0,
                end_s=69.0,
                text="Look at these hepatocytes.",
            ),
        ]
    )
    session.commit()
    ids = [p.id for p in pairs]
    page = browser_page
    problems = watch_errors(page)
    log_in(page, live_server, "rita", "/review")

    # The pair view: concepts with name and type on hover, transcript with timestamps.
    mark = page.locator("mark.concept", has_text="bile duct").first
    assert "bile duct" in mark.get_attribute("title")
    assert page.locator(".transcript li.inside").inner_text().endswith("Look at these hepatocytes.")
    assert page.locator(".transcript .ts").first.inner_text() == "0:40"

    # Zoom in twice; the zoom survives the swap to the next pair.
    _ready(page, ids[0])
    page.keyboard.press("+")
    page.keyboard.press("+")
    zoom = page.locator("#zoom-level").inner_text()
    assert zoom.endswith("%")
    screenshot(page, tmp_path, "workspace-review.png")

    # 1. approve: the next pair is on screen within the budget, saved in the background.
    took = _timed_press(page, "a", ids[0])
    assert took < SWAP_BUDGET_MS, f"swap took {took:.1f} ms"
    assert page.locator("#caption").input_value() == captions[1]
    page.wait_for_selector(f"#flash >> text=Approved pair #{ids[0]}")
    page.wait_for_function("() => document.getElementById('zoom-level').textContent !== 'fit'")
    assert page.locator("#zoom-level").inner_text() == zoom
    page.wait_for_selector("#queue-counts >> text=1 approved")

    # 2. edit, then approve: the edit is kept.
    _ready(page, ids[1])
    page.keyboard.press("e")
    page.fill("#caption", "Portal tract: bile duct, hepatic artery and portal vein.")
    page.keyboard.press("Escape")
    took = _timed_press(page, "a", ids[1])
    assert took < SWAP_BUDGET_MS, f"swap took {took:.1f} ms"

    # 3. reject with reason 3 (text does not match the image).
    _ready(page, ids[2])
    page.keyboard.press("r")
    assert page.locator("#reject-hint").is_visible()
    took = _timed_press(page, "3", ids[2])
    assert took < SWAP_BUDGET_MS, f"swap took {took:.1f} ms"
    try:
        page.wait_for_selector("#queue-counts >> text=1 rejected")
    except Exception:
        session.expire_all()
        raise AssertionError(
            f"counts: {page.locator('#queue-counts').inner_text()!r}; "
            f"notice: {page.locator('#notice').inner_text()!r}; "
            f"db: {session.get(Pair, ids[2]).status}"
        ) from None
    session.expire_all()
    assert session.get(Pair, ids[1]).caption.startswith("Portal tract: bile duct")
    assert session.get(Pair, ids[1]).magnification == 20  # the form's tags kept it
    assert session.get(Pair, ids[1]).status == PairStatus.approved
    rejected = session.get(Pair, ids[2])
    assert (rejected.status, rejected.reject_reason) == ("rejected", "text_mismatch")

    # 4. undo: the rejected pair comes back, pending again.
    _ready(page, ids[3])
    page.keyboard.press("u")
    page.wait_for_selector(f"#pair-form[data-pair-id='{ids[2]}']")
    page.wait_for_selector(f"text=Undid your decision on pair #{ids[2]}")
    session.expire_all()
    assert session.get(Pair, ids[2]).status == PairStatus.pending

    # 5. back through my decisions, then forward to the queue again.
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#review-pane[data-mode='history']")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#review-pane[data-step='2']")
    assert page.locator("#pair-form").get_attribute("data-pair-id") in {str(i) for i in ids[:3]}
    screenshot(page, tmp_path, "workspace-history.png")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#review-pane[data-step='1']")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f"#review-pane[data-mode='queue'] #pair-form[data-pair-id='{ids[2]}']")

    # 6. decide the undone pair again, then skip the next one.
    _ready(page, ids[2])
    page.keyboard.press("a")
    page.wait_for_selector(f"#pair-form[data-pair-id='{ids[3]}']")
    _ready(page, ids[3])
    page.keyboard.press("s")
    page.wait_for_selector(f"#pair-form[data-pair-id='{ids[4]}']")
    page.wait_for_selector("#queue-counts >> text=3 approved")
    session.expire_all()
    assert session.get(Pair, ids[2]).status == PairStatus.approved
    assert session.get(Pair, ids[3]).status == PairStatus.pending  # skipped, not decided
    assert not problems, problems


def test_a_failed_save_shows_a_notice_with_retry(
    live_server: str,
    browser_page,
    session,
    settings,
) -> None:
    """The next pair shows at once even when saving fails; the notice offers a retry."""
    make_user(session, "rita")
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    first = make_pair(session, video, priority=0.1)
    second = make_pair(session, video, priority=0.2, caption="Second pair.")
    page = browser_page
    log_in(page, live_server, "rita", "/review")
    _ready(page, first.id)
    failures = {"left": 1}

    def flaky(route):
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            route.fulfill(
                status=503, body="The server is busy; try again.", content_type="text/plain"
            )
        else:
            route.continue_()

    page.route(f"**/review/pairs/{first.id}", flaky)
    page.keyboard.press("a")
    page.wait_for_selector(f"#pair-form[data-pair-id='{second.id}']")
    page.wait_for_selector("#notice >> text=The server is busy")
    page.click("#notice >> text=Retry")
    page.wait_for_selector("#queue-counts >> text=1 approved")
    session.expire_all()
    assert session.get(Pair, first.id).status == PairStatus.approved


def test_grid_triage(live_server: str, browser_page, session, settings, tmp_path) -> None:
    make_user(session, "rita")
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    pairs = [
        make_pair(session, video, priority=i / 100, caption=f"Caption number {i}.")
        for i in range(30)
    ]
    page = browser_page
    problems = watch_errors(page)
    log_in(page, live_server, "rita", "/review/grid")
    page.wait_for_selector(".tile")
    assert page.locator(".tile").count() == 30
    tiles = page.locator(".tile")
    tiles.nth(0).click()
    tiles.nth(4).click(modifiers=["Shift"])
    assert page.locator("#grid-selected-count").inner_text() == "5"
    screenshot(page, tmp_path, "workspace-grid.png")
    page.keyboard.press("r")
    page.keyboard.press("4")  # poor image quality
    page.wait_for_selector("text=Rejected 5 pairs.")
    assert page.locator(".tile").count() == 25

    # Keyboard only: focus the first tile, extend with shift+arrow, approve.
    page.locator(".tile").first.focus()
    page.keyboard.press(" ")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("a")
    page.wait_for_selector("text=Approved 2 pairs.")
    session.expire_all()
    statuses = [session.get(Pair, p.id) for p in pairs[:7]]
    assert [p.status for p in statuses] == ["rejected"] * 5 + ["approved"] * 2
    assert {p.reject_reason for p in statuses[:5]} == {"poor_quality"}
    assert not problems, problems


def test_adjudication_and_figures(
    live_server: str,
    browser_page,
    session,
    settings,
    tmp_path,
) -> None:
    admin = make_user(session, "ada", Role.admin)
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    pair = disputed_pair(
        session,
        video,
        caption="Disputed: is this a granuloma?",
        voters=("rita", "remy"),
        reason="text_mismatch",
    )
    session.expire_all()
    assert session.get(Pair, pair.id).status == PairStatus.disputed
    page = browser_page
    problems = watch_errors(page)
    log_in(page, live_server, "ada", "/admin/adjudication")
    row = page.locator(f"#adj-{pair.id}")
    assert "rita" in row.inner_text() and "remy" in row.inner_text()
    screenshot(page, tmp_path, "workspace-adjudication.png")
    row.locator("select[name=reason]").select_option("text_mismatch")
    row.locator("button.adj-reject").click()
    page.wait_for_selector(f"text=Pair #{pair.id} rejected.")
    page.wait_for_selector("text=No disputes")
    session.expire_all()
    settled = session.get(Pair, pair.id)
    assert (settled.status, settled.reject_reason) == ("rejected", "text_mismatch")
    assert session.query(Review).filter_by(pair_id=pair.id, reviewer_id=admin.id).count() == 1

    page.goto(f"{live_server}/admin/agreement")
    assert "rita" in page.locator("#pairwise").inner_text()
    screenshot(page, tmp_path, "workspace-agreement.png")
    page.goto(f"{live_server}/admin/dashboard")
    assert "rita" in page.locator("#reviewers").inner_text()
    assert "Liver pathology" in page.locator("#by-video").inner_text()
    screenshot(page, tmp_path, "workspace-dashboard.png")

    # The pair's history shows every vote and the adjudication.
    page.goto(f"{live_server}/review/pairs/{pair.id}")
    history = page.locator("#pair-history").inner_text()
    assert "rita" in history and "remy" in history and "adjudicated" in history
    assert not problems, problems
