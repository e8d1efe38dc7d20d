//! The admin API's move primitives: snapshot export and import, changes since a
//! sequence and their replay, pause and resume, fence and unfence. Snapshots and changes
//! stream from one server to the other through the operator without being held in memory.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::{check, project_path, AdminClient, AdminError};

/// Header carrying a sequence number on snapshot and changes answers.
pub const SEQUENCE_HEADER: &str = "x-quiver-sequence";
/// Bound on a whole snapshot transfer (gigabytes over a cluster network).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub applied_batches: u64,
    pub source_sequence: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub sequence: u64,
    #[serde(default)]
    pub drained_writes: u64,
}

fn sequence_of(resp: &reqwest::Response) -> Result<u64, AdminError> {
    resp.headers()
        .get(SEQUENCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AdminError::Decode(format!("answer without a valid {SEQUENCE_HEADER}")))
}

impl AdminClient {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, AdminError> {
        let resp = req.send().await.map_err(AdminError::from_reqwest)?;
        check(resp).await
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, AdminError> {
        self.send(req)
            .await?
            .json::<T>()
            .await
            .map_err(AdminError::from_reqwest)
    }

    /// Copies a snapshot of `project` from this server to `dest`, where it arrives as an
    /// incoming copy. Returns the sequence the copy holds every write up to.
    pub async fn copy_snapshot_to(
        &self,
        dest: &AdminClient,
        project: &str,
    ) -> Result<u64, AdminError> {
        let export = self
            .send(
                self.request(Method::GET, &project_path(project, "/snapshot")?)
                    .timeout(TRANSFER_TIMEOUT),
            )
            .await?;
        let sequence = sequence_of(&export)?;
        let body = reqwest::Body::wrap_stream(export.bytes_stream());
        dest.send(
            dest.request(
                Method::PUT,
                &format!(
                    "{}?sourceSequence={sequence}",
                    project_path(project, "/snapshot")?
                ),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(body)
            .timeout(TRANSFER_TIMEOUT),
        )
        .await?;
        Ok(sequence)
    }

    /// Ships the changes of `project` on this server above `since` to its incoming copy
    /// on `dest`. Returns what `dest` applied and the sequence it now holds.
    pub async fn ship_changes_to(
        &self,
        dest: &AdminClient,
        project: &str,
        since: u64,
    ) -> Result<Applied, AdminError> {
        let changes = self
            .send(
                self.request(
                    Method::GET,
                    &format!("{}?since={since}", project_path(project, "/changes")?),
                )
                .timeout(TRANSFER_TIMEOUT),
            )
            .await?;
        let body = reqwest::Body::wrap_stream(changes.bytes_stream());
        dest.call_json(
            dest.request(Method::POST, &project_path(project, "/changes")?)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-quiver-changes",
                )
                .body(body)
                .timeout(TRANSFER_TIMEOUT),
        )
        .await
    }

    /// Pauses the project's writes for at most `hold` (renewed by pausing again).
    pub async fn pause(&self, project: &str, hold: Duration) -> Result<Paused, AdminError> {
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        self.call_json(
            self.request(Method::POST, &project_path(project, "/pause")?)
                .json(&serde_json::json!({ "timeoutMs": ms }))
                .timeout(CALL_TIMEOUT),
        )
        .await
    }

    pub async fn resume(&self, project: &str) -> Result<(), AdminError> {
        self.send(
            self.request(Method::POST, &project_path(project, "/resume")?)
                .timeout(CALL_TIMEOUT),
        )
        .await
        .map(drop)
    }

    /// Fences the project here as moved to `moved_to`. Returns the project's last
    /// sequence number when the server knew it (the project was open).
    pub async fn fence(&self, project: &str, moved_to: &str) -> Result<Option<u64>, AdminError> {
        #[derive(Deserialize)]
        struct Fenced {
            #[serde(default)]
            sequence: Option<u64>,
        }
        let r: Fenced = self
            .call_json(
                self.request(Method::POST, &project_path(project, "/fence")?)
                    .json(&serde_json::json!({ "movedTo": moved_to }))
                    .timeout(CALL_TIMEOUT),
            )
            .await?;
        Ok(r.sequence)
    }

    /// Lifts the project's fence here (activates an incoming copy, or rolls back a fence).
    /// Returns whether it was fenced.
    pub async fn unfence(&self, project: &str) -> Result<bool, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Unfenced {
            was_fenced: bool,
        }
        let r: Unfenced = self
            .call_json(
                self.request(Method::DELETE, &project_path(project, "/fence")?)
                    .timeout(CALL_TIMEOUT),
            )
            .await?;
        Ok(r.was_fenced)
    }
}
