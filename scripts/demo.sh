#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the face workflows through ComfyUI's executor.
# pip's and ComfyUI's start-up chatter goes to output/setup.log and output/engine.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p output
echo "Inverse Diffusion Samplers demo"
echo "1/2 setting up .venv (the first time about 6 minutes on 2 cores, then a second; log: output/setup.log)"
if ! bash scripts/setup_env.sh > output/setup.log 2>&1; then
  echo "set-up failed; the end of output/setup.log:"; tail -20 output/setup.log; exit 1
fi
echo "2/2 running the inpainting and restoration demos through ComfyUI's executor (about 30 s)"
exec "$([ -n "${COMFYUI_PATH:-}" ] && echo .venv-upstream || echo .venv)/bin/python" scripts/run_demo.py "$@"
