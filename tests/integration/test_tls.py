"""The README quick start over TLS and over mutual TLS: pymilvus -> router, and router/meta ->
meta/discovery with the same files (certificates made at run time). milvus-lite backends keep it cheap."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_readme import README_URI, check_quick_start_output, quick_start_code

from mishards.cli.cluster import Cluster
from mishards.common.security import InternalSecurity, TlsFiles
from mishards.v1 import meta_pb2, meta_pb2_grpc

tls_testing = pytest.importorskip("mishards.common.tls_testing")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> object:
    return tls_testing.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module", params=["tls", "mutual"])
def tls_cluster(
    request: pytest.FixtureRequest, pki: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    env = {"TLS_CERT_FILE": str(pki.cert), "TLS_KEY_FILE": str(pki.key), "TLS_CA_FILE": str(pki.ca)}  # type: ignore[attr-defined]
    if request.param == "mutual":
        env["TLS_CLIENT_CA_FILE"] = str(pki.ca)  # type: ignore[attr-defined]
    root = tmp_path_factory.mktemp(f"tls-{request.param}")
    cluster = Cluster(root, writable=2, backend="milvus-lite", router_port=0, extra_env=env)
    with cluster:  # started; stopped by PID on the way out
        yield cluster


def client_arguments(cluster: Cluster, pki: object) -> str:
    """What the quick start's MilvusClient gets instead of the README's plain URI."""
    uri = f"https://{cluster.router_address}"
    if "TLS_CLIENT_CA_FILE" in cluster.extra_env:
        return (f'uri="{uri}", client_pem_path="{pki.client_cert}", '  # type: ignore[attr-defined]
                f'client_key_path="{pki.client_key}", ca_pem_path="{pki.ca}", server_name="localhost"')  # type: ignore[attr-defined]  # fmt: skip
    return f'uri="{uri}", server_pem_path="{pki.ca}", server_name="localhost"'  # type: ignore[attr-defined]


def test_readme_quick_start_over_tls(tls_cluster: Cluster, pki: object) -> None:
    code = quick_start_code()
    assert code.count(README_URI) == 1
    run = subprocess.run(
        [sys.executable, "-c", code.replace(README_URI, client_arguments(tls_cluster, pki))],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    check_quick_start_output(run.stdout)


def _health(channel: grpc.Channel) -> int:
    return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_every_service_refuses_plaintext(tls_cluster: Cluster) -> None:
    for address in (tls_cluster.router_address, tls_cluster.meta_address, tls_cluster.discovery_address):
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as exc:
            _health(channel)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, address
    # The cluster's own client (token + TLS) gets through to meta.
    with tls_cluster.meta_channel() as channel:
        meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10)


def test_mutual_tls_refuses_a_client_without_a_certificate(tls_cluster: Cluster, pki: object) -> None:
    if "TLS_CLIENT_CA_FILE" not in tls_cluster.extra_env:
        pytest.skip("plain TLS asks for no client certificate")
    trusting = InternalSecurity(
        token=tls_cluster.internal_token,
        tls=TlsFiles(cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca)),  # type: ignore[attr-defined]
    )  # trusts the server, presents no certificate
    for address in (tls_cluster.router_address, tls_cluster.meta_address):
        with trusting.sync_channel(address) as channel, pytest.raises(grpc.RpcError) as exc:
            _health(channel)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, address


def test_healthcheck_script_speaks_tls(tls_cluster: Cluster, tmp_path: Path) -> None:
    """deploy/healthcheck.py (the image's mishards-healthcheck, the chart's exec probe) with the service's settings."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "healthcheck.py"
    env = {**tls_cluster.extra_env, "SERVER_PORT": str(tls_cluster.router_port), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, str(script), "mishards-router"], env=env, capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0 and "SERVING" in run.stdout, run.stdout + run.stderr
