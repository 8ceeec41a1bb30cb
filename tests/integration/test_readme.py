"""The README's quick start, run as written against the session cluster's router."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster

README = Path(__file__).resolve().parents[2] / "README.md"
README_URI = 'uri="http://127.0.0.1:19530"'


def quick_start_code() -> str:
    """The Python block under the README's "## Quick start" heading."""
    text = README.read_text()
    section = re.search(r"^## Quick start.*?$(.*?)^## ", text, re.M | re.S)
    assert section, "README has no '## Quick start' section"
    block = re.search(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the quick start has no python block"
    return block.group(1)


def run_quick_start(router_uri: str, python: str = sys.executable) -> str:
    """Run the README's quick start as written, against router_uri; return what it prints."""
    code = quick_start_code()
    assert code.count(README_URI) == 1, "the quick start no longer connects to make run's address"
    run = subprocess.run(
        [python, "-c", code.replace(README_URI, f'uri="{router_uri}"')],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def check_quick_start_output(stdout: str) -> None:
    """The quick start's three answers are what a single Milvus gives for its 100 rows."""
    search, red, count = stdout.strip().splitlines()
    # the query vector is row 1's own: it comes first among 3 hits, at cosine similarity 1 (the quick setup's metric)
    hits = re.findall(r"'id': (\d+), 'distance': ([-\d.e]+)", search)
    assert len(hits) == 3, search
    distances = [float(d) for _, d in hits]
    assert hits[0][0] == "1" and abs(distances[0] - 1.0) < 1e-5, search
    assert distances == sorted(distances, reverse=True), search
    assert len(re.findall(r"'color': 'red'", red)) == 5 and "blue" not in red, red
    ids = [int(i) for i in re.findall(r"'id': (\d+)", red)]
    assert len(ids) == 5 and all(i % 2 == 1 for i in ids), red
    assert re.search(r"'count\(\*\)': 100\b", count), count


def test_readme_quick_start_runs_against_the_router(cluster: Cluster, router: MilvusClient) -> None:
    assert not router.has_collection("demo"), "another test uses the README's collection name"
    try:
        stdout = run_quick_start(cluster.router_uri)
    finally:
        if router.has_collection("demo"):
            router.drop_collection("demo")
    check_quick_start_output(stdout)
