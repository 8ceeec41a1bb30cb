#!/usr/bin/env bash
# Install podman from Debian's packages and configure it for these machines (no Docker engine,
# cgroup v1 without systemd, root without CAP_SYS_RESOURCE). Idempotent: a no-op when done.
set -euo pipefail

# runc: crun fails on this cgroup setup; iptables: netavark needs it; aardvark-dns: container
# names resolve on compose networks; mmdebstrap: the base image is built from Debian packages.
packages=(podman runc iptables netavark aardvark-dns catatonit mmdebstrap podman-compose)
conf_dir=/etc/containers/containers.conf.d
conf="${conf_dir}/mishards.conf"
read -r -d '' settings <<'CONF' || true
# Written by deploy/podman/install.sh.
[containers]
# root here lacks CAP_SYS_RESOURCE, so podman's default (raise nofile to the hard maximum) fails.
default_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
CONF

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${package}")
  fi
done
if ((${#missing[@]})); then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "$(cat "${conf}" 2>/dev/null)" != "${settings}" ]; then
  mkdir -p "${conf_dir}"
  printf '%s\n' "${settings}" >"${conf}"
fi
