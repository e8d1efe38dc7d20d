//! `crds/` holds exactly what the code generates: a changed type without a regenerated
//! manifest fails here. Regenerate with
//! `cargo run --release -p quiver-operator -- crd > crds/project.yaml`.

use std::path::Path;

#[test]
fn crd_manifest_matches_the_code() {
    let generated = quiver_operator::crd::crd_yaml().expect("CRD serializes");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/project.yaml");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        committed == generated,
        "{} is out of date: regenerate it with `cargo run --release -p quiver-operator -- crd > crds/project.yaml`",
        path.display()
    );
}

#[test]
fn crd_has_the_names_columns_and_schema_kubectl_needs() {
    use kube::CustomResourceExt;
    let crd = quiver_operator::crd::Project::crd();
    assert_eq!(crd.spec.group, "quiver.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "Project");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["qp".to_string()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let columns: Vec<&str> = v
        .additional_printer_columns
        .as_ref()
        .map(|c| c.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(columns, ["Phase", "Shard", "Records", "Age"]);
    let schema = serde_json::to_value(v.schema.as_ref().unwrap()).unwrap();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(
        spec["deletionPolicy"]["enum"],
        serde_json::json!(["Retain", "Delete"])
    );
    assert!(spec["quotas"]["properties"]["maxRecords"].is_object());
    let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "phase",
        "shard",
        "endpoint",
        "records",
        "bytes",
        "conditions",
        "observedGeneration",
    ] {
        assert!(
            status[field].is_object(),
            "status.{field} missing: {status}"
        );
    }
}

#[test]
fn a_minimal_project_defaults_to_retain_without_quotas() {
    let p: quiver_operator::crd::ProjectSpec = serde_json::from_str("{}").unwrap();
    assert_eq!(
        p.deletion_policy,
        quiver_operator::crd::DeletionPolicy::Retain
    );
    assert_eq!(p.quotas, quiver_operator::crd::Quotas::default());
    assert!(p.project_name.is_none());
}
