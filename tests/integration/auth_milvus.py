"""A Milvus 2.3.5 (the `milvus` package) started with `common.security.authorizationEnabled: true`."""

from __future__ import annotations

import base64

import grpc
import yaml
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from mishards.cli.launcher import EmbeddedMilvus

ROOT_TOKEN = "root:Milvus"


class AuthorizedMilvus(EmbeddedMilvus):
    """EmbeddedMilvus with authorization on; probed with root's default credentials."""

    def _prepare(self) -> None:
        super()._prepare()
        path = self.data_dir / "configs" / "milvus.yaml"
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        config.setdefault("common", {}).setdefault("security", {})["authorizationEnabled"] = True
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def _probe(self) -> bool:
        if not self._healthz():
            return False
        md = [("authorization", base64.b64encode(ROOT_TOKEN.encode()).decode())]
        try:
            with grpc.insecure_channel(self.address) as channel:
                reply = milvus_pb2_grpc.MilvusServiceStub(channel).CheckHealth(
                    milvus_pb2.CheckHealthRequest(), metadata=md, timeout=2
                )
        except grpc.RpcError:
            return False
        return bool(reply.isHealthy)
