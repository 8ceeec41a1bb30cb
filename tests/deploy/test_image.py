"""What of the container image can be proven without a Docker engine: the Dockerfile and
scripts pass their linters, the compose file is valid Compose, and the wheels built and
installed exactly as the Dockerfile does run all three services up to SERVING."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import REPO
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
SCRIPTS = [
    REPO / "deploy" / "build-wheels.sh",
    REPO / "deploy" / "install-wheels.sh",
    REPO / "deploy/kubernetes/start.sh",
    *sorted((REPO / "deploy" / "podman").glob("*.sh")),
    REPO / "deploy/mariadb/entrypoint.sh",
]
DOCKERFILES = [REPO / "Dockerfile", REPO / "deploy/milvus/Dockerfile", REPO / "deploy/mariadb/Dockerfile"]
COMPOSE = REPO / "deploy" / "all_in_one" / "docker-compose.yml"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([BIN / "hadolint", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_with_pinned_base_and_healthcheck():
    text = (REPO / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), "pin the base image's full version"
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text
    assert "deploy/build-wheels.sh" in text and "deploy/install-wheels.sh" in text


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_scripts_pass_shellcheck(script):
    result = subprocess.run([BIN / "shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(script, os.X_OK)


def compose_interpolated(environ: dict[str, str]) -> str:
    """Docker Compose's ${NAME:-default} and ${NAME-default} interpolation, done before validation."""

    def value(m: re.Match[str]) -> str:
        name, colon, default = m.groups()
        given = environ.get(name)
        return default if given is None or (colon and not given) else given

    return re.sub(r"\$\{(\w+)(:?)-([^}]*)\}", value, COMPOSE.read_text())


def test_compose_file_is_valid_compose_spec():
    import compose_spec

    compose = compose_spec.PyCompose.from_yaml(compose_interpolated({}))
    compose.validate()
    compose.validate_volumes()
    compose.validate_configs()
    compose.validate_networks()
    assert set(compose.service_names()) == {
        "milvus-wo",
        "milvus-ro",
        "mariadb",
        "jaeger",
        "discovery",
        "meta",
        "router",
    }
    assert "19530:19530" in compose.get_service("router").ports
    assert "16686:16686" in compose.get_service("jaeger").ports


def test_compose_wires_the_services_with_settings_names():
    import yaml

    from mishards.common.settings import describe_settings

    names = {name for name, _, _ in describe_settings()}
    services = yaml.safe_load(compose_interpolated({}))["services"]
    for svc in ("discovery", "meta", "router"):
        env = services[svc]["environment"]
        assert set(env) <= names, set(env) - names
        assert services[svc]["command"] == [f"mishards-{svc}"]
    assert services["discovery"]["environment"]["DISCOVERY_CLASS_NAME"] == "static"
    assert services["discovery"]["environment"]["WOSERVER"] == "milvus-wo:19530"
    assert services["meta"]["environment"]["SQLALCHEMY_DATABASE_URI"].startswith("mysql+pymysql://")
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    for svc in ("discovery", "meta", "router"):
        assert services[svc]["environment"]["TRACER_CLASS_NAME"] == "Jaeger"
        # no colon: TRACER_CLASS_NAME set empty (the podman run, without Jaeger) turns tracing off
        assert raw[svc]["environment"]["TRACER_CLASS_NAME"] == "${TRACER_CLASS_NAME-Jaeger}"
    for milvus in ("milvus-wo", "milvus-ro"):
        assert services[milvus]["environment"]["ETCD_USE_EMBED"] == "true"
        assert services[milvus]["environment"]["COMMON_STORAGETYPE"] == "local"


def test_makefile_has_the_deployment_targets():
    text = (REPO / "Makefile").read_text()
    for target in ("build", "deploy", "probe_deploy", "clean_deploy", "cluster", "probe_cluster", "cluster_status"):
        assert re.search(rf"^{target}:", text, re.M), target
    assert re.search(r"^clean_cluster:", text, re.M)
    assert re.search(r"^test: unit deploy-tests integration$", text, re.M)


def test_start_sh_rejects_a_missing_count():
    result = subprocess.run(
        [str(REPO / "deploy/kubernetes/start.sh"), "scale-ro-server"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "needs a count" in result.stderr


# --- the image's Python part: wheels as the Dockerfile builds them, in a fresh venv ---


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    wheels = root / "wheels"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(REPO / "deploy/build-wheels.sh"), str(wheels)], check=True, env=env, timeout=300)
    built = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert built == ["mishards_cli", "mishards_common", "mishards_discovery", "mishards_meta", "mishards_router"]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PYTHON": str(venv / "bin" / "python")}
    subprocess.run(
        [str(REPO / "deploy/install-wheels.sh"), str(wheels), str(REPO / "requirements/constraints.txt")],
        check=True,
        env=env,
        timeout=600,
    )
    return venv


class Service:
    def __init__(self, venv: Path, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.log = cwd / f"{name}.stderr"
        clean = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LOG_PATH": str(cwd / "logs"), **env}
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / f"mishards-{name}")], cwd=cwd, env=clean, stdout=err, stderr=err
            )

    def wait_port(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(rf"{self.name} serving on port (\d+)", self.log.read_text())
            if match:
                return int(match.group(1))
            assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()}"
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never said SERVING: {self.log.read_text()}")

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


def health(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture(scope="module")
def running(image_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    cwd = tmp_path_factory.mktemp("run")
    started: list[Service] = []
    try:
        discovery = Service(
            image_venv,
            "discovery",
            {"DISCOVERY_CLASS_NAME": "static", "WOSERVER": "", "DISCOVERY_SERVER_PORT": "0"},
            cwd,
        )
        started.append(discovery)
        ports = {"discovery": discovery.wait_port()}
        address = {"DISCOVERY_ADDRESS": f"127.0.0.1:{ports['discovery']}"}
        meta = Service(
            image_venv,
            "meta",
            {**address, "META_SERVER_PORT": "0", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{cwd}/meta.db"},
            cwd,
        )
        started.append(meta)
        ports["meta"] = meta.wait_port()
        router = Service(
            image_venv, "router", {**address, "META_ADDRESS": f"127.0.0.1:{ports['meta']}", "SERVER_PORT": "0"}, cwd
        )
        started.append(router)
        ports["router"] = router.wait_port()
        yield ports
    finally:
        codes = {s.name: s.stop() for s in reversed(started)}
        assert all(code == 0 for code in codes.values()), codes


def test_installed_wheels_start_every_service_to_serving(running):
    for name, port in running.items():
        assert port > 0
        assert health(port) == "SERVING", name


def test_healthcheck_script_reports_serving(image_venv, running):
    env = {"PATH": "/usr/bin:/bin", "SERVER_PORT": str(running["router"])}
    result = subprocess.run(
        [str(image_venv / "bin" / "python"), str(REPO / "deploy/healthcheck.py"), "mishards-router"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SERVING" in result.stdout


def test_probe_passes_against_the_router_and_fails_clearly_elsewhere(image_venv, running):
    python = str(image_venv / "bin" / "python")
    ok = subprocess.run(
        [python, str(REPO / "deploy/probe.py"), f"127.0.0.1:{running['router']}"], capture_output=True, text=True
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, "Pass ==> Pass: Connected"), ok.stderr
    bad = subprocess.run([python, str(REPO / "deploy/probe.py"), "127.0.0.1:1", "2"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stdout.startswith("Error ==> Error: Fail connecting to server on 127.0.0.1:1.")
