#!/usr/bin/env bash
# Build the wheels of the five local distributions into OUT_DIR (default ./wheels).
# The Dockerfile runs this script, and tests/deploy runs the same script, so what the
# tests install is what the image installs.
set -euo pipefail

out_dir="${1:-wheels}"
python="${PYTHON:-python3}"
cd "$(dirname "$0")/.."

"${python}" -m pip wheel --quiet --no-deps --wheel-dir "${out_dir}" \
  libs/common services/meta services/discovery services/router libs/cli
