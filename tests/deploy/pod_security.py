"""The Kubernetes Pod Security Standards, "restricted" level (which includes "baseline"), as
Kubernetes 1.30 defines them (kubernetes.io/docs/concepts/security/pod-security-standards),
checked on a pod spec. What the Pod Security admission controller of a namespace labelled
`pod-security.kubernetes.io/enforce: restricted` would refuse."""

from __future__ import annotations

from typing import Any

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t"}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}
APPARMOR_OK = {"RuntimeDefault", "Localhost"}


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every rule of the restricted level that the pod spec breaks (empty: admitted)."""
    return baseline_violations(spec) + _restricted_only(spec)


def baseline_violations(spec: dict[str, Any]) -> list[str]:
    out = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    pod_ctx = spec.get("securityContext") or {}
    out += _context_violations("pod", pod_ctx)
    out += [
        f"sysctl {s['name']} is not a safe sysctl" for s in pod_ctx.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS
    ]
    out += [f"volume {v['name']}: hostPath" for v in spec.get("volumes", []) if "hostPath" in v]
    for c in containers(spec):
        name, ctx = c["name"], c.get("securityContext") or {}
        out += _context_violations(f"container {name}", ctx)
        if ctx.get("privileged"):
            out.append(f"container {name}: privileged")
        added = set((ctx.get("capabilities") or {}).get("add", [])) - BASELINE_CAPABILITIES
        out += [f"container {name}: adds capability {cap}" for cap in sorted(added)]
        out += [f"container {name}: hostPort {p['hostPort']}" for p in c.get("ports", []) if p.get("hostPort")]
        if ctx.get("procMount", "Default") != "Default":
            out.append(f"container {name}: procMount {ctx['procMount']}")
    return out


def _context_violations(where: str, ctx: dict[str, Any]) -> list[str]:
    """Rules a pod's and a container's security context share (baseline)."""
    out = []
    if (ctx.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{where}: windowsOptions.hostProcess")
    selinux = ctx.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        out.append(f"{where}: seLinuxOptions {selinux}")
    if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append(f"{where}: seccompProfile Unconfined")
    apparmor = (ctx.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in APPARMOR_OK:
        out.append(f"{where}: appArmorProfile {apparmor}")
    return out


def _restricted_only(spec: dict[str, Any]) -> list[str]:
    pod_ctx = spec.get("securityContext") or {}
    out = []
    for v in spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {v['name']}: {sorted(kinds - RESTRICTED_VOLUMES)} not allowed")
    if pod_ctx.get("runAsUser") == 0:
        out.append("pod: runAsUser=0")
    for c in containers(spec):
        name, ctx = c["name"], c.get("securityContext") or {}
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"container {name}: allowPrivilegeEscalation must be false")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"container {name}: runAsNonRoot must be true (pod or container)")
        if ctx.get("runAsUser") == 0:
            out.append(f"container {name}: runAsUser=0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in SECCOMP_OK:
            out.append(f"container {name}: seccompProfile must be RuntimeDefault or Localhost, not {seccomp}")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            out.append(f"container {name}: capabilities must drop ALL")
        out += [f"container {name}: adds {cap}" for cap in caps.get("add", []) if cap != "NET_BIND_SERVICE"]
    return out
