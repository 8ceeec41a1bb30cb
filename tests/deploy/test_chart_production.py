"""The chart as production needs it: Pod Security "restricted" on every pod not listed as an
exception, resources on every container, PodDisruptionBudgets for wo and ro, passwords from
values or an existing Secret only, a schema that rejects unknown keys at every level,
Prometheus scraping, the Milvus version the tests run, and NOTES that warn about the default
image. Rendered offline by Helm's engine, like test_chart.py."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from conftest import CHART, NAMESPACE, REPO, find, objects, render, render_text
from pod_security import restricted_violations

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
EXCEPTION_ANNOTATION = "mishards.io/pod-security-exception"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# Every pod the chart can render, with the values that render it.
EVERYTHING = {"jaeger": {"enabled": True}, "metrics": {"podMonitor": {"enabled": True}}}


def pods(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each pod of the release by its name in global.podSecurity.exceptions -> (metadata, spec)."""
    out = {}
    for doc in objects(rendered):
        if doc["kind"] not in WORKLOADS:
            continue
        template = doc if doc["kind"] == "Pod" else doc["spec"]["template"]
        if doc["kind"] == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
        labels = template["metadata"]["labels"]
        name = labels["app.kubernetes.io/name"]
        out[labels["app.kubernetes.io/component"] if name in ("mishards", "milvus") else name] = template
    return out


def test_the_checker_finds_what_the_restricted_level_forbids() -> None:
    bad = {
        "hostNetwork": True,
        "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "initContainers": [{"name": "init", "securityContext": {"privileged": True}}],
        "containers": [
            {
                "name": "c",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}, "allowPrivilegeEscalation": True},
            }
        ],
    }
    found = "\n".join(restricted_violations(bad))
    for rule in ("hostNetwork", "runAsUser=0", "Unconfined", "hostPath", "privileged", "hostPort", "SYS_ADMIN",
                 "allowPrivilegeEscalation", "runAsNonRoot", "drop ALL"):  # fmt: skip
        assert rule in found, (rule, found)
    good = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}, {"name": "e", "emptyDir": {}}],
        "containers": [
            {"name": "c", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
        ],
    }
    assert restricted_violations(good) == []


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_pod_not_listed_as_an_exception_meets_the_restricted_level(values_file: Path) -> None:
    values = yaml.safe_load(values_file.read_text()) or {}
    rendered = render({**EVERYTHING, **values})
    listed = set(values.get("global", {}).get("podSecurity", {}).get("exceptions", {}))
    found = pods(rendered)
    assert {"router", "meta", "discovery", "wo", "ro", "jaeger", "test"} <= set(found)
    for name, template in found.items():
        spec, annotations = template["spec"], template["metadata"].get("annotations") or {}
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert (EXCEPTION_ANNOTATION in annotations) == (name in listed), name
        if name not in listed:
            assert restricted_violations(spec) == [], (values_file.name, name)


def test_a_listed_exception_keeps_seccomp_and_carries_its_reason() -> None:
    reason = "our MySQL image runs its entrypoint as root"
    rendered = render({"global": {"podSecurity": {"exceptions": {"mysql": reason}}}})
    mysql = pods(rendered)["mysql"]
    assert mysql["metadata"]["annotations"][EXCEPTION_ANNOTATION] == reason
    assert mysql["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert "securityContext" not in mysql["spec"]["containers"][0]
    assert restricted_violations(pods(rendered)["router"]["spec"]) == []
    for exceptions, where in (({"sidecar": "x"}, "sidecar"), ({"mysql": ""}, "exceptions/mysql")):
        with pytest.raises(helm_python.HelmValuesError, match=where):
            render({"global": {"podSecurity": {"exceptions": exceptions}}})


def test_every_container_has_requests_and_limits_so_the_hpa_can_scale() -> None:
    rendered = render({**EVERYTHING, "router": {"autoscaling": {"enabled": True}}})
    for name, template in pods(rendered).items():
        for c in template["spec"]["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, c["name"], kind)
    hpa = find(rendered, "HorizontalPodAutoscaler", "mishards-router")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    router = find(rendered, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
    assert router["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "500m"


def test_wo_and_ro_have_disruption_budgets_that_select_their_own_pods() -> None:
    rendered = render({"ro": {"replicas": 2}})
    for alias in ("wo", "ro"):
        pdb = find(rendered, "PodDisruptionBudget", f"mishards-{alias}")
        assert pdb["spec"]["maxUnavailable"] == 1
        for other in ("wo", "ro"):
            labels = find(rendered, "StatefulSet", f"mishards-{other}")["spec"]["template"]["metadata"]["labels"]
            selects = pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
            assert selects == (other == alias), (alias, other)
    without = render({"ro": {"replicas": 0}, "wo": {"pdb": {"enabled": False}}})
    assert not [d for d in objects(without) if d["kind"] == "PodDisruptionBudget"]


def test_database_passwords_come_from_values_or_an_existing_secret_only() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"mysql\.auth\.password is required"):
        render({}, required=False)
    with pytest.raises(helm_python.HelmRenderError, match=r"mysql\.auth\.rootPassword is required"):
        render({"mysql": {"auth": {"password": "p"}}}, required=False)
    values = {"mysql": {"auth": {"password": "meta-s3cret", "rootPassword": "root-s3cret"}}}
    first, second = render(values), render(values)
    assert find(first, "Secret", "mishards-mysql") == find(second, "Secret", "mishards-mysql")  # never regenerated
    mysql = pods(first)["mysql"]["spec"]["containers"][0]
    env = {e["name"]: e for e in mysql["env"]}
    assert "MYSQL_RANDOM_ROOT_PASSWORD" not in env  # it prints the generated password to the log
    assert env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mishards-mysql",
        "key": "mysql-root-password",
    }
    assert env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mishards-mysql", "key": "mysql-password"}
    outside_secrets = yaml.safe_dump([d for d in objects(first) if d["kind"] != "Secret"])
    assert "s3cret" not in outside_secrets
    theirs = render(
        {"mysql": {"auth": {"existingSecret": "db-passwords"}}, "auth": {"existingSecret": "milvus-root"}},
        required=False,
    )
    assert not [d for d in objects(theirs) if d["kind"] == "Secret"]
    env = {e["name"]: e for e in pods(theirs)["mysql"]["spec"]["containers"][0]["env"]}
    assert env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "db-passwords"
    meta_env = {e["name"]: e for e in pods(theirs)["meta"]["spec"]["containers"][0]["env"]}
    assert meta_env["MISHARDS_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "db-passwords",
        "key": "mysql-password",
    }
    templates = "".join(p.read_text() for p in CHART.rglob("templates/*") if p.is_file())
    assert not re.findall(r"\blookup\s|\brand(?:Alpha|AlphaNum|Ascii|Numeric|Bytes)\b", templates)


@pytest.mark.parametrize(
    "flag", ["gpu.enabled=true", "ro.replica=2", "wo.gpu.enable=true", "metrics.podMonitor.interal=1m"]
)
def test_unknown_keys_fail_to_render(flag: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="additional properties"):
        render(helm_python.parse_set_string(flag))


def schema_files() -> list[Path]:
    return [CHART / "values.schema.json", *sorted(CHART.glob("charts/*/values.schema.json"))]


APPLICATORS = {"if", "then", "else", "not", "allOf", "anyOf", "oneOf"}  # constrain the same object, not a new one


def open_objects(node: Any, path: str = "", applied: bool = False) -> list[str]:
    """Paths of object schemas that accept keys they do not name, unless marked free-form with the reason."""
    found = []
    if isinstance(node, dict):
        is_object = node.get("type") == "object" or "properties" in node
        free = str(node.get("description", "")).startswith(("free-form:", "the parent"))
        if (
            is_object
            and not applied
            and not free
            and "additionalProperties" not in node
            and "propertyNames" not in node
        ):
            found.append(path or "/")
        for key, value in node.items():
            found += open_objects(value, f"{path}/{key}", applied=key in APPLICATORS)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += open_objects(value, f"{path}/{i}", applied=applied)
    return found


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: str(p.relative_to(CHART)))
def test_every_level_of_the_schema_rejects_unknown_keys(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["additionalProperties"] is False
    assert open_objects(schema) == []


def test_the_parent_schema_checks_sub_chart_blocks_as_the_sub_charts_do() -> None:
    """wo/ro, mysql and jaeger appear in both schemas (Helm checks both); they must not drift apart."""
    parent = json.loads((CHART / "values.schema.json").read_text())["properties"]
    for block, chart, own in (("wo", "milvus", {"role", "replicas"}), ("ro", "milvus", {"role", "replicas"}),
                              ("mysql", "mysql", {"enabled"}), ("jaeger", "jaeger", {"enabled"})):  # fmt: skip
        sub = json.loads((CHART / "charts" / chart / "values.schema.json").read_text())["properties"]
        mine = parent[block]["properties"]
        assert set(mine) == set(sub), (block, set(mine) ^ set(sub))
        assert {k: v for k, v in mine.items() if k not in own} == {k: v for k, v in sub.items() if k not in own}, block


def test_milvus_default_image_is_the_version_the_tests_run() -> None:
    milvus = yaml.safe_load((CHART / "charts" / "milvus" / "values.yaml").read_text())
    assert milvus["image"]["tag"] == "v" + version("milvus")
    assert (
        yaml.safe_load((CHART / "charts" / "milvus" / "Chart.yaml").read_text())["appVersion"] == milvus["image"]["tag"]
    )
    for doc in (REPO / "docs" / "deploy.md", REPO / "README.md"):
        text = doc.read_text()
        assert "global.gpu.enabled" in text and "ro.gpu.enabled" in text, doc  # the GPU switch is documented
    assert f"{milvus['image']['tag']}-gpu" in (REPO / "docs" / "deploy.md").read_text()


def test_scrape_annotations_and_the_pod_monitor_cover_every_metrics_port() -> None:
    rendered = render(
        {"jaeger": {"enabled": True}, "metrics": {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}}
    )
    scraped = {"router", "meta", "discovery", "wo", "ro"}
    monitor = find(rendered, "PodMonitor", "mishards")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    spec = monitor["spec"]
    # Field names of the Prometheus Operator's PodMonitor CRD (monitoring.coreos.com/v1).
    assert set(spec) <= {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels"}
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}
    for name, template in pods(rendered).items():
        labels, annotations = template["metadata"]["labels"], template["metadata"].get("annotations") or {}
        assert selected(spec["selector"], labels) == (name in scraped), name
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        if name in scraped:
            assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
            assert int(annotations["prometheus.io/port"]) == ports["metrics"], name
        else:
            assert "prometheus.io/scrape" not in annotations, name
    quiet = render({"metrics": {"scrapeAnnotations": False}, "wo": {"metrics": {"scrapeAnnotations": False}}})
    annotated = [
        n for n, t in pods(quiet).items() if "prometheus.io/scrape" in (t["metadata"].get("annotations") or {})
    ]
    assert annotated == ["ro"]
    assert not [d for d in objects(quiet) if d["kind"] == "PodMonitor"]


def selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and In/NotIn/Exists/DoesNotExist expressions)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]  # fmt: skip
        if not ok:
            return False
    return True


def test_notes_warn_when_the_image_is_the_default_no_registry_serves() -> None:
    notes = next(t for p, t in render_text().items() if p.endswith("NOTES.txt"))
    assert "WARNING: the Mishards image is the default mishards:0.1.0" in notes
    for values in ({"image": {"registry": "registry.example.com"}}, {"image": {"repository": "example/mishards"}}):
        notes = next(t for p, t in render_text(values).items() if p.endswith("NOTES.txt"))
        assert "WARNING" not in notes, values
