"""Login protection: account lockout with backoff, the per-address limit, the audit of
every try, sessions that end at logout (copied cookies included), HSTS and Secure
cookies in production.

Every test runs on SQLite and on Postgres (the ``settings`` fixture). Time never passes
by sleeping: a lock or a window "expires" by moving the stored times into the past.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import AuditEvent, LoginFailure, User
from app.services.logins import lockout_seconds, prune_failures
from app.services.users import set_password
from app.settings import Settings, get_settings
from app.web.main import SESSION_COOKIE, create_app
from tests.support.seed import PASSWORD, make_user
from tests.support.web import api_login

WRONG = "not-the-password"
GENERIC_API = {"detail": "wrong username or password"}


@contextlib.contextmanager
def client_at(app: FastAPI, address: str) -> Iterator[TestClient]:
    """A client of ``app`` whose requests come from ``address``."""
    with TestClient(app, client=(address, 40000), follow_redirects=False) as client:
        yield client


def api_try(client: TestClient, username: str, password: str):
    return client.post("/api/login", json={"username": username, "password": password})


def form_try(client: TestClient, username: str, password: str):
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/review"},
    )


def fresh(session: Session, user: User) -> User:
    """``user`` as the database has it now (the app wrote it in another session)."""
    session.expire_all()
    return session.get(User, user.id)


def cookie_flags(set_cookie: str) -> set[str]:
    """The attributes of a Set-Cookie header, lower case, values dropped."""
    return {part.split("=")[0].strip().lower() for part in set_cookie.split(";")[1:]}


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def audit_events(session: Session, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


# --- the account lock -----------------------------------------------------------------


def test_lockout_doubles_per_lock_up_to_the_cap(settings: Settings):
    assert (settings.login_max_failures, settings.login_lockout_s) == (5, 900)
    locks = {n: lockout_seconds(n, settings) for n in (1, 4, 5, 6, 9, 10, 15, 20)}
    assert locks == {1: 0, 4: 0, 5: 900, 6: 0, 9: 0, 10: 1800, 15: 3600, 20: 7200}
    assert lockout_seconds(5 * 1000, settings) == settings.login_lockout_max_s


def test_brute_force_locks_the_account_even_for_the_right_password(client, session, settings):
    rita = make_user(session, "rita")
    for _ in range(settings.login_max_failures):
        response = api_try(client, "rita", WRONG)
        assert (response.status_code, response.json()) == (401, GENERIC_API)
    row = fresh(session, rita)
    assert row.failed_logins == settings.login_max_failures
    assert row.locked_until is not None
    locked_until = aware(row.locked_until)
    # The right password is refused, with the very answer a wrong one gets: the API and
    # the form alike, and as for a username that does not exist.
    locked = api_try(client, "rita", PASSWORD)
    assert (locked.status_code, locked.json()) == (401, GENERIC_API)
    assert api_try(client, "nobody-here", PASSWORD).json() == GENERIC_API
    page = form_try(client, "rita", PASSWORD)
    assert page.status_code == 400 and "Wrong username or password." in page.text
    assert client.get("/api/session").status_code == 401
    # Tries during the lock neither lengthen it nor count towards the next one.
    row = fresh(session, rita)
    assert row.failed_logins == settings.login_max_failures
    assert aware(row.locked_until) == locked_until
    assert [e.details["reason"] for e in audit_events(session, "user.login_failed")][-3:] == [
        "locked",
        "unknown_user",
        "locked",
    ]
    (lock_event,) = audit_events(session, "user.locked")
    assert lock_event.target == f"user:{rita.id}"
    assert lock_event.details["seconds"] == settings.login_lockout_s

    # The lock runs out (moved into the past here, rather than waited for).
    session.execute(
        update(User)
        .where(User.id == rita.id)
        .values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    session.commit()
    assert api_try(client, "rita", PASSWORD).status_code == 200
    row = fresh(session, rita)
    assert (row.failed_logins, row.locked_until) == (0, None)


def test_a_second_lock_is_longer(client, session, settings):
    rita = make_user(session, "rita")
    session.execute(
        update(User)
        .where(User.id == rita.id)
        .values(
            failed_logins=settings.login_max_failures,
            locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
        )
    )
    session.commit()
    # The first lock has run out, but the count goes on from where it was: one more run
    # of failures locks for twice as long.
    for _ in range(settings.login_max_failures):
        assert form_try(client, "rita", WRONG).status_code == 400
    row = fresh(session, rita)
    assert row.failed_logins == 2 * settings.login_max_failures
    locked_events = audit_events(session, "user.locked")
    assert [e.details["seconds"] for e in locked_events] == [2 * settings.login_lockout_s]
    assert aware(row.locked_until) > dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=settings.login_lockout_s
    )


def test_a_password_reset_lifts_the_lock_and_ends_sessions(web_app, client, session, settings):
    rita = make_user(session, "rita")
    api_login(client, "rita")
    session.execute(
        update(User)
        .where(User.id == rita.id)
        .values(
            failed_logins=settings.login_max_failures,
            locked_until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
    )
    session.commit()
    row = fresh(session, rita)
    set_password(session=session, user=row, password="a-new-password-1")
    session.commit()
    assert client.get("/api/session").status_code == 401
    assert api_try(client, "rita", PASSWORD).status_code == 401
    assert api_try(client, "rita", "a-new-password-1").status_code == 200


# --- the per-address limit ------------------------------------------------------------


def test_too_many_failures_from_one_address_get_429(web_app, session, settings):
    settings.login_ip_max_failures = 3
    make_user(session, "rita")
    make_user(session, "bob")
    with client_at(web_app, "10.0.0.5") as attacker, client_at(web_app, "10.0.0.6") as other:
        # Spread over accounts (and one that does not exist): no account gets locked,
        # but the address runs out of tries.
        for username in ("rita", "bob", "nobody"):
            assert api_try(attacker, username, WRONG).status_code == 401
        refused = api_try(attacker, "rita", PASSWORD)
        assert refused.status_code == 429
        assert "too many failed logins" in refused.json()["detail"]
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= settings.login_ip_window_s
        page = form_try(attacker, "rita", PASSWORD)
        assert page.status_code == 429 and "Too many failed logins" in page.text
        assert 1 <= int(page.headers["Retry-After"]) <= settings.login_ip_window_s
        assert attacker.get("/api/session").status_code == 401
        # Another address is not affected.
        assert api_try(other, "rita", PASSWORD).status_code == 200
        # Refused tries add no failures, and the address is recorded as the socket's peer
        # (a forwarded-for header is not believed).
        assert api_try(attacker, "rita", WRONG).status_code == 429
        forged = attacker.post(
            "/api/login",
            json={"username": "rita", "password": PASSWORD},
            headers={"X-Forwarded-For": "10.9.9.9"},
        )
        assert forged.status_code == 429
        session.expire_all()
        addresses = session.scalars(select(LoginFailure.address)).all()
        assert addresses == ["10.0.0.5"] * 3
        reasons = [e.details["reason"] for e in audit_events(session, "user.login_failed")]
        assert reasons.count("address_limited") == 4
        # The window moves on (the failures moved into the past here).
        session.execute(
            update(LoginFailure).values(
                at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.login_ip_window_s + 1)
            )
        )
        session.commit()
        assert api_try(attacker, "rita", PASSWORD).status_code == 200


def test_a_success_does_not_clear_the_address_count(web_app, session, settings):
    # Otherwise one account of their own would let an attacker guess at others for ever.
    settings.login_ip_max_failures = 3
    make_user(session, "rita")
    make_user(session, "mallory")
    with client_at(web_app, "10.0.0.7") as attacker:
        assert api_try(attacker, "rita", WRONG).status_code == 401
        assert api_try(attacker, "rita", WRONG).status_code == 401
        assert api_try(attacker, "mallory", PASSWORD).status_code == 200
        assert api_try(attacker, "rita", WRONG).status_code == 401
        assert api_try(attacker, "rita", WRONG).status_code == 429


def test_old_failures_are_pruned(web_app, session, settings):
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(seconds=settings.login_ip_window_s + 1)
    session.add_all(
        [
            LoginFailure(address="10.0.0.9", username="x", at=old),
            LoginFailure(address="10.0.0.10", username="x", at=old),
            LoginFailure(address="10.0.0.11", username="x", at=now),
        ]
    )
    session.commit()
    # A new failure from an address drops that address's expired ones ...
    with client_at(web_app, "10.0.0.9") as client:
        assert api_try(client, "x", WRONG).status_code == 401
    session.expire_all()
    assert sorted(session.scalars(select(LoginFailure.address))) == [
        "10.0.0.10",
        "10.0.0.11",
        "10.0.0.9",
    ]
    # ... and prune_failures the rest.
    assert prune_failures(session, settings) == 1
    session.commit()
    assert sorted(session.scalars(select(LoginFailure.address))) == ["10.0.0.11", "10.0.0.9"]


# --- the audit ------------------------------------------------------------------------


def test_failed_and_successful_logins_are_audited(web_app, session, settings):
    rita = make_user(session, "rita")
    with client_at(web_app, "10.0.0.8") as browser, client_at(web_app, "10.0.0.8") as script:
        assert form_try(browser, "rita", WRONG).status_code == 400
        assert form_try(browser, "ghost", WRONG).status_code == 400
        assert api_try(script, "rita", WRONG).status_code == 401
        assert api_try(script, "rita", PASSWORD).status_code == 200
        assert form_try(browser, "rita", PASSWORD).status_code == 303
    failed = audit_events(session, "user.login_failed")
    assert [(e.user_id, e.target) for e in failed] == [
        (None, f"user:{rita.id}"),
        (None, None),
        (None, f"user:{rita.id}"),
    ]
    assert [e.details for e in failed] == [
        {"username": "rita", "address": "10.0.0.8", "via": "web", "reason": "wrong_password"},
        {"username": "ghost", "address": "10.0.0.8", "via": "web", "reason": "unknown_user"},
        {"username": "rita", "address": "10.0.0.8", "via": "api", "reason": "wrong_password"},
    ]
    succeeded = audit_events(session, "user.login")
    assert [(e.user_id, e.details["via"], e.details["address"]) for e in succeeded] == [
        (rita.id, "api", "10.0.0.8"),
        (rita.id, "web", "10.0.0.8"),
    ]
    # No password, right or wrong, is ever written down.
    for event in failed + succeeded:
        assert WRONG not in str(event.details) and PASSWORD not in str(event.details)


def test_a_deactivated_account_is_refused_like_a_wrong_password(client, session):
    rita = make_user(session, "rita")
    fresh(session, rita).is_active = False
    session.commit()
    assert api_try(client, "rita", PASSWORD).json() == GENERIC_API
    (event,) = audit_events(session, "user.login_failed")
    assert event.details["reason"] == "inactive"


# --- sessions that end ----------------------------------------------------------------


def test_a_cookie_copied_before_api_logout_stops_working(web_app, client, session):
    make_user(session, "rita")
    token = api_login(client, "rita")
    copied = client.cookies[SESSION_COOKIE]
    with TestClient(web_app, follow_redirects=False) as laptop:
        # Another device, logged in separately: logout ends every session of the user.
        api_login(laptop, "rita")
        assert laptop.get("/api/session").status_code == 200
        response = client.post("/api/logout", headers={"X-CSRF-Token": token})
        assert response.status_code == 204
        assert laptop.get("/api/session").status_code == 401
    with TestClient(web_app, follow_redirects=False, cookies={SESSION_COOKIE: copied}) as thief:
        assert thief.get("/api/session").status_code == 401
        page = thief.get("/review")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # Logging in again works, with a session of the new version.
    api_login(client, "rita")
    assert client.get("/review").status_code == 200
    assert len(audit_events(session, "user.logout")) == 1


def test_a_cookie_copied_before_form_logout_stops_working(web_app, client, session):
    rita = make_user(session, "rita")
    assert form_try(client, "rita", PASSWORD).status_code == 303
    copied = client.cookies[SESSION_COOKIE]
    token = client.get("/api/session").json()["csrf_token"]
    version = fresh(session, rita).session_version
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert fresh(session, rita).session_version == version + 1
    with TestClient(web_app, follow_redirects=False, cookies={SESSION_COOKIE: copied}) as thief:
        page = thief.get("/review")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert thief.get("/api/session").status_code == 401
        # Nor can the old session post anything.
        refused = thief.post("/api/logout", headers={"X-CSRF-Token": token})
        assert refused.status_code == 401


# --- HTTPS in production --------------------------------------------------------------


def _app_in(environment: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> FastAPI:
    monkeypatch.setenv("QUILT_ENVIRONMENT", environment)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return create_app()


@pytest.mark.usefixtures("settings")
def test_hsts_and_secure_cookies_in_production(monkeypatch):
    app = _app_in("production", monkeypatch)
    assert get_settings().cookie_secure is True
    with TestClient(app, base_url="https://testserver") as client:
        page = client.get("/login")
        for response in (page, client.get("/api/session")):
            assert (
                response.headers["strict-transport-security"]
                == "max-age=31536000; includeSubDomains"
            )
        assert {"secure", "httponly"} <= cookie_flags(page.headers["set-cookie"])


@pytest.mark.usefixtures("settings")
def test_production_may_turn_secure_cookies_off_explicitly(monkeypatch):
    app = _app_in("production", monkeypatch, QUILT_COOKIE_SECURE="false")
    with TestClient(app) as client:
        response = client.get("/login")
        assert "secure" not in cookie_flags(response.headers["set-cookie"])
        assert "strict-transport-security" in response.headers


@pytest.mark.usefixtures("settings")
@pytest.mark.parametrize("environment", ["development", "test"])
def test_no_hsts_outside_production(monkeypatch, environment):
    app = _app_in(environment, monkeypatch)
    assert get_settings().cookie_secure is False
    with TestClient(app) as client:
        response = client.get("/login")
        assert "strict-transport-security" not in response.headers
        assert "secure" not in cookie_flags(response.headers["set-cookie"])
