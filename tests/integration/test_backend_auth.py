"""A Milvus 2.3.5 with authorization and TLS on is reached and probed with MILVUS_BACKEND_TOKEN
and MILVUS_BACKEND_TLS_CA_FILE: discovery's health probe and the BackendPool the router and meta
use. Without the token (or without the CA) the same instance looks down."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.grpc_gen import milvus_pb2

from mishards.cli.cluster import BACKEND_TOKEN_FILE, Cluster
from mishards.cli.launcher import EmbeddedMilvus, grpc_milvus_healthy
from mishards.cli.ports import PortAllocator
from mishards.common.backends import BackendPool
from mishards.discovery.prober import MilvusHealthChecker

tls_testing = pytest.importorskip("mishards.common.tls_testing")
ROOT_TOKEN = "root:Milvus"  # Milvus's first root password


class SecuredMilvus(EmbeddedMilvus):
    """An embedded 2.3.5 with common.security.authorizationEnabled and tlsMode 1 (server TLS)."""

    pki: Any = None

    def _prepare(self) -> None:
        super()._prepare()
        config = self.data_dir / "configs" / "milvus.yaml"
        text = config.read_text(encoding="utf-8")
        text, auth = re.subn(r"(?m)^(\s+authorizationEnabled:) false", r"\1 true", text)
        text, mode = re.subn(r"(?m)^(\s+tlsMode:) 0", r"\1 1", text)
        for key, path in (
            ("serverPemPath", self.pki.cert),
            ("serverKeyPath", self.pki.key),
            ("caPemPath", self.pki.ca),
        ):
            text, n = re.subn(rf"(?m)^(\s+{key}:).*$", rf"\1 {path}", text, count=1)
            assert n == 1, key
        assert auth == 1 and mode == 1, (auth, mode)
        config.write_text(text, encoding="utf-8")

    def _probe(self) -> bool:
        # The launcher's plaintext, token-less CheckHealth cannot pass here: /healthz says it is up.
        return self._healthz()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecuredMilvus, Any]]:
    root = tmp_path_factory.mktemp("secured-milvus")
    pki = tls_testing.make_pki(root / "pki")
    SecuredMilvus.pki = pki
    instance = SecuredMilvus.open(root / "milvus", "writable", PortAllocator())
    instance.start()
    try:
        instance.wait_ready(180)
        yield instance, pki
    finally:
        instance.stop()


def _probe(address: str, token: str, ca: str) -> Any:
    async def run() -> Any:
        checker = MilvusHealthChecker(token, ca)
        try:
            return await checker.check(address, timeout=10)
        finally:
            await checker.close()

    return asyncio.run(run())


def test_discovery_probes_with_the_backend_token_over_tls(secured: tuple[SecuredMilvus, Any]) -> None:
    instance, pki = secured
    # /healthz answers before the proxy is ready; the probe with the token says when it is.
    deadline = 60
    result = _probe(instance.address, ROOT_TOKEN, str(pki.ca))
    while not result.healthy and deadline > 0:
        asyncio.run(asyncio.sleep(1))
        deadline -= 1
        result = _probe(instance.address, ROOT_TOKEN, str(pki.ca))
    assert result.healthy, result.reason
    without_token = _probe(instance.address, "", str(pki.ca))
    assert not without_token.healthy and "UNAUTHENTICATED" in without_token.reason, without_token
    without_ca = _probe(instance.address, ROOT_TOKEN, "")
    assert not without_ca.healthy and "UNAVAILABLE" in without_ca.reason, without_ca


def test_backend_pool_reaches_it_with_the_token(secured: tuple[SecuredMilvus, Any], tmp_path: Path) -> None:
    instance, pki = secured

    async def run(token: str) -> tuple[Any, Any]:
        pool = BackendPool(token, str(pki.ca))
        try:
            stub = pool.stub(instance.address)
            version = await stub.GetVersion(milvus_pb2.GetVersionRequest(), timeout=20, metadata=pool.metadata())
            shown = await stub.ShowCollections(
                milvus_pb2.ShowCollectionsRequest(), timeout=20, metadata=pool.metadata()
            )
            return version, shown
        finally:
            await pool.close()

    version, shown = asyncio.run(run(ROOT_TOKEN))
    assert version.status.code == 0 and version.version.startswith("v2.3"), version
    assert shown.status.code == 0 and shown.status.error_code == 0, shown.status
    try:
        _, refused = asyncio.run(run(""))
    except Exception as exc:  # 2.3.5 answers auth failures before any handler, as a gRPC status
        assert "UNAUTHENTICATED" in str(exc) or "auth" in str(exc).lower(), exc
    else:
        assert refused.status.code != 0 or refused.status.error_code != 0, refused.status


def test_the_instances_mishards_up_starts_take_only_the_backend_token(cluster: Cluster) -> None:
    """`mishards up` (the session cluster is one) starts its Milvus instances with authorization on
    and root's password changed to a generated one: nobody goes around the router without it."""
    if cluster.backend != "milvus":
        pytest.skip("milvus-lite has no authentication")
    token = cluster.backend_token
    assert token.startswith("root:") and token != ROOT_TOKEN
    assert (cluster.root_dir / BACKEND_TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    for instance in cluster.instances:
        assert instance.token == token
        for refused in ("", ROOT_TOKEN, "root:wrong"):
            assert not grpc_milvus_healthy(instance.address, 10, token=refused), (instance, refused)
            with pytest.raises(MilvusException):
                MilvusClient(uri=instance.uri, token=refused, timeout=10).list_collections()
        assert grpc_milvus_healthy(instance.address, 10, token=token)
        client = MilvusClient(uri=instance.uri, token=token)
        assert isinstance(client.list_collections(), list)
        client.close()
