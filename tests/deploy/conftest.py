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
# What every release must give (the chart generates no password), under each test's own values.
REQUIRED_VALUES: dict[str, Any] = {
    "mysql": {"auth": {"password": "meta-pass", "rootPassword": "root-pass"}},
    "auth": {"rootPassword": "milvus-root-pass"},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, maps merged key by key (as Helm merges values files)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render_text(values: dict[str, Any] | None = None, name: str = RELEASE, required: bool = True) -> dict[str, str]:
    """Render the chart with Helm's engine (no cluster): template path -> its text (NOTES.txt included)."""
    import helm_python

    values = merged(REQUIRED_VALUES, values or {}) if required else values or {}
    with helm_python.Chart.load(CHART) as chart:
        return dict(chart.render(values=values, name=name, namespace=NAMESPACE, is_install=True))


def render(
    values: dict[str, Any] | None = None, name: str = RELEASE, required: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Render the chart: template path -> its manifests (NOTES.txt left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path, text in render_text(values, name, required).items():
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
