//! Placement from the ConfigMap the operator publishes, watched through the Kubernetes API.
//!
//! The watcher lists the one ConfigMap by name, then follows its changes; on an API error
//! it backs off and re-lists. Only a table that parses and validates replaces the current
//! one. A deleted ConfigMap leaves the last table in force but makes the router unready,
//! as does a watch that keeps failing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use quiver_placement::protocol::CONFIGMAP_KEY;
use quiver_placement::PlacementTable;

use super::Placement;

/// The table a ConfigMap carries.
pub fn table_of(cm: &ConfigMap) -> Result<PlacementTable, String> {
    let name = cm.metadata.name.as_deref().unwrap_or("<unnamed>");
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIGMAP_KEY))
        .ok_or_else(|| format!("ConfigMap {name} has no data key {CONFIGMAP_KEY}"))?;
    PlacementTable::from_json(text).map_err(|e| format!("ConfigMap {name}: {e}"))
}

/// Follows ConfigMap `name` through `api` for as long as the process runs.
///
/// After any watch error the watcher is started afresh, after a backoff: a fresh start
/// lists the ConfigMap again, which is what confirms the table and makes the source
/// healthy again (kube's watcher would otherwise resume silently and leave the router
/// unready until the ConfigMap next changes).
pub async fn run(placement: Arc<Placement>, api: Api<ConfigMap>, name: String) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut seen_in_listing = false;
        let mut events = watcher::watcher(api.clone(), config.clone()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(cm)) | Ok(Event::InitApply(cm)) => {
                    seen_in_listing = true;
                    backoff = MIN_BACKOFF;
                    match table_of(&cm) {
                        Ok(table) => {
                            placement.install(table);
                        }
                        Err(e) => placement.report_error(&e),
                    }
                }
                Ok(Event::Delete(_)) => {
                    placement.report_error(&format!("ConfigMap {name} was deleted"));
                }
                Ok(Event::Init) => seen_in_listing = false,
                Ok(Event::InitDone) => {
                    backoff = MIN_BACKOFF;
                    if !seen_in_listing {
                        placement.report_error(&format!("ConfigMap {name} does not exist"));
                    }
                }
                Err(e) => {
                    placement.report_error(&format!("watching ConfigMap {name}: {e}"));
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(800);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
