"""The committed stubs under mishards/v1 are what `make proto` generates from protos/ (no drift)."""

from __future__ import annotations

import filecmp
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[3]
PROTOS = REPO / "protos"
COMMITTED = REPO / "libs" / "common" / "src" / "mishards" / "v1"


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "mishards" / "v1").glob("*.proto"))
    assert sources
    out = str(tmp_path)
    args = ["protoc", f"-I{PROTOS}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main([*args, *sources]) == 0
    generated = tmp_path / "mishards" / "v1"
    names = sorted(p.name for p in generated.iterdir())
    committed = sorted(p.name for p in COMMITTED.iterdir() if p.name not in ("__pycache__", "py.typed"))
    assert names == committed, "generated stubs are stale: run make proto"
    _, mismatch, errors = filecmp.cmpfiles(generated, COMMITTED, names, shallow=False)
    assert not mismatch and not errors, f"generated stubs are stale: run make proto ({mismatch + errors})"
