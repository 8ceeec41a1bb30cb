#!/usr/bin/env bash
# Thin wrappers over helm and kubectl for the Mishards chart (helm/mishards).
#
#   start.sh install              helm upgrade --install, waits until every pod is ready
#   start.sh status               helm status and the release's pods, services, PVCs
#   start.sh probe                connect with pymilvus through the router Service (port-forward)
#   start.sh test                 helm test (insert and search inside the cluster)
#   start.sh scale-ro-server N    N read-only Milvus instances (ro.replicas)
#   start.sh scale-proxy N        N routers (router.replicas)
#   start.sh uninstall            helm uninstall and delete the release's PVCs
#
# Environment: RELEASE (mishards), NAMESPACE (mishards), CHART (the repo's helm/mishards),
# HELM_ARGS (extra helm flags, e.g. "-f my-values.yaml"), PYTHON (python3), LOCAL_PORT (19530).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
release="${RELEASE:-mishards}"
namespace="${NAMESPACE:-mishards}"
chart="${CHART:-${here}/../../helm/mishards}"
python="${PYTHON:-python3}"
local_port="${LOCAL_PORT:-19530}"
read -r -a helm_args <<<"${HELM_ARGS:-}"
selector="app.kubernetes.io/instance=${release}"

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

need_count() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] || { echo "start.sh: $2 needs a count, e.g. $2 2" >&2; exit 2; }
}

upgrade() {
  helm upgrade "${release}" "${chart}" --namespace "${namespace}" --reuse-values --wait "$@" "${helm_args[@]}"
}

cmd="${1:-}"
case "${cmd}" in
  install)
    helm upgrade --install "${release}" "${chart}" --namespace "${namespace}" --create-namespace \
      --wait --timeout 15m "${helm_args[@]}"
    ;;
  status)
    helm status "${release}" --namespace "${namespace}"
    kubectl get statefulsets,deployments,pods,services,pvc --namespace "${namespace}" -l "${selector}" -o wide
    ;;
  probe)
    service="$(kubectl get services --namespace "${namespace}" -l "${selector},app.kubernetes.io/component=router" -o name)"
    [ -n "${service}" ] || { echo "Error: no router Service for release ${release} in ${namespace}"; exit 1; }
    kubectl port-forward --namespace "${namespace}" "${service}" "${local_port}:19530" >/dev/null &
    forward=$!
    trap 'kill "${forward}" 2>/dev/null || true' EXIT
    sleep 3
    "${python}" "${here}/../probe.py" "127.0.0.1:${local_port}"
    ;;
  test)
    helm test "${release}" --namespace "${namespace}" --logs
    ;;
  scale-ro-server)
    need_count "${2:-}" scale-ro-server
    upgrade --set "ro.replicas=$2"
    ;;
  scale-proxy)
    need_count "${2:-}" scale-proxy
    upgrade --set "router.replicas=$2"
    ;;
  uninstall)
    helm uninstall "${release}" --namespace "${namespace}" --wait || true
    kubectl delete pvc --namespace "${namespace}" -l "${selector}" --ignore-not-found
    ;;
  *)
    usage
    ;;
esac
