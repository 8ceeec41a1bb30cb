"""The Helm chart, rendered offline by Helm's own engine (helm-python-sdk) and checked
against the Kubernetes schemas (kubernetes-validate)."""

from __future__ import annotations

import base64
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from conftest import CHART, NAMESPACE, find, objects, render

from mishards.common.settings import describe_settings

SETTING_NAMES = {name for name, _, _ in describe_settings()}
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.30.0"


def ci_values(path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"] if workload["kind"] != "Pod" else workload["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors (what the chart renders)."""
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def test_every_ci_scenario_is_covered():
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "gpu-values.yaml",
        "ro-scaled-values.yaml",
        "consul-values.yaml",
        "file-discovery-values.yaml",
    }


def test_schema_accepts_every_built_in_discovery_back_end():
    schema = helm_python.Chart.load(CHART).schema
    assert schema is not None
    from mishards.discovery.backends import builtin_registry

    built_in = set(builtin_registry().names()) - {"memory"}  # memory is for tests only
    assert set(schema["properties"]["discovery"]["then"]["properties"]["className"]["enum"]) == built_in


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_manifest_is_valid_kubernetes(values_file):
    rendered = render(ci_values(values_file))
    docs = objects(rendered)
    assert docs
    for doc in docs:
        if doc["apiVersion"] != "monitoring.coreos.com/v1":  # a CRD: test_chart_production checks its fields
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "mishards"
        assert doc["metadata"].get("namespace") == NAMESPACE


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_has_no_errors(values_file):
    report = helm_python.lint(CHART, values=ci_values(values_file), strict=False, namespace=NAMESPACE)
    assert report["errors"] == [], report
    assert not [m for m in report["messages"] if m["severity"] >= 3], report


def test_configmap_keys_are_mishards_settings(default_render):
    for values_file in CI_VALUES:
        config = find(render(ci_values(values_file)), "ConfigMap", "mishards")
        unknown = set(config["data"]) - SETTING_NAMES
        assert not unknown, f"{values_file.name}: not settings of .env.example: {unknown}"
    env_example = (CHART.parents[1] / ".env.example").read_text()
    for key in find(default_render, "ConfigMap", "mishards")["data"]:
        assert f"\n{key}=" in env_example


def test_schema_config_names_are_settings():
    schema = helm_python.Chart.load(CHART).schema
    assert schema is not None
    assert set(schema["properties"]["config"]["propertyNames"]["enum"]) <= SETTING_NAMES


def test_defaults_wire_services_through_the_configmap(default_render):
    data = find(default_render, "ConfigMap", "mishards")["data"]
    assert data["SERVER_PORT"] == "19530"
    assert data["META_ADDRESS"] == "mishards-meta:19541"
    assert data["DISCOVERY_ADDRESS"] == "mishards-discovery:19542"
    for component, port in (("router", 19530), ("meta", 19541), ("discovery", 19542)):
        deployment = find(default_render, "Deployment", f"mishards-{component}")
        c = container(deployment, component)
        assert c["command"] == [f"mishards-{component}"]
        assert c["envFrom"] == [{"configMapRef": {"name": "mishards"}}]
        assert c["readinessProbe"]["grpc"]["port"] == port
        assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
        assert c["securityContext"]["runAsNonRoot"] is True
        service = find(default_render, "Service", f"mishards-{component}")
        assert service["spec"]["ports"][0]["port"] == port


def test_meta_is_a_singleton_that_reads_its_password_from_a_secret(default_render):
    meta = find(default_render, "Deployment", "mishards-meta")
    assert meta["spec"]["replicas"] == 1
    assert meta["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e for e in container(meta, "meta")["env"]}
    assert env["MISHARDS_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mishards-mysql",
        "key": "mysql-password",
    }
    uri = env["SQLALCHEMY_DATABASE_URI"]["value"]
    assert uri == "mysql+pymysql://mishards:$(MISHARDS_DATABASE_PASSWORD)@mishards-mysql:3306/mishards?charset=utf8mb4"
    find(default_render, "StatefulSet", "mishards-mysql")
    find(default_render, "Secret", "mishards-mysql")


def test_external_database_uses_the_existing_secret():
    rendered = render(ci_values(CHART / "ci" / "external-db-values.yaml"))
    assert not [d for d in objects(rendered) if d["metadata"]["name"].startswith("mishards-mysql")]
    env = {e["name"]: e for e in container(find(rendered, "Deployment", "mishards-meta"), "meta")["env"]}
    assert env["MISHARDS_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mishards-db", "key": "password"}
    assert "@mysql.databases.svc:3306/mishards" in env["SQLALCHEMY_DATABASE_URI"]["value"]
    data = find(rendered, "ConfigMap", "mishards")["data"]
    assert data["TRACER_CLASS_NAME"] == "Jaeger"
    assert data["TRACING_EXPORTER_ENDPOINT"] == "http://mishards-jaeger:4317"
    assert data["DEFAULT_SHARDS_NUM"] == "4"
    find(rendered, "Deployment", "mishards-jaeger")


def test_external_password_goes_into_a_chart_secret_not_the_configmap():
    rendered = render({"mysql": {"enabled": False}, "externalDatabase": {"host": "db", "password": "s3cret"}})
    secret = find(rendered, "Secret", "mishards-database")
    assert secret["data"]["mysql-password"] == "czNjcmV0"
    assert "s3cret" not in yaml.safe_dump(find(rendered, "ConfigMap", "mishards"))


def test_milvus_sets_are_statefulsets_with_roles_ports_and_volumes(default_render):
    for alias, role in (("wo", "writable"), ("ro", "readonly")):
        sts = find(default_render, "StatefulSet", f"mishards-{alias}")
        assert sts["spec"]["replicas"] == 1
        assert sts["spec"]["serviceName"] == f"mishards-{alias}-headless"
        assert pod_labels(sts)["mishards.io/role"] == role
        milvus = container(sts, "milvus")
        assert milvus["image"] == "docker.io/milvusdb/milvus:v2.3.5"  # the version every test runs
        assert {"name": "grpc", "containerPort": 19530, "protocol": "TCP"} in milvus["ports"]
        assert milvus["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert {"name": "metrics", "containerPort": 9091, "protocol": "TCP"} in milvus["ports"]
        assert "nvidia.com/gpu" not in yaml.safe_dump(milvus)
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        headless = find(default_render, "Service", f"mishards-{alias}-headless")
        assert headless["spec"]["clusterIP"] == "None"
        user = yaml.safe_load(find(default_render, "ConfigMap", f"mishards-{alias}")["data"]["user.yaml"])
        assert user["etcd"]["use"]["embed"] is True
        assert user["common"]["storageType"] == "local"


def test_ro_replicas_scales_the_readonly_statefulset():
    rendered = render({"ro": {"replicas": 2}})
    assert find(rendered, "StatefulSet", "mishards-ro")["spec"]["replicas"] == 2
    assert find(rendered, "StatefulSet", "mishards-wo")["spec"]["replicas"] == 1
    rendered = render({"wo": {"replicas": 3}})
    assert find(rendered, "StatefulSet", "mishards-wo")["spec"]["replicas"] == 3


def test_gpu_enabled_switches_image_and_requests_gpus():
    rendered = render({"ro": {"gpu": {"enabled": True, "count": 2, "runtimeClassName": "nvidia"}}})
    ro = find(rendered, "StatefulSet", "mishards-ro")
    milvus = container(ro, "milvus")
    assert milvus["image"] == "docker.io/milvusdb/milvus:v2.3.5-gpu"
    assert milvus["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert milvus["resources"]["requests"]["nvidia.com/gpu"] == 2
    assert ro["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    wo = container(find(rendered, "StatefulSet", "mishards-wo"), "milvus")
    assert wo["image"].endswith(":v2.3.5") and "nvidia.com/gpu" not in yaml.safe_dump(wo["resources"])
    assert milvus["resources"]["requests"]["memory"] == "4Gi"  # the GPU joins the default requests
    everywhere = render({"global": {"gpu": {"enabled": True}}})
    for alias in ("wo", "ro"):
        milvus = container(find(everywhere, "StatefulSet", f"mishards-{alias}"), "milvus")
        assert milvus["image"].endswith("-gpu")
        assert milvus["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_kubernetes_discovery_has_rbac_and_selects_the_milvus_pods(default_render):
    data = find(default_render, "ConfigMap", "mishards")["data"]
    assert data["DISCOVERY_CLASS_NAME"] == "kubernetes"
    assert data["DISCOVERY_KUBERNETES_IN_CLUSTER"] == "true"
    assert data["DISCOVERY_KUBERNETES_NAMESPACE"] == NAMESPACE
    selector = data["DISCOVERY_KUBERNETES_LABEL_SELECTOR"]
    for alias in ("wo", "ro"):
        labels = pod_labels(find(default_render, "StatefulSet", f"mishards-{alias}"))
        assert selector_matches(selector, labels), (selector, labels)
        assert labels["mishards.io/role"] in ("writable", "readonly")
    for component in ("router", "meta", "discovery"):
        labels = pod_labels(find(default_render, "Deployment", f"mishards-{component}"))
        assert not selector_matches(selector, labels)
    role = find(default_render, "Role", "mishards-discovery")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = find(default_render, "RoleBinding", "mishards-discovery")
    assert binding["subjects"][0]["name"] == "mishards-discovery"
    discovery = find(default_render, "Deployment", "mishards-discovery")["spec"]["template"]["spec"]
    assert discovery["serviceAccountName"] == "mishards-discovery"
    assert discovery["automountServiceAccountToken"] is True


def test_static_discovery_lists_stable_pod_addresses_without_rbac():
    rendered = render(ci_values(CHART / "ci" / "static-discovery-values.yaml"))
    data = find(rendered, "ConfigMap", "mishards")["data"]
    assert data["DISCOVERY_CLASS_NAME"] == "static"
    assert data["WOSERVER"] == (
        "mishards-wo-0.mishards-wo-headless.mishards.svc:19530,mishards-wo-1.mishards-wo-headless.mishards.svc:19530"
    )
    assert data["DISCOVERY_STATIC_HOSTS"].split(",")[1] == "mishards-ro-1.mishards-ro-headless.mishards.svc:19530"
    assert not any(k.startswith("DISCOVERY_KUBERNETES_") for k in data)
    assert not [d for d in objects(rendered) if d["kind"] in ("Role", "RoleBinding")]


def test_static_addresses_use_the_milvus_grpc_port():
    rendered = render({"discovery": {"className": "static"}, "wo": {"grpcPort": 19601}, "ro": {"grpcPort": 19602}})
    data = find(rendered, "ConfigMap", "mishards")["data"]
    assert data["WOSERVER"] == "mishards-wo-0.mishards-wo-headless.mishards.svc:19601"
    assert data["DISCOVERY_STATIC_HOSTS"] == "mishards-ro-0.mishards-ro-headless.mishards.svc:19602"
    assert data["DISCOVERY_STATIC_PORT"] == "19601"
    for alias, port in (("wo", 19601), ("ro", 19602)):
        ports = container(find(rendered, "StatefulSet", f"mishards-{alias}"), "milvus")["ports"]
        assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in ports


def test_consul_discovery_settings_and_token_from_a_secret():
    rendered = render(ci_values(CHART / "ci" / "consul-values.yaml"))
    data = find(rendered, "ConfigMap", "mishards")["data"]
    assert {k: v for k, v in data.items() if k.startswith("DISCOVERY_CONSUL_")} == {
        "DISCOVERY_CONSUL_HOST": "consul-server.consul.svc",
        "DISCOVERY_CONSUL_PORT": "8500",
        "DISCOVERY_CONSUL_DATACENTER": "dc1",
        "DISCOVERY_CONSUL_WO_SERVICE": "milvus-wo",
        "DISCOVERY_CONSUL_RO_SERVICE": "milvus-ro",
        "DISCOVERY_CONSUL_TAG": "mishards",
    }
    assert data["DISCOVERY_CLASS_NAME"] == "consul"
    assert not any(k.startswith(("DISCOVERY_KUBERNETES_", "WOSERVER")) for k in data)
    assert not [d for d in objects(rendered) if d["kind"] in ("Role", "RoleBinding")]
    assert not [d for d in objects(rendered) if d["kind"] == "Secret" and d["metadata"]["name"] == "mishards-consul"]
    env = {e["name"]: e for e in container(find(rendered, "Deployment", "mishards-discovery"), "discovery")["env"]}
    assert env["DISCOVERY_CONSUL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "consul-acl", "key": "mishards-token"}
    for component in ("router", "meta"):  # only discovery talks to Consul
        names = [e["name"] for e in container(find(rendered, "Deployment", f"mishards-{component}"), component)["env"]]
        assert "DISCOVERY_CONSUL_TOKEN" not in names

    own = render({"discovery": {"className": "consul", "consul": {"host": "consul", "token": "s3cret"}}})
    assert find(own, "Secret", "mishards-consul")["data"] == {"token": "czNjcmV0"}
    assert "s3cret" not in yaml.safe_dump(find(own, "ConfigMap", "mishards"))
    env = {e["name"]: e for e in container(find(own, "Deployment", "mishards-discovery"), "discovery")["env"]}
    assert env["DISCOVERY_CONSUL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mishards-consul", "key": "token"}

    none = render({"discovery": {"className": "consul", "consul": {"host": "consul"}}})
    env = container(find(none, "Deployment", "mishards-discovery"), "discovery")["env"]
    assert "DISCOVERY_CONSUL_TOKEN" not in [e["name"] for e in env]


def test_file_discovery_mounts_the_instance_list_the_back_end_reads():
    from mishards.discovery.backends.base import InstanceSpec
    from mishards.discovery.backends.file import parse_instance_file

    rendered = render(ci_values(CHART / "ci" / "file-discovery-values.yaml"))
    data = find(rendered, "ConfigMap", "mishards")["data"]
    path = data["DISCOVERY_FILE_PATH"]
    assert path == "/etc/mishards/discovery/instances.yaml"
    listing = find(rendered, "ConfigMap", "mishards-discovery-instances")["data"]["instances.yaml"]
    assert parse_instance_file(listing, int(data["DISCOVERY_STATIC_PORT"])) == [
        InstanceSpec(
            "mishards-wo-0.mishards-wo-headless.mishards.svc:19530",
            "mishards-wo-0.mishards-wo-headless.mishards.svc:19530",
            "writable",
        ),
        InstanceSpec("ro-external", "milvus-ro.example.internal:19530", "readonly"),
    ]
    pod = find(rendered, "Deployment", "mishards-discovery")["spec"]["template"]["spec"]
    mount = next(
        m for m in container({"kind": "Pod", "spec": pod}, "discovery")["volumeMounts"] if m["name"] == "instances"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == "instances")
    assert "subPath" not in mount, "a subPath mount would never see the ConfigMap's edits"
    assert f"{mount['mountPath']}/{volume['configMap']['items'][0]['path']}" == path
    assert volume["configMap"] == {
        "name": "mishards-discovery-instances",
        "items": [{"key": "instances.yaml", "path": "instances.yaml"}],
    }

    theirs = render(
        {"discovery": {"className": "file", "file": {"existingConfigMap": "my-instances", "path": "/data/list.yaml"}}}
    )
    assert not [d for d in objects(theirs) if d["metadata"]["name"] == "mishards-discovery-instances"]
    pod = find(theirs, "Deployment", "mishards-discovery")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "instances")
    assert volume["configMap"] == {"name": "my-instances", "items": [{"key": "instances.yaml", "path": "list.yaml"}]}
    assert find(theirs, "ConfigMap", "mishards")["data"]["DISCOVERY_FILE_PATH"] == "/data/list.yaml"


def test_router_service_type_hpa_and_pdb():
    rendered = render(ci_values(CHART / "ci" / "ro-scaled-values.yaml"))
    assert find(rendered, "Service", "mishards-router")["spec"]["type"] == "LoadBalancer"
    assert "replicas" not in find(rendered, "Deployment", "mishards-router")["spec"]
    hpa = find(rendered, "HorizontalPodAutoscaler", "mishards-router")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    find(rendered, "PodDisruptionBudget", "mishards-router")
    plain = render({"router": {"replicas": 3}})
    assert find(plain, "Deployment", "mishards-router")["spec"]["replicas"] == 3
    router_extras = [d for d in objects(plain) if d["metadata"]["name"] == "mishards-router"]
    assert not [d for d in router_extras if d["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")]


def test_helm_test_hook_searches_through_the_router(default_render):
    pod = find(default_render, "Pod", "mishards-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = container(pod, "insert-search")
    assert {"name": "ROUTER_URI", "value": "http://mishards-router:19530"} in c["env"]
    script = c["args"][0]
    compile(script, "helm-test", "exec")
    assert "client.insert(" in script and "client.search(" in script
    assert 'token="root:" + os.environ["ROOT_PASSWORD"]' in script
    password = next(e for e in c["env"] if e["name"] == "ROOT_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert password == {"name": "mishards-auth", "key": "root-password"}


def test_authorization_is_on_and_root_password_comes_from_a_secret(default_render):
    assert find(default_render, "ConfigMap", "mishards")["data"]["AUTHORIZATION_ENABLED"] == "true"
    secret = find(default_render, "Secret", "mishards-auth")
    assert base64.b64decode(secret["data"]["root-password"]).decode() == "mishards-root-pass"
    meta = find(default_render, "Deployment", "mishards-meta")
    env = container(meta, "meta")["env"]
    assert {
        "name": "ROOT_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "mishards-auth", "key": "root-password"}},
    } in env
    assert "ROOT_PASSWORD" not in find(default_render, "ConfigMap", "mishards")["data"]
    mine = render({"auth": {"existingSecret": "my-auth", "rootPasswordKey": "pw"}})
    assert not [d for d in objects(mine) if d["kind"] == "Secret" and d["metadata"]["name"] == "mishards-auth"]
    env = container(find(mine, "Deployment", "mishards-meta"), "meta")["env"]
    assert {"name": "ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "my-auth", "key": "pw"}}} in env
    with pytest.raises(helm_python.HelmRenderError, match=r"auth\.rootPassword is required"):
        render({"auth": {"rootPassword": ""}})


def test_discovery_join_damping_is_set_through_config(default_render):
    assert find(default_render, "ConfigMap", "mishards")["data"]["DISCOVERY_HEALTHY_AFTER"] == "2"
    tuned = render({"config": {"DISCOVERY_HEALTHY_AFTER": 5}})
    assert find(tuned, "ConfigMap", "mishards")["data"]["DISCOVERY_HEALTHY_AFTER"] == "5"


def test_config_change_changes_the_checksum(default_render):
    before = find(default_render, "Deployment", "mishards-router")["spec"]["template"]["metadata"]["annotations"]
    after = find(render({"config": {"LOG_LEVEL": "DEBUG"}}), "Deployment", "mishards-router")
    assert before["checksum/config"] != after["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"ro": {"replicas": -1}}, "/ro/replicas"),
        ({"wo": {"replicas": -2}}, "/wo/replicas"),
        ({"router": {"replicas": -1}}, "/router/replicas"),
        ({"meta": {"replicas": 2}}, "/meta/replicas"),
        ({"discovery": {"className": "zookeeper"}}, "/discovery/className"),
        ({"discovery": {"className": "file", "file": {"instances": [{"host": "a", "role": "primary"}]}}}, "role"),
        ({"discovery": {"file": {"path": "relative.yaml"}}}, "/discovery/file/path"),
        ({"discovery": {"file": {"instances": [{"role": "writable"}]}}}, "/discovery/file/instances/0"),
        ({"discovery": {"file": {"instances": [{"host": "a", "address": "b:1", "role": "readonly"}]}}}, "instances/0"),
        ({"discovery": {"consul": {"port": 0}}}, "/discovery/consul/port"),
        ({"config": {"NOT_A_SETTING": "1"}}, "NOT_A_SETTING"),
        ({"config": {"SQLALCHEMY_DATABASE_URI": "sqlite://"}}, "SQLALCHEMY_DATABASE_URI"),
        ({"router": {"service": {"type": "Ingress"}}}, "/router/service/type"),
        ({"ro": {"gpu": {"count": 0}}}, "/ro/gpu/count"),
    ],
)
def test_schema_rejects_bad_values(values, message):
    with pytest.raises(helm_python.HelmValuesError, match=message):
        render(values)


def test_schema_accepts_a_user_discovery_class_with_a_plugin_path():
    rendered = render({"discovery": {"className": "MyDiscovery", "pluginPath": "/plugins"}})
    data = find(rendered, "ConfigMap", "mishards")["data"]
    assert (data["DISCOVERY_CLASS_NAME"], data["DISCOVERY_PLUGIN_PATH"]) == ("MyDiscovery", "/plugins")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"mysql": {"enabled": False}}, "needs externalDatabase.host"),
        ({"externalDatabase": {"host": "db"}}, "choose the local MySQL"),
        ({"mysql": {"enabled": False}, "externalDatabase": {"host": "db"}}, "externalDatabase.password"),
        ({"discovery": {"className": "file"}}, "discovery.file.instances"),
        ({"discovery": {"className": "consul"}}, "discovery.consul.host"),
        ({"router": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}}, "minReplicas"),
        ({"discovery": {"rbac": {"create": False}}}, "serviceAccount.name"),
    ],
)
def test_bad_combinations_fail_at_render_time(values, message):
    with pytest.raises(helm_python.HelmRenderError, match=message):
        render(values)


def test_every_value_has_a_param_comment():
    """`## @param` on every leaf of values.yaml (bitnami readme-generator style)."""
    text = (CHART / "values.yaml").read_text()
    documented = {line.split()[2] for line in text.splitlines() if line.strip().startswith("## @param")}

    def leaves(node: Any, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node and prefix not in documented:
            return [leaf for k, v in node.items() for leaf in leaves(v, f"{prefix}.{k}" if prefix else k)]
        return [prefix]

    missing = [leaf for leaf in leaves(yaml.safe_load(text)) if leaf not in documented]
    assert not missing, missing


def test_chart_readme_lists_every_param():
    readme = (CHART / "README.md").read_text()
    params = [line.split()[2] for line in (CHART / "values.yaml").read_text().splitlines() if "## @param" in line]
    missing = [p for p in params if f"`{p}`" not in readme]
    assert not missing, missing


def test_sub_charts_are_all_local():
    chart = helm_python.Chart.load(CHART)
    for dep in chart.metadata["dependencies"]:
        assert not dep.get("repository"), dep
        assert (CHART / "charts" / dep["name"] / "Chart.yaml").exists()


def test_dashboard_configmap_ships_the_grafana_dashboard(default_render):
    import json

    from conftest import REPO

    config = find(default_render, "ConfigMap", "mishards-dashboards")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = REPO / "deploy" / "dashboards" / "mishards.json"
    assert json.loads(config["data"]["mishards.json"]) == json.loads(source.read_text())
    # One source of truth: deploy/'s path is a symlink to the chart's file (Helm reads files inside the chart only).
    assert (CHART / "dashboards" / "mishards.json").read_bytes() == source.read_bytes()
    off = render({"dashboards": {"enabled": False}})
    assert not [o for o in objects(off) if o["metadata"]["name"] == "mishards-dashboards"]


@pytest.mark.parametrize(
    ("router", "workers"),
    [
        ({}, "1"),  # the default request, 500m
        ({"resources": {"requests": {"cpu": "1500m"}}}, "2"),
        ({"resources": {"requests": {"cpu": 3}}}, "3"),
        ({"resources": {"requests": {"cpu": "2.5"}}}, "3"),
        ({"resources": {"requests": {"cpu": "200"}}}, "64"),
        ({"resources": None}, "1"),
        ({"workers": 4, "resources": {"requests": {"cpu": "8"}}}, "4"),
    ],
)
def test_router_workers_follow_the_cpu_request_unless_set(router: dict[str, Any], workers: str) -> None:
    pod = find(render({"router": router}), "Deployment", "mishards-router")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in container({"kind": "Pod", "spec": pod}, "router")["env"]}
    assert env["ROUTER_WORKERS"] == workers
    # The workers' metrics files need a writable /tmp on the read-only root filesystem.
    mounts = {m["mountPath"]: m["name"] for m in container({"kind": "Pod", "spec": pod}, "router")["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
