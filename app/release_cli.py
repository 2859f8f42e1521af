"""`quilt release`: create, verify and list dataset releases.

    quilt release create VERSION [--notes TEXT] [--user NAME] [--val-fraction F]
        [--test-fraction F] [--samples-per-shard N] [--min-shards N] [--parent VERSION]
        [--source KIND ...] [--min-reviews N] [--until DATE]
    quilt release verify VERSION_OR_PATH
    quilt release list
    quilt release diff OLD NEW [--json]

``main(argv)`` takes the arguments after ``release``; ``configure_parser`` fills a parser
(or an argparse sub-parser) so app/cli.py can mount the same commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from sqlalchemy import select

from app.db import session_scope
from app.exporters.sample import SPLITS
from app.exporters.webdataset import DEFAULT_MIN_SHARDS, DEFAULT_SAMPLES_PER_SHARD
from app.models import User
from app.services.release_diff import ReleaseDiffError, diff_releases
from app.services.releases import (
    VERSION_RE,
    ReleaseError,
    Selection,
    create_release,
    get_release,
    list_releases,
    parse_until,
    read_manifest,
    release_at,
    release_dir,
    verify_release,
)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    commands = parser.add_subparsers(dest="release_command", required=True)

    create = commands.add_parser("create", help="freeze every approved pair into a release")
    create.add_argument("version", help="e.g. 2025.06 or v1.0; never reused")
    create.add_argument("--notes", default=None, help="free text for the data card")
    create.add_argument("--user", default=None, help="username recorded as the creator")
    create.add_argument("--val-fraction", type=float, default=0.05)
    create.add_argument("--test-fraction", type=float, default=0.05)
    create.add_argument(
        "--samples-per-shard", type=int, default=DEFAULT_SAMPLES_PER_SHARD, metavar="N"
    )
    create.add_argument(
        "--min-shards",
        type=int,
        default=DEFAULT_MIN_SHARDS,
        metavar="N",
        help="at least N shards per split with N samples or more (open_clip: >= its --workers)",
    )
    create.add_argument(
        "--parent", default=None, metavar="VERSION", help="changelog against (default: newest)"
    )
    create.add_argument(
        "--source",
        action="append",
        default=[],
        choices=["file", "upload", "http", "youtube"],
        help="only pairs of videos from this kind of source (repeatable)",
    )
    create.add_argument("--min-reviews", type=int, default=None, metavar="N")
    create.add_argument(
        "--until", default=None, metavar="DATE", help="only pairs approved before (ISO; UTC)"
    )
    create.set_defaults(handler=_create)

    diff = commands.add_parser("diff", help="pairs added, removed and edited between releases")
    diff.add_argument("old", metavar="OLD")
    diff.add_argument("new", metavar="NEW")
    diff.add_argument("--json", action="store_true", help="the whole diff as JSON")
    diff.set_defaults(handler=_diff)

    verify = commands.add_parser("verify", help="re-hash a release against its manifest")
    verify.add_argument("target", metavar="VERSION_OR_PATH")
    verify.set_defaults(handler=_verify)

    listing = commands.add_parser("list", help="list releases")
    listing.set_defaults(handler=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = configure_parser(argparse.ArgumentParser(prog="quilt release"))
    args = parser.parse_args(argv)
    return args.handler(args)


def _error(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def _create(args: argparse.Namespace) -> int:
    try:
        with session_scope() as session:
            user = None
            if args.user:
                user = session.scalar(select(User).where(User.username == args.user))
                if user is None:
                    return _error(f"no user {args.user!r}")
            selection = Selection(
                sources=tuple(dict.fromkeys(args.source)),
                min_reviews=args.min_reviews,
                until=parse_until(args.until) if args.until else None,
            )
            release = create_release(
                session=session,
                version=args.version,
                user=user,
                notes=args.notes,
                val_fraction=args.val_fraction,
                test_fraction=args.test_fraction,
                samples_per_shard=args.samples_per_shard,
                min_shards=args.min_shards,
                selection=selection,
                parent=args.parent,
            )
            folder = release_dir(release)
            pair_count = release.pair_count
    except ReleaseError as exc:
        return _error(str(exc))
    manifest = read_manifest(folder)
    counts = ", ".join(f"{split} {manifest['counts'].get(split, 0)}" for split in SPLITS)
    print(folder)
    print(f"{pair_count} pairs ({counts})")
    if manifest.get("skipped"):
        print(f"{len(manifest['skipped'])} approved pairs left out (unreadable image)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    target: str = args.target
    with session_scope() as session:
        release = None
        if VERSION_RE.match(target):
            release = get_release(session=session, version=target)
        if release is None and Path(target).is_dir():
            # A path is checked against the hash this database recorded at creation, as a
            # version is: a manifest rewritten to match tampered files must not pass.
            release = release_at(session=session, folder=Path(target))
            folder = Path(target)
        elif release is not None:
            folder = release_dir(release)
        else:
            return _error(f"no release or folder {target!r}")
        if release is not None and release.status != "ready":
            return _error(f"release {release.version!r} is {release.status}, not ready")
        expected = release.manifest_sha256 if release is not None else None
    problems = verify_release(folder, expected_manifest_sha256=expected)
    if problems:
        print(f"{folder}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    if expected is None:
        print(f"{folder}: ok against its own manifest (not a release of this database)")
    else:
        print(f"{folder}: ok")
    return 0


def _list(args: argparse.Namespace) -> int:
    with session_scope() as session:
        releases = list_releases(session=session)
        if not releases:
            print("no releases yet")
        for release in releases:
            detail = release.path if release.status == "ready" else (release.error or "")
            created = release.created_at.strftime("%Y-%m-%d %H:%M")
            detail = " ".join(detail.split())[:120]
            print(f"{release.version}\t{release.status}\t{release.pair_count}\t{created}\t{detail}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    try:
        with session_scope() as session:
            diff = diff_releases(session=session, old=args.old, new=args.new)
    except ReleaseDiffError as exc:
        return _error(str(exc))
    if args.json:
        print(json.dumps(dataclasses.asdict(diff) | {"counts": diff.counts}, ensure_ascii=False))
        return 0
    c = diff.counts
    print(
        f"{diff.old_version} -> {diff.new_version}: {c['added']} added, {c['removed']} removed, "
        f"{c['edited']} edited, {c['unchanged']} unchanged"
    )
    for sign, entries in (("+", diff.added), ("-", diff.removed), ("~", diff.edited)):
        for e in entries:
            keys = f"{e.old_key or '-'}->{e.new_key or '-'}"
            changed = f"\t[{','.join(e.changed)}]" if e.changed else ""
            caption = " ".join(e.caption.split())[:100]
            print(f"{sign} pair {e.pair_id}\t{keys}\t{e.split}{changed}\t{caption}")
    return 0
