#!/usr/bin/env bash
# Build the wheels of the five local distributions into OUT_DIR (default ./wheels).
# The Dockerfile runs this script, and tests/deploy runs the same script, so what the
# tests install is what the image installs.
#   --with-dependencies  also put the wheel of every third-party package the three services
#                        need (pinned by requirements/constraints.txt) into OUT_DIR: for image
#                        builds that cannot reach the package index (podman here; see
#                        docs/deploy.md), run on a host whose Python matches the image's.
set -euo pipefail

out_dir="${1:-wheels}"
with_dependencies="${2:-}"
python="${PYTHON:-python3}"
cd "$(dirname "$0")/.."

"${python}" -m pip wheel --quiet --no-deps --wheel-dir "${out_dir}" \
  libs/common services/meta services/discovery services/router libs/cli
case "${with_dependencies}" in
  "") ;;
  --with-dependencies)
    "${python}" -m pip wheel --quiet --wheel-dir "${out_dir}" --find-links "${out_dir}" \
      -c requirements/constraints.txt mishards-router mishards-meta mishards-discovery
    ;;
  *)
    echo "usage: build-wheels.sh [OUT_DIR [--with-dependencies]]" >&2
    exit 2
    ;;
esac
