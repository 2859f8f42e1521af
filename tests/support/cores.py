"""Stage cores for exercising the runner's bookkeeping and retries with real rows.

They follow the core contract of app/pipeline.py (a StageJob in, a StageOutput out) and
fail the way real stages do: a transient fault first, or bad input.
"""

from __future__ import annotations

import time
from pathlib import Path

from workers.types import StageError, StageJob, StageOutput

# The calls are counted in a file under var/, per test.


def _count_call(job: StageJob) -> int:
    counter = Path(job.settings.var_dir) / "flaky-calls"
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    return calls


def flaky_then_done(job: StageJob) -> StageOutput:
    """Fails with a dropped connection on the first call, succeeds after."""
    if _count_call(job) == 1:
        raise ConnectionResetError("connection reset by peer")
    return StageOutput(artifacts={}, stats={"calls": 2})


def always_flaky(job: StageJob) -> StageOutput:
    _count_call(job)
    raise ConnectionResetError("connection reset by peer")


def bad_input(job: StageJob) -> StageOutput:
    _count_call(job)
    raise StageError("not a readable video file")


def works_until_stopped(job: StageJob) -> StageOutput:
    """Reports progress until the runner stops it (at most about a minute), the way a long
    transcription does; leaves a file behind to show that nothing of it is kept."""
    (Path(job.settings.var_dir) / "started").write_text("1")
    for step in range(6000):
        job.progress(step / 6000)
        time.sleep(0.01)
    return StageOutput(artifacts={}, stats={"finished": True})
