#!/usr/bin/env bash
# Everything GPU-specific in one run (< 8 min on one GPU, no network): the GPU-marked tests,
# then the benchmarks on CUDA. Prints ratios measured side by side; asserts no timings.
#
#   bash benchmarks/gpu_check.sh            # on a machine with CUDA
#   bash benchmarks/gpu_check.sh --smoke    # the same steps on the CPU, tiny sizes (checks the script)
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
  dev=cpu; rounds=2; steps=2; trainer_args=(--preset digits-cnn --samples 512 --rounds 1)
  preset_big=(--preset digits-cnn --samples 512 --rounds 1)
else
  dev=cuda; rounds=20; steps=10; trainer_args=(--preset digits-cnn --samples 16384 --rounds 5)
  preset_big=(--preset cifar10-paper --samples 16384 --rounds 5 --amp)
fi

status=0
step() { echo; echo "=== $*"; "$@" || { echo "!!! failed: $*"; status=1; }; }

"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
if [ $smoke = 1 ]; then
  step "$PY" -m pytest -q -m gpu tests   # collects the GPU tests; they skip without CUDA
else
  step "$PY" -m pytest -q -m gpu tests -rs
fi
step "$PY" benchmarks/bench_head.py --device $dev --rounds $rounds --steps $steps
step "$PY" benchmarks/bench_recorder.py --device $dev --rounds $rounds --steps $steps
step "$PY" benchmarks/bench_heads.py --device $dev --rounds $rounds --steps $steps
step "$PY" benchmarks/bench_loader.py --device $dev --rounds 3
step "$PY" benchmarks/bench_trainer.py --device $dev "${trainer_args[@]}"
step "$PY" benchmarks/bench_trainer.py --device $dev "${preset_big[@]}"
echo
[ $status = 0 ] && echo "gpu_check: all steps ran" || echo "gpu_check: some steps FAILED"
exit $status
