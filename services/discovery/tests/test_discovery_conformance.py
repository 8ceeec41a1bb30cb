"""Every built-in back end passes the same conformance checks (mishards.discovery.testing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mishards.discovery.backends import InstanceSpec
from mishards.discovery.testing import (
    CHECKS,
    BackendHarness,
    ConsulHarness,
    FileHarness,
    HarnessFactory,
    KubernetesHarness,
    MemoryHarness,
    NotApplicable,
    StaticHarness,
)


def file_harness(specs: Sequence[InstanceSpec]) -> BackendHarness:
    return FileHarness(specs)


FACTORIES: dict[str, HarnessFactory] = {
    "memory": MemoryHarness,
    "static": StaticHarness,
    "file": file_harness,
    "consul": ConsulHarness,
    "kubernetes": KubernetesHarness,
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("backend", sorted(FACTORIES))
def test_conformance(backend: str, check: str) -> None:
    try:
        asyncio.run(CHECKS[check](FACTORIES[backend]))
    except NotApplicable as exc:
        pytest.skip(f"{backend}: {exc}")
