"""Channels, on both databases: per-channel filters applied to a real listing (an RSS feed
served over HTTP on 127.0.0.1, listed by yt-dlp) with the reasons recorded; the source's
metadata kept; the periodic re-crawl through the reconciler's pass at a given time; the
channel pages (escaped, admin-only, CSRF forms) and the JSON API."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from app import broker
from app.models import Channel, PairStatus, Video, VideoStatus
from app.services import channels, ingest
from app.services.reconcile import reconcile
from app.settings import get_settings
from tests.support.seed import make_pair, make_video
from tests.support.web import HX, form, hx_post
from workers import tasks
from workers.stages import fetch
from workers.types import SourceEntry

HOSTILE = "<script>alert('x')</script>"

# (guid, title, itunes:duration, pubDate) of the feed's items.
ITEMS = [
    ("liver", f"Liver histology {HOSTILE}", "00:20:00", "Tue, 05 Mar 2024 10:00:00 GMT"),
    ("kidney", "Kidney histology, quick look", "00:01:30", "Wed, 06 Mar 2024 10:00:00 GMT"),
    ("live", "LIVE histology Q&A", "00:30:00", "Thu, 07 Mar 2024 10:00:00 GMT"),
    ("old", "Histology of the skin", "00:15:00", "Tue, 01 Jan 2019 10:00:00 GMT"),
    ("cooking", "Cooking with a pathologist", "00:10:00", "Fri, 08 Mar 2024 10:00:00 GMT"),
    ("lung", "Lung histology", None, None),  # the feed says neither: both filters pass it
]
FILTERS = {
    "min_duration_s": 300,
    "max_duration_s": 3600,
    "include_keywords": ["Histology"],
    "exclude_keywords": ["live"],
    "uploaded_after": "2020-01-01",
}


@pytest.fixture
def loopback_allowed(settings, monkeypatch):
    """The file server's 127.0.0.1 on the fetch allow-list (refused otherwise)."""
    monkeypatch.setenv("QUILT_FETCH_ALLOW_NETWORKS", '["127.0.0.1"]')
    get_settings.cache_clear()
    return get_settings()


def write_feed(
    folder: Path, base: str, items, title: str = f"Pathology {HOSTILE}", name: str = "feed.xml"
) -> str:
    """An RSS feed ``name`` (itunes durations, pubDates) written into ``folder``, served at
    ``base``; returns its URL. The enclosures are never fetched by a listing."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for guid, item_title, duration, published in items:
        extra = f"<itunes:duration>{duration}</itunes:duration>" if duration else ""
        extra += f"<pubDate>{published}</pubDate>" if published else ""
        parts.append(
            f"<item><title>{escape(item_title)}</title><link>{base}/{guid}.mp4</link>"
            f'<enclosure url="{base}/{guid}.mp4" type="video/mp4" length="1"/>'
            f"<guid>{guid}</guid>{extra}</item>"
        )
    (folder / name).write_text(
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
        f"<title>{escape(title)}</title><link>{base}/</link><description>d</description>"
        f"{''.join(parts)}</channel></rss>"
    )
    return f"{base}/{name}"


def listings_sent(settings) -> list[int]:
    """Channel ids of the listing messages in the (filesystem) broker."""
    ids = []
    for path in sorted((settings.broker_dir / "out").glob("*.msg")):
        message = json.loads(path.read_text())
        if message["headers"]["task"] == broker.TASK_EXPAND_SOURCE:
            ids.append(json.loads(base64.b64decode(message["body"]))[0][0])
    return ids


def videos_of(session, channel_id: int) -> dict[str, Video]:
    session.expire_all()
    rows = session.scalars(select(Video).where(Video.channel_id == channel_id))
    return {v.source_url.rsplit("/", 1)[-1].removesuffix(".mp4"): v for v in rows}


# --- filters and metadata on a real listing ------------------------------------------


@pytest.mark.usefixtures("loopback_allowed")
def test_filters_take_only_matching_videos_and_say_why(settings, session, tmp_path, file_server):
    served = tmp_path / "site"
    feed = write_feed(served, file_server(served), ITEMS)
    channel = ingest.queue_url(
        session=session, url=feed, user=None, kind="channel", enqueue=False, filters=FILTERS
    )
    assert tasks.expand_source(channel.id) == 2

    videos = videos_of(session, channel.id)
    assert sorted(videos) == ["liver", "lung"]
    liver = videos["liver"]
    assert liver.title == f"Liver histology {HOSTILE}" and liver.duration_s == 1200
    # What the feed said of the video: its guid and its date (from pubDate).
    assert liver.source_info == {"external_id": "liver", "upload_date": "2024-03-05"}
    assert videos["lung"].source_info == {"external_id": "lung"}

    row = session.get(Channel, channel.id)
    assert row.status == "done" and row.title == f"Pathology {HOSTILE}"
    assert row.crawled_at is not None
    listing = channels.last_listing(session=session, channel_id=channel.id)
    assert (listing.listed, listing.added, listing.known, listing.filtered) == (6, 2, 0, 4)
    reasons = {e.title: e.reason for e in listing.filtered_entries}
    assert reasons == {
        "Kidney histology, quick look": "shorter than 5:00 (1:30)",
        "LIVE histology Q&A": "title has an excluded keyword: live",
        "Histology of the skin": "uploaded 2019-01-01, before 2020-01-01",
        "Cooking with a pathologist": "title has none of: Histology",
    }

    # "live" is not in "Liver": keywords are whole words. Listing again adds nothing
    # twice; the known ones are counted, not filtered.
    assert tasks.expand_source(channel.id) == 0
    again = channels.last_listing(session=session, channel_id=channel.id)
    assert (again.listed, again.added, again.known, again.filtered) == (6, 0, 2, 4)

    # A wider filter takes what the last one turned away, at the next listing.
    channels.update_settings(
        session=session, channel=row, user=None, filters={"max_duration_s": 1000}
    )
    assert tasks.expand_source(channel.id) == 3
    assert sorted(videos_of(session, channel.id)) == ["cooking", "kidney", "liver", "lung", "old"]
    last = channels.last_listing(session=session, channel_id=channel.id)
    assert [(e.title, e.reason) for e in last.filtered_entries] == [
        ("LIVE histology Q&A", "longer than 16:40 (30:00)")
    ]


@pytest.mark.usefixtures("loopback_allowed")
def test_skip_seen_leaves_out_what_is_a_video_elsewhere(settings, session, tmp_path, file_server):
    served = tmp_path / "site"
    base = file_server(served)
    feed = write_feed(served, base, ITEMS[:2])
    single = ingest.queue_url(session=session, url=f"{base}/liver.mp4", user=None, enqueue=False)
    skipping = ingest.queue_url(session=session, url=feed, user=None, kind="channel", enqueue=False)
    assert skipping.filters["skip_seen"] is True  # the default
    assert tasks.expand_source(skipping.id) == 1
    assert sorted(videos_of(session, skipping.id)) == ["kidney"]
    listing = channels.last_listing(session=session, channel_id=skipping.id)
    assert [e.reason for e in listing.filtered_entries] == [f"already seen: video #{single.id}"]

    # The same feed as a playlist that takes every video, seen or not.
    other = write_feed(served, base, ITEMS[:2], name="copy.xml")
    taking = ingest.queue_url(
        session=session,
        url=other,
        user=None,
        kind="channel",
        enqueue=False,
        filters={"skip_seen": False},
    )
    assert tasks.expand_source(taking.id) == 2


def test_flat_youtube_entry_metadata_is_kept(settings, session):
    """A YouTube channel listing's flat entry (as yt-dlp's tab extractor makes it): what
    it carries goes to ``Video.source_info``; licence and captions it does not carry."""
    flat = {
        "_type": "url",
        "ie_key": "Youtube",
        "id": "aqz-KE-bpKQ",
        "url": "https://www.youtube.com/watch?v=aqz-KE-bpKQ",
        "title": "Big Buck Bunny",
        "duration": 635,
        "channel_id": "UCSMOQeBJ2RAnuFungnQOxLg",
        "channel": "Blender",
        "uploader": "Blender",
        "uploader_id": "@BlenderOfficial",
        "view_count": 1234567,
        "availability": "public",
        "live_status": None,
        "timestamp": 1709632800,  # approximate_date: from "2 weeks ago"
    }
    entry = fetch._source_entry(flat["url"], flat, {})
    assert entry.source_info() == {
        "external_id": "aqz-KE-bpKQ",
        "uploader": "Blender",
        "channel": "Blender",
        "channel_id": "UCSMOQeBJ2RAnuFungnQOxLg",
        "upload_date": "2024-03-05",
        "view_count": 1234567,
        "availability": "public",
    }
    full = {
        **flat,
        "license": "Creative Commons",
        "subtitles": {},
        "automatic_captions": {"en": []},
    }
    assert fetch._source_entry(flat["url"], full, {}).source_info()["license"] == "Creative Commons"
    assert fetch._source_entry(flat["url"], full, {}).has_captions is True
    assert fetch._source_entry(flat["url"], {**flat, "subtitles": {}}, {}).has_captions is False

    channel = ingest.queue_url(
        session=session, url="https://www.youtube.com/@blender", user=None, enqueue=False
    )
    ids = ingest.add_listed_videos(
        session=session, channel=channel, title="Blender", entries=[entry]
    )
    session.commit()
    video = session.get(Video, ids[0])
    assert video.source_info["view_count"] == 1234567 and video.duration_s == 635
    assert video.source_kind == "youtube"


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"min_duration_s": 600, "max_duration_s": 60}, "min_duration_s is more than"),
        ({"uploaded_after": "last tuesday"}, "uploaded_after must be a date"),
        ({"include_keywords": "histology"}, "must be a list of words"),
        ({"colour": "pink"}, "unknown filter: colour"),
        ({"skip_seen": "yes"}, "skip_seen must be true or false"),
        ({"max_duration_s": -1}, "between 0 and"),
    ],
)
def test_bad_filters_are_refused(settings, session, filters, message):
    with pytest.raises(ingest.IngestError, match=message):
        ingest.queue_url(
            session=session,
            url="https://www.youtube.com/@pathology",
            user=None,
            enqueue=False,
            filters=filters,
        )
    with pytest.raises(ingest.IngestError, match="recrawl_every_s must be between"):
        ingest.queue_url(
            session=session,
            url="https://www.youtube.com/@pathology",
            user=None,
            enqueue=False,
            recrawl_every_s=5,
        )
    assert session.scalar(select(Channel)) is None


# --- re-crawl --------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_allowed")
def test_recrawl_lists_a_channel_again_once_its_interval_passed(
    settings, session, tmp_path, file_server
):
    served = tmp_path / "site"
    base = file_server(served)
    feed = write_feed(served, base, ITEMS[:1])
    channel = ingest.queue_url(
        session=session, url=feed, user=None, kind="channel", enqueue=False, recrawl_every_s=3600
    )
    never = ingest.queue_url(
        session=session, url=f"{base}/other.xml", user=None, kind="channel", enqueue=False
    )
    never.status = "done"  # listed once, no interval: only when asked
    session.commit()
    assert tasks.expand_source(channel.id) == 1
    session.expire_all()
    crawled = channels._aware(session.get(Channel, channel.id).crawled_at)
    assert channels.next_crawl_at(session.get(Channel, channel.id)) == crawled + dt.timedelta(
        hours=1
    )

    # Not yet due: half an hour after the listing.
    report = reconcile(session=session, now=crawled + dt.timedelta(minutes=30))
    assert report.channels_due == 0
    session.expire_all()
    assert session.get(Channel, channel.id).status == "done"
    assert listings_sent(settings) == []

    # Due: two hours after. The reconciler queues the listing, the outbox sends it.
    write_feed(served, base, ITEMS[:2])  # the channel published a video meanwhile
    report = reconcile(session=session, now=crawled + dt.timedelta(hours=2))
    assert report.channels_due == 1
    session.expire_all()
    assert session.get(Channel, channel.id).status == "queued"
    assert listings_sent(settings) == [channel.id]
    assert channels.next_crawl_at(session.get(Channel, channel.id)) is None  # queued now
    # ... and a second pass does not queue it again while the listing is on its way.
    assert reconcile(session=session, now=crawled + dt.timedelta(hours=2)).channels_due == 0

    # The worker lists it: only the new video is added.
    assert tasks.expand_source(channel.id) == 1
    assert sorted(videos_of(session, channel.id)) == ["kidney", "liver"]
    row = session.get(Channel, channel.id)
    assert channels._aware(row.crawled_at) > crawled and row.status == "done"


def test_a_failed_or_cancelled_listing_is_not_retried_at_every_pass(settings, session):
    channel = ingest.queue_url(
        session=session,
        url="https://www.youtube.com/@pathology",
        user=None,
        recrawl_every_s=3600,
    )  # sent now
    sent_at = channels._aware(session.get(Channel, channel.id).enqueued_at)
    ingest.listing_failed(session=session, channel=channel, reason="could not list: 404")
    session.commit()
    assert reconcile(session=session, now=sent_at + dt.timedelta(minutes=5)).channels_due == 0
    assert reconcile(session=session, now=sent_at + dt.timedelta(minutes=61)).channels_due == 1

    session.expire_all()
    row = session.get(Channel, channel.id)
    row.status = "cancelled"
    session.commit()
    assert reconcile(session=session, now=sent_at + dt.timedelta(days=3)).channels_due == 0
    assert tasks.expand_source(channel.id) == 0  # a cancelled channel is not listed


# --- pages -----------------------------------------------------------------------------


def _listed_channel(session) -> Channel:
    """A channel with a hostile title, two videos (one done, with pairs) and one entry
    the filters turned away."""
    channel = ingest.queue_url(
        session=session,
        url="https://www.youtube.com/@pathology",
        user=None,
        enqueue=False,
        filters={"min_duration_s": 120},
    )
    entries = [
        SourceEntry(
            url="https://www.youtube.com/watch?v=aaa",
            title=f"Liver {HOSTILE}",
            duration_s=1800,
            upload_date="2024-03-05",
            uploader="Dr Path",
            view_count=4200,
        ),
        SourceEntry(url="https://www.youtube.com/watch?v=bbb", title="Kidney", duration_s=1800),
        SourceEntry(
            url="https://www.youtube.com/watch?v=ccc", title=f"Short {HOSTILE}", duration_s=30
        ),
    ]
    ids = ingest.add_listed_videos(
        session=session, channel=channel, title=f"Path {HOSTILE}", entries=entries
    )
    session.commit()
    video = session.get(Video, ids[0])
    video.status = VideoStatus.done
    session.commit()
    for status in (PairStatus.approved, PairStatus.approved, PairStatus.rejected):
        make_pair(session, video, status=status)
    return channel


def test_channel_pages_show_settings_yield_and_listing_escaped(admin, session):
    channel = _listed_channel(session)
    listing = admin.get("/admin/channels")
    assert listing.status_code == 200
    assert HOSTILE not in listing.text and "Path &lt;script&gt;" in listing.text
    assert f'href="/admin/channels/{channel.id}"' in listing.text
    assert 'href="/admin/channels"' in admin.get("/admin/videos").text

    page = admin.get(f"/admin/channels/{channel.id}")
    assert page.status_code == 200
    text = page.text
    assert HOSTILE not in text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "List again now" in text and "Cancel queue" in text
    assert 'name="min_minutes" type="number" min="0" step="any" value="2"' in text
    assert "1 done" in text and "1 queued" in text and "2 approved" in text
    # Pairs per hour of processed video: 3 pairs from half an hour.
    assert "6.0 (4.0 approved)" in text
    assert "shorter than 2:00 (0:30)" in text and "Short &lt;script&gt;" in text
    assert f'name="csrf_token" value="{admin.token}"' in text

    video = session.scalars(select(Video).where(Video.title.like("Liver%"))).one()
    video_page = admin.get(f"/admin/videos/{video.id}").text
    assert "Dr Path" in video_page and "2024-03-05" in video_page and "4,200" in video_page
    assert f'href="/admin/channels/{channel.id}"' in video_page


def test_channel_forms_change_settings_list_again_and_cancel(admin, session, settings):
    channel = _listed_channel(session)
    url = f"/admin/channels/{channel.id}"
    saved = hx_post(
        admin,
        f"{url}/settings",
        min_minutes="5",
        max_minutes="90",
        include="histology, liver",
        exclude="",
        uploaded_after="2023-01-01",
        recrawl_hours="24",
    )  # skip_seen unchecked: absent from the form
    assert saved.status_code == 200 and "Saved" in saved.text
    session.expire_all()
    row = session.get(Channel, channel.id)
    assert row.filters == {
        "min_duration_s": 300.0,
        "max_duration_s": 5400.0,
        "include_keywords": ["histology", "liver"],
        "exclude_keywords": [],
        "uploaded_after": "2023-01-01",
        "skip_seen": False,
    }
    assert row.recrawl_every_s == 86400

    bad = hx_post(admin, f"{url}/settings", min_minutes="90", max_minutes="5")
    assert bad.status_code == 422 and "Min_duration_s is more than max_duration_s" in bad.text
    assert 'value="90"' in bad.text  # what was typed stays in the form
    session.expire_all()
    assert session.get(Channel, channel.id).filters["min_duration_s"] == 300.0

    # Without the CSRF token nothing changes.
    forged = admin.post(f"{url}/settings", data={"min_minutes": "1"}, headers=HX)
    assert forged.status_code == 403

    crawl = hx_post(admin, f"{url}/crawl")
    assert crawl.status_code == 200 and "Queued for listing" in crawl.text
    assert listings_sent(settings) == [channel.id]
    again = hx_post(admin, f"{url}/crawl")
    assert again.status_code == 409 and "already queued" in again.text

    cancelled = hx_post(admin, f"{url}/cancel")
    assert cancelled.status_code == 200 and "1 video(s) stopped" in cancelled.text
    session.expire_all()
    assert session.get(Channel, channel.id).status == "cancelled"

    # Without htmx the forms answer with a redirect to the page.
    plain = admin.post(f"{url}/crawl", data=form(admin))
    assert (plain.status_code, plain.headers["location"]) == (303, url)


def test_admin_queues_a_channel_with_filters(admin, session, settings):
    page = admin.get("/admin/channels")
    assert 'name="skip_seen" type="checkbox" value="true" checked' in page.text
    queued = hx_post(
        admin,
        "/admin/channels",
        url="https://www.youtube.com/@histology",
        min_minutes="10",
        include="liver",
        skip_seen="true",
        recrawl_hours="12",
    )
    assert queued.status_code == 200 and "Queued channel" in queued.text
    channel = session.scalars(select(Channel)).one()
    assert channel.filters["min_duration_s"] == 600.0 and channel.filters["skip_seen"] is True
    assert channel.filters["include_keywords"] == ["liver"]
    assert channel.recrawl_every_s == 12 * 3600 and channel.status == "queued"
    assert listings_sent(settings) == [channel.id]

    refused = hx_post(admin, "/admin/channels", url="https://www.youtube.com/@x", recrawl_hours="x")
    assert refused.status_code == 422 and "a number of hours" in refused.text
    assert 'value="https://www.youtube.com/@x"' in refused.text
    local = hx_post(admin, "/admin/channels", url="http://127.0.0.1/feed.xml")
    assert local.status_code == 422
    assert session.scalar(select(Channel).where(Channel.id != channel.id)) is None


def test_reviewers_may_not_open_channel_pages_or_api(reviewer, session):
    channel = _listed_channel(session)
    for path in ("/admin/channels", f"/admin/channels/{channel.id}", "/api/channels"):
        assert reviewer.get(path).status_code == 403, path
    headers = {"X-CSRF-Token": reviewer.token}
    assert reviewer.post(f"/api/channels/{channel.id}/crawl", headers=headers).status_code == 403
    patch = reviewer.patch(f"/api/channels/{channel.id}", json={}, headers=headers)
    assert patch.status_code == 403


# --- API -------------------------------------------------------------------------------


def test_channel_api(admin, session, settings):
    channel = _listed_channel(session)
    headers = {"X-CSRF-Token": admin.token}
    listed = admin.get("/api/channels").json()
    assert [(c["id"], c["title"], c["video_count"]) for c in listed] == [
        (channel.id, f"Path {HOSTILE}", 2)
    ]
    detail = admin.get(f"/api/channels/{channel.id}").json()
    assert detail["filters"]["min_duration_s"] == 120 and detail["filters"]["skip_seen"] is True
    assert detail["yield"] == {
        "videos_by_status": {"done": 1, "queued": 1},
        "pairs_by_status": {"approved": 2, "rejected": 1},
        "video_hours": 0.5,
        "pairs_per_hour": 6.0,
        "approved_per_hour": 4.0,
    }
    assert detail["last_listing"]["filtered_entries"] == [
        {
            "title": f"Short {HOSTILE}",
            "url": "https://www.youtube.com/watch?v=ccc",
            "reason": "shorter than 2:00 (0:30)",
        }
    ]
    assert detail["next_crawl_at"] is None and detail["recrawl_every_s"] is None

    patched = admin.patch(
        f"/api/channels/{channel.id}",
        json={"filters": {"exclude_keywords": ["Live"]}, "recrawl_every_s": 7200},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["filters"]["exclude_keywords"] == ["Live"]
    assert body["filters"]["min_duration_s"] is None  # filters are replaced as a whole
    assert body["recrawl_every_s"] == 7200 and body["next_crawl_at"] is not None
    # Only what is sent changes: null stops the re-crawl, the filters stay.
    body = admin.patch(
        f"/api/channels/{channel.id}", json={"recrawl_every_s": None}, headers=headers
    ).json()
    assert body["recrawl_every_s"] is None and body["filters"]["exclude_keywords"] == ["Live"]

    bad = admin.patch(
        f"/api/channels/{channel.id}",
        json={"filters": {"min_duration_s": 100, "max_duration_s": 10}},
        headers=headers,
    )
    assert bad.status_code == 422 and "min_duration_s" in bad.json()["detail"]
    assert (
        admin.patch(
            f"/api/channels/{channel.id}", json={"filters": {"nope": 1}}, headers=headers
        ).status_code
        == 422
    )
    assert admin.get("/api/channels/999999").status_code == 404

    crawl = admin.post(f"/api/channels/{channel.id}/crawl", headers=headers)
    assert crawl.status_code == 202 and crawl.json()["status"] == "queued"
    assert listings_sent(settings) == [channel.id]
    assert admin.post(f"/api/channels/{channel.id}/crawl", headers=headers).status_code == 409

    queued = admin.post(
        "/api/channels",
        json={
            "url": "https://www.youtube.com/playlist?list=PL1",
            "filters": {"uploaded_after": "2024-01-01", "include_keywords": ["liver"]},
            "recrawl_every_s": 86400,
        },
        headers=headers,
    )
    assert queued.status_code == 201, queued.text
    new = queued.json()
    assert new["filters"]["uploaded_after"] == "2024-01-01" and new["status"] == "queued"
    assert new["recrawl_every_s"] == 86400 and new["last_listing"] is None
    assert listings_sent(settings) == [channel.id, new["id"]]
    refused = admin.post(
        "/api/channels",
        json={"url": "https://www.youtube.com/@y", "recrawl_every_s": 5},
        headers=headers,
    )
    assert refused.status_code == 422


def test_yield_of_an_empty_channel(settings, session):
    channel = Channel(url="https://www.youtube.com/@empty", status="done")
    session.add(channel)
    session.commit()
    make_video(session)  # a video of no channel counts for none
    produced = channels.channel_yield(session=session, channel_id=channel.id)
    assert produced.videos_by_status == {} and produced.pairs_per_hour is None
    assert channels.last_listing(session=session, channel_id=channel.id) is None
