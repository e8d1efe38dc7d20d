//! Projects that live on the shards without a `Project` resource (created by a client's
//! first access, or left behind by a `Retain` deletion): reported, and adopted on request.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::ResourceExt;
use tracing::{info, warn};

use super::status::{is_object_name, project_name, serves};
use super::{Context, Error, ADOPTED_ANNOTATION, FIELD_MANAGER};
use crate::admin::ProjectInfo;
use crate::crd::{DeletionPolicy, Project, ProjectSpec};

/// Another live `Project` (not `project` itself, not being deleted) that names the same
/// project on the shards, as `namespace/name`.
pub fn sharing_owner(project: &Project, others: &[Project]) -> Option<String> {
    let name = project_name(project);
    others
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .filter(|o| {
            o.metadata.uid != project.metadata.uid
                || o.metadata.namespace != project.metadata.namespace
                || o.metadata.name != project.metadata.name
        })
        .find(|o| project_name(o) == name)
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
}

/// Names of the serving projects on the shards that no resource manages, sorted, each
/// once. Fenced and incoming copies are halves of moves, not projects of their own.
pub fn unmanaged_projects<'a>(
    on_shards: impl IntoIterator<Item = &'a ProjectInfo>,
    managed: &BTreeSet<String>,
) -> Vec<String> {
    let found: BTreeSet<&str> = on_shards
        .into_iter()
        .filter(|info| serves(info) && !managed.contains(&info.name))
        .map(|info| info.name.as_str())
        .collect();
    found.into_iter().map(str::to_string).collect()
}

/// The `Project` that adopts `info` in `namespace`, or why it cannot.
///
/// It carries the quotas the shard enforces, so that adopting changes nothing on the
/// shard, and `Retain`, so that deleting the new resource cannot delete data nobody
/// asked the operator to manage.
pub fn adoption(info: &ProjectInfo, namespace: &str) -> Result<Project, String> {
    if !is_object_name(&info.name) {
        return Err(format!(
            "{:?} is not a valid Kubernetes object name",
            info.name
        ));
    }
    let quotas = info.quotas.clone().unwrap_or_default();
    // The resource's quotas start at 1; a shard may hold 0 ("nothing more"), which a
    // resource cannot say.
    if [quotas.max_collections, quotas.max_records, quotas.max_bytes].contains(&Some(0)) {
        return Err("a quota of 0 cannot be expressed in a Project resource".into());
    }
    let mut project = Project::new(
        &info.name,
        ProjectSpec {
            deletion_policy: DeletionPolicy::Retain,
            project_name: None,
            quotas,
        },
    );
    project.metadata = ObjectMeta {
        name: Some(info.name.clone()),
        namespace: Some(namespace.to_string()),
        annotations: Some(BTreeMap::from([(
            ADOPTED_ANNOTATION.to_string(),
            "true".to_string(),
        )])),
        ..ObjectMeta::default()
    };
    Ok(project)
}

/// Lists every shard's projects, compares them with the `Project` resources in the
/// watched scope, logs the unmanaged ones and sets `quiver_operator_unmanaged_projects`;
/// with `adopt`, creates a `Project` for each in `namespace`. Returns the unmanaged names.
///
/// A shard that cannot be listed is skipped (and logged) so that one shard being down
/// does not hide the others; the call fails only if no shard could be listed.
pub async fn report_unmanaged(ctx: &Context, namespace: &str) -> Result<Vec<String>, Error> {
    let resources = ctx.projects_in_scope().list(&ListParams::default()).await?;
    let managed: BTreeSet<String> = resources.items.iter().map(project_name).collect();

    let shards = ctx.shards.all()?;
    let mut on_shards: Vec<ProjectInfo> = Vec::new();
    let mut last_error = None;
    let mut listed = 0usize;
    for shard in &shards {
        match ctx.listings.projects(&shard.admin).await {
            Ok(projects) => {
                listed += 1;
                on_shards.extend(projects.values().cloned());
            }
            Err(e) => {
                warn!(shard = shard.ordinal, error = %e, "cannot list the shard's projects");
                last_error = Some(Error::shard(shard, e));
            }
        }
    }
    if listed == 0 {
        if let Some(e) = last_error {
            return Err(e);
        }
    }

    let unmanaged = unmanaged_projects(&on_shards, &managed);
    ctx.metrics
        .unmanaged
        .set(i64::try_from(unmanaged.len()).unwrap_or(i64::MAX));
    if !unmanaged.is_empty() {
        info!(
            count = unmanaged.len(),
            projects = %unmanaged.join(","),
            "projects without a Project resource"
        );
    }
    if ctx.config.adopt {
        let api: Api<Project> = Api::namespaced(ctx.client.clone(), namespace);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        for name in &unmanaged {
            let Some(info) = on_shards.iter().find(|i| &i.name == name) else {
                continue;
            };
            match adoption(info, namespace) {
                Ok(project) => match api.create(&params, &project).await {
                    Ok(_) => info!(project = %name, namespace, "adopted"),
                    // created meanwhile (by someone else or an earlier round)
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => warn!(project = %name, error = %e, "cannot adopt"),
                },
                Err(reason) => warn!(project = %name, %reason, "not adopted"),
            }
        }
    }
    Ok(unmanaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Quotas;

    fn info(name: &str, state: &str) -> ProjectInfo {
        ProjectInfo {
            name: name.into(),
            collections: Some(1),
            records: Some(2),
            bytes: 3,
            open: false,
            state: state.into(),
            moved_to: None,
            stats_source: "saved".into(),
            quotas: None,
            source_sequence: None,
        }
    }

    fn resource(ns: &str, name: &str, uid: &str, project_name: Option<&str>) -> Project {
        let mut p = Project::new(
            name,
            ProjectSpec {
                deletion_policy: DeletionPolicy::Delete,
                project_name: project_name.map(str::to_string),
                quotas: Quotas::default(),
            },
        );
        p.metadata.namespace = Some(ns.into());
        p.metadata.uid = Some(uid.into());
        p
    }

    #[test]
    fn unmanaged_are_the_serving_projects_without_a_resource() {
        let shards = [
            info("b", "active"),
            info("a", "paused"),
            info("moved-away", "fenced"),
            info("arriving", "incoming"),
            info("managed", "active"),
            info("b", "active"),
        ];
        let managed = BTreeSet::from(["managed".to_string()]);
        assert_eq!(unmanaged_projects(&shards, &managed), ["a", "b"]);
        assert!(unmanaged_projects(&[], &managed).is_empty());
    }

    #[test]
    fn sharing_owner_finds_another_live_resource_with_the_same_project() {
        let me = resource("ns", "acme", "u1", None);
        let same_elsewhere = resource("other", "acme", "u2", None);
        let by_spec = resource("ns", "alias", "u3", Some("acme"));
        let unrelated = resource("ns", "zeta", "u4", None);
        assert_eq!(sharing_owner(&me, &[me.clone(), unrelated.clone()]), None);
        assert_eq!(
            sharing_owner(&me, &[me.clone(), same_elsewhere.clone()]).as_deref(),
            Some("other/acme")
        );
        assert_eq!(
            sharing_owner(&me, std::slice::from_ref(&by_spec)).as_deref(),
            Some("ns/alias")
        );
        let mut leaving = by_spec;
        leaving.metadata.deletion_timestamp = Some(super::super::now());
        assert_eq!(sharing_owner(&me, &[leaving]), None);
    }

    #[test]
    fn adoption_keeps_the_shards_quotas_and_retains_data() {
        let mut i = info("acme-1", "active");
        i.quotas = Some(Quotas {
            max_records: Some(10),
            ..Quotas::default()
        });
        let p = adoption(&i, "quiver").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("acme-1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("quiver"));
        assert_eq!(p.annotations()[ADOPTED_ANNOTATION], "true");
        assert_eq!(p.spec.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(p.spec.project_name, None);
        assert_eq!(p.spec.quotas.max_records, Some(10));

        for bad in ["Acme", "under_score", "-x-", "a..b"] {
            assert!(adoption(&info(bad, "active"), "q").is_err(), "{bad}");
        }
        i.quotas = Some(Quotas {
            max_bytes: Some(0),
            ..Quotas::default()
        });
        assert!(adoption(&i, "q").is_err());
    }
}
