"""The chart: lint, render, Kubernetes schemas, and that the rendered objects fit together
(names, labels, selectors, ports, probes, volumes) and fit the binaries' settings."""

from __future__ import annotations

import base64
import functools
import json
import re
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import helm_python as helm
import jsonschema
import pytest
import referencing

import _chart
from _chart import REPO, CHART, Rendered, render, single, split_args


# ---------------------------------------------------------------------------------------
# Helm's lint and render


@pytest.mark.parametrize("values_name", ["defaults", "production"])
def test_helm_lint_is_clean(values_name):
    values = {} if values_name == "defaults" else _chart.values_file(
        _chart.EXAMPLES / "values-production.yaml"
    )
    for kube_version in ("v1.27.0", None):
        report = helm.lint(str(CHART), values, strict=True, kube_version=kube_version,
                           namespace="quiver")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], json.dumps(report, indent=1)
        assert report["total_charts_linted"] == 1


def test_every_template_renders_something_or_is_switched_off(default_render):
    kinds = {d["kind"] for d in default_render.docs}
    assert kinds == {
        "ServiceAccount", "Secret", "ConfigMap", "Role",
        "RoleBinding", "Service", "Deployment", "StatefulSet", "PodDisruptionBudget",
    }
    assert render({"router": {"ingress": {"enabled": True}}}).of_kind("Ingress")


def test_objects_sit_in_the_release_namespace(rendered: Rendered):
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for d in rendered.docs:
        if d["kind"] in cluster_scoped:
            assert "namespace" not in d["metadata"]
        else:
            assert d["metadata"]["namespace"] == rendered.namespace, d["metadata"]["name"]


def test_names_are_valid_and_carry_the_release(rendered: Rendered):
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for d in rendered.docs:
        name = d["metadata"]["name"]
        assert dns_label.match(name) and len(name) <= 63, name
        assert name.startswith(rendered.release), name
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == rendered.release
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "quiver"


def test_long_release_names_stay_within_kubernetes_limits():
    r = render({}, release="a-very-long-release-name-for-the-quiver-vector-database-x"[:53])
    sts = r.of_kind("StatefulSet")[0]
    # the StatefulSet's pods carry labels with <sts>-<ordinal> and <sts>-<revision hash>
    assert len(f"{sts['metadata']['name']}-0123456789") <= 63
    for d in r.docs:
        assert len(d["metadata"]["name"]) <= 63


# ---------------------------------------------------------------------------------------
# Kubernetes' schemas (strict: unknown fields are errors)

KUBE_VERSIONS = ("1.27.0", "1.37.0")


@functools.lru_cache(maxsize=None)
def _kube_registry(version: str) -> tuple[Path, referencing.Registry]:
    import kubernetes_validate

    base = resources.files(kubernetes_validate) / "kubernetes-json-schema" / f"v{version}-local-strict"
    definitions = json.loads((base / "_definitions.json").read_text())
    registry = referencing.Registry().with_resource(
        "_definitions.json", referencing.Resource.from_contents(definitions)
    )
    return base, registry


def kube_validate(obj: dict, version: str) -> None:
    base, registry = _kube_registry(version)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    schema_file = base / f"{obj['kind'].lower()}-{group_version}.json"
    assert schema_file.is_file(), f"no schema for {obj['apiVersion']} {obj['kind']}"
    schema = json.loads(schema_file.read_text())
    jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_objects_are_valid_kubernetes_objects(rendered: Rendered, kube_version):
    for d in rendered.docs:
        try:
            kube_validate(d, kube_version)
        except jsonschema.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            pytest.fail(f"{d['kind']} {d['metadata']['name']}: {path}: {e.message}")


def test_the_chart_crds_are_valid_kubernetes_objects():
    for crd in _chart.chart().crds:
        for doc in _chart.load_all(crd["data"]):
            kube_validate(doc, "1.27.0")


# ---------------------------------------------------------------------------------------
# CRDs


def test_chart_crds_are_the_generated_ones():
    generated = {p.name: p.read_bytes() for p in sorted((REPO / "crds").glob("*.yaml"))}
    in_chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert generated, "crds/ holds no CRD"
    assert in_chart == generated, (
        "charts/quiver/crds/ differs from crds/ (generated by `quiver-operator crd`): "
        "cp crds/*.yaml charts/quiver/crds/"
    )
    # and Helm loads them as CRDs (installed before the templates, never templated)
    assert sorted(c["filename"] for c in _chart.chart().crds) == [
        f"quiver/crds/{n}" for n in sorted(generated)
    ]


# ---------------------------------------------------------------------------------------
# Labels, selectors, Services, PodDisruptionBudgets


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_workload_selectors_match_their_pods_and_no_other(rendered: Rendered):
    workloads = rendered.workloads()
    assert {w["kind"] for w in workloads} == {"Deployment", "StatefulSet"}
    for w in workloads:
        selector = w["spec"]["selector"]["matchLabels"]
        assert set(selector) == {
            "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
        }
        assert _matches(selector, w["spec"]["template"]["metadata"]["labels"])
        # selector labels must not carry what changes on upgrade (selectors are immutable)
        assert "app.kubernetes.io/version" not in selector and "helm.sh/chart" not in selector
        for other in workloads:
            if other is not w:
                assert not _matches(selector, other["spec"]["template"]["metadata"]["labels"])


def _pods_selected(rendered: Rendered, selector: dict) -> list[dict]:
    return [w for w in rendered.workloads()
            if _matches(selector, w["spec"]["template"]["metadata"]["labels"])]


def test_services_select_one_workload_and_target_its_named_ports(rendered: Rendered):
    services = rendered.of_kind("Service")
    assert len(services) == 2
    for svc in services:
        selected = _pods_selected(rendered, svc["spec"]["selector"])
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {len(selected)} workloads"
        container_ports = {
            p["name"]: p["containerPort"]
            for c in selected[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in container_ports, (svc["metadata"]["name"], port)


def test_pdbs_select_one_workload(rendered: Rendered):
    pdbs = rendered.of_kind("PodDisruptionBudget")
    enabled = [c for c in ("router", "tenant") if rendered.values[c]["pdb"]["enabled"]]
    assert len(pdbs) == len(enabled)
    for pdb in pdbs:
        selected = _pods_selected(rendered, pdb["spec"]["selector"]["matchLabels"])
        assert len(selected) == 1
        assert pdb["spec"]["maxUnavailable"] >= 1, "a budget of 0 blocks every node drain"


def test_router_service_and_ingress(rendered: Rendered):
    _, router = rendered.container_running("quiver-router")
    router_args = split_args(router["args"], _chart.cli("quiver-router").flags)
    port = int(single(router_args, "--port"))
    assert {p["name"]: p["containerPort"] for p in router["ports"]} == {"http": port}
    (svc,) = [s for s in rendered.of_kind("Service") if s["spec"].get("clusterIP") != "None"]
    assert _pods_selected(rendered, svc["spec"]["selector"])[0]["spec"]["template"]["spec"][
        "containers"] == [router]
    assert svc["spec"]["ports"] == [{
        "name": "http", "port": rendered.values["router"]["service"]["port"],
        "targetPort": "http", "protocol": "TCP",
    }]
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == svc["metadata"]["name"]
                assert backend["port"] == {"name": "http"}


# ---------------------------------------------------------------------------------------
# Containers: binaries, ports, probes


def test_every_container_runs_one_of_the_binaries(rendered: Rendered):
    commands = sorted(c["command"][0] for _, c in rendered.containers())
    assert commands == sorted(_chart.BINARIES)
    for _, c in rendered.containers():
        assert c["command"] == c["command"][:1], "arguments belong in args"
        assert c["image"] == rendered.values["image"]["repository"] + ":" + (
            rendered.values["image"]["tag"] or _chart.chart().metadata["appVersion"]
        )


def _probes(container: dict) -> dict[str, dict]:
    return {k: container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container}


# What each binary serves (checked against the running binaries in test_binaries.py).
PROBE_PATHS = {
    "quiver-tenant-server": {"readinessProbe": "/api/v1/heartbeat",
                             "livenessProbe": "/api/v1/heartbeat",
                             "startupProbe": "/api/v1/heartbeat"},
    "quiver-router": {"readinessProbe": "/readyz", "livenessProbe": "/healthz"},
    "quiver-operator": {"readinessProbe": "/readyz", "livenessProbe": "/healthz"},
}


def test_probes_hit_the_binaries_health_endpoints_on_their_ports(rendered: Rendered):
    for _, c in rendered.containers():
        binary = c["command"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        probes = _probes(c)
        assert {k: v["httpGet"]["path"] for k, v in probes.items()} == PROBE_PATHS[binary]
        for kind, probe in probes.items():
            assert probe["httpGet"]["port"] in ports, f"{binary} {kind} names an unknown port"
            assert probe.get("timeoutSeconds", 1) < probe.get("periodSeconds", 10)
        # the port the binary listens on is the one the probes and Services use
        accepted = (_chart.cli("quiver-operator", "run") if binary == "quiver-operator"
                    else _chart.cli(binary)).flags
        args = split_args(c["args"][1:] if binary == "quiver-operator" else c["args"], accepted)
        listen = int(single(args, "--metrics-port" if binary == "quiver-operator" else "--port"))
        assert list(ports.values()) == [listen], f"{binary}: ports {ports}, listens on {listen}"


def test_prometheus_annotations_point_at_the_metrics_port(rendered: Rendered):
    for w, c in rendered.containers():
        annotations = w["spec"]["template"]["metadata"].get("annotations", {})
        if not rendered.values["metrics"]["podAnnotations"]:
            assert "prometheus.io/scrape" not in annotations
            continue
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) in [p["containerPort"] for p in c["ports"]]


def test_pods_run_as_the_image_user_without_privileges(rendered: Rendered):
    dockerfile = (REPO / "Dockerfile").read_text()
    uid = int(re.search(r"^USER (\d+)", dockerfile, re.M).group(1))
    for w, c in rendered.containers():
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def _quantity_mib(q: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 ** 2}
    m = re.match(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)?$", str(q))
    assert m, f"unexpected quantity {q}"
    return float(m.group(1)) * units.get(m.group(2) or "", 1 / (1024 * 1024))


def test_tenant_memory_budgets_fit_in_its_memory_limit(rendered: Rendered):
    _, c = rendered.container_running("quiver-tenant-server")
    args = split_args(c["args"], _chart.cli("quiver-tenant-server").flags)
    budget = sum(int(single(args, f)) for f in ("--max-memory-mb", "--block-cache-mb", "--write-buffer-mb"))
    limit = _quantity_mib(c["resources"]["limits"]["memory"])
    assert budget <= 0.85 * limit, f"budgets of {budget} MiB leave too little of {limit} MiB"


# ---------------------------------------------------------------------------------------
# The tenant StatefulSet and its storage


def test_the_workspace_volume_is_mounted_where_the_server_keeps_its_workspace(rendered: Rendered):
    sts = rendered.of_kind("StatefulSet")[0]
    _, c = rendered.container_running("quiver-tenant-server")
    args = split_args(c["args"], _chart.cli("quiver-tenant-server").flags)
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    # the flag wins over WORKSPACE_DIR; without the flag the variable (or the image's) counts
    workspace = args.get("--workspace", [env.get("WORKSPACE_DIR")])[0]
    assert workspace and workspace.startswith("/"), "the workspace must be an absolute path"
    claims = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts.get(workspace) in claims, f"{workspace} is not on a claim: {mounts}"
    claim = claims[mounts[workspace]]["spec"]
    assert claim["resources"]["requests"]["storage"] == rendered.values["tenant"]["storage"]["size"]
    assert claim["accessModes"] == rendered.values["tenant"]["storage"]["accessModes"]
    storage_class = rendered.values["tenant"]["storage"]["storageClassName"]
    assert claim.get("storageClassName", "") == storage_class
    # nothing else is mounted over or under it, and the root filesystem is read-only
    assert not [p for p in mounts if p != workspace and (p.startswith(workspace + "/") or workspace.startswith(p + "/"))]
    # the image's default workspace is the same directory
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(rf"^ENV WORKSPACE_DIR={re.escape(workspace)}$", dockerfile, re.M)


def test_statefulset_shape(rendered: Rendered):
    sts = rendered.of_kind("StatefulSet")[0]
    spec = sts["spec"]
    headless = rendered.get("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert _pods_selected(rendered, headless["spec"]["selector"]) == [sts]
    # offline there is no StatefulSet to keep the replicas of: a first install starts at min
    assert spec["replicas"] == rendered.values["shards"]["min"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == rendered.values["tenant"]["persistentVolumeClaimRetentionPolicy"]
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False, "tenant servers never call the API"
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


# ---------------------------------------------------------------------------------------
# What the operator and the router are told matches what the chart creates


def _operator_args(rendered: Rendered) -> dict:
    _, c = rendered.container_running("quiver-operator")
    assert c["args"][0] == "run"
    return split_args(c["args"][1:], _chart.cli("quiver-operator", "run").flags)


def test_operator_flags_name_the_charts_objects(rendered: Rendered):
    args = _operator_args(rendered)
    ns = rendered.namespace
    assert single(args, "--namespace") == ns
    sts = rendered.get("StatefulSet", single(args, "--tenant-statefulset"))
    svc = rendered.get("Service", single(args, "--tenant-service"))
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    tenant_port = int(single(args, "--tenant-port"))
    assert [p["port"] for p in svc["spec"]["ports"]] == [tenant_port]
    _, tenant = rendered.container_running("quiver-tenant-server")
    tenant_args = split_args(tenant["args"], _chart.cli("quiver-tenant-server").flags)
    assert int(single(tenant_args, "--port")) == tenant_port
    rendered.get("ConfigMap", single(args, "--placement-configmap"))
    # status.endpoint: the router Service (unless router.endpoint names a public URL)
    endpoint = urlparse(single(args, "--router-endpoint"))
    if rendered.values["router"]["endpoint"]:
        assert single(args, "--router-endpoint") == rendered.values["router"]["endpoint"]
    else:
        host = endpoint.hostname.split(".")
        assert host[1:] == [ns, "svc"]
        router_svc = rendered.get("Service", host[0])
        assert endpoint.port == router_svc["spec"]["ports"][0]["port"]
        assert _pods_selected(rendered, router_svc["spec"]["selector"])[0]["spec"]["template"]["spec"]["containers"][0]["command"] == ["quiver-router"]
    # the scaling policy is the values'
    shards = rendered.values["shards"]
    assert int(single(args, "--min-shards")) == shards["min"]
    assert int(single(args, "--max-shards")) == shards["max"]
    assert int(single(args, "--target-projects-per-shard")) == shards["targetProjectsPerShard"]
    assert int(single(args, "--target-bytes-per-shard")) == shards["targetBytesPerShard"]
    assert float(single(args, "--scale-down-below")) == shards["scaleDownBelow"]
    assert ("--adopt-unmanaged" in args) == rendered.values["operator"]["adoptUnmanaged"]


def test_router_watches_the_placement_configmap(rendered: Rendered):
    _, c = rendered.container_running("quiver-router")
    args = split_args(c["args"], _chart.cli("quiver-router").flags)
    assert single(args, "--placement-configmap") == single(_operator_args(rendered), "--placement-configmap")
    assert single(args, "--placement-namespace") == rendered.namespace
    assert "--shard" not in args and "--placement-file" not in args


def test_initial_placement_lists_shards_min_at_the_operators_urls(rendered: Rendered):
    args = _operator_args(rendered)
    cm = rendered.get("ConfigMap", single(args, "--placement-configmap"))
    assert set(cm["data"]) == {"placement.json"}
    assert cm["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", (
        "an upgrade or uninstall must not take the operator's table away"
    )
    table = json.loads(cm["data"]["placement.json"])
    n = rendered.values["shards"]["min"]
    sts, svc, ns, port = (single(args, "--tenant-statefulset"), single(args, "--tenant-service"),
                          rendered.namespace, int(single(args, "--tenant-port")))
    # operator/src/config.rs shard_url: http://{statefulset}-{i}.{service}.{namespace}.svc:{port}
    assert table == {
        "epoch": 1,
        "shardCount": n,
        "shards": [f"http://{sts}-{i}.{svc}.{ns}.svc:{port}" for i in range(n)],
    }
    assert rendered.get("StatefulSet", sts)["spec"]["replicas"] == n


def test_placement_template_is_guarded_by_a_lookup():
    template = (CHART / "templates" / "placement-configmap.yaml").read_text()
    assert re.search(r'lookup "v1" "ConfigMap" \.Release\.Namespace', template)


# ---------------------------------------------------------------------------------------
# Environment: admin token, tracing, logs


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_admin_token_reaches_the_tenant_servers_and_the_operator_only(rendered: Rendered):
    auth = rendered.values["auth"]["adminToken"]
    refs = {}
    for _, c in rendered.containers():
        env = _env(c)
        if c["command"][0] == "quiver-router" or not auth["enabled"]:
            assert "QUIVER_ADMIN_TOKEN" not in env
            continue
        # a Secret reference, never a literal, and never on the command line
        refs[c["command"][0]] = env["QUIVER_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert not any("token" in a for a in c["args"])
    secrets = rendered.of_kind("Secret")
    if not auth["enabled"]:
        assert refs == {} and secrets == []
        return
    assert set(refs) == {"quiver-tenant-server", "quiver-operator"}
    assert refs["quiver-tenant-server"] == refs["quiver-operator"]
    ref = refs["quiver-operator"]
    assert ref["key"] == auth["secretKey"]
    if auth["existingSecret"]:
        assert secrets == [] and ref["name"] == auth["existingSecret"]
    else:
        (secret,) = secrets
        assert ref["name"] == secret["metadata"]["name"]
        token = base64.b64decode(secret["data"][auth["secretKey"]]).decode()
        assert len(token) >= 32 and re.fullmatch(r"[A-Za-z0-9]+", token)


def test_a_given_admin_token_is_used_as_is():
    r = render({"auth": {"adminToken": {"value": "s3cr3t-token"}}})
    (secret,) = r.of_kind("Secret")
    assert base64.b64decode(secret["data"]["admin-token"]) == b"s3cr3t-token"


def test_tracing_environment(rendered: Rendered):
    tracing = rendered.values["tracing"]
    for _, c in rendered.containers():
        env = _env(c)
        assert env["RUST_LOG"]["value"] == rendered.values["logging"]["level"]
        if not tracing["endpoint"]:
            assert not [n for n in env if n.startswith("OTEL_")], "tracing must stay off"
            continue
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == tracing["endpoint"]
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == tracing["protocol"]
        assert env["OTEL_TRACES_SAMPLER"]["value"] == tracing["sampler"]
        assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == str(tracing["samplerArg"])
        attributes = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        assert attributes.startswith("k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME)")
        if tracing["resourceAttributes"]:
            assert attributes.endswith("," + tracing["resourceAttributes"])
        # $(VAR) expands only variables defined before it
        names = list(env)
        assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
        assert names.index("POD_NAMESPACE") < names.index("OTEL_RESOURCE_ATTRIBUTES")


def test_tracing_headers_come_from_a_secret():
    r = render({"tracing": {"endpoint": "https://api.honeycomb.io",
                            "headersSecret": {"name": "honeycomb", "key": "otlp-headers"}}})
    for _, c in r.containers():
        assert _env(c)["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"] == {
            "name": "honeycomb", "key": "otlp-headers"}


def test_cors_origins_reach_the_tenant_servers_and_the_router(rendered: Rendered):
    for binary in ("quiver-tenant-server", "quiver-router"):
        _, c = rendered.container_running(binary)
        args = split_args(c["args"], _chart.cli(binary).flags)
        assert json.loads(single(args, "--cors-origins")) == rendered.values["cors"]["origins"]


def test_env_settings_are_ones_the_binaries_read(rendered: Rendered):
    """Variables that look like a binary's settings must be ones it knows (a misspelt one
    would be ignored silently)."""
    for _, c in rendered.containers():
        binary = c["command"][0]
        known = (_chart.cli("quiver-operator", "run") if binary == "quiver-operator"
                 else _chart.cli(binary)).env
        for name in _env(c):
            if re.match(r"^(QUIVER_|CHROMA_|WORKSPACE_DIR$|KNOWLEDGE_GRAPH_SUBDIR$|CORS_ORIGINS$|ALLOW_RESET$)", name):
                assert name in known, f"{binary} does not read {name}"


# ---------------------------------------------------------------------------------------
# values.schema.json


BAD_VALUES = [
    {"shards": {"min": 0}},
    {"shards": {"max": "many"}},
    {"shards": {"scaleDownBelow": 0}},
    {"shards": {"scaleDownBelow": 1.5}},
    {"shards": {"targetBytesPerShard": -1}},
    {"shards": {"moveBatchSize": 0}},
    {"image": {"repository": ""}},
    {"image": {"pullPolicy": "Sometimes"}},
    {"image": {"tag": "has space"}},
    {"logging": {"format": "xml"}},
    {"tenant": {"storage": {"size": "lots"}}},
    {"tenant": {"storage": {"size": 10}}},
    {"tenant": {"storage": {"accessModes": []}}},
    {"tenant": {"port": 70000}},
    {"tenant": {"config": {"maxOpenProjects": 0}}},
    {"tenant": {"config": {"allowReset": "yes"}}},
    {"tenant": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Keep"}}},
    {"tenant": {"resources": {"limits": {"memory": "a lot"}}}},
    {"router": {"replicas": -1}},
    {"router": {"service": {"type": "External"}}},
    {"router": {"ingress": {"hosts": [{"host": "a", "paths": [{"path": "x", "pathType": "Prefix"}]}]}}},
    {"router": {"endpoint": "vectors.example.com"}},
    {"router": {"config": {"connectTimeoutMs": 0}}},
    {"operator": {"metricsPort": 0}},
    {"tracing": {"endpoint": "collector:4318"}},
    {"tracing": {"protocol": "grpc"}},
    {"tracing": {"sampler": "sometimes"}},
    {"tracing": {"samplerArg": "2"}},
    {"tracing": {"samplerArg": 1.5}},
    {"auth": {"adminToken": {"enabled": "yes"}}},
    {"auth": {"adminToken": {"value": "has space"}}},
    {"auth": {"adminToken": {"existingSecret": "Not_A_Name"}}},
    {"cors": {"origins": []}},
    {"cors": {"origins": ["example.com"]}},
    {"unknownTopLevel": True},
    {"tenant": {"config": {"maxOpenProject": 10}}},
    {"tenant": {"extraEnv": [{"value": "no name"}]}},
    {"placement": {"create": "no"}},
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: json.dumps(v, separators=(",", ":")))
def test_schema_rejects_bad_values(bad):
    with pytest.raises(helm.HelmValuesError):
        _chart.chart().validate_schema(bad)
    # and so does an install
    with pytest.raises(helm.HelmError):
        render(bad)


@pytest.mark.parametrize("good", [
    {},
    {"tracing": {"samplerArg": 0.25, "endpoint": "https://otel.example.com:4318"}},
    {"tenant": {"storage": {"size": "1.5Ti", "storageClassName": "gp3"}}},
    {"router": {"pdb": {"maxUnavailable": "50%"}, "service": {"type": "LoadBalancer"}}},
    {"cors": {"origins": ["https://app.example.com", "http://localhost:3000"]}},
    {"image": {"tag": "sha256:" + "a" * 64}},
    {"shards": {"min": 4, "max": 4}},
])
def test_schema_accepts_good_values(good):
    _chart.chart().validate_schema(good)
    render(good)


def test_min_shards_above_max_fails_the_install():
    with pytest.raises(helm.HelmError, match=r"shards.min \(5\) must not be above shards.max \(2\)"):
        render({"shards": {"min": 5, "max": 2}})


def test_the_defaults_and_the_example_satisfy_the_schema():
    _chart.chart().validate_schema(_chart.chart().values)
    _chart.chart().validate_schema(_chart.values_file(_chart.EXAMPLES / "values-production.yaml"))
    # every default value is described by the schema (no undocumented knob)
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(values, node, path):
        for key, value in values.items():
            props = node.get("properties", {})
            assert key in props, f"{path}{key} is not in values.schema.json"
            if isinstance(value, dict) and "properties" in props[key]:
                walk(value, props[key], f"{path}{key}.")

    walk(_chart.chart().values, schema, "")


# ---------------------------------------------------------------------------------------
# NOTES.txt


def test_notes_tell_the_next_steps(rendered: Rendered):
    notes = rendered.notes
    router_svc = [s for s in rendered.of_kind("Service") if s["spec"].get("clusterIP") != "None"][0]
    name, port = router_svc["metadata"]["name"], router_svc["spec"]["ports"][0]["port"]
    assert f"kubectl -n {rendered.namespace} port-forward service/{name} 7100:{port}" in notes
    assert "kind: Project" in notes and "apiVersion: quiver.dev/v1alpha1" in notes
    assert f"kubectl -n {rendered.namespace} get projects" in notes
    assert f"Inside the cluster the router is http://{name}.{rendered.namespace}.svc:{port}." in notes
    assert "curl -X POST http://localhost:7100/api/v1/my-project/collections" in notes
    assert 'chromadb.HttpClient(host="localhost", port=7100, tenant="my-project")' in notes
    # the Project in the notes is a valid Project
    block = re.search(r"cat <<'YAML'.*?\n(.*?)\n\s*YAML\n", notes, re.S).group(1)
    import textwrap
    import test_examples
    test_examples.assert_valid_project(_chart.load_all(textwrap.dedent(block))[0])


def test_placement_configmap_can_be_left_to_the_operator():
    r = render({"placement": {"create": False}})
    assert r.of_kind("ConfigMap") == []
    # the router still watches it and the operator still may create it
    _, c = r.container_running("quiver-router")
    args = split_args(c["args"], _chart.cli("quiver-router").flags)
    assert single(args, "--placement-configmap") == single(_operator_args(r), "--placement-configmap")
    role = [x for x in r.of_kind("Role") if "operator" in x["metadata"]["name"]][0]
    assert {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]} in role["rules"]
