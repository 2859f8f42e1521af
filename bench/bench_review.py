"""Review queue under load: 50 concurrent reviewers against Postgres holding 1,000,000 pairs.

The claim must stay flat as pairs grow to millions. What it does:
1. creates a dedicated database (dropped at the end), migrates it with Alembic and
   bulk-loads N pairs with COPY (priorities random, as pipeline confidences are);
2. starts the real web app under uvicorn on 127.0.0.1 (a subprocess);
3. runs R reviewers as a real HTTP load generator (asyncio + httpx, one process): each
   logs in, then loops GET /api/pairs/next -> POST /api/pairs/{id}/decision for the
   given duration;
4. reports p50/p95/p99 of claim and of decide, throughput, conflicts, and checks the
   guarantees against the database: double assignments (a pair handed to two reviewers;
   goal 0) and lost decisions (a decision acknowledged with 200 that is not in the
   reviews table or not reflected in the pair's status; goal 0);
5. prints the claim query's plan, to show it walks the partial pending-queue index.

The load generator shares the machine (and its cores) with uvicorn and Postgres, so the
latencies include client-side queueing; it says so in its output.

    .venv/bin/python bench/bench_review.py                 # 1,000,000 pairs, 50 reviewers, 60 s
    .venv/bin/python bench/bench_review.py --pairs 100000 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import io
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PG_ADMIN_URL = os.environ.get(
    "QUILT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "bench-password-42"


def load(url: str, n_pairs: int, n_reviewers: int, n_videos: int = 1000) -> float:
    """Users, videos and n_pairs pending pairs, by COPY. Returns seconds taken."""
    from app.passwords import hash_password  # noqa: PLC0415

    t0 = time.perf_counter()
    engine = create_engine(url)
    password_hash = hash_password(PASSWORD)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, is_active, created_at) "
                "VALUES (:u, :h, 'reviewer', true, now())"
            ),
            [{"u": f"rev{i:03d}", "h": password_hash} for i in range(n_reviewers)],
        )
        conn.execute(
            text(
                "INSERT INTO videos (source_kind, source_url, title, status, created_at, "
                "updated_at) VALUES ('youtube', :u, :t, 'done', now(), now())"
            ),
            [{"u": f"https://youtu.be/v{i}", "t": f"Lecture {i}"} for i in range(n_videos)],
        )
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        rng = np.random.default_rng(7)
        confidence = rng.random(n_pairs)
        video = rng.integers(1, n_videos + 1, n_pairs)
        columns = (
            "pair_key, video_id, image_path, start_s, end_s, caption, noisy_text, "
            "corrected_text, medical_text, roi_text, umls, keywords, magnification, scores, "
            "confidence, priority, status, version, review_count, not_histology, created_at, "
            "updated_at"
        )
        chunk = 100_000
        with cur.copy(f"COPY pairs ({columns}) FROM STDIN") as copy:
            for start in range(0, n_pairs, chunk):
                buf = io.StringIO()
                for i in range(start, min(start + chunk, n_pairs)):
                    c = confidence[i]
                    buf.write(
                        f"{uuid.uuid4().hex}\t{video[i]}\tframes/{video[i]}/{i}.jpg\t{i % 600}\t"
                        f"{i % 600 + 8}\tHepatocytes with steatosis {i}.\t\t\t"
                        f"hepatocytes with steatosis\tfat droplets\t[]\t[]\t{i % 3}\t{{}}\t"
                        f"{c:.6f}\t{c:.6f}\tpending\t1\t0\tf\t2026-01-01\t2026-01-01\n"
                    )
                copy.write(buf.getvalue())
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()
    return time.perf_counter() - t0


@contextlib.contextmanager
def _connection(url: str):
    """A connection to ``url`` from an engine of its own, disposed of afterwards."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def claim_plan(url: str) -> str:
    """EXPLAIN of the claim's walk as it runs (one reviewer, k = 1)."""
    with _connection(url) as conn:
        rows = conn.execute(
            text(
                "EXPLAIN SELECT pairs.id FROM pairs WHERE pairs.status = 'pending' AND "
                "pairs.review_count + (SELECT count(*) FROM assignments WHERE "
                "assignments.pair_id = pairs.id AND assignments.reviewer_id != 1 AND "
                "assignments.completed_at IS NULL AND assignments.expires_at > now()) "
                "< coalesce(pairs.reviews_needed, 1) AND NOT (EXISTS (SELECT 1 FROM "
                "assignments WHERE assignments.pair_id = pairs.id AND "
                "assignments.reviewer_id = 1 AND assignments.completed_at IS NOT NULL)) "
                "ORDER BY pairs.priority, pairs.id LIMIT 1 FOR UPDATE OF pairs SKIP LOCKED"
            )
        ).all()
    return "\n".join(r[0] for r in rows)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_by_part(server_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far, per process, of the load generator (this process), the web
    server (uvicorn and its workers) and every Postgres process: which part of the shared
    cores each request costs."""
    web = [server_pid, *_children(server_pid)]
    postgres = [
        int(d.name)
        for d in Path("/proc").iterdir()
        if d.name.isdigit() and _comm(d) in ("postgres", "postmaster")
    ]
    return {
        "client": {os.getpid(): _cpu_s(os.getpid())},
        "web": {p: _cpu_s(p) for p in web},
        "postgres": {p: _cpu_s(p) for p in postgres},
    }


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict:
    """Seconds used between two ``cpu_by_part`` snapshots, per part: by the processes alive
    at the end (a backend that started in between counts whole; one that exited in
    between, e.g. a pool's overflow connection, is not counted)."""
    return {
        part: sum(t - before.get(part, {}).get(pid, 0.0) for pid, t in procs.items())
        for part, procs in after.items()
    }


def _note_cpu(into: dict[str, dict[int, float]], server_pid: int) -> None:
    into.update(cpu_by_part(server_pid))


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


class Stats:
    def __init__(self) -> None:
        self.claim: list[float] = []
        self.decide: list[float] = []
        self.claims: list[tuple[int, str]] = []
        self.acked: list[tuple[int, str, str]] = []
        self.conflicts = 0
        self.errors: collections.Counter[str] = collections.Counter()


async def login(base: str, name: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    client = httpx.AsyncClient(base_url=base, timeout=60, limits=limits)
    r = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


async def reviewer(
    client: httpx.AsyncClient, name: str, stats: Stats, stop_at: float, seed: int, think_s: float
) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < stop_at:
        if think_s:
            # A pathologist looks at the pair before deciding: exponential think time.
            await asyncio.sleep(rng.expovariate(1 / think_s))
        t0 = time.perf_counter()
        r = await client.get("/api/pairs/next")
        stats.claim.append(time.perf_counter() - t0)
        if r.status_code == 204:
            return
        if r.status_code != 200:
            stats.errors[f"claim {r.status_code}"] += 1
            continue
        pair = r.json()
        stats.claims.append((pair["id"], name))
        decision = "approve" if rng.random() < 0.7 else "reject"
        body = {"decision": decision, "version": pair["version"]}
        if decision == "reject":
            body["reason"] = "impurity"
        t0 = time.perf_counter()
        r = await client.post(f"/api/pairs/{pair['id']}/decision", json=body)
        stats.decide.append(time.perf_counter() - t0)
        if r.status_code == 200:
            stats.acked.append((pair["id"], name, decision))
        elif r.status_code == 409:
            stats.conflicts += 1
        else:
            stats.errors[f"decide {r.status_code}"] += 1


async def run_load(
    base: str, n_reviewers: int, duration: float, think_s: float, on_start=None
) -> tuple[Stats, float]:
    """Everyone logs in first (argon2 is deliberately slow), then the clock starts (and
    ``on_start`` is called)."""
    names = [f"rev{i:03d}" for i in range(n_reviewers)]
    clients = []
    for batch in range(0, n_reviewers, 10):
        clients += await asyncio.gather(*(login(base, n) for n in names[batch : batch + 10]))
    stats = Stats()
    if on_start is not None:
        on_start()
    start = time.perf_counter()
    stop_at = start + duration
    try:
        await asyncio.gather(
            *(
                reviewer(c, n, stats, stop_at, i, think_s)
                for i, (c, n) in enumerate(zip(clients, names, strict=True))
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    return stats, time.perf_counter() - start


def verify(url: str, stats: Stats) -> dict[str, int]:
    """Double assignments and lost decisions, from the load's log and the database."""
    per_pair = collections.defaultdict(set)
    for pair_id, name in stats.claims:
        per_pair[pair_id].add(name)
    double = sum(1 for names in per_pair.values() if len(names) > 1)
    with _connection(url) as conn:
        rows = conn.execute(
            text(
                "SELECT r.pair_id, u.username, r.decision, p.status FROM reviews r "
                "JOIN users u ON u.id = r.reviewer_id JOIN pairs p ON p.id = r.pair_id"
            )
        ).all()
        multi = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT pair_id FROM reviews GROUP BY pair_id "
                "HAVING count(*) > 1) x"
            )
        ).scalar_one()
    stored = {(p, u, d) for p, u, d, _ in rows}
    status_of = {p: s for p, _, _, s in rows}
    expected = {"approve": "approved", "reject": "rejected"}
    lost = sum(1 for a in stats.acked if a not in stored)
    wrong_status = sum(1 for p, _, d in stats.acked if status_of.get(p) != expected[d])
    return {
        "double_assignments": double,
        "pairs_with_two_reviews": int(multi),
        "lost_decisions": lost,
        "status_mismatch": wrong_status,
        "decisions_acked": len(stats.acked),
        "decisions_stored": len(rows),
    }


def direct_service_calls(url: str, n: int) -> dict[str, object]:
    """The database side alone: one thread calling claim_next / decide in-process, with
    no HTTP load running, so the figures are the queries' cost at this table size."""
    os.environ["QUILT_DATABASE_URL"] = url
    from app import db as app_db  # noqa: PLC0415
    from app.models import User  # noqa: PLC0415
    from app.services import review  # noqa: PLC0415
    from app.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    app_db.reset_engine()
    claim, decide = [], []
    with app_db.get_sessionmaker()() as session:
        me = session.query(User).filter_by(username="rev000").one()
        for _ in range(n):
            t0 = time.perf_counter()
            pair = review.claim_next(session=session, reviewer=me, gold_every=0)
            claim.append(time.perf_counter() - t0)
            if pair is None:
                break
            t0 = time.perf_counter()
            review.decide(
                session=session,
                pair_id=pair.id,
                reviewer=me,
                decision="approve",
                expected_version=pair.version,
            )
            decide.append(time.perf_counter() - t0)
    app_db.reset_engine()
    return {"claim": pct(claim), "decide": pct(decide)}


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ms = np.asarray(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument(
        "--think-s",
        default="0,2",
        help="comma-separated phases: mean think time per pair (0: closed loop, saturation)",
    )
    parser.add_argument("--direct", type=int, default=300, help="single-thread service calls")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    from app.migrate import upgrade  # noqa: PLC0415
    from bench.report import emit  # noqa: PLC0415
    from tests.support.databases import scratch_database  # noqa: PLC0415
    from tests.support.live_server import serving  # noqa: PLC0415
    from tests.support.processes import app_env  # noqa: PLC0415

    with scratch_database(PG_ADMIN_URL, "quilt_bench", keep=args.keep) as url:
        upgrade(url)
        load_s = load(url, args.pairs, args.reviewers)
        print(f"loaded {args.pairs:,} pairs in {load_s:.1f} s (COPY)", flush=True)
        env = app_env(
            url,
            Path("/tmp") / url.rsplit("/", 1)[1],
            QUILT_ENVIRONMENT="test",
            QUILT_SECRET_KEY="bench-secret-not-for-production",
            QUILT_GOLD_EVERY="0",
        )
        uvicorn_args = ["--workers", str(args.workers), "--no-access-log"]
        with serving(env, uvicorn_args=uvicorn_args) as (base, server):
            report = measure(url, base, server.pid, args, load_s)
        emit(report, args.json, text=json.dumps(report, indent=2))
        print("claim plan:\n" + claim_plan(url))
        ok = report["double_assignments"] == 0 and report["lost_decisions"] == 0
        return 0 if ok else 1


def measure(url: str, base: str, server_pid: int, args: argparse.Namespace, load_s: float) -> dict:
    """The load phases against the server at ``base``, the checks against the database, and
    the direct service calls: the report."""
    report: dict[str, object] = {
        "pairs": args.pairs,
        "reviewers": args.reviewers,
        "uvicorn_workers": args.workers,
        "cores": os.cpu_count(),
        "load_s": round(load_s, 1),
        "note": "load generator, uvicorn and Postgres share the same cores",
        "phases": [],
    }
    all_stats = Stats()
    for think in [float(t) for t in args.think_s.split(",")]:
        cpu_before: dict[str, dict[int, float]] = {}
        stats, wall = asyncio.run(
            run_load(
                base,
                args.reviewers,
                args.duration,
                think,
                on_start=functools.partial(_note_cpu, cpu_before, server_pid),
            )
        )
        cpu_spent = cpu_used(cpu_before, cpu_by_part(server_pid))
        requests = max(1, len(stats.claim) + len(stats.decide))
        phase = {
            "think_s": think,
            "duration_s": round(wall, 1),
            "claim": pct(stats.claim),
            "decide": pct(stats.decide),
            "decisions_per_s": round(len(stats.acked) / wall, 1),
            "conflicts_409": stats.conflicts,
            "errors": dict(stats.errors),
            # CPU per request (ms) by part, after the logins: where the cores go.
            "cpu_ms_per_request": {
                part: round(seconds * 1000 / requests, 2) for part, seconds in cpu_spent.items()
            },
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(phase), flush=True)
        report["phases"].append(phase)  # type: ignore[union-attr]
        all_stats.claims += stats.claims
        all_stats.acked += stats.acked
    checks = verify(url, all_stats)
    report.update(checks)
    report["direct"] = direct_service_calls(url, args.direct)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
