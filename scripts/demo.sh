#!/usr/bin/env bash
# Set up .venv if needed, then run the main job: the face-inpainting workflow through ComfyUI's executor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "$([ -n "${COMFYUI_PATH:-}" ] && echo .venv-upstream || echo .venv)/bin/python" scripts/run_demo.py "$@"
