"""`kubernetes` back end: Milvus pods, followed with list + watch through the official client.

A pod counts when it is Running, not being deleted, has an IP, every container is
Ready, it carries the label `mishards.io/role: writable|readonly`, and a container
port is named `grpc` (the Helm chart sets both). Identity is the pod name; the
address is `podIP:grpc-port`. DISCOVERY_KUBERNETES_LABEL_SELECTOR narrows the list on
the server, DISCOVERY_KUBERNETES_POD_PATT (a regular expression searched in the pod
name) on the client.

The follower lists the pods, then watches from the list's resourceVersion; every
DISCOVERY_KUBERNETES_POLL_INTERVAL seconds it lists again, and at once when the watch
answers 410 Gone (its resourceVersion was compacted away).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends.base import InstanceSpec, parse_role
from mishards.discovery.backends.follow import Backoff, Feed, FollowingBackend
from mishards.discovery.backends.hostport import join_host_port

log = logging.getLogger(__name__)

ROLE_LABEL = "mishards.io/role"
GRPC_PORT_NAME = "grpc"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def pod_to_spec(pod: Any, pattern: re.Pattern[str] | None = None) -> InstanceSpec | None:
    """The instance of a ready Milvus pod, or None when the pod does not count (yet).

    Raises ValueError when the pod is ready but misconfigured (no or bad role label, no
    `grpc` port), so the caller can say why it is left out.
    """
    meta, status, spec = pod.metadata, pod.status, pod.spec
    name = meta.name
    if pattern is not None and not pattern.search(name):
        return None
    if meta.deletion_timestamp is not None:  # terminating: gone as of now
        return None
    if status is None or status.phase != "Running" or not status.pod_ip:
        return None
    containers = status.container_statuses or []
    # Phase Running says nothing about readiness; the original Mishards admitted unready pods.
    if not containers or not all(c.ready for c in containers):
        return None
    labels = meta.labels or {}
    if ROLE_LABEL not in labels:
        raise ValueError(f"pod {name} has no {ROLE_LABEL} label (writable or readonly)")
    role = parse_role(labels[ROLE_LABEL], f"pod {name} label {ROLE_LABEL}")
    port = None
    for container in (spec.containers if spec is not None else None) or []:
        for container_port in container.ports or []:
            if container_port.name == GRPC_PORT_NAME:
                port = container_port.container_port
                break
        if port is not None:
            break
    if port is None:
        raise ValueError(f"pod {name} has no container port named {GRPC_PORT_NAME!r}")
    return InstanceSpec(identity=name, address=join_host_port(status.pod_ip, int(port)), role=role)


def _default_namespace(in_cluster: bool) -> str:
    if in_cluster:
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as handle:
                return handle.read().strip() or "default"
        except OSError:
            return "default"
    try:
        _, active = k8s_config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG") or None)
    except Exception:  # no kubeconfig: load_kube_config reports it
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


class KubernetesBackend(FollowingBackend):
    """Ready Milvus pods of one namespace, followed by list + watch.

    Configured in-cluster (service account) when DISCOVERY_KUBERNETES_IN_CLUSTER is
    true, else from the kubeconfig (KUBECONFIG or ~/.kube/config). A configuration
    that cannot be loaded is a SettingsError at start; an unreachable or refusing API
    server makes `list_instances` raise BackendUnavailable until it answers again.
    """

    #: Seconds to connect and for a list to answer.
    request_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __init__(self, settings: Settings, api_client: Any = None) -> None:
        super().__init__(settings)
        in_cluster = settings.DISCOVERY_KUBERNETES_IN_CLUSTER
        self.poll_interval = float(settings.DISCOVERY_KUBERNETES_POLL_INTERVAL)
        self.label_selector = settings.DISCOVERY_KUBERNETES_LABEL_SELECTOR or None
        try:
            self.pattern = (
                re.compile(settings.DISCOVERY_KUBERNETES_POD_PATT) if settings.DISCOVERY_KUBERNETES_POD_PATT else None
            )
        except re.error as exc:
            raise SettingsError(
                f"setting DISCOVERY_KUBERNETES_POD_PATT={settings.DISCOVERY_KUBERNETES_POD_PATT!r} "
                f"is not a regular expression: {exc}"
            ) from None
        if api_client is None:
            configuration = k8s_client.Configuration()
            try:
                if in_cluster:
                    k8s_config.load_incluster_config(client_configuration=configuration)
                else:
                    k8s_config.load_kube_config(
                        config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
                    )
            except Exception as exc:  # ConfigException, or a malformed file
                where = (
                    "the in-cluster service account" if in_cluster else "a kubeconfig (KUBECONFIG or ~/.kube/config)"
                )
                raise SettingsError(
                    f"setting DISCOVERY_KUBERNETES_IN_CLUSTER={str(in_cluster).lower()}: cannot load {where}: {exc}"
                ) from None
            api_client = k8s_client.ApiClient(configuration)
        self.api = k8s_client.CoreV1Api(api_client)
        self.namespace = settings.DISCOVERY_KUBERNETES_NAMESPACE or _default_namespace(in_cluster)
        self.relists = 0
        self.watches = 0
        self._misconfigured: set[str] = set()

    def _follow_targets(self) -> list[tuple[Feed, Callable[[Feed], None]]]:
        feed = Feed(f"kubernetes pods in namespace {self.namespace}")
        return [(feed, self._follow)]

    def _specs(self, pods: dict[str, Any]) -> list[InstanceSpec]:
        specs: list[InstanceSpec] = []
        misconfigured: set[str] = set()
        for name, pod in sorted(pods.items()):
            try:
                spec = pod_to_spec(pod, self.pattern)
            except ValueError as exc:
                misconfigured.add(name)
                if name not in self._misconfigured:
                    log.warning("leaving out %s", exc)
                continue
            if spec is not None:
                specs.append(spec)
        self._misconfigured = misconfigured
        return specs

    def _list_kwargs(self) -> dict[str, Any]:
        return {"label_selector": self.label_selector} if self.label_selector else {}

    def _follow(self, feed: Feed) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while not self.stopping.is_set():
            try:
                self._list_and_watch(feed, backoff)
            except k8s_client.ApiException as exc:
                if exc.status == 410:  # the watch's resourceVersion was compacted: list again now
                    log.info("%s: watch expired (410 Gone); listing again", feed.name)
                    continue
                feed.fail(f"{feed.name}: API server answered {exc.status} {exc.reason}")
                self.stopping.wait(backoff.next_delay())
            except Exception as exc:  # connection refused, timeout, bad answer
                if self.stopping.is_set():
                    return
                feed.fail(f"{feed.name}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
                self.stopping.wait(backoff.next_delay())

    def _list_and_watch(self, feed: Feed, backoff: Backoff) -> None:
        self.relists += 1
        # The client's models type every field optional; the API server always sets these.
        listed: Any = self.api.list_namespaced_pod(
            self.namespace, _request_timeout=self.request_timeout, **self._list_kwargs()
        )
        pods: dict[str, Any] = {pod.metadata.name: pod for pod in listed.items}
        version = listed.metadata.resource_version
        feed.set(self._specs(pods))
        backoff.reset()
        relist_at = time.monotonic() + self.poll_interval
        while not self.stopping.is_set():
            remaining = relist_at - time.monotonic()
            if remaining <= 0:
                return
            self.watches += 1
            watcher = k8s_watch.Watch()
            # timeout_seconds ends the watch on the server for the periodic re-list; the
            # client-side read timeout catches a server that went silent.
            for event in watcher.stream(
                self.api.list_namespaced_pod,
                self.namespace,
                resource_version=version,
                timeout_seconds=max(1, int(remaining)),
                allow_watch_bookmarks=True,
                _request_timeout=(self.request_timeout, remaining + self.request_timeout),
                **self._list_kwargs(),
            ):
                kind = event["type"]
                if kind == "BOOKMARK":
                    version = watcher.resource_version or version
                    continue
                pod = event["object"]
                if kind == "DELETED":
                    pods.pop(pod.metadata.name, None)
                else:  # ADDED, MODIFIED
                    pods[pod.metadata.name] = pod
                version = pod.metadata.resource_version or version
                feed.set(self._specs(pods))
                if self.stopping.is_set():
                    watcher.stop()
