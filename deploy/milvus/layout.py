"""Lay out the `milvus` wheel's standalone binary as the milvusdb/milvus image does.

Run once at image build time by the Python that has the wheel installed: the binary and its
libraries go to /milvus/bin, milvus.yaml and the embedded etcd's config to /milvus/configs,
every data folder under /var/lib/milvus (the volume), and logs to stdout.
"""

from __future__ import annotations

from pathlib import Path

from milvus import MilvusServerConfig, _initialize_data_files

HOME = Path("/milvus")
DATA = Path("/var/lib/milvus")
# The embedded etcd serves this container only; the compose file's config says the same.
EMBED_ETCD = """\
listen-client-urls: http://0.0.0.0:2379
advertise-client-urls: http://0.0.0.0:2379
quota-backend-bytes: 4294967296
auto-compaction-mode: revision
auto-compaction-retention: '1000'
"""


def main() -> None:
    config = MilvusServerConfig(data_dir=str(HOME))
    config.resolve_storage()
    for key, value in (
        ("etcd_data_dir", str(DATA / "etcd")),
        ("local_storage_dir", str(DATA / "data")),
        ("rocksmq_data_dir", str(DATA / "rocksmq")),
        ("etcd_log_path", "stdout"),
        ("system_log_path", ""),
    ):
        config.set(key, value)
    # A standalone instance has no peer to hand segments to: drain for 3 s, not 1800.
    config.set("common.gracefulStopTimeout", 3)
    unresolved = [key for key, (_, value) in config.configurable_items.items() if value is None]
    if unresolved:
        raise SystemExit(f"unresolved Milvus settings: {unresolved}")
    config.write_config()
    _initialize_data_files(str(HOME))
    (HOME / "configs" / "embedEtcd.yaml").write_text(EMBED_ETCD, encoding="utf-8")
    for path in (HOME / "bin").glob("*.md5"):
        path.unlink()


if __name__ == "__main__":
    main()
