#!/usr/bin/env bash
# Install the three services from the wheels in WHEEL_DIR with the project's pinned
# constraints, as the image does. Third-party packages come from the package index
# (or from WHEEL_DIR when it holds them: the image build puts them there).
set -euo pipefail

wheel_dir="${1:?usage: install-wheels.sh WHEEL_DIR CONSTRAINTS}"
constraints="${2:?usage: install-wheels.sh WHEEL_DIR CONSTRAINTS}"
python="${PYTHON:-python3}"

"${python}" -m pip install --quiet --no-cache-dir --find-links "${wheel_dir}" -c "${constraints}" \
  mishards-router mishards-meta mishards-discovery
