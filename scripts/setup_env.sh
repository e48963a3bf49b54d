#!/usr/bin/env bash
# Create .venv with everything the tests and the main job need, on a machine with nothing installed:
# the CPU torch wheel, the PyPI ComfyUI fork (comfyui==0.0.1, installed without its huge dependency
# list) and the few packages it needs to sample and execute graphs on the CPU (comfyui_cpu.md §6.5).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ -f .venv/.ready ] && [ .venv/.ready -nt scripts/setup_env.sh ] && [ .venv/.ready -nt requirements.txt ]; then
  exit 0
fi
PIP=".venv/bin/python -m pip install --quiet --disable-pip-version-check"
$PIP torch==2.13.0
$PIP numpy scipy torchsde einops safetensors tqdm psutil pyyaml pillow ConfigArgParse "transformers>=4.37.2,<5" pytest
$PIP -r requirements.txt
$PIP --no-deps comfyui==0.0.1
$PIP opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-instrumentation-aio-pika \
     opentelemetry-instrumentation-requests aio-pika aiohttp lazy-object-proxy natsort opencv-python-headless \
     aiofiles joblib can-ada
touch .venv/.ready
