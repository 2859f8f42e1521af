#!/usr/bin/env bash
# A prepared check of training on a CUDA machine (it cannot run on the CPU-only dev box).
#
# Self-contained: an embedded SQLite database and a var/ folder under $WORK (default a
# temporary folder; $OUT when the device runner sets it, so the log comes back), a
# release of generated approved pairs, then:
#   1. `quilt train bench --model ViT-B-32 --inline` on cuda for one short epoch: the
#      argv must say --precision amp --device cuda; prints the run's samples/s (the
#      trainer's own, from its log) and the checkpoint's sha256;
#   2. `quilt evaluate --run ID --release bench --inline` (zero-shot retrieval with
#      CLIP_benchmark) when this checkout has the eval CLI;
#   3. bench/bench_train.py is not run here (it needs Postgres); see its docstring.
# No network: ViT-B-32 starts from random weights (no pretrained download).
#
#   bash bench/gpu_check.sh [PAIRS=2048] [BATCH=128]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PAIRS=${1:-2048}
BATCH=${2:-128}
WORK=${OUT:-$(mktemp -d)}/gpu-check
mkdir -p "$WORK"
export QUILT_ENVIRONMENT=test QUILT_SECRET_KEY=gpu-check-not-secret
export QUILT_VAR_DIR="$WORK/var" QUILT_DATABASE_URL="sqlite:///$WORK/var/quilt.db"
# GPU_CHECK_ALLOW_CPU=1 GPU_CHECK_MODEL=local-dir:DIR: a smoke test of this script on a CPU.
export QUILT_TRAINING_DEVICE=${QUILT_TRAINING_DEVICE:-cuda}
MODEL=${GPU_CHECK_MODEL:-ViT-B-32}
mkdir -p "$QUILT_VAR_DIR"

if [ -z "${GPU_CHECK_ALLOW_CPU:-}" ]; then
  "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA"; print("cuda:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
fi
"$PY" -m app.cli db upgrade
"$PY" - "$PAIRS" <<'PY'
import sys
from app.db import session_scope
from app.settings import get_settings
sys.path.insert(0, "bench")
from bench_train import seed_release
settings = get_settings()
settings.media_root.mkdir(parents=True, exist_ok=True)
with session_scope() as s:
    release = seed_release(s, settings.media_root, int(sys.argv[1]))
    print("release", release.version, release.pair_count, "pairs")
PY

start=$(date +%s.%N)
"$PY" -m app.cli train bench --model "$MODEL" --epochs 1 --batch-size "$BATCH" \
  --lr 1e-4 --workers 4 --inline | tee "$WORK/train.txt"
end=$(date +%s.%N)
"$PY" - "$start" "$end" <<'PY'
import statistics, sys
from app.db import session_scope
from app.models import TrainingRun
from app.services import training
from sqlalchemy import select
with session_scope() as s:
    run = s.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())).first()
    argv = run.argv
    if run.device == "cuda":
        assert argv[argv.index("--precision") + 1] == "amp", argv
    print("argv:", " ".join(argv))
    rates = [p.samples_per_s for line in training.log_tail(run, lines=10000)
             if isinstance(p := training.parse_log_line(line), training.TrainLine) and p.samples_per_s]
    samples = run.progress.get("step", 0) * int(run.config["batch_size"])
    print(f"run {run.id}: {run.status} on {run.device}; steps {run.progress.get('step')}/{run.progress.get('steps')}")
    print(f"trainer samples/s (median of logged steps): {statistics.median(rates[1:] or rates):.1f}")
    print(f"job wall {float(sys.argv[2]) - float(sys.argv[1]):.1f} s, trainer wall {run.wall_s:.1f} s, "
          f"end-to-end {samples / run.wall_s:.1f} samples/s")
    print(f"checkpoint {run.checkpoint_path} sha256 {run.checkpoint_sha256}")
    print(run.id, file=open(f"{__import__('os').environ['QUILT_VAR_DIR']}/run_id", "w"))
PY

RUN_ID=$(cat "$QUILT_VAR_DIR/run_id")
if "$PY" -m app.cli evaluate --help >/dev/null 2>&1; then
  "$PY" -m app.cli evaluate --run "$RUN_ID" --release bench --split test --inline || \
    echo "evaluate failed (see above)"
else
  echo "no 'quilt evaluate' in this checkout: evaluation skipped"
fi
