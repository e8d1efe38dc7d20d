//! Client for one tenant server's admin API (`/admin/v1`, see `docs/admin-api.md`).
//!
//! One [`AdminClient`] per shard. The calls here are the short JSON ones (provision, info,
//! quotas, delete, stats); the move primitives (snapshot, changes, pause, fence) live in a
//! sibling module and build on [`AdminClient::request`] and [`check`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::crd::Quotas;

mod transfer;
pub use transfer::{Applied, Paused, SEQUENCE_HEADER};

/// Bound on the short JSON calls. Stats walks the whole workspace (a `du`), so it gets
/// longer; streamed transfers set their own.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const STATS_TIMEOUT: Duration = Duration::from_secs(120);
/// Error bodies are short JSON; anything longer is cut so a misbehaving peer cannot flood
/// logs, events and conditions.
const MAX_ERROR_TEXT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("invalid admin base URL {url:?}: {reason}")]
    BadBaseUrl { url: String, reason: String },
    #[error("project name {0:?} cannot be used in an admin path")]
    BadProjectName(String),
    #[error("admin API answered {status} {error}: {message}")]
    Status {
        status: u16,
        error: String,
        message: String,
    },
    #[error("admin API unreachable: {0}")]
    Transport(String),
    #[error("admin API response not understood: {0}")]
    Decode(String),
}

impl AdminError {
    /// The HTTP status, when the server answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// The `error` kind of a `Status` answer (`NotFoundError`, `ProjectMoved`, …).
    pub fn kind(&self) -> Option<&str> {
        match self {
            AdminError::Status { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        // reqwest's own message says only "error sending request"; the cause (connection
        // refused, timeout, DNS) is further down the chain and is what an operator needs.
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        if err.is_decode() {
            AdminError::Decode(text)
        } else {
            AdminError::Transport(text)
        }
    }
}

/// A project as the admin API reports it (`ProjectInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectInfo {
    pub name: String,
    /// `null` in a listing of a closed project that has no saved figures.
    #[serde(default)]
    pub collections: Option<u64>,
    #[serde(default)]
    pub records: Option<u64>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub open: bool,
    /// `active`, `paused`, `fenced` or `incoming`.
    pub state: String,
    #[serde(default)]
    pub moved_to: Option<String>,
    /// `live`, `saved` or `directory`.
    #[serde(default)]
    pub stats_source: String,
    #[serde(default)]
    pub quotas: Option<Quotas>,
    /// Set on an `incoming` copy: the source sequence it holds every write up to.
    #[serde(default)]
    pub source_sequence: Option<u64>,
}

/// A tenant server's own figures (`GET /admin/v1/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStats {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub projects: u64,
    #[serde(default)]
    pub fenced_projects: u64,
    #[serde(default)]
    pub paused_projects: u64,
    #[serde(default)]
    pub open_projects: u64,
    #[serde(default)]
    pub max_open_projects: u64,
    #[serde(default)]
    pub evictions: u64,
    #[serde(default)]
    pub idle_closes: u64,
    #[serde(default)]
    pub loaded_memory_bytes: u64,
    #[serde(default)]
    pub disk_bytes: u64,
    /// `null` where the OS does not say.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct ProjectList {
    projects: Vec<ProjectInfo>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

#[derive(Serialize)]
struct ProvisionBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    quotas: Option<&'a Quotas>,
}

/// The admin API of one tenant server.
#[derive(Clone, Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    /// Scheme, host and port, no trailing slash.
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// `base` is the server's URL (`http://quiver-tenant-0.quiver-tenant:7100`); `token`
    /// is `QUIVER_ADMIN_TOKEN`, where an empty value means none, as on the server.
    pub fn new(
        base: &str,
        token: Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, AdminError> {
        let bad = |reason: &str| AdminError::BadBaseUrl {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = base.trim().trim_end_matches('/');
        let parsed = url::Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("scheme must be http or https"));
        }
        if parsed.host_str().is_none() {
            return Err(bad("no host"));
        }
        // The admin prefix is appended to the base; a path, query or fragment here would
        // silently send every call somewhere else.
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(bad("a server URL has no path or query"));
        }
        if parsed.fragment().is_some() {
            return Err(bad("a server URL has no fragment"));
        }
        Ok(AdminClient {
            http,
            base: trimmed.to_string(),
            token: token.filter(|t| !t.is_empty()),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `/admin/v1{path}` carrying the token. `path` starts with `/` and has
    /// its project segment already encoded (see [`project_path`]).
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}/admin/v1{}", self.base, path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, T), AdminError> {
        let resp = builder.send().await.map_err(AdminError::from_reqwest)?;
        let resp = check(resp).await?;
        let status = resp.status();
        let body = resp.json::<T>().await.map_err(AdminError::from_reqwest)?;
        Ok((status, body))
    }

    /// Every project on the server, in name order.
    pub async fn list_projects(&self) -> Result<Vec<ProjectInfo>, AdminError> {
        let req = self.request(Method::GET, "/projects").timeout(CALL_TIMEOUT);
        let (_, list) = self.send_json::<ProjectList>(req).await?;
        Ok(list.projects)
    }

    /// The project's info; `None` when the server does not hold it. Opens the project.
    pub async fn project_info(&self, project: &str) -> Result<Option<ProjectInfo>, AdminError> {
        let req = self
            .request(Method::GET, &project_path(project, "")?)
            .timeout(CALL_TIMEOUT);
        match self.send_json::<ProjectInfo>(req).await {
            Ok((_, info)) => Ok(Some(info)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the project if absent; `quotas`, when given, replace its quotas. Returns
    /// its info and whether this call created it.
    pub async fn provision(
        &self,
        project: &str,
        quotas: Option<&Quotas>,
    ) -> Result<(ProjectInfo, bool), AdminError> {
        let req = self
            .request(Method::PUT, &project_path(project, "")?)
            .json(&ProvisionBody { quotas })
            .timeout(CALL_TIMEOUT);
        let (status, info) = self.send_json::<ProjectInfo>(req).await?;
        Ok((info, status == StatusCode::CREATED))
    }

    /// Replaces the quotas of an existing project.
    pub async fn set_quotas(
        &self,
        project: &str,
        quotas: &Quotas,
    ) -> Result<ProjectInfo, AdminError> {
        let req = self
            .request(Method::PUT, &project_path(project, "/quotas")?)
            .json(quotas)
            .timeout(CALL_TIMEOUT);
        Ok(self.send_json::<ProjectInfo>(req).await?.1)
    }

    /// Removes the project and its data; `false` when the server did not hold it.
    pub async fn delete_project(&self, project: &str) -> Result<bool, AdminError> {
        let req = self
            .request(Method::DELETE, &project_path(project, "")?)
            .timeout(CALL_TIMEOUT);
        match self.send_json::<serde_json::Value>(req).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn server_stats(&self) -> Result<ServerStats, AdminError> {
        let req = self.request(Method::GET, "/stats").timeout(STATS_TIMEOUT);
        Ok(self.send_json::<ServerStats>(req).await?.1)
    }
}

/// `/projects/{project}{rest}` with the project name percent-encoded as one segment.
///
/// `.` and `..` are refused: URL parsers resolve them (encoded or not) as dot segments, so
/// the request would reach another path. The server's name rule excludes them anyway.
pub(crate) fn project_path(project: &str, rest: &str) -> Result<String, AdminError> {
    if project.is_empty() || project == "." || project == ".." {
        return Err(AdminError::BadProjectName(project.to_string()));
    }
    let mut path = String::with_capacity(10 + project.len() + rest.len());
    path.push_str("/projects/");
    for byte in project.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path.push_str(rest);
    Ok(path)
}

/// Passes a 2xx answer through; turns any other into [`AdminError::Status`], from the
/// JSON error body when there is one, else from its text.
pub(crate) async fn check(resp: reqwest::Response) -> Result<reqwest::Response, AdminError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(status_error(status, &body))
}

/// The error of a non-2xx answer with this body.
pub(crate) fn status_error(status: StatusCode, body: &[u8]) -> AdminError {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return AdminError::Status {
            status: status.as_u16(),
            error: truncate(parsed.error),
            message: truncate(parsed.message),
        };
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    AdminError::Status {
        status: status.as_u16(),
        error: status
            .canonical_reason()
            .map(|r| r.replace(' ', ""))
            .unwrap_or_else(|| format!("HTTP{}", status.as_u16())),
        message: truncate(text),
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests;
