"""examples/: the Project manifests validate against the CRD's OpenAPI schema (as the API
server would check them, unknown fields refused), and the values file installs."""

from __future__ import annotations

import copy
import functools
import re

import jsonschema
import pytest

import _chart
from _chart import EXAMPLES, REPO

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@functools.lru_cache(maxsize=1)
def crd() -> dict:
    (doc,) = _chart.load_all((REPO / "crds" / "project.yaml").read_text())
    return doc


def _strict(schema: dict) -> dict:
    """The OpenAPI v3 schema as JSON Schema: `nullable` allows null, and objects with
    listed properties refuse others (kubectl's strict field validation)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = node["enum"] + [None]
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for key in ("properties",):
            for child in node.get(key, {}).values():
                walk(child)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    return schema


def _version_schema() -> tuple[str, dict]:
    spec = crd()["spec"]
    (version,) = [v for v in spec["versions"] if v["served"] and v["storage"]]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # metadata is the API server's business; check the parts a manifest sets
    schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN.pattern},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return version["name"], schema


def assert_valid_project(doc: dict) -> None:
    _, schema = _version_schema()
    jsonschema.Draft7Validator(schema).validate(doc)


def example_projects() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for i, doc in enumerate(_chart.load_all(path.read_text())):
            if doc.get("kind") == "Project":
                found.append((f"{path.name}#{i}", doc))
    return found


EXAMPLE_PROJECTS = example_projects()


def test_examples_cover_both_deletion_policies_and_quotas():
    names = {n.split("#")[0] for n, _ in EXAMPLE_PROJECTS}
    assert "project.yaml" in names, "README and NOTES point at examples/project.yaml"
    policies = {d["spec"].get("deletionPolicy", "Retain") for _, d in EXAMPLE_PROJECTS}
    assert policies == {"Retain", "Delete"}
    quotas = set()
    for _, d in EXAMPLE_PROJECTS:
        quotas |= set(d["spec"].get("quotas", {}))
    assert quotas == {"maxCollections", "maxRecords", "maxBytes"}


@pytest.mark.parametrize("name,doc", EXAMPLE_PROJECTS, ids=[n for n, _ in EXAMPLE_PROJECTS])
def test_example_project_is_valid(name, doc):
    assert_valid_project(doc)
    # the project's name on the shards follows the tenant server's rule
    project = doc["spec"].get("projectName") or doc["metadata"]["name"]
    assert re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?", project) and ".." not in project
    assert 3 <= len(project) <= 512


@pytest.mark.parametrize("bad", [
    {"spec": {"deletionPolicy": "Remove"}},
    {"spec": {"quotas": {"maxRecords": 0}}},
    {"spec": {"quotas": {"maxRecords": "many"}}},
    {"spec": {"quotas": {"maxRows": 10}}},
    {"spec": {"projectName": "-bad-"}},
    {"spec": {"projectName": "ab"}},
    {"spec": {"unknown": 1}},
    {"metadata": {"name": "Not_A_Name"}},
    {"apiVersion": "quiver.dev/v1"},
])
def test_the_crd_schema_rejects_bad_projects(bad):
    (_, doc), = [(n, d) for n, d in EXAMPLE_PROJECTS if n == "project.yaml#0"]
    doc = copy.deepcopy(doc)
    for key, value in bad.items():
        if isinstance(value, dict):
            doc.setdefault(key, {}).update(value)
        else:
            doc[key] = value
    with pytest.raises(jsonschema.ValidationError):
        assert_valid_project(doc)


def test_production_values_install():
    values = _chart.values_file(EXAMPLES / "values-production.yaml")
    r = _chart.render(values, namespace="quiver-prod")
    assert r.of_kind("Ingress"), "the production example exposes the router"
    (sts,) = r.of_kind("StatefulSet")
    assert sts["spec"]["replicas"] == values["shards"]["min"] >= 3
    assert not r.of_kind("Secret"), "the production example uses an existing Secret"
