"""Kubernetes back end against the fake API server: readiness, list + watch, 410, config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config as k8s_config

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends import BackendUnavailable
from mishards.discovery.backends import kubernetes as k8s_backend
from mishards.discovery.backends.kubernetes import KubernetesBackend
from mishards.discovery.fakes import FakeKubernetes, make_pod
from mishards.discovery.prober import Prober, ProbeResult
from mishards.discovery.testing import wait_membership
from mishards.v1 import discovery_pb2 as pb


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes().start()
    yield server
    server.stop()


def backend_for(fake: FakeKubernetes, tmp_path: Path, **settings: object) -> KubernetesBackend:
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace="milvus")
    values: dict[str, object] = {
        "DISCOVERY_KUBERNETES_POLL_INTERVAL": 1,
        "DISCOVERY_KUBERNETES_NAMESPACE": "milvus",
        **settings,
    }
    backend = KubernetesBackend(
        Settings(**values),  # type: ignore[arg-type]
        api_client=k8s_config.new_client_from_config(config_file=kubeconfig),
    )
    backend.backoff_initial, backend.backoff_max = 0.05, 0.2
    return backend


async def until(backend: KubernetesBackend, expected: set[tuple[str, str, str]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        try:
            seen = {(s.identity, s.address, s.role) for s in await backend.list_instances()}
        except BackendUnavailable as exc:
            seen = exc
        if seen == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected}, last saw {seen}")


WO = ("milvus-wo-0", "10.0.0.1:19530", "writable")
RO = ("milvus-ro-0", "10.0.0.2:19530", "readonly")


def test_only_ready_labelled_pods_with_a_grpc_port_count(fake: FakeKubernetes, tmp_path: Path) -> None:
    async def run() -> None:
        fake.put_pod(make_pod("milvus-wo-0", "10.0.0.1", 19530, "writable"))
        fake.put_pod(make_pod("milvus-ro-0", "10.0.0.2", 19530, "readonly", ready=False))  # Running, not Ready
        fake.put_pod(make_pod("milvus-ro-1", "10.0.0.3", 19530, "readonly", phase="Pending"))
        fake.put_pod(make_pod("milvus-unlabelled", "10.0.0.4", 19530, None))
        fake.put_pod(make_pod("milvus-noport", "10.0.0.5", 19530, "readonly", port_name="http"))
        fake.put_pod(make_pod("etcd-0", "10.0.0.6", 2379, "readonly", labels={"app.kubernetes.io/name": "etcd"}))
        fake.put_pod(make_pod("milvus-other-ns", "10.0.0.7", 19530, "writable", namespace="elsewhere"))
        backend = backend_for(fake, tmp_path, DISCOVERY_KUBERNETES_LABEL_SELECTOR="app.kubernetes.io/name=milvus")
        try:
            await until(backend, {WO})
            assert all(p.get("labelSelector") == "app.kubernetes.io/name=milvus" for _, p in fake.requests)
            fake.update_pod("milvus-ro-0", ready=True)  # readiness gained: joins
            await until(backend, {WO, RO})
            fake.update_pod("milvus-ro-0", ready=False)  # readiness lost: leaves at once
            await until(backend, {WO})
            fake.update_pod("milvus-ro-0", ready=True)
            await until(backend, {WO, RO})
            fake.update_pod("milvus-ro-0", deleting=True)  # terminating counts as gone
            await until(backend, {WO})
            fake.delete_pod("milvus-ro-0")
            fake.update_pod("milvus-wo-0", role="readonly")  # role change keeps the identity
            await until(backend, {("milvus-wo-0", "10.0.0.1:19530", "readonly")})
        finally:
            await backend.close()

    asyncio.run(run())


def test_readiness_loss_deletion_and_outage_reach_watchers_without_a_probe_round(
    fake: FakeKubernetes, tmp_path: Path
) -> None:
    async def healthy(address: str) -> ProbeResult:
        return ProbeResult(True)

    def names(m: pb.Membership) -> dict[str, int]:
        return {i.identity: i.health for i in m.instances}

    async def run() -> None:
        fake.put_pod(make_pod("milvus-wo-0", "10.0.0.1", 19530, "writable"))
        fake.put_pod(make_pod("milvus-ro-0", "10.0.0.2", 19530, "readonly"))
        backend = backend_for(fake, tmp_path, DISCOVERY_KUBERNETES_POLL_INTERVAL=3600)
        prober = Prober(backend, probe=healthy, interval=3600)
        await prober.start()
        try:
            assert names(prober.board.current()) == {"milvus-wo-0": pb.HEALTHY, "milvus-ro-0": pb.HEALTHY}
            fake.update_pod("milvus-ro-0", ready=False)
            await wait_membership(prober.board, lambda m: names(m) == {"milvus-wo-0": pb.HEALTHY})
            fake.update_pod("milvus-ro-0", ready=True)  # back, but not healthy before it is probed
            await wait_membership(
                prober.board, lambda m: names(m) == {"milvus-wo-0": pb.HEALTHY, "milvus-ro-0": pb.HEALTH_UNKNOWN}
            )
            fake.delete_pod("milvus-wo-0")
            await wait_membership(prober.board, lambda m: "milvus-wo-0" not in names(m))
            fake.fail(503, "etcd unavailable")
            down = await wait_membership(prober.board, lambda m: not m.backend_ok)
            assert "503" in down.backend_error and names(down) == {"milvus-ro-0": pb.HEALTH_UNKNOWN}
            assert prober.rounds == 1, "a probe round ran: the changes were not published on the watch's signal"
        finally:
            await prober.stop()
            await backend.close()

    asyncio.run(run())


def test_watch_resumes_and_relists_on_410(fake: FakeKubernetes, tmp_path: Path) -> None:
    async def run() -> None:
        fake.put_pod(make_pod("milvus-wo-0", "10.0.0.1", 19530, "writable"))
        backend = backend_for(fake, tmp_path, DISCOVERY_KUBERNETES_POLL_INTERVAL=30)
        try:
            await until(backend, {WO})
            deadline = time.monotonic() + 5  # the watch follows the list: on a busy machine, a moment later
            while not any(kind == "watch" for kind, _ in fake.requests) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            watches = [p for kind, p in fake.requests if kind == "watch"]
            assert watches and watches[0]["resourceVersion"], "the watch starts from the list's resourceVersion"
            relists = backend.relists
            fake.compact()  # history gone: the next watch from the old resourceVersion gets 410
            fake.put_pod(make_pod("milvus-ro-0", "10.0.0.2", 19530, "readonly"))
            await until(backend, {WO, RO})
            assert backend.relists == relists + 1, "410 Gone must trigger exactly one re-list"
        finally:
            await backend.close()

    asyncio.run(run())


def test_periodic_relist_and_outage(fake: FakeKubernetes, tmp_path: Path) -> None:
    async def run() -> None:
        fake.put_pod(make_pod("milvus-wo-0", "10.0.0.1", 19530, "writable"))
        backend = backend_for(fake, tmp_path)
        try:
            await until(backend, {WO})
            await asyncio.sleep(2.5)
            assert backend.relists >= 2, "DISCOVERY_KUBERNETES_POLL_INTERVAL=1 re-lists every second"
            fake.fail(503, "etcd unavailable")
            deadline = time.monotonic() + 5
            error = ""
            while not error and time.monotonic() < deadline:
                try:
                    await backend.list_instances()
                    await asyncio.sleep(0.02)
                except BackendUnavailable as exc:
                    error = str(exc)
            assert "503" in error and "namespace milvus" in error, error
            fake.recover()
            await until(backend, {WO})
        finally:
            await backend.close()

    asyncio.run(run())


def test_kubeconfig_from_settings_path(fake: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", fake.write_kubeconfig(tmp_path / "config", namespace="from-context"))
    backend = KubernetesBackend(Settings())
    assert backend.namespace == "from-context"
    assert backend.api.api_client.configuration.host == fake.url
    assert KubernetesBackend(Settings(DISCOVERY_KUBERNETES_NAMESPACE="explicit")).namespace == "explicit"


def test_in_cluster_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not checked until connecting")
    (tmp_path / "namespace").write_text("mishards\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setattr(k8s_backend, "SERVICE_ACCOUNT_NAMESPACE", str(tmp_path / "namespace"))
    backend = KubernetesBackend(Settings(DISCOVERY_KUBERNETES_IN_CLUSTER=True))
    configuration = backend.api.api_client.configuration
    assert configuration.host == "https://10.96.0.1:443"
    assert configuration.api_key["BearerToken"].lower() == "bearer sa-token"
    assert backend.namespace == "mishards"


def test_settings_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SettingsError, match="DISCOVERY_KUBERNETES_IN_CLUSTER=true"):
        KubernetesBackend(Settings(DISCOVERY_KUBERNETES_IN_CLUSTER=True))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="DISCOVERY_KUBERNETES_IN_CLUSTER=false"):
        KubernetesBackend(Settings())
    with pytest.raises(SettingsError, match="DISCOVERY_KUBERNETES_POD_PATT"):
        KubernetesBackend(Settings(DISCOVERY_KUBERNETES_POD_PATT="milvus-(", DISCOVERY_KUBERNETES_IN_CLUSTER=True))


def test_pod_pattern(fake: FakeKubernetes, tmp_path: Path) -> None:
    async def run() -> None:
        fake.put_pod(make_pod("milvus-wo-0", "10.0.0.1", 19530, "writable"))
        fake.put_pod(make_pod("other-wo-0", "10.0.0.9", 19530, "writable"))
        backend = backend_for(fake, tmp_path, DISCOVERY_KUBERNETES_POD_PATT="^milvus-")
        try:
            await until(backend, {WO})
        finally:
            await backend.close()

    asyncio.run(run())
