"""`make coverage` measures the services the tests start as processes, not only the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DISCOVERY_MAIN = "services/discovery/src/mishards/discovery/main.py"

START_AND_STOP_DISCOVERY = """
import sys
from mishards.cli.cluster import Cluster

cluster = Cluster(sys.argv[1], writable=0, router_port=0)
cluster.root_dir.mkdir(parents=True)
cluster.resolve_ports()
cluster.write_instances_file([])
cluster.start_service("discovery")
cluster.stop_service("discovery")
assert "mishards.discovery.main" not in sys.modules  # only the child runs the service
"""


def test_repo_coverage_config_measures_a_service_child_process(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(START_AND_STOP_DISCOVERY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}  # not nested in an outer run
    env["COVERAGE_FILE"] = str(tmp_path / ".coverage")

    def coverage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "coverage", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    coverage("run", str(script), str(tmp_path / "cluster"))
    assert len(list(tmp_path.glob(".coverage.*"))) >= 2  # the test process's and the service's
    coverage("combine", "-q")
    coverage("json", "-q", "-o", str(tmp_path / "coverage.json"))
    files = json.loads((tmp_path / "coverage.json").read_text())["files"]
    assert files[DISCOVERY_MAIN]["summary"]["covered_lines"] > 10
