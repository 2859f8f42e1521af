"""Login attempts: rate limits, account lockout and the audit trail of every try.

Both login routes (the form at ``POST /login`` and ``POST /api/login``) go through
``attempt``, so the two cannot drift apart. Everything is counted in the database, never
in process memory, so the limits hold across uvicorn workers and restarts.

Two limits, checked in this order:

* **Per client address.** Every failed login adds a ``LoginFailure`` row for the address.
  When ``login_ip_max_failures`` of them fall within the last ``login_ip_window_s``, the
  address is refused outright (429 with ``Retry-After``: the seconds until the oldest of
  those failures leaves the window), before any password is hashed, so a flood costs a
  count query rather than an argon2 hash. Refused attempts are audited but add no row,
  so an address that keeps knocking is let in again once its real failures age out. A
  successful login does not clear the address's count: otherwise an attacker holding one
  account could reset their budget between guesses at others. The address's rows older
  than the window are deleted as new ones are added; ``prune_failures`` deletes the
  rest (addresses that never came back) for a periodic job.
* **Per account.** ``User.failed_logins`` counts wrong passwords in a row. Every
  ``login_max_failures``-th one locks the account until ``User.locked_until``: for
  ``login_lockout_s`` the first time, doubling with each further lock (5 failures: 15
  min, 10: 30 min, 15: 1 h, ...) up to ``login_lockout_max_s``. While locked, even the
  right password is refused; tries during a lock are audited and count against the
  address, but do not lengthen the lock (that would let anyone keep an account shut
  for ever with one try per lock). A successful login sets the count back to zero.

A locked account, an unknown username, a deactivated account and a wrong password all
get the same answer and cost one password hash each, so the answer tells a guesser
nothing about which usernames exist or are locked. The audit trail (admins only) does
say which it was.

The client address is ``request.client.host``; the app itself never reads
X-Forwarded-For, which any client can set. The server may put the real client's address
there: ``quilt serve`` runs uvicorn with ``proxy_headers``, which believes X-Forwarded-For
only from the addresses in FORWARDED_ALLOW_IPS (by default 127.0.0.1 and ::1, a proxy on
the same host). Behind a proxy elsewhere, name it there, or every client shares the
proxy's address and so one per-address budget. A request with no peer address at all
counts as "unknown".

The per-address count is read before the failure is written, so concurrent requests
from one address can overshoot the limit by the number in flight; the account counter
is incremented in one UPDATE, so concurrent wrong passwords are all counted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.models import LoginFailure, User, utcnow
from app.passwords import hash_password, verify_password
from app.services import audit
from app.settings import Settings

# Column widths of LoginFailure; both routes already cap usernames at 64 characters.
_ADDRESS_LEN = 64
_USERNAME_LEN = 64
UNKNOWN_ADDRESS = "unknown"
# Checked against when there is no user to check, so that an unknown username takes as
# long as a wrong password.
_DUMMY_HASH = hash_password("timing-equaliser")


class Outcome(enum.StrEnum):
    ok = "ok"
    # Answered "wrong username or password", whatever the reason (the audit says which).
    refused = "refused"
    # Answered 429 with Retry-After.
    address_limited = "address_limited"


@dataclasses.dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    user: User | None = None
    retry_after_s: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ok


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def is_locked(user: User, now: dt.datetime) -> bool:
    return user.locked_until is not None and _aware(user.locked_until) > now


def lockout_seconds(failures: int, settings: Settings) -> int:
    """The lock that the ``failures``-th wrong password in a row starts (0: none)."""
    if failures < settings.login_max_failures or failures % settings.login_max_failures:
        return 0
    # Capped before the power, so that an account with thousands of failures stays cheap.
    doublings = min(failures // settings.login_max_failures - 1, 40)
    return min(settings.login_lockout_s * 2**doublings, settings.login_lockout_max_s)


def address_retry_after(
    session: Session, address: str, settings: Settings, now: dt.datetime
) -> int:
    """Seconds until ``address`` may try again; 0 when it may now."""
    since = now - dt.timedelta(seconds=settings.login_ip_window_s)
    count, oldest = session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.address == address, LoginFailure.at > since
        )
    ).one()
    if count < settings.login_ip_max_failures or oldest is None:
        return 0
    # Strictly this is when the oldest failure leaves the window; more than the limit (a
    # race, or a lowered setting) may need longer, and the client is then told again.
    remaining = (_aware(oldest) - since).total_seconds()
    return max(1, math.ceil(remaining))


def prune_failures(session: Session, settings: Settings, now: dt.datetime | None = None) -> int:
    """Delete the failures that no longer count against any address; returns how many."""
    since = (now or utcnow()) - dt.timedelta(seconds=settings.login_ip_window_s)
    result = session.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    return result.rowcount or 0


def attempt(
    *,
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    address: str | None,
    via: str,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Check one login and record it (failures, lock, audit); the caller commits.

    ``via`` names the route ("web" or "api") in the audit trail.
    """
    now = now or utcnow()
    address = (address or UNKNOWN_ADDRESS)[:_ADDRESS_LEN]
    username = username[:_USERNAME_LEN]
    details = {"username": username, "address": address, "via": via}

    retry_after = address_retry_after(session, address, settings, now)
    if retry_after:
        audit.record(
            session=session,
            user=None,
            action="user.login_failed",
            reason="address_limited",
            **details,
        )
        return LoginResult(Outcome.address_limited, retry_after_s=retry_after)

    user = session.scalar(select(User).where(User.username == username))
    # One hash whatever the case, so that the time taken tells nothing either.
    password_ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None:
        reason = "unknown_user"
    elif is_locked(user, now):
        reason = "locked"
    elif not user.is_active:
        reason = "inactive"
    elif not password_ok:
        reason = "wrong_password"
    else:
        user.failed_logins = 0
        user.locked_until = None
        audit.record(session=session, user=user, action="user.login", **details)
        return LoginResult(Outcome.ok, user=user)

    session.add(LoginFailure(address=address, username=username, at=now))
    since = now - dt.timedelta(seconds=settings.login_ip_window_s)
    session.execute(
        delete(LoginFailure).where(LoginFailure.address == address, LoginFailure.at <= since)
    )
    if user is not None and reason != "locked":
        _count_failure(session, settings, user, now)
    audit.record(
        session=session,
        user=None,
        action="user.login_failed",
        target=f"user:{user.id}" if user is not None else None,
        reason=reason,
        **details,
    )
    return LoginResult(Outcome.refused)


def _count_failure(session: Session, settings: Settings, user: User, now: dt.datetime) -> None:
    # One UPDATE with the increment in SQL: concurrent failures in other processes are
    # all counted (on Postgres the row lock orders them).
    failures = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    # The UPDATE above already wrote it: set it on the object without another write.
    set_committed_value(user, "failed_logins", failures)
    lock_s = lockout_seconds(failures, settings)
    if not lock_s:
        return
    user.locked_until = now + dt.timedelta(seconds=lock_s)
    audit.record(
        session=session,
        user=None,
        action="user.locked",
        target=f"user:{user.id}",
        failures=failures,
        seconds=lock_s,
        until=user.locked_until.isoformat(),
    )
