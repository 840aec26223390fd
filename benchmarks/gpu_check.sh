#!/usr/bin/env bash
# Everything GPU-specific in one short run (a few minutes on one GPU, no network): the
# GPU-marked tests (the recorder and Trainer.train_step under
# torch.cuda.set_sync_debug_mode("error"), the heads on CUDA), then the benchmarks on CUDA:
# recorder overhead on cifar10-paper with bf16 autocast (goal <= 1.03), the trainer against a
# bare loop (goal >= 0.95), small-cnn / mnist-paper epoch times, and the evaluation pass with
# and without its calibration measures. Prints ratios measured side by side; asserts no
# timings. The output is also appended, dated, with the device, to benchmarks/RESULTS.md.
#
#   bash benchmarks/gpu_check.sh            # on a machine with CUDA
#   bash benchmarks/gpu_check.sh --smoke    # the same steps on the CPU, tiny sizes (checks the
#                                           # script; writes nothing to RESULTS.md)
#
# Python: $PY, else .venv/bin/python, else python3 (which must have torch and satkit's deps).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-}
[ -z "$PY" ] && { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: no CUDA device visible to $PY; use --smoke to check the script on the CPU" >&2
  exit 2
fi
if [ $smoke = 1 ]; then
  dev=cpu; rec_args=(--model bn --rounds 2 --steps 2)
  trainer_args=(--preset digits-cnn --samples 512 --rounds 1)
  trainer_big=(--preset digits-cnn --samples 512 --rounds 1)
  epoch_small=(--preset small-cnn --samples 256); epoch_big=(--preset mnist-paper --samples 128)
  eval_args=(--rounds 2 --calls 1 --samples 512)
else
  dev=cuda; rec_args=(--model cifar10-paper --amp --rounds 10 --steps 10)
  trainer_args=(--preset digits-cnn --samples 16384 --rounds 5)
  trainer_big=(--preset cifar10-paper --samples 16384 --rounds 3 --amp)
  epoch_small=(--preset small-cnn); epoch_big=(--preset mnist-paper)
  eval_args=(--rounds 20 --samples 10000)
fi

log=$(mktemp)
status=0
step() { echo; echo "=== $*"; "$@" || { echo "!!! failed: $*"; status=1; }; }

{
  "$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
        '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  if [ $smoke = 1 ]; then
    step "$PY" -m pytest -q -m gpu tests   # collects the GPU tests; they skip without CUDA
  else
    step "$PY" -m pytest -q -m gpu tests -rs
  fi
  step "$PY" benchmarks/bench_recorder.py --device $dev "${rec_args[@]}"
  step "$PY" benchmarks/bench_trainer.py --device $dev "${trainer_args[@]}"
  step "$PY" benchmarks/bench_trainer.py --device $dev "${trainer_big[@]}"
  step "$PY" benchmarks/bench_epoch.py --device $dev "${epoch_small[@]}"
  step "$PY" benchmarks/bench_epoch.py --device $dev "${epoch_big[@]}"
  step "$PY" benchmarks/bench_eval.py --device $dev "${eval_args[@]}"
  echo
  [ $status = 0 ] && echo "gpu_check: all steps ran" || echo "gpu_check: some steps FAILED"
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
grep -q "some steps FAILED" "$log" && status=1

if [ $smoke = 0 ]; then
  device=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
  { echo; echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), $device (benchmarks/gpu_check.sh)"; echo
    echo '```'; cat "$log"; echo '```'; } >> benchmarks/RESULTS.md
  echo "gpu_check: figures appended to benchmarks/RESULTS.md"
fi
rm -f "$log"
exit $status
