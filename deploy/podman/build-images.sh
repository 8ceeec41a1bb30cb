#!/usr/bin/env bash
# Build images with podman from Debian packages and wheels only, for hosts that reach no
# container registry (docs/deploy.md):
#   mishards  the project's Dockerfile (IMAGE, default localhost/mishards:0.1.0) on the base
#             image, installing wheels built on this host (deploy/build-wheels.sh)
#   milvus    Milvus standalone from the pinned `milvus` wheel (deploy/milvus)
#   mariadb   MariaDB from Debian packages (deploy/mariadb)
# Usage: build-images.sh [mishards|milvus|mariadb]...  (default: all three). Each first makes
# sure of podman (install.sh) and the base image (build-base.sh). Milvus and MariaDB are
# skipped when the image exists and was built from the same inputs (files and base image).
set -euo pipefail
cd "$(dirname "$0")/../.."

base="${BASE_IMAGE:-localhost/mishards-base:bookworm}"
image="${IMAGE:-localhost/mishards:0.1.0}"
milvus_image="${MILVUS_IMAGE:-localhost/mishards-milvus:2.3.5}"
mariadb_image="${MARIADB_IMAGE:-localhost/mishards-mariadb:10.11}"
python="${PYTHON:-python3}"
label=io.mishards.inputs

inputs_of() { # files... -> a short hash of them and of the base image
  { podman image inspect --format '{{.Id}}' "${base}"; cat "$@"; } | sha256sum | cut -c1-16
}

up_to_date() { # image inputs
  podman image exists "$1" \
    && [ "$(podman image inspect --format "{{ index .Labels \"${label}\" }}" "$1")" = "$2" ]
}

build_mishards() {
  PYTHON="${python}" deploy/build-wheels.sh build/wheels --with-dependencies
  podman build --quiet --format docker --build-arg PYTHON_IMAGE="${base}" --tag "${image}" . >/dev/null
  echo "built ${image}"
}

build_milvus() {
  local version context inputs
  version="$(sed -n 's/^milvus==//p' requirements/constraints.txt)"
  context=build/milvus-image
  rm -rf "${context}" && mkdir -p "${context}"
  "${python}" -m pip download --quiet --no-deps --only-binary=:all: --dest "${context}" "milvus==${version}"
  cp deploy/milvus/Dockerfile deploy/milvus/layout.py "${context}/"
  inputs="$(inputs_of "${context}"/*)"
  if up_to_date "${milvus_image}" "${inputs}"; then
    echo "${milvus_image} is up to date (inputs ${inputs})"
    return
  fi
  podman build --quiet --format docker --build-arg BASE_IMAGE="${base}" --build-arg MILVUS_VERSION="${version}" \
    --label "${label}=${inputs}" --tag "${milvus_image}" "${context}" >/dev/null
  echo "built ${milvus_image} (inputs ${inputs})"
}

build_mariadb() {
  local inputs
  inputs="$(inputs_of deploy/mariadb/*)"
  if up_to_date "${mariadb_image}" "${inputs}"; then
    echo "${mariadb_image} is up to date (inputs ${inputs})"
    return
  fi
  # --network=host: apt inside the build reaches Debian's mirror as this host does.
  podman build --quiet --format docker --network=host --build-arg BASE_IMAGE="${base}" \
    --label "${label}=${inputs}" --tag "${mariadb_image}" deploy/mariadb >/dev/null
  echo "built ${mariadb_image} (inputs ${inputs})"
}

targets=("$@")
((${#targets[@]})) || targets=(mishards milvus mariadb)
for target in "${targets[@]}"; do
  case "${target}" in
    mishards | milvus | mariadb) ;;
    *)
      echo "usage: build-images.sh [mishards|milvus|mariadb]..." >&2
      exit 2
      ;;
  esac
done
deploy/podman/install.sh
BASE_IMAGE="${base}" deploy/podman/build-base.sh
for target in "${targets[@]}"; do
  "build_${target}"
done
# Build stages left untagged (they inherit the base's label) would take ~600 MB per build.
podman image prune --force --filter "label=${label}" >/dev/null
