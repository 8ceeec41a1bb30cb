"""A fake Kubernetes API server: `GET /api/v1/namespaces/<ns>/pods`, list and `?watch=1`.

Follows the real API where the kubernetes back end relies on it: a PodList with
`metadata.resourceVersion`; watch streams (chunked, one JSON event per line) of
ADDED / MODIFIED / DELETED events after `resourceVersion`, held open until
`timeoutSeconds`, a BOOKMARK before a timed-out watch closes when
`allowWatchBookmarks` is set; a watch from a compacted resourceVersion gets an ERROR
event with a 410 Expired Status; equality-based `labelSelector`.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


def make_pod(
    name: str,
    ip: str,
    port: int,
    role: str | None = "writable",
    *,
    ready: bool = True,
    phase: str = "Running",
    namespace: str = "milvus",
    labels: dict[str, str] | None = None,
    port_name: str = "grpc",
) -> dict[str, Any]:
    """A Pod object as the API server returns it (the fields the back end reads, and a few more)."""
    all_labels = {"app.kubernetes.io/name": "milvus", **(labels or {})}
    if role is not None:
        all_labels["mishards.io/role"] = role
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": all_labels,
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": {
            "containers": [
                {
                    "name": "milvus",
                    "image": "milvusdb/milvus:v2.3.5",
                    "ports": [
                        {"name": port_name, "containerPort": port, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9091, "protocol": "TCP"},
                    ],
                }
            ]
        },
        "status": {
            "phase": phase,
            "podIP": ip if phase == "Running" else None,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "milvus",
                    "ready": ready,
                    "restartCount": 0,
                    "image": "milvusdb/milvus:v2.3.5",
                    "imageID": "",
                    "started": phase == "Running",
                }
            ],
        },
    }


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubernetes:
    """Pods of any namespace on 127.0.0.1; start with `start()`, end with `stop()`."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._cond = threading.Condition()
        self._rv = 100
        self._compacted = 0
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._error: tuple[int, str] | None = None
        self._generation = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        #: (kind, query parameters) of every request, kind "list" or "watch".
        self.requests: list[tuple[str, dict[str, str]]] = []

    # -- life cycle -------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", self.port or self._requested_port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="fake-kubernetes", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and end every watch stream."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path | str, namespace: str = "milvus") -> str:
        """A kubeconfig whose current context points at this server; returns the path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        }
        Path(path).write_text(yaml.safe_dump(config), encoding="utf-8")
        return str(path)

    # -- state ------------------------------------------------------------------

    def _record(self, kind: str, pod: dict[str, Any]) -> None:
        self._rv += 1
        pod["metadata"]["resourceVersion"] = str(self._rv)
        self._events.append((self._rv, kind, copy.deepcopy(pod)))
        self._cond.notify_all()

    def put_pod(self, pod: dict[str, Any]) -> None:
        """Create or replace a pod (ADDED or MODIFIED event)."""
        pod = copy.deepcopy(pod)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._cond:
            kind = "MODIFIED" if key in self._pods else "ADDED"
            self._pods[key] = pod
            self._record(kind, pod)

    def update_pod(self, name: str, namespace: str = "milvus", **changes: Any) -> None:
        """Change a pod: `ready=`, `phase=`, `role=`, `deleting=` (MODIFIED event)."""
        with self._cond:
            pod = self._pods[(namespace, name)]
            if "ready" in changes:
                for status in pod["status"]["containerStatuses"]:
                    status["ready"] = changes["ready"]
                pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if changes["ready"] else "False"}]
            if "phase" in changes:
                pod["status"]["phase"] = changes["phase"]
            if "role" in changes:
                pod["metadata"]["labels"]["mishards.io/role"] = changes["role"]
            if changes.get("deleting"):
                pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:10Z"
            self._record("MODIFIED", pod)

    def delete_pod(self, name: str, namespace: str = "milvus") -> None:
        """Remove a pod (DELETED event); unknown names are ignored."""
        with self._cond:
            pod = self._pods.pop((namespace, name), None)
            if pod is not None:
                self._record("DELETED", pod)

    def pods(self, namespace: str = "milvus") -> dict[str, dict[str, Any]]:
        with self._cond:
            return {name: copy.deepcopy(p) for (ns, name), p in self._pods.items() if ns == namespace}

    def compact(self) -> None:
        """Forget the event history (as etcd compaction does) and end every watch.

        The store has moved on meanwhile, so a watch started again from the
        resourceVersion its client last saw gets 410 Gone and must list again.
        """
        with self._cond:
            self._rv += 1  # writes to other objects moved the store on meanwhile
            self._compacted = self._rv
            self._events.clear()
            self._generation += 1
            self._cond.notify_all()

    def fail(self, status: int = 503, message: str = "the API server is restarting") -> None:
        """Answer every request with `status` and end every watch, until `recover()`."""
        with self._cond:
            self._error = (status, message)
            self._generation += 1
            self._cond.notify_all()

    def recover(self) -> None:
        with self._cond:
            self._error = None

    # -- HTTP -------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        parts = url.path.strip("/").split("/")
        if len(parts) != 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            self._reply_json(request, 404, _status(404, "NotFound", f"the server could not find {url.path}"))
            return
        namespace = parts[3]
        watch = params.get("watch", "").lower() in ("1", "true")
        self.requests.append(("watch" if watch else "list", params))
        with self._cond:
            error = self._error
        if error is not None:
            code, message = error
            self._reply_json(request, code, _status(code, "ServiceUnavailable", message))
            return
        selector = params.get("labelSelector", "")
        if watch:
            self._watch(request, namespace, selector, params)
            return
        with self._cond:
            items = [
                copy.deepcopy(pod)
                for (ns, _), pod in sorted(self._pods.items())
                if ns == namespace and _selector_matches(selector, pod["metadata"].get("labels") or {})
            ]
            body = {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        self._reply_json(request, 200, body)

    def _watch(self, request: BaseHTTPRequestHandler, namespace: str, selector: str, params: dict[str, str]) -> None:
        since = int(params.get("resourceVersion") or 0)
        timeout = float(params.get("timeoutSeconds") or 1800)
        bookmarks = params.get("allowWatchBookmarks", "").lower() in ("1", "true")
        deadline = time.monotonic() + timeout
        try:
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.send_header("Transfer-Encoding", "chunked")
            request.end_headers()
            with self._cond:
                generation = self._generation
                if since and since < self._compacted:
                    message = f"too old resource version: {since} ({self._compacted})"
                    _chunk(request, {"type": "ERROR", "object": _status(410, "Expired", message)})
                    _end(request)
                    return
                last = since or self._rv
            while True:
                with self._cond:
                    pending = [e for e in self._events if e[0] > last]
                    while not pending and generation == self._generation and time.monotonic() < deadline:
                        self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                        pending = [e for e in self._events if e[0] > last]
                    ended = generation != self._generation
                    current_rv = self._rv
                if ended:
                    _end(request)
                    return
                for rv, kind, pod in pending:
                    last = rv
                    meta = pod["metadata"]
                    if meta["namespace"] == namespace and _selector_matches(selector, meta.get("labels") or {}):
                        _chunk(request, {"type": kind, "object": pod})
                if not pending and time.monotonic() >= deadline:
                    if bookmarks:
                        bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(current_rv)}}
                        _chunk(request, {"type": "BOOKMARK", "object": bookmark})
                    _end(request)
                    return
        except OSError:  # the client went away
            return

    @staticmethod
    def _reply_json(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass


def _chunk(request: BaseHTTPRequestHandler, event: dict[str, Any]) -> None:
    data = json.dumps(event).encode() + b"\n"
    request.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    request.wfile.flush()


def _end(request: BaseHTTPRequestHandler) -> None:
    request.wfile.write(b"0\r\n\r\n")
    request.wfile.flush()
