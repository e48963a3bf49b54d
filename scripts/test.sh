#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite (against upstream ComfyUI when COMFYUI_PATH is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "$([ -n "${COMFYUI_PATH:-}" ] && echo .venv-upstream || echo .venv)/bin/python" -m pytest -c tests/pytest.ini --rootdir=tests tests "$@"
