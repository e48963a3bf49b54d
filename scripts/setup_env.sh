#!/usr/bin/env bash
# Create the virtual environment the tests and the main job need, on a machine with nothing installed.
#   default:              .venv          CPU torch + the PyPI ComfyUI fork comfyui==0.0.1 (installed without its
#                                        huge dependency list) + what it needs to sample and execute graphs
#   COMFYUI_PATH=<dir>:   .venv-upstream CPU torch + the packages that upstream checkout's requirements.txt
#                                        lists (its comfyui-frontend-package pin included, for the browser
#                                        test), spandrel, and playwright (the Python package only: the
#                                        browser test drives a system Chromium)
# (docs/comfyui.md §6.1 and §6.3). Reads the checkout, never writes into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=$([ -n "${COMFYUI_PATH:-}" ] && echo .venv-upstream || echo .venv)
# What this environment is made from: this script, the pack's requirements and, upstream, the checkout's.
sources=(scripts/setup_env.sh requirements.txt)
[ -n "${COMFYUI_PATH:-}" ] && sources+=("$COMFYUI_PATH/requirements.txt")
stamp=$(cat "${sources[@]}" | sha256sum)
if [ -f "$VENV/.ready" ] && [ "$(cat "$VENV/.ready")" = "$stamp" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip install --quiet --disable-pip-version-check"
$PIP torch==2.13.0
$PIP numpy scipy torchsde einops safetensors tqdm psutil pyyaml pillow pytest PyWavelets
$PIP -r requirements.txt
if [ -n "${COMFYUI_PATH:-}" ]; then
  $PIP "transformers>=4.37.2" tokenizers sentencepiece "av>=14.2.0" "aiohttp>=3.11.8" "yarl>=1.18.0" \
       requests alembic SQLAlchemy "pydantic-settings~=2.0"
  # The checkout's own list, less: torch (the CPU wheel above), torchvision (PyPI's does not load beside
  # it: scripts/stubs stands in), torchaudio (optional), the workflow templates and embedded docs (large,
  # not needed), and spandrel (installed without its dependencies, which would pull torchvision in).
  upstream_reqs=$(mktemp)
  grep -vEi '^\s*(torch|torchvision|torchaudio|comfyui-workflow-templates|comfyui-embedded-docs|spandrel)\s*([<>=~!;\[#]|$)' \
       "$COMFYUI_PATH/requirements.txt" > "$upstream_reqs"
  $PIP -r "$upstream_reqs"
  rm -f "$upstream_reqs"
  $PIP --no-deps spandrel
  $PIP playwright
else
  $PIP ConfigArgParse "transformers>=4.37.2,<5"
  $PIP --no-deps comfyui==0.0.1
  $PIP opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-instrumentation-aio-pika \
       opentelemetry-instrumentation-requests aio-pika aiohttp lazy-object-proxy natsort opencv-python-headless \
       aiofiles joblib can-ada
fi
echo "$stamp" > "$VENV/.ready"
