//! Which project a request belongs to, read from its path alone.

use percent_encoding::percent_decode_str;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The shard holding this project.
    Project(String),
    /// A path the router does not know.
    Unknown,
}

/// Route class for metrics and logs: a fixed, small set.
pub fn route_class(path: &str) -> &'static str {
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/placement" => "probe",
        "/api/v2/tenants" => "v2_create_tenant",
        _ => match project_of(path) {
            Ok(Target::Project(_)) if path.starts_with("/api/v1/") => "v1_project",
            Ok(Target::Project(_)) => "v2_tenant",
            _ if path == "/" || path.starts_with("/api/") => "server",
            _ => "unmatched",
        },
    }
}

/// The `http.route` of a class whose paths axum does not match itself (the proxied ones).
pub fn route_template(class: &str) -> &'static str {
    match class {
        "v1_project" => "/api/v1/{project}/*",
        "v2_tenant" => "/api/v2/tenants/{tenant}/*",
        "v2_create_tenant" => "/api/v2/tenants",
        _ => "unmatched",
    }
}

/// The project of a project-scoped path: `/api/v1/{project}…` (except the server-level
/// `heartbeat`, `version` and `projects`) and `/api/v2/tenants/{tenant}…`. The name is
/// percent-decoded, so every spelling of one name lands on the same shard.
pub fn project_of(path: &str) -> Result<Target, String> {
    let mut segments = path.split('/');
    if segments.next() != Some("") || segments.next() != Some("api") {
        return Ok(Target::Unknown);
    }
    let raw = match (segments.next(), segments.next()) {
        (Some("v1"), Some(project))
            if !project.is_empty() && !matches!(project, "heartbeat" | "version" | "projects") =>
        {
            project
        }
        (Some("v2"), Some("tenants")) => match segments.next() {
            Some(tenant) if !tenant.is_empty() => tenant,
            _ => return Ok(Target::Unknown),
        },
        _ => return Ok(Target::Unknown),
    };
    let name = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| format!("project name {raw:?} is not valid UTF-8 once percent-decoded"))?;
    Ok(Target::Project(name.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(path: &str) -> Option<String> {
        match project_of(path).unwrap() {
            Target::Project(p) => Some(p),
            Target::Unknown => None,
        }
    }

    #[test]
    fn extracts_projects_from_both_apis() {
        assert_eq!(project("/api/v1/acme/collections").as_deref(), Some("acme"));
        assert_eq!(project("/api/v1/acme").as_deref(), Some("acme"));
        assert_eq!(
            project("/api/v1/acme/collections/docs/query").as_deref(),
            Some("acme")
        );
        assert_eq!(
            project("/api/v2/tenants/acme/databases/default_database/collections").as_deref(),
            Some("acme")
        );
        assert_eq!(project("/api/v2/tenants/acme").as_deref(), Some("acme"));
        assert_eq!(
            project("/api/v1/my%20kb/collections").as_deref(),
            Some("my kb")
        );
        assert_eq!(project("/api/v1/%61cme").as_deref(), Some("acme"));
    }

    #[test]
    fn server_level_paths_have_no_project() {
        for p in [
            "/",
            "/api/v1/heartbeat",
            "/api/v1/version",
            "/api/v1/projects",
            "/api/v1/",
            "/api/v2/tenants",
            "/api/v2/tenants/",
            "/api/v2/heartbeat",
            "/api/v2/pre-flight-checks",
            "/other/v1/acme",
            "/api/v3/tenants/acme",
        ] {
            assert_eq!(project(p), None, "{p}");
        }
        assert!(project_of("/api/v1/%ff%fe/collections").is_err());
    }

    #[test]
    fn route_classes_are_a_fixed_set() {
        assert_eq!(route_class("/api/v1/acme/collections"), "v1_project");
        assert_eq!(route_class("/api/v2/tenants/acme/databases"), "v2_tenant");
        assert_eq!(route_class("/api/v2/tenants"), "v2_create_tenant");
        assert_eq!(route_class("/api/v1/projects"), "server");
        assert_eq!(route_class("/"), "server");
        assert_eq!(route_class("/metrics"), "probe");
        assert_eq!(route_class("/favicon.ico"), "unmatched");
    }
}
