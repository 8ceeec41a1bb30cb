"""Shared helpers of the deployment tests: the repo root and offline chart rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
