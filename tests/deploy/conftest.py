"""Shared helpers of the deployment tests: the repo root, offline chart rendering, the README
quick start, and skipping for want of a container engine (never under CI)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mishards"
RELEASE = "mishards"
NAMESPACE = "mishards"


def render(values: dict[str, Any] | None = None, name: str = RELEASE) -> dict[str, list[dict[str, Any]]]:
    """Render the chart with Helm's engine (no cluster): template path -> its manifests."""
    import helm_python

    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values=values or {}, name=name, namespace=NAMESPACE, is_install=True)
    out: dict[str, list[dict[str, Any]]] = {}
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        out[path] = [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def objects(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [doc for docs in rendered.values() for doc in docs]


def find(rendered: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    for doc in objects(rendered):
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in objects(rendered)]}")


@pytest.fixture(scope="session")
def default_render() -> dict[str, list[dict[str, Any]]]:
    return render()


def readme_quick_start() -> ModuleType:
    """tests/integration/test_readme.py: the README quick start's runner and checks, shared."""
    path = REPO / "tests" / "integration" / "test_readme.py"
    spec = importlib.util.spec_from_file_location("readme_quick_start", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a container engine or image, except under CI, which provides both."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)
