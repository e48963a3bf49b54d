#!/usr/bin/env bash
# Create the virtual environment the tests and the main job need, on a machine with nothing installed.
#   default:              .venv          CPU torch + the PyPI ComfyUI fork comfyui==0.0.1 (installed without its
#                                        huge dependency list) + what it needs to sample and execute graphs
#   COMFYUI_PATH=<dir>:   .venv-upstream CPU torch + the packages an upstream ComfyUI checkout needs on the CPU
# (shared/docs/comfyui_cpu.md §6.1 and §6.5)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=$([ -n "${COMFYUI_PATH:-}" ] && echo .venv-upstream || echo .venv)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if [ -f "$VENV/.ready" ] && [ "$VENV/.ready" -nt scripts/setup_env.sh ] && [ "$VENV/.ready" -nt requirements.txt ]; then
  exit 0
fi
PIP="$VENV/bin/python -m pip install --quiet --disable-pip-version-check"
$PIP torch==2.13.0
$PIP numpy scipy torchsde einops safetensors tqdm psutil pyyaml pillow pytest PyWavelets
$PIP -r requirements.txt
if [ -n "${COMFYUI_PATH:-}" ]; then
  $PIP "transformers>=4.37.2" tokenizers sentencepiece "av>=14.2.0" "aiohttp>=3.11.8" "yarl>=1.18.0" \
       requests alembic SQLAlchemy "pydantic-settings~=2.0"
else
  $PIP ConfigArgParse "transformers>=4.37.2,<5"
  $PIP --no-deps comfyui==0.0.1
  $PIP opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-instrumentation-aio-pika \
       opentelemetry-instrumentation-requests aio-pika aiohttp lazy-object-proxy natsort opencv-python-headless \
       aiofiles joblib can-ada
fi
touch "$VENV/.ready"
