#!/usr/bin/env bash
# The GPU half of the benchmarks, for a GPU node with PyTorch and accelerate but without the materials stack
# (pymatgen, spglib, smact, matminer are not needed there). Run from the repository root:
#
#   bash benchmarks/gpu_suite.sh DATA_DIR OUT_DIR [TRAIN_MINUTES]
#
# DATA_DIR holds the inputs made beforehand where td-data is installed (docs/benchmarks.md, "GPU runs"):
#   perov5/train_items.npz   kedro run --env perov5 --pipelines=bench_prepare --params output_dir=DATA_DIR/perov5
#   yield/train_items.npz    kedro run --env yield --pipelines=yield_prepare --params output_dir=DATA_DIR/yield
#   gpu_training_items.npz   python benchmarks/gpu_training.py --write-items DATA_DIR/gpu_training_items.npz
# OUT_DIR gets: suite.log (the environment and every step's log, appended as each step ends),
# gpu_invariants.json, gpu_training.json, perov5/{samples.npz,training_summary.json} and
# yield/{samples_conditioned.npz,samples_unconditioned.npz,training_summary.json}. Copy perov5/ into outputs/perov5
# and yield/ into outputs/yield and run the evaluate stages where td-data is installed
# (kedro run --env perov5 --pipelines=bench_evaluate; kedro run --env yield --pipelines=yield_evaluate).
# The node needs torch, accelerate, kedro, kedro-datasets and this repository's packages installed without their
# dependencies (pip install --no-deps -e packages/td-physics -e packages/td-data -e packages/td-models -e .).
#
# Order: batched Chern numbers (a minute), then the Perov-5 and yield models trained side by side on the one GPU
# for TRAIN_MINUTES each (default 3.5) and sampled, then the training-throughput table of the presets, alone
# on the GPU so that its timings are clean. Each step has a hard time limit; a failed step does not stop the
# others (the exit status is the number of failed steps).
set -u
DATA=${1:?usage: gpu_suite.sh DATA_DIR OUT_DIR [TRAIN_MINUTES]}
OUT=${2:?usage: gpu_suite.sh DATA_DIR OUT_DIR [TRAIN_MINUTES]}
MINUTES=${3:-3.5}
PY=${PYTHON:-python3}
# overridable for a dry run of this script on a CPU (e.g. DEVICE=cpu PRESET=cpu-demo N_SAMPLES=8 STEPS=5)
DEVICE=${DEVICE:-cuda} PRESET=${PRESET:-small} N_SAMPLES=${N_SAMPLES:-1000} STEPS=${STEPS:-}
GRID=${GRID:-48} MESH=${MESH:-48} PRESETS=${PRESETS:-small medium large}
WORK=${WORK_DIR:-/tmp/td_gpu_suite}   # models and checkpoints (GBs): kept out of OUT_DIR
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg KEDRO_DISABLE_TELEMETRY=1
failed=0
step() {  # step NAME SECONDS command...: run with a time limit; its log goes to WORK/NAME.log, then OUT/suite.log
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s) $(date +%T)"
  timeout --signal=TERM --kill-after=20 "$limit" "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc $(date +%T)"
  tail -n 25 "$WORK/$name.log"
  { echo "===== $name: exit $rc, ended $(date +%T)"; cat "$WORK/$name.log"; } >>"$OUT/suite.log"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
  return 0
}

{ echo "===== environment"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch, accelerate, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'accelerate', accelerate.__version__, 'numpy', numpy.__version__)"; } >"$OUT/suite.log" 2>&1
cat "$OUT/suite.log"

step gpu_invariants 90 "$PY" benchmarks/gpu_invariants.py --grid "$GRID" --mesh "$MESH" --repeats 2 --json "$OUT/gpu_invariants.json"

# the two models train at the same time (each leaves most of an H100/H200 idle at these sizes)
train_limit=$("$PY" -c "print(int(60 * $MINUTES + 360))")  # + set-up, sampling (the yield step samples two arms)
# the same training and sampling parameters for both runs: the train node's blocks (the preset's model shape, the
# budget with the epochs fitted to it, one cosine from 3e-4; the yield run's phases still switch its physics on)
model=$("$PY" -c "from td_models import ExperimentConfig; m = ExperimentConfig.preset('$PRESET').model_config; \
print(f'model_config.hidden_dim={m.hidden_dim},model_config.num_layers={m.num_layers},model_config.num_heads={m.num_heads}')")
tc=training_config to=train_options go=generate_options
params="$model,$to.device=$DEVICE,$to.budget_minutes=$MINUTES,$to.fit_epochs_to_budget=true"
params+=",$tc.max_epochs=100000,$tc.checkpoint_every=100000,$tc.batch_size=256,$tc.warmup_epochs=5,$tc.scheduler=cosine"
params+=",$tc.learning_rate=0.0003"
[ "$DEVICE" = cuda ] && params+=",$tc.mixed_precision=bf16"  # the environments' "no" on a CPU
params+=",$go.device=$DEVICE,$go.batch_size=1000,$go.n_candidates=$N_SAMPLES${STEPS:+,$go.steps=$STEPS}"
mkdir -p "$WORK/perov5" "$WORK/yield" "$OUT/perov5" "$OUT/yield"
cp "$DATA/perov5/train_items.npz" "$WORK/perov5/"; cp "$DATA/yield/train_items.npz" "$WORK/yield/"
( step perov5 "$train_limit" "$PY" -m kedro run --env perov5 --pipelines=bench_train \
    --params "output_dir=$WORK/perov5,$params"
  cp "$WORK/perov5/samples.npz" "$WORK/perov5/training_summary.json" "$OUT/perov5/" 2>/dev/null; exit $failed ) &
p1=$!
( step yield "$train_limit" "$PY" -m kedro run --env yield --pipelines=yield_train \
    --params "output_dir=$WORK/yield,$params"
  cp "$WORK/yield"/samples_*.npz "$WORK/yield/training_summary.json" "$OUT/yield/" 2>/dev/null; exit $failed ) &
p2=$!
wait $p1 || failed=$((failed + 1))
wait $p2 || failed=$((failed + 1))

# shellcheck disable=SC2086  # PRESETS is a list
step gpu_training 150 "$PY" benchmarks/gpu_training.py --presets $PRESETS --checkpointing off \
  --batch-size 32 --steps 10 --warmup 3 --items "$DATA/gpu_training_items.npz" --json "$OUT/gpu_training.json"

echo "failed steps: $failed"
exit "$failed"
