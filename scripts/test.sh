#!/usr/bin/env bash
# The tests: set up each engine's environment if needed, then run the whole suite once per engine.
#   bash scripts/test.sh                         both passes: the PyPI fork comfyui==0.0.1 (.venv), then
#                                                upstream ComfyUI ../shared/engines/comfyui-0.3.64 (.venv-upstream)
#   COMFYUI_PATH=/path/to/ComfyUI bash ...       the upstream pass only, against that checkout
#   ENGINES=fork (or upstream, or "fork upstream")  choose the passes
# Other arguments go to pytest. Prints each pass's set-up and test time and its counts; fails if any pass
# fails or if anything was written into the engine folder of the upstream pass.
#
# The shared snapshot is read-only by convention: the upstream pass runs ComfyUI from a private copy of it,
# with ComfyUI's base directory (output/, input/, temp/, user/, custom_nodes/) in a scratch folder and
# Python's bytecode cache elsewhere (PYTHONPYCACHEPREFIX), and the snapshot's listing (paths, modes,
# sizes, mtimes, sha256) is compared before and after.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SHARED_ENGINE=$REPO/../shared/engines/comfyui-0.3.64

if [ -n "${ENGINES:-}" ]; then
  passes=$ENGINES
elif [ -n "${COMFYUI_PATH:-}" ]; then
  passes=upstream
else
  passes="fork upstream"
fi
ENGINE_SOURCE=${COMFYUI_PATH:-$SHARED_ENGINE}

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/inverse-samplers-test.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
summary=()
status=0

elapsed() { echo $(( $(date +%s) - $1 )); }

run_pass() {  # $1 = fork | upstream, then pytest arguments
  local pass=$1; shift
  local venv=.venv engine_env=() t0 setup_s tests_s rc counts
  local pass_tmp=$SCRATCH/$pass
  mkdir -p "$pass_tmp/tmp"
  echo "=== $pass pass ==="
  if [ "$pass" = upstream ]; then
    venv=.venv-upstream
    if [ ! -f "$ENGINE_SOURCE/comfy/samplers.py" ]; then
      echo "no upstream ComfyUI at $ENGINE_SOURCE (set COMFYUI_PATH or put the snapshot at ../shared)"
      summary+=("upstream  not run: no checkout at $ENGINE_SOURCE"); status=1; return
    fi
    ENGINE_SOURCE=$(cd "$ENGINE_SOURCE" && pwd -P)
    bash scripts/tree_listing.sh "$ENGINE_SOURCE" > "$SCRATCH/engine_before.txt"
  fi
  t0=$(date +%s)
  if [ "$pass" = upstream ]; then
    COMFYUI_PATH=$ENGINE_SOURCE bash scripts/setup_env.sh; rc=$?
  else
    env -u COMFYUI_PATH bash scripts/setup_env.sh; rc=$?
  fi
  setup_s=$(elapsed "$t0")
  echo "$pass set-up: ${setup_s} s"
  if [ $rc -ne 0 ]; then
    summary+=("$(printf '%-9s set-up %5s s  FAILED (exit %s)' "$pass" "$setup_s" "$rc")"); status=1; return
  fi

  t0=$(date +%s)
  if [ "$pass" = upstream ]; then
    local engine=$ENGINE_SOURCE
    if [ "$ENGINE_SOURCE" = "$(cd "$SHARED_ENGINE" 2>/dev/null && pwd -P)" ]; then
      # never run from the shared snapshot itself: a private, writable copy (15 MB, < 1 s)
      engine=$pass_tmp/$(basename "$ENGINE_SOURCE")
      cp -r "$ENGINE_SOURCE" "$engine" && chmod -R u+w "$engine"
    fi
    engine_env=(COMFYUI_PATH="$engine" PYTHONPYCACHEPREFIX="$pass_tmp/pycache")
    echo "engine: $engine (from $ENGINE_SOURCE)"
  else
    engine_env=(-u COMFYUI_PATH)
  fi
  # each pass: its own temp folder (ComfyUI's base directory, custom_nodes links, pytest's basetemp)
  env "${engine_env[@]}" TMPDIR="$pass_tmp/tmp" "$venv/bin/python" -m pytest -c tests/pytest.ini --rootdir=tests \
      --basetemp="$pass_tmp/pytest" tests "$@" 2>&1 | tee "$pass_tmp/pytest.log"
  rc=${PIPESTATUS[0]}
  tests_s=$(elapsed "$t0")
  counts=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped|deselected)' "$pass_tmp/pytest.log" | tail -1 \
           | sed -E 's/^=+ //; s/ in [0-9.]+s.*$//; s/ =+$//')
  echo "$pass tests: ${tests_s} s"
  [ $rc -ne 0 ] && status=1
  summary+=("$(printf '%-9s set-up %5s s  tests %5s s  %s%s' "$pass" "$setup_s" "$tests_s" \
                "${counts:-no result}" "$([ $rc -ne 0 ] && echo "  FAILED (exit $rc)")")")

  if [ "$pass" = upstream ]; then
    bash scripts/tree_listing.sh "$ENGINE_SOURCE" > "$SCRATCH/engine_after.txt"
    if ! diff "$SCRATCH/engine_before.txt" "$SCRATCH/engine_after.txt" > "$SCRATCH/engine_diff.txt"; then
      echo "the upstream pass wrote into $ENGINE_SOURCE:"; head -40 "$SCRATCH/engine_diff.txt"
      summary+=("upstream  WROTE INTO $ENGINE_SOURCE (see above)"); status=1
    else
      summary+=("upstream  engine folder unchanged: $ENGINE_SOURCE")
    fi
  fi
}

for pass in $passes; do
  case $pass in
    fork|upstream) run_pass "$pass" "$@" ;;
    *) echo "unknown engine '$pass' in ENGINES (fork, upstream)"; status=1 ;;
  esac
done

echo "=== summary ==="
printf '%s\n' "${summary[@]}"
exit $status
