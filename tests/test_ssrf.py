"""URL ingest refuses internal destinations (app.netguard), with real HTTP servers.

Linux routes all of 127/8 to the loopback interface: a server on 127.0.0.2, put on the
allow-list, stands for an allowed host, and servers on 127.0.0.1 (not listed) for the
internal services an attacker would reach. The connections the fetch opens are seen with
an audit hook (``socket.connect`` events), not a mock: it records, the sockets are real.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app import netguard
from app.models import Channel, Video
from app.services.ingest import IngestError, queue_url
from app.settings import Settings, get_settings
from tests.conftest import DEMO_VIDEO
from workers import tasks
from workers.stage_runner import run_all_inline
from workers.stages import fetch
from workers.types import StageError

REFUSED = netguard.REFUSED
ALLOWED_HOST = "127.0.0.2"
ALLOW = fetch.FetchOptions(allow_networks=(ALLOWED_HOST,))

# --- seeing the connections ----------------------------------------------------------

_recording: list[list[tuple]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _recording:
        address = args[1]
        if isinstance(address, tuple):
            _recording[-1].append(address)


sys.addaudithook(_audit)  # audit hooks stay for the process; it records only when asked


@contextlib.contextmanager
def connections() -> Iterator[list[tuple]]:
    """The (host, port, ...) of every socket connect while the block runs."""
    seen: list[tuple] = []
    _recording.append(seen)
    try:
        yield seen
    finally:
        _recording.remove(seen)


# --- servers ---------------------------------------------------------------------------


class Server:
    """A real HTTP server on ``host``: /lecture.mp4 (the demo lecture), /feed.xml (an RSS
    feed of it), /go?N sends a 302 to ``targets[N]``. ``requests`` lists the paths asked."""

    def __init__(self, host: str, folder: Path) -> None:
        self.requests: list[str] = []
        self.targets: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path.startswith("/go?"):
                    self.send_response(302)
                    self.send_header("Location", server.targets[int(self.path[4:])])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def do_HEAD(self) -> None:
                server.requests.append(self.path)
                super().do_HEAD()

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def redirect(self, target: str) -> str:
        self.targets.append(target)
        return f"{self.base}/go?{len(self.targets) - 1}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(DEMO_VIDEO, folder / "lecture.mp4")
    return folder


@pytest.fixture
def serve(site: Path) -> Iterator:
    servers: list[Server] = []

    def start(host: str) -> Server:
        servers.append(Server(host, site))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def internal(serve) -> Server:
    """An internal service: 127.0.0.1, not on the allow-list."""
    return serve("127.0.0.1")


@pytest.fixture
def allowed(serve) -> Server:
    """A host on the allow-list (ALLOW): 127.0.0.2."""
    return serve(ALLOWED_HOST)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refusal(call, *args) -> str:  # noqa: ANN001
    with pytest.raises(StageError) as info:
        call(*args)
    return info.value.reason


# --- the policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3",
        "224.0.0.1", "224.0.1.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
        "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1", "192.0.0.8",
        "::", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
        "64:ff9b::a00:1", "2002:7f00:1::1", "fc00::1", "fd00:ec2::254", "fe80::1",
        "fec0::1", "ff02::1", "2001:db8::1", "3fff::1", "100::1", "2001::1",
    ],
)  # fmt: skip
def test_internal_and_reserved_addresses_are_forbidden(address: str) -> None:
    assert netguard.is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address: str) -> None:
    assert not netguard.is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("example.org", None),
        ("cafe.be", None),
    ],
)
def test_numeric_host_forms_are_read_as_addresses(host: str, address: str | None) -> None:
    expected = ipaddress.ip_address(address) if address else None
    assert netguard.literal_address(host) == expected


def test_allow_list_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    allow = netguard.AllowList.parse(["10.20.0.0/16", "127.0.0.2", "Mirror.Lab."])
    assert allow.allows(ipaddress.ip_address("10.20.3.4"))
    assert allow.allows(ipaddress.ip_address("::ffff:10.20.3.4"))
    assert not allow.allows(ipaddress.ip_address("10.21.0.1"))
    assert allow.allows(ipaddress.ip_address("127.0.0.2"))
    assert not allow.allows(ipaddress.ip_address("127.0.0.1"))
    assert allow.allows_host("mirror.lab") and not allow.allows_host("other.lab")
    monkeypatch.setenv("QUILT_FETCH_ALLOW_NETWORKS", '["10.0.0.0/8", "mirror.lab"]')
    assert Settings().fetch_allow_networks == ["10.0.0.0/8", "mirror.lab"]
    monkeypatch.setenv("QUILT_FETCH_ALLOW_NETWORKS", '["http://mirror.lab/"]')
    with pytest.raises(ValidationError, match="neither a network"):
        Settings()


# --- the fetch ---------------------------------------------------------------------------


def test_loopback_url_is_refused_without_the_allow_list(internal: Server, tmp_path: Path) -> None:
    with connections() as seen:
        assert refusal(fetch.download, f"{internal.base}/lecture.mp4", tmp_path / "dl") == REFUSED
        assert refusal(fetch.expand, f"{internal.base}/feed.xml") == REFUSED
    assert internal.requests == [] and seen == []
    assert not (tmp_path / "dl").exists()


@pytest.mark.parametrize(
    "host",
    [
        "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.0.0.1", "[::1]",
        "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "0", "localhost",
    ],
)  # fmt: skip
def test_numeric_and_named_loopback_forms_are_refused(
    internal: Server, host: str, tmp_path: Path
) -> None:
    url = f"http://{host}:{internal.port}/lecture.mp4"
    with connections() as seen:
        assert refusal(fetch.download, url, tmp_path / "dl") == REFUSED
    assert internal.requests == [] and seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.169.254:80/computeMetadata/v1/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
def test_cloud_metadata_is_refused_without_any_request(url: str, tmp_path: Path) -> None:
    with connections() as seen:
        assert refusal(fetch.download, url, tmp_path / "dl") == REFUSED
        assert refusal(fetch.expand, url) == REFUSED
    assert seen == []


def test_allowed_host_downloads_and_redirects_within_it(allowed: Server, tmp_path: Path) -> None:
    first = allowed.redirect(f"{allowed.base}/lecture.mp4")
    path, _title = fetch.download(allowed.redirect(first), tmp_path / "dl", ALLOW)
    assert fetch.sha256_file(path) == fetch.sha256_file(DEMO_VIDEO)
    assert allowed.requests[:2] == ["/go?1", "/go?0"]


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "0x7f000001", "[::ffff:127.0.0.1]"])
def test_redirect_from_an_allowed_host_to_an_internal_one_is_refused(
    allowed: Server, internal: Server, name: str, tmp_path: Path
) -> None:
    target = f"http://{name}:{internal.port}/lecture.mp4"
    url = allowed.redirect(allowed.redirect(target))  # a chain of two hops
    with connections() as seen:
        assert refusal(fetch.download, url, tmp_path / "dl", ALLOW) == REFUSED
    assert allowed.requests and internal.requests == []
    assert {address[:2] for address in seen} == {(ALLOWED_HOST, allowed.port)}


def test_redirect_of_a_listing_to_an_internal_host_is_refused(
    allowed: Server, internal: Server
) -> None:
    url = allowed.redirect(f"{internal.base}/feed.xml")
    assert refusal(fetch.expand, url, ALLOW) == REFUSED
    assert internal.requests == []


def test_open_and_closed_ports_read_the_same(
    allowed: Server, internal: Server, tmp_path: Path
) -> None:
    """No port scanner: what listens on an internal port does not change the message."""
    open_url = f"{internal.base}/lecture.mp4"
    closed_url = f"http://127.0.0.1:{closed_port()}/lecture.mp4"
    with connections() as seen:
        reasons = {
            refusal(fetch.download, open_url, tmp_path / "a"),
            refusal(fetch.download, closed_url, tmp_path / "b"),
            refusal(fetch.download, allowed.redirect(open_url), tmp_path / "c", ALLOW),
            refusal(fetch.download, allowed.redirect(closed_url), tmp_path / "d", ALLOW),
            refusal(fetch.expand, open_url),
            refusal(fetch.expand, closed_url),
        }
    assert reasons == {REFUSED}
    assert internal.requests == []
    assert all(address[:2] == (ALLOWED_HOST, allowed.port) for address in seen)


def test_guard_checks_the_address_it_connects_to() -> None:
    """The connect-time check resolves the name itself and connects to what it checked."""
    guard = netguard.Guard(netguard.allow_list([ALLOWED_HOST]))
    with pytest.raises(netguard.DestinationRefused, match="not allowed"):
        guard.connect(("localhost", closed_port()), 1)
    assert guard.refused
    with pytest.raises(ConnectionRefusedError):  # allowed: a plain failed connect
        netguard.Guard(netguard.allow_list(["localhost"])).connect(("localhost", closed_port()), 1)


# --- queue time and the video row ------------------------------------------------------


@pytest.fixture
def allow_127_0_0_2(settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QUILT_FETCH_ALLOW_NETWORKS", f'["{ALLOWED_HOST}"]')
    get_settings.cache_clear()
    return get_settings()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://0x7f000001/x.mp4",
        "http://2130706433/x.mp4",
        "http://0177.0.0.1/x.mp4",
        "http://[::1]:8080/x.mp4",
        "http://[::ffff:127.0.0.1]/x.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/feed.xml",
    ],
)
def test_queue_refuses_internal_address_literals(settings, session, url: str) -> None:
    with pytest.raises(IngestError) as info:
        queue_url(session=session, url=url, user=None, enqueue=False)
    assert str(info.value) == REFUSED
    assert session.scalars(select(Video)).all() == []
    with pytest.raises(IngestError, match="not allowed"):
        queue_url(session=session, url=url, user=None, kind="channel", enqueue=False)


def test_queue_leaves_host_names_and_allowed_addresses_to_fetch_time(
    allow_127_0_0_2, session
) -> None:
    for url in ("http://localhost:8000/x.mp4", "http://127.0.0.2:8000/x.mp4"):
        assert queue_url(session=session, url=url, user=None, enqueue=False).id


def test_api_refuses_internal_address_with_the_message(admin) -> None:
    response = admin.post(
        "/api/videos",
        json={"url": "http://0x7f000001:8080/x.mp4"},
        headers={"X-CSRF-Token": admin.token},
    )
    assert response.status_code == 422 and response.json()["detail"] == REFUSED


def test_refused_fetch_puts_the_message_on_the_video_row(
    allow_127_0_0_2, session, allowed: Server, internal: Server
) -> None:
    url = allowed.redirect(f"{internal.base}/lecture.mp4")
    video = queue_url(session=session, url=url, user=None, enqueue=False)
    assert run_all_inline(video.id) == "failed"
    session.expire_all()
    assert session.get(Video, video.id).error == f"fetch: {REFUSED}"
    assert internal.requests == []


def test_refused_listing_puts_the_message_on_the_channel_row(
    allow_127_0_0_2, session, allowed: Server, internal: Server
) -> None:
    url = allowed.redirect(f"{internal.base}/feed.xml")
    channel = queue_url(session=session, url=url, user=None, kind="channel", enqueue=False)
    assert tasks.expand_source(channel.id) == 0
    session.expire_all()
    row = session.get(Channel, channel.id)
    assert (row.status, row.error) == ("failed", REFUSED)
