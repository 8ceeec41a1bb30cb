#!/usr/bin/env bash
# Build the base image localhost/mishards-base:bookworm (Debian 12 with its Python 3.11) from
# Debian packages with mmdebstrap, then `podman import` it: no registry is needed. The image
# build passes it as PYTHON_IMAGE. Skipped when the image exists and was built from the same
# inputs (this script and the apt sources); FORCE=1 rebuilds (e.g. for security updates).
set -euo pipefail

image="${BASE_IMAGE:-localhost/mishards-base:bookworm}"
suite=bookworm
# python-is-python3: the Dockerfile runs `python`; passwd: useradd; curl: Milvus' health check.
packages=python3,python3-venv,python-is-python3,passwd,curl,ca-certificates
label=io.mishards.inputs

sources=/etc/apt/sources.list.d/debian.sources
[ -f "${sources}" ] || sources=/etc/apt/sources.list
inputs="$(cat "$0" "${sources}" | sha256sum | cut -c1-16)"

if [ "${FORCE:-0}" != 1 ] && podman image exists "${image}" \
  && [ "$(podman image inspect --format "{{ index .Labels \"${label}\" }}" "${image}")" = "${inputs}" ]; then
  echo "${image} is up to date (inputs ${inputs})"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
# Documentation and translations are left out: the image only runs Python.
mmdebstrap --quiet --variant=apt --include="${packages}" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Languages "none"' \
  "${suite}" "${work}/rootfs.tar" "${sources}"
podman import --quiet --change 'CMD ["python3"]' --change "LABEL ${label}=${inputs}" \
  "${work}/rootfs.tar" "${image}" >/dev/null
echo "built ${image} (inputs ${inputs})"
