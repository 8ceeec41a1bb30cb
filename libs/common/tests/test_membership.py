"""MembershipWatcher's lookups over the snapshot it holds (offline: no discovery service)."""

from __future__ import annotations

import pytest

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.v1 import discovery_pb2


def test_address_of_a_member_and_the_error_for_a_stranger() -> None:
    watcher = MembershipWatcher("127.0.0.1:1")
    watcher.membership = discovery_pb2.Membership(
        version=3,
        instances=[
            discovery_pb2.Instance(identity="wo:1", address="10.0.0.1:19530", role=discovery_pb2.WRITABLE),
            discovery_pb2.Instance(
                identity="ro:1", address="10.0.0.2:19530", role=discovery_pb2.READONLY, health=discovery_pb2.HEALTHY
            ),
        ],
    )
    assert watcher.address_of("wo:1") == "10.0.0.1:19530"  # whatever its health: callers decide
    assert [i.identity for i in watcher.instances()] == ["ro:1"]
    with pytest.raises(MilvusError) as exc:
        watcher.address_of("gone:1")
    assert exc.value.code == errors.SERVICE_UNAVAILABLE and "gone:1 is not in the membership" in str(exc.value)
