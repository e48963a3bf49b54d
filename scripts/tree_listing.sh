#!/usr/bin/env bash
# Print one line per entry of a folder tree: path, type, mode, size, mtime and, for files, a sha256.
# Two listings taken before and after a run differ iff something was created, removed, changed or
# touched in the tree (used to prove that the tests never write into ../shared).
set -euo pipefail
cd "$1"
find . -printf '%p\t%y\t%m\t%s\t%T@\n' | LC_ALL=C sort
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
