"""The chart's part of issue 16, by rendering: NetworkPolicies admit meta, discovery, Milvus and
MySQL traffic only from the Mishards pods that need it; every secret comes from a required value
or an existing Secret; the metrics port is not on the client Service; TLS mounts, settings and
exec probes (docs/security.md)."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
import yaml
from conftest import CHART, find, objects, render
from test_chart_production import EVERYTHING, pods

MISHARDS = ("router", "meta", "discovery")


def ci(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / name).read_text()) or {}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the chart renders equality selectors only
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def policies(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [d for d in objects(rendered) if d["kind"] == "NetworkPolicy"]


def admitted(rendered: dict[str, list[dict[str, Any]]], target: str, port: int) -> set[str] | None:
    """The pods allowed to reach `target` on `port` (None: any source), from the policies selecting it."""
    all_pods = pods(rendered)
    labels = all_pods[target]["metadata"]["labels"]
    mine = [p for p in policies(rendered) if selects(p["spec"]["podSelector"], labels)]
    if not mine:
        return None
    allowed: set[str] = set()
    for policy in mine:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"]["ingress"]:
            if all(p["port"] != port for p in rule.get("ports", [])):
                continue
            if "from" not in rule:
                return None
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, peer
                allowed |= {n for n, pod in all_pods.items() if selects(peer["podSelector"], pod["metadata"]["labels"])}
    return allowed


def container_port(pod: dict[str, Any], name: str) -> int:
    for c in pod["spec"]["containers"]:
        for p in c.get("ports", []):
            if p["name"] == name:
                return int(p["containerPort"])
    raise AssertionError(f"no port {name}")


def test_network_policies_admit_only_the_callers_each_service_needs() -> None:
    rendered = render(EVERYTHING)
    all_pods = pods(rendered)
    assert admitted(rendered, "meta", container_port(all_pods["meta"], "grpc")) == {"router"}
    assert admitted(rendered, "discovery", container_port(all_pods["discovery"], "grpc")) == {"router", "meta"}
    for milvus in ("wo", "ro"):
        assert admitted(rendered, milvus, container_port(all_pods[milvus], "grpc")) == set(MISHARDS), milvus
    assert admitted(rendered, "mysql", 3306) == {"meta"}
    # Clients reach the router; Prometheus (anywhere, by default) the metrics ports.
    assert admitted(rendered, "router", container_port(all_pods["router"], "grpc")) is None
    for name in ("meta", "discovery"):
        assert admitted(rendered, name, container_port(all_pods[name], "metrics")) is None
    # The helm test pod and Jaeger reach the router only.
    for target in ("meta", "discovery", "wo", "ro", "mysql"):
        port = 3306 if target == "mysql" else container_port(all_pods[target], "grpc")
        assert not {"test", "jaeger"} & (admitted(rendered, target, port) or set()), target


def test_metrics_sources_can_be_narrowed_and_policies_turned_off() -> None:
    narrowed = render(ci("tls-values.yaml"))
    meta = find(narrowed, "NetworkPolicy", "mishards-meta")
    metrics_rule = next(r for r in meta["spec"]["ingress"] if r["ports"][0]["port"] == 9192)
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert not policies(render({"networkPolicy": {"enabled": False}}))


def _env(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}


def test_secrets_come_from_required_values_into_a_chart_secret() -> None:
    rendered = render({"backendAuth": {"token": "root:backend-s3cret"}})
    auth = find(rendered, "Secret", "mishards-auth")
    assert set(auth["data"]) == {"internal-token", "root-password"}
    assert find(rendered, "Secret", "mishards-backend")["data"].keys() == {"token"}
    all_pods = pods(rendered)
    for name in MISHARDS:
        env = _env(all_pods[name])
        assert env["MISHARDS_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "mishards-auth",
            "key": "internal-token",
        }
        assert env["MILVUS_BACKEND_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mishards-backend", "key": "token"}
        assert env["METRICS_HOST"]["value"] == "0.0.0.0"
    assert _env(all_pods["meta"])["ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mishards-auth",
        "key": "root-password",
    }
    outside = yaml.safe_dump([d for d in objects(rendered) if d["kind"] != "Secret"])
    for secret in ("internal-token-value", "mishards-root-pass", "backend-s3cret"):
        assert secret not in outside
    # Without a token the backend Secret and variable are left out.
    assert "MILVUS_BACKEND_TOKEN" not in _env(pods(render())["router"])


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"rootPassword": "r"}, r"auth\.internalToken is required"),
        ({"internalToken": "t"}, r"auth\.rootPassword is required"),
    ],
)
def test_a_missing_secret_value_fails_the_render(auth: dict[str, str], message: str) -> None:
    values = {"mysql": {"auth": {"password": "p", "rootPassword": "q"}}, "auth": auth}
    with pytest.raises(helm_python.HelmRenderError, match=message):
        render(values, required=False)


def test_existing_secrets_are_referenced_not_copied() -> None:
    rendered = render(ci("tls-values.yaml"), required=False)
    names = {d["metadata"]["name"] for d in objects(rendered) if d["kind"] == "Secret"}
    assert "mishards-auth" not in names and "mishards-mysql" not in names
    env = _env(pods(rendered)["router"])
    assert env["MISHARDS_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-mishards-auth",
        "key": "internal-token",
    }
    custom = render({"auth": {"existingSecret": "mine", "internalTokenKey": "tok", "rootPasswordKey": "pw"}})
    meta_env = _env(pods(custom)["meta"])
    assert meta_env["MISHARDS_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "tok"}
    assert meta_env["ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "pw"}


def test_the_metrics_port_is_not_published_on_the_client_service() -> None:
    rendered = render()
    service = find(rendered, "Service", "mishards-router")
    assert [p["name"] for p in service["spec"]["ports"]] == ["grpc"]
    assert {p["port"] for p in service["spec"]["ports"]} == {19530}
    # Prometheus still scrapes the pod's named port.
    assert container_port(pods(rendered)["router"], "metrics") == 9191


def test_tls_mounts_the_secret_sets_the_files_and_probes_by_exec() -> None:
    rendered = render(ci("tls-values.yaml"), required=False)
    for name in MISHARDS:
        pod = pods(rendered)[name]
        container = pod["spec"]["containers"][0]
        env = _env(pod)
        assert env["TLS_CERT_FILE"]["value"] == "/etc/mishards/tls/tls.crt"
        assert env["TLS_KEY_FILE"]["value"] == "/etc/mishards/tls/tls.key"
        assert env["TLS_CA_FILE"]["value"] == env["TLS_CLIENT_CA_FILE"]["value"] == "/etc/mishards/tls/ca.crt"
        assert env["TLS_SERVER_NAME"]["value"] == "mishards.example.internal"
        assert env["MILVUS_BACKEND_TLS_CA_FILE"]["value"] == "/etc/mishards/backend-tls/ca.crt"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "my-mishards-tls"
        assert volumes["backend-tls"]["secret"]["secretName"] == "my-milvus-ca"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["tls"]["readOnly"] and mounts["tls"]["mountPath"] == "/etc/mishards/tls"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert "grpc" not in container[probe], (name, probe)
            assert container[probe]["exec"]["command"] == [
                "python",
                "/opt/mishards/bin/mishards-healthcheck",
                f"mishards-{name}",
            ]
    test_pod = pods(rendered)["test"]
    assert _env(test_pod)["ROUTER_URI"]["value"].startswith("https://mishards-router:")
    assert test_pod["spec"]["volumes"] == [{"name": "tls", "secret": {"secretName": "my-mishards-tls"}}]
    plain = pods(render())["router"]["spec"]["containers"][0]
    assert plain["readinessProbe"]["grpc"] == {"port": 19530} and "TLS_CERT_FILE" not in _env(pods(render())["router"])


@pytest.mark.parametrize(
    ("tls", "message"),
    [({"enabled": True}, r"tls\.existingSecret"), ({"mutual": True}, r"tls\.mutual=true needs tls\.enabled")],
)
def test_bad_tls_combinations_fail_at_render_time(tls: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=message):
        render({"tls": tls})
