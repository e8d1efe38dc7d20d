"""RBAC: the chart grants the operator and the router exactly the Kubernetes API calls
their code makes, read from operator/src and router/src (test code left out).

Every call on a kube `Api` (and the kube-runtime helpers that make calls: Controller,
watcher, finalizer, the event Recorder) is found in the source and turned into the
(apiGroup, resource, verb) it needs; the rendered Role must grant that set, no more.
A call this scan cannot place fails the test, naming the line, so that a new call
cannot slip past the chart."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import _chart
from _chart import REPO, Rendered, single, split_args

# kube `Api<K>` methods -> (subresource, verb)
API_METHODS = {
    "get": ("", "get"),
    "get_opt": ("", "get"),
    "get_metadata": ("", "get"),
    "get_metadata_opt": ("", "get"),
    "list": ("", "list"),
    "list_metadata": ("", "list"),
    "watch": ("", "watch"),
    "watch_metadata": ("", "watch"),
    "create": ("", "create"),
    "replace": ("", "update"),
    "patch": ("", "patch"),
    "patch_metadata": ("", "patch"),
    "delete": ("", "delete"),
    "delete_collection": ("", "deletecollection"),
    "get_status": ("status", "get"),
    "patch_status": ("status", "patch"),
    "replace_status": ("status", "update"),
    "get_scale": ("scale", "get"),
    "patch_scale": ("scale", "patch"),
    "replace_scale": ("scale", "update"),
}
# kube methods whose name alone says they are API calls; the others (get, list, create,
# delete_collection, entry, ...) count on an Api receiver or with kube's parameter types
UNAMBIGUOUS = {"get_opt", "get_metadata_opt", "list_metadata", "watch_metadata",
               "patch_metadata", "get_status", "patch_status", "replace_status", "get_scale",
               "patch_scale", "replace_scale", "get_subresource", "create_subresource",
               "patch_subresource", "replace_subresource"}
OTHER_API_METHODS = {"entry", "evict", "exec", "attach", "portforward", "log_stream", "logs"}

# Rust type -> (apiGroup, plural)
KINDS = {
    "ConfigMap": ("", "configmaps"),
    "Secret": ("", "secrets"),
    "Pod": ("", "pods"),
    "Service": ("", "services"),
    "Endpoints": ("", "endpoints"),
    "Namespace": ("", "namespaces"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "StatefulSet": ("apps", "statefulsets"),
    "Deployment": ("apps", "deployments"),
    "Lease": ("coordination.k8s.io", "leases"),
    "Event": ("events.k8s.io", "events"),
    "Project": ("quiver.dev", "projects"),
}


# ---------------------------------------------------------------------------------------
# Reading Rust source without comments, string contents and test code


def strip_rust(text: str) -> str:
    """Comments and the contents of string literals become spaces (newlines are kept, so
    line numbers stay right)."""
    out = []
    i, n = 0, len(text)

    def blank(s: str) -> str:
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 10])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = m.group(1)
            end = text.find('"' + hashes, i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + blank(text[i + 2:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + blank(text[i + 2:j + 1]))
            i = j + 1
        elif c == "'":
            # a char literal ('x', '\n', '"'); a lifetime ('a) is left alone
            if text.startswith("\\", i + 1):
                j = text.find("'", i + 2)
                out.append("' '" + blank(text[i + 3:j + 1]))
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                out.append("' '")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_items(code: str) -> str:
    """Blanks every item marked #[cfg(test)] (a `mod tests { ... }`, a helper fn, ...)."""
    out = code
    for m in reversed(list(re.finditer(r"#\[cfg\(test\)\]", code))):
        start = m.start()
        brace = code.find("{", m.end())
        semi = code.find(";", m.end())
        if semi >= 0 and (brace < 0 or semi < brace):
            end = semi + 1
        else:
            depth, j = 0, brace
            while j < len(code):
                if code[j] == "{":
                    depth += 1
                elif code[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            end = j + 1
        out = out[:start] + re.sub(r"[^\n]", " ", out[start:end]) + out[end:]
    return out


@dataclass(frozen=True)
class Source:
    path: Path
    code: str  # without comments, string contents and test items
    root: Path = REPO

    def line(self, offset: int) -> int:
        return self.code.count("\n", 0, offset) + 1

    def where(self, offset: int) -> str:
        return f"{self.path.relative_to(self.root)}:{self.line(offset)}"


def crate_sources(crate: str, root: Path = REPO) -> list[Source]:
    sources = []
    for path in sorted((root / crate / "src").rglob("*.rs")):
        if path.name == "tests.rs" or path.name.endswith("_tests.rs"):
            continue  # test modules in their own files (`#[cfg(test)] mod tests;`)
        sources.append(Source(path, drop_test_items(strip_rust(path.read_text())), root))
    return sources


# ---------------------------------------------------------------------------------------
# The calls


Triple = tuple[str, str, str]  # (apiGroup, resource, verb)


def _kinds_in(src: Source) -> set[str]:
    return set(re.findall(r"\bApi\s*(?:::)?\s*<\s*(\w+)\s*>", src.code))


def _resolve_kind(src: Source, offset: int, what: str) -> str:
    kinds = _kinds_in(src)
    if len(kinds) != 1:
        pytest.fail(
            f"{src.where(offset)}: {what} on an Api of which kind? The file uses {sorted(kinds) or 'none'}; "
            "teach tests/chart/test_rbac.py this call"
        )
    (kind,) = kinds
    if kind not in KINDS:
        pytest.fail(f"{src.where(offset)}: unknown kind {kind}: add it to KINDS in tests/chart/test_rbac.py")
    return kind


def _receiver(code: str, dot: int) -> str:
    """The expression before `.method(`, roughly: identifiers, `.`, `()` and `::<>`."""
    j = dot
    depth = 0
    while j > 0:
        c = code[j - 1]
        if c in ")>":
            depth += 1
        elif c in "(<":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in "_.:" or c.isspace()):
            break
        j -= 1
    raw = re.sub(r"\s*(\.|::)\s*", r"\1", code[j:dot]).split()
    return raw[-1] if raw else ""


def required_permissions(crate: str, root: Path = REPO) -> tuple[set[Triple], list[str]]:
    """What the crate's code needs, and where each need comes from."""
    needs: set[Triple] = set()
    evidence: list[str] = []

    def need(kind: str, sub: str, verb: str, where: str, why: str):
        group, plural = KINDS[kind]
        triple = (group, plural + (f"/{sub}" if sub else ""), verb)
        needs.add(triple)
        evidence.append(f"{where}: {why} -> {triple}")

    for src in crate_sources(crate, root):
        code = src.code
        # method calls on an Api
        for m in re.finditer(r"\.\s*([a-z_]+)\s*(?:::\s*<[^>]*>\s*)?\(", code):
            method = m.group(1)
            if method not in API_METHODS and method not in UNAMBIGUOUS | OTHER_API_METHODS:
                continue
            receiver = _receiver(code, m.start())
            args = code[m.end():m.end() + 200]
            api_receiver = bool(re.search(r"(^|[.:])(api|\w+_api)$|projects_in_scope\(\)$|^Api::", receiver))
            kube_params = bool(re.match(r"[^;]*?&\s*(PostParams|PatchParams|ListParams|DeleteParams|WatchParams|GetParams)\b", args))
            if method not in UNAMBIGUOUS and not (api_receiver or kube_params):
                continue
            if method not in API_METHODS:
                pytest.fail(f"{src.where(m.start())}: .{method}() is not known to tests/chart/test_rbac.py")
            kind = _resolve_kind(src, m.start(), f".{method}()")
            sub, verb = API_METHODS[method]
            need(kind, sub, verb, src.where(m.start()), f"{receiver}.{method}()")
        # kube-runtime helpers that call the API themselves
        for m in re.finditer(r"\bController\s*::\s*new\s*\(|\bwatcher\s*(?:::\s*watcher\s*)?\(|\bmetadata_watcher\s*\(|\breflector\s*\(", code):
            kind = _resolve_kind(src, m.start(), m.group(0))
            for verb in ("list", "watch"):
                need(kind, "", verb, src.where(m.start()), m.group(0).strip())
        for m in re.finditer(r"\.\s*(owns|watches|owns_stream|watches_stream)\s*\(", code):
            pytest.fail(f"{src.where(m.start())}: .{m.group(1)}() watches another kind: teach tests/chart/test_rbac.py")
        for m in re.finditer(r"\bfinalizer\s*\(", code):
            kind = _resolve_kind(src, m.start(), "finalizer()")
            # kube-runtime's finalizer() adds and removes the finalizer with a JSON patch;
            # <kind>/finalizers is what the OwnerReferencesPermissionEnforcement admission
            # plugin asks of whoever sets finalizers or blocking owner references
            need(kind, "", "patch", src.where(m.start()), "finalizer() patch")
            need(kind, "finalizers", "update", src.where(m.start()), "finalizer()")
        for m in re.finditer(r"\bRecorder\s*::\s*new\s*\(", code):
            # kube-runtime's Recorder: events.k8s.io/v1 Events, created, then patched when
            # the same event repeats
            need("Event", "", "create", src.where(m.start()), "Recorder")
            need("Event", "", "patch", src.where(m.start()), "Recorder")
        raw_requests = r"\bclient\s*\.\s*(request|request_text|request_stream|request_status)\s*\("
        for m in re.finditer(raw_requests if re.search(r"\bkube::", code) else r"$^", code):
            pytest.fail(f"{src.where(m.start())}: a raw Kubernetes request: teach tests/chart/test_rbac.py")
    return needs, evidence


# ---------------------------------------------------------------------------------------
# What the chart grants


def _granted(rendered: Rendered, service_account: str) -> tuple[list[dict], list[dict]]:
    """(rules, roles) bound to the service account, failing on a ClusterRole binding."""
    roles = []
    for binding in rendered.of_kind("RoleBinding") + rendered.of_kind("ClusterRoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == service_account
               and s["namespace"] == rendered.namespace for s in binding["subjects"]):
            assert binding["kind"] == "RoleBinding", "no cluster-wide grant is needed"
            assert binding["roleRef"]["kind"] == "Role"
            roles.append(rendered.get("Role", binding["roleRef"]["name"]))
    rules = [r for role in roles for r in role["rules"]]
    return rules, roles


def _triples(rules: list[dict]) -> dict[Triple, set[str] | None]:
    """Granted (group, resource, verb) -> the resource names it is limited to (None: any)."""
    granted: dict[Triple, set[str] | None] = {}
    for rule in rules:
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    names = set(rule["resourceNames"]) if rule.get("resourceNames") else None
                    key = (group, resource, verb)
                    if key in granted:
                        before = granted[key]
                        granted[key] = None if before is None or names is None else before | names
                    else:
                        granted[key] = names
    return granted


def _service_account(rendered: Rendered, binary: str) -> str:
    workload, _ = rendered.container_running(binary)
    pod = workload["spec"]["template"]["spec"]
    assert pod.get("automountServiceAccountToken") is True
    sa = pod["serviceAccountName"]
    rendered.get("ServiceAccount", sa)
    return sa


@functools.lru_cache(maxsize=None)
def _required(crate: str) -> tuple[frozenset, tuple[str, ...]]:
    needs, evidence = required_permissions(crate)
    return frozenset(needs), tuple(evidence)


def test_the_scan_finds_the_operators_calls():
    """The scan itself: the calls every part of the operator is known to make are found,
    so an empty or broken scan cannot pass the comparison below by accident."""
    needs, evidence = _required("operator")
    text = "\n".join(evidence)
    for where, triple in [
        ("operator/src/leader.rs", ("coordination.k8s.io", "leases", "update")),
        ("operator/src/leader.rs", ("coordination.k8s.io", "leases", "create")),
        ("operator/src/placement_store/configmap.rs", ("", "configmaps", "get")),
        ("operator/src/shards/observe.rs", ("apps", "statefulsets/scale", "patch")),
        ("operator/src/reconcile/mod.rs", ("quiver.dev", "projects/status", "patch")),
        ("operator/src/reconcile/mod.rs", ("quiver.dev", "projects", "watch")),
        ("operator/src/reconcile/mod.rs", ("events.k8s.io", "events", "create")),
    ]:
        assert re.search(rf"^{re.escape(where)}:\d+: .* -> {re.escape(repr(triple))}$", text, re.M), (
            f"{triple} from {where} not found:\n{text}"
        )


def test_operator_rbac_is_exactly_what_its_code_calls(rendered: Rendered):
    needs, evidence = _required("operator")
    rules, roles = _granted(rendered, _service_account(rendered, "quiver-operator"))
    assert len(roles) == 1
    granted = _triples(rules)
    missing = sorted(needs - set(granted))
    extra = sorted(set(granted) - needs)
    assert not missing and not extra, (
        f"missing: {missing}\nextra: {extra}\nthe code's calls:\n" + "\n".join(evidence)
    )


def test_operator_reconciles_projects_of_its_own_namespace_only():
    """The Role (not a ClusterRole) holds only while the operator's Project API and its
    reconciler's scope are its own namespace."""
    main = next(s for s in crate_sources("operator") if s.path.name == "main.rs")
    assert re.search(r"Api\s*::\s*<\s*Project\s*>\s*::\s*namespaced\s*\(", main.code), (
        "the operator no longer watches Projects in its own namespace: the chart's RBAC "
        "(a Role) must follow"
    )
    assert not re.search(r"Api\s*::\s*<\s*Project\s*>\s*::\s*all\s*\(", main.code)
    assert re.search(r"watch_namespace\s*:\s*Some\s*\(", main.code)


def test_operator_rbac_is_limited_to_the_objects_it_is_told_about(rendered: Rendered):
    _, c = rendered.container_running("quiver-operator")
    args = split_args(c["args"][1:], _chart.cli("quiver-operator", "run").flags)
    names = {
        "statefulsets": single(args, "--tenant-statefulset"),
        "statefulsets/scale": single(args, "--tenant-statefulset"),
        "configmaps": single(args, "--placement-configmap"),
        "leases": single(args, "--lease-name"),
    }
    rules, _ = _granted(rendered, _service_account(rendered, "quiver-operator"))
    for (group, resource, verb), limited in _triples(rules).items():
        if resource in names and verb != "create":  # a create cannot be limited by name
            assert limited == {names[resource]}, (group, resource, verb, limited)
        elif resource in names:
            assert limited is None
    # the objects the names point at are the chart's
    rendered.get("StatefulSet", names["statefulsets"])
    rendered.get("ConfigMap", names["configmaps"])


def test_router_rbac_is_exactly_what_its_code_calls(rendered: Rendered):
    needs, evidence = _required("router")
    assert needs == {("", "configmaps", "list"), ("", "configmaps", "watch")}, evidence
    rules, roles = _granted(rendered, _service_account(rendered, "quiver-router"))
    assert len(roles) == 1
    granted = _triples(rules)
    assert set(granted) == needs
    _, c = rendered.container_running("quiver-router")
    args = split_args(c["args"], _chart.cli("quiver-router").flags)
    # the router's watch names the ConfigMap in a metadata.name field selector, which is
    # what lets resourceNames limit a list and a watch
    assert any(re.search(r"metadata\.name=", (s.path.read_text()))
               for s in crate_sources("router") if "placement" in str(s.path))
    for limited in granted.values():
        assert limited == {single(args, "--placement-configmap")}


def test_the_tenant_servers_get_no_kubernetes_credentials(rendered: Rendered):
    workload, _ = rendered.container_running("quiver-tenant-server")
    assert workload["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    needs, _ = _required("tenant-server")
    assert needs == set()


def test_strip_rust_keeps_code_and_drops_the_rest():
    code = strip_rust('let a = "api.create(&PostParams)"; // api.delete(&DeleteParams)\n'
                      "/* api.patch(&PatchParams) */ let c = '\"'; fn f<'a>(x: &'a str) {}\n"
                      'let r = r#"api.get_opt("x")"#;\nself.api.get_opt(&name)')
    assert "create" not in code and "delete" not in code and "patch" not in code
    assert code.count("get_opt") == 1 and "fn f<'a>(x: &'a str)" in code
    assert code.count("\n") == 3
    dropped = drop_test_items("fn a() {}\n#[cfg(test)]\nmod tests {\n fn b() { c() }\n}\nfn d() {}")
    assert "fn a" in dropped and "fn d" in dropped and "fn b" not in dropped


def test_the_scan_sees_a_new_call(tmp_path):
    """A call added anywhere in the code changes what the chart must grant."""
    src = tmp_path / "op" / "src"
    src.mkdir(parents=True)
    (src / "secrets.rs").write_text(
        "use k8s_openapi::api::core::v1::Secret;\n"
        "struct S { api: Api<Secret> }\n"
        "impl S {\n"
        "    async fn go(&self, name: &str) {\n"
        "        // self.api.create(&PostParams::default(), &x) in a comment is no call\n"
        "        self\n            .api\n            .delete(name, &DeleteParams::default())\n            .await;\n"
        "        let n = self.api.list(&lp).await;\n"
        "    }\n"
        "}\n"
        "#[cfg(test)]\nmod tests {\n    fn t(api: Api<Secret>) { api.create(&PostParams::default(), &s); }\n}\n"
    )
    needs, evidence = required_permissions("op", tmp_path)
    assert needs == {("", "secrets", "delete"), ("", "secrets", "list")}, evidence
    (src / "mixed.rs").write_text("fn f(a: Api<Pod>, b: Api<Secret>) { a.get_opt(\"x\"); }\n")
    with pytest.raises(pytest.fail.Exception, match="of which kind"):
        required_permissions("op", tmp_path)
