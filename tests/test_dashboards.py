"""What the admin figures say, computed from real review rows on both databases: the
agreement report (Cohen's and Fleiss' kappa, Krippendorff's alpha, caption edit distances)
against the statistics themselves, per-reviewer figures, throughput, and progress and yield
by channel and video."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models import Pair, Role
from app.services import agreement, dashboards
from tests.support.review import edit, vote
from tests.support.seed import make_channel, make_pair, make_user, make_video

# Three reviewers, six pairs, k = 3: who said what (a: approve, r: reject).
VOTES = {
    "alice": "aaraar",
    "bob": "aarrar",
    "carol": "arraaa",
}


def test_agreement_report_matches_the_statistics(session):
    video = make_video(session)
    pairs = [make_pair(session, video, priority=i / 10) for i in range(6)]
    users = {name: make_user(session, name) for name in VOTES}
    for name, row in VOTES.items():
        for pair, v in zip(pairs, row, strict=True):
            decision, reason = ("approve", None) if v == "a" else ("reject", "duplicate")
            vote(session, users[name], pair, decision, reason, k=3)
    # Caption edits of one pair by two reviewers.
    edit(session, users["alice"], pairs[0], {"caption": "kitten"})
    edit(session, users["bob"], pairs[0], {"caption": "sitting"})

    report = agreement.report(session=session)
    labels = {n: ["approve" if c == "a" else "reject" for c in row] for n, row in VOTES.items()}
    by_pair = {(p.reviewer_a, p.reviewer_b): p for p in report.pairwise}
    assert set(by_pair) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    for (a, b), row in by_pair.items():
        assert row.common == 6
        assert row.cohen_kappa == pytest.approx(agreement.cohen_kappa(labels[a], labels[b]))
    table = [
        [
            sum(labels[n][i] == "approve" for n in VOTES),
            sum(labels[n][i] == "reject" for n in VOTES),
        ]
        for i in range(6)
    ]
    assert (report.fleiss_items, report.fleiss_raters) == (6, 3)
    assert report.fleiss_kappa == pytest.approx(agreement.fleiss_kappa(table))
    assert report.krippendorff_alpha == pytest.approx(
        agreement.krippendorff_alpha_nominal([[labels[n][i] for n in VOTES] for i in range(6)])
    )
    assert [(e.reviewer_a, e.reviewer_b, e.common, e.mean_chars) for e in report.caption_edits] == [
        ("alice", "bob", 1, 3.0)
    ]
    # Unanimous pairs are settled, the others disputed.
    statuses = [session.scalar(select(Pair.status).where(Pair.id == p.id)) for p in pairs]
    assert statuses == ["approved", "disputed", "rejected", "disputed", "approved", "disputed"]

    stats = {s.username: s for s in dashboards.reviewer_stats(session=session)}
    assert (stats["alice"].decisions, stats["alice"].approvals, stats["alice"].rejections) == (
        6,
        4,
        2,
    )
    assert stats["alice"].mean_kappa == pytest.approx(
        (by_pair[("alice", "bob")].cohen_kappa + by_pair[("alice", "carol")].cohen_kappa) / 2
    )
    buckets = dashboards.throughput(session=session)
    assert sum(b.decisions for b in buckets) == 18


def test_progress_and_yield_by_channel_and_video(session):
    channel = make_channel(session, "Liver path")
    v1 = make_video(
        session,
        "One",
        source_kind="youtube",
        source_url="https://youtu.be/1",
        channel_id=channel.id,
    )
    v2 = make_video(session, "Loose lecture")
    for status in ("approved", "approved", "rejected", "pending"):
        make_pair(session, v1, status=status)
    make_pair(session, v2, status="approved")
    make_pair(session, v2, status="disputed")
    rows = {r.label: r for r in dashboards.progress_by_channel(session=session)}
    liver = rows["Liver path"]
    assert (liver.total, liver.approved, liver.pending, liver.yield_, liver.done) == (
        4,
        2,
        1,
        0.5,
        0.75,
    )
    assert rows["(no channel)"].disputed == 1
    videos = {r.label: r for r in dashboards.progress_by_video(session=session)}
    assert videos["One"].total == 4 and videos["Loose lecture"].yield_ == 0.5
    only = dashboards.progress_by_video(session=session, channel_id=channel.id)
    assert [r.label for r in only] == ["One"]
    admin = make_user(session, "ada", Role.admin)
    assert dashboards.reviewer_stats(session=session) == []
    assert admin.role == "admin"


def test_per_hour_is_over_active_time_with_a_floor():
    start = dt.datetime(2026, 1, 1, 9, 0)
    at = [start + dt.timedelta(seconds=s) for s in (0, 1)]
    # Two decisions a second apart: too few to give a rate (once 7,200 an hour).
    assert dashboards.decisions_per_hour(at) is None
    # Six decisions in 50 s: the window is at least 10 minutes, so 36 an hour.
    burst = [start + dt.timedelta(seconds=10 * i) for i in range(6)]
    assert dashboards.decisions_per_hour(burst) == pytest.approx(36.0)
    # Twelve decisions a minute apart in two sittings three hours apart: the break is not
    # review time (10 active minutes, 12 decisions: 72 an hour).
    sittings = [start + dt.timedelta(minutes=i) for i in range(6)] + [
        start + dt.timedelta(hours=3, minutes=i) for i in range(6)
    ]
    assert dashboards.decisions_per_hour(sittings) == pytest.approx(72.0)


def test_dashboard_says_too_few_for_two_decisions(admin, session):
    video = make_video(session)
    rita = make_user(session, "rita")
    for pair in (make_pair(session, video), make_pair(session, video)):
        vote(session, rita, pair, "approve", k=1)
    [stats] = dashboards.reviewer_stats(session=session)
    assert (stats.decisions, stats.per_hour) == (2, None)
    page = admin.get("/admin/dashboard").text
    row = page.split('id="reviewers"', 1)[1].split("</table>", 1)[0]
    assert "too few" in row
    header, body = row.split("</thead>", 1)
    # Every number column's header is a number column too (aligned over its figures).
    first_row = body.split("</tr>", 1)[0]
    assert header.count("<th>") + header.count("<th ") == first_row.count("<td")
    numeric = header.count('<th class="num"')
    assert numeric == first_row.count('<td class="num"') == 9
    # ...and the stylesheet puts those headers on the right, over their figures.
    assert ".table th.num { text-align: right; }" in admin.get("/static/app.css").text
