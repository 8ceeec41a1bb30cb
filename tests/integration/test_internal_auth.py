"""Meta and discovery refuse callers without MISHARDS_INTERNAL_TOKEN (the session cluster runs with one)."""

from __future__ import annotations

import stat

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mishards.cli.cluster import TOKEN_FILE, Cluster
from mishards.cli.main import main as mishards_cli
from mishards.common.security import InternalSecurity
from mishards.v1 import discovery_pb2, discovery_pb2_grpc, meta_pb2, meta_pb2_grpc


def test_meta_and_discovery_refuse_a_caller_without_the_token(cluster: Cluster) -> None:
    with grpc.insecure_channel(cluster.meta_address) as channel:
        with pytest.raises(grpc.RpcError) as missing:
            meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Health stays open: probes (kubelet, mishards-healthcheck) hold no secret.
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    wrong = InternalSecurity(token=cluster.internal_token + "x")
    with wrong.sync_channel(cluster.meta_address) as channel:
        with pytest.raises(grpc.RpcError) as bad:
            meta_pb2_grpc.MetaStub(channel).ExecuteDdl(meta_pb2.ExecuteDdlRequest(), timeout=10)
        assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(cluster.discovery_address) as channel:
        stub = discovery_pb2_grpc.DiscoveryStub(channel)
        with pytest.raises(grpc.RpcError) as unary:
            stub.ListInstances(discovery_pb2.ListInstancesRequest(), timeout=10)
        assert unary.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as stream:
            next(iter(stub.WatchInstances(discovery_pb2.WatchInstancesRequest(), timeout=10)))
        assert stream.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The holders of the token get through.
    with cluster.meta_channel() as channel:
        meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10)
    with cluster.discovery_channel() as channel:
        members = discovery_pb2_grpc.DiscoveryStub(channel).ListInstances(
            discovery_pb2.ListInstancesRequest(), timeout=10
        )
    assert len(members.instances) == len(cluster.instances)
    # Refusals are logged, without the token.
    meta_log = (cluster.log_dir / "meta.out").read_text()
    assert "refused /mishards.v1.Meta/ExecuteDdl" in meta_log
    assert cluster.internal_token not in meta_log


def test_token_file_is_private_and_the_cli_reads_it(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    path = cluster.root_dir / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == cluster.internal_token
    args = ["status", "--data", str(cluster.root_dir), "--meta", cluster.meta_address]
    assert mishards_cli([*args, "--discovery", cluster.discovery_address]) == 0
    out = capsys.readouterr().out
    assert "version" in out and "UNAUTHENTICATED" not in out and "mutation log" in out
