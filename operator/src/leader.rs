//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one scales shards and moves projects.
//!
//! Every [`RENEW_INTERVAL`] each replica reads the Lease and [`decide`]s: take it when it is
//! absent, free, expired (`renewTime + leaseDurationSeconds < now`) or already its own;
//! otherwise wait. Every write is a create or a replace carrying the `resourceVersion` just
//! read, so when two candidates race only one write succeeds: the other gets `409` and is
//! not the leader. A leader that cannot renew steps down at once on a conflict, and at the
//! latest [`RENEW_DEADLINE`] after its last renewal on any other error — before its lease
//! (15 s) can expire and a successor start. On shutdown the lease is released (holder
//! cleared), so the successor need not wait for it to expire.
//!
//! The rest of the operator follows a `watch::Receiver<bool>` ([`LeaderElector::subscribe`])
//! and runs its controllers only while it reads `true` (see [`while_leading`]).

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::Api;
use rand::Rng;
use tokio::sync::watch;

/// How long a lease stays valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews and candidates look at the lease.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);
/// How long after its last renewal a leader that cannot reach the API keeps leading:
/// well inside [`LEASE_DURATION`], so it has stopped before anyone else can take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    pub lease_name: String,
    /// Who this replica is in `holderIdentity`: unique among the candidates.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
    pub renew_deadline: Duration,
}

impl LeaderConfig {
    pub fn new(lease_name: &str, identity: &str) -> LeaderConfig {
        LeaderConfig {
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            lease_duration: LEASE_DURATION,
            renew_interval: RENEW_INTERVAL,
            renew_deadline: RENEW_DEADLINE,
        }
    }
}

/// This replica's identity: the pod name (`POD_NAME`, from the downward API), else the
/// host name with a random suffix, so two processes on one machine still differ.
pub fn identity_from_env() -> String {
    if let Ok(name) = std::env::var("POD_NAME") {
        let name = name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "quiver-operator".to_string());
    let suffix: u32 = rand::rng().random();
    format!("{host}-{suffix:08x}")
}

/// What to do with the lease, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease object: create it, holding it.
    Create,
    /// Free (no holder), released or expired: take it over.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Someone else holds it and it is fresh until `expires`.
    Wait { holder: String, expires: Timestamp },
}

/// The decision for `identity` at `now`, given the lease (`None`: no Lease object).
/// `default_duration` stands in for a lease without `leaseDurationSeconds`.
pub fn decide(
    lease: Option<&Lease>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> LeaseDecision {
    let Some(lease) = lease else {
        return LeaseDecision::Create;
    };
    let Some(spec) = lease.spec.as_ref() else {
        return LeaseDecision::Acquire;
    };
    let holder = match spec.holder_identity.as_deref() {
        Some(h) if !h.is_empty() => h,
        _ => return LeaseDecision::Acquire,
    };
    if holder == identity {
        return LeaseDecision::Renew;
    }
    // a holder that never wrote a time cannot prove it is alive
    let Some(renewed) = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0)
    else {
        return LeaseDecision::Acquire;
    };
    let seconds = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(i64::from)
        .unwrap_or(default_duration.as_secs() as i64);
    let duration = SignedDuration::from_secs(seconds);
    if now.duration_since(renewed) > duration {
        return LeaseDecision::Acquire;
    }
    LeaseDecision::Wait {
        holder: holder.to_string(),
        expires: renewed.checked_add(duration).unwrap_or(renewed),
    }
}

/// Whether a leader whose renewal just failed (not by a conflict) still leads: only while
/// its last successful renewal is younger than `deadline`.
pub fn still_leading(last_renewal: Option<Instant>, now: Instant, deadline: Duration) -> bool {
    last_renewal.is_some_and(|at| now.saturating_duration_since(at) < deadline)
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("Kubernetes API error on Lease {lease}: {source}")]
    Kube {
        lease: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("no answer from the Kubernetes API about Lease {lease} within {seconds} s")]
    Timeout { lease: String, seconds: u64 },
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    last_renewal: Option<Instant>,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, config: LeaderConfig) -> LeaderElector {
        let (leading, _) = watch::channel(false);
        LeaderElector {
            api,
            config,
            leading,
            last_renewal: None,
        }
    }

    /// `true` while this replica leads.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    fn set_leading(&mut self, leading: bool) {
        let was = self.leading.send_replace(leading);
        if !leading {
            self.last_renewal = None;
        }
        if was != leading {
            if leading {
                tracing::info!(
                    identity = %self.config.identity,
                    "acquired Lease {}: now leading",
                    self.config.lease_name
                );
            } else {
                tracing::warn!(
                    identity = %self.config.identity,
                    "no longer holding Lease {}: stopped leading",
                    self.config.lease_name
                );
            }
        }
    }

    fn kube_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Kube {
            lease: self.config.lease_name.clone(),
            source: Box::new(source),
        }
    }

    /// One round: read the lease, decide, write. Returns whether this replica leads now.
    /// On an error other than a lost race, a leader keeps leading until its renew deadline.
    pub async fn step(&mut self) -> Result<bool, LeaderError> {
        let deadline = self.config.renew_deadline;
        // the lease is renewed as of before the request, so the deadline counts from there
        let started = Instant::now();
        let outcome = match tokio::time::timeout(deadline, self.try_step()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(LeaderError::Timeout {
                lease: self.config.lease_name.clone(),
                seconds: deadline.as_secs(),
            }),
        };
        match outcome {
            Ok(leading) => {
                if leading {
                    self.last_renewal = Some(started);
                }
                self.set_leading(leading);
                Ok(leading)
            }
            Err(e) => {
                let keep = still_leading(self.last_renewal, Instant::now(), deadline);
                self.set_leading(keep);
                Err(e)
            }
        }
    }

    /// `Ok(true)`: the lease is ours as of now; `Ok(false)`: someone else's, or we lost a
    /// race for it.
    async fn try_step(&self) -> Result<bool, LeaderError> {
        let name = &self.config.lease_name;
        let current = self
            .api
            .get_opt(name)
            .await
            .map_err(|e| self.kube_error(e))?;
        let now = Timestamp::now();
        let decision = decide(
            current.as_ref(),
            &self.config.identity,
            now,
            self.config.lease_duration,
        );
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let written = match (decision, current) {
            (LeaseDecision::Wait { holder, expires }, _) => {
                tracing::debug!(%holder, %expires, "Lease {name} is held");
                return Ok(false);
            }
            (LeaseDecision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (LeaseDecision::Acquire, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.config.identity.clone());
                spec.lease_duration_seconds = Some(duration_secs);
                spec.acquire_time = Some(MicroTime(now));
                spec.renew_time = Some(MicroTime(now));
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                // the resourceVersion read above makes this a compare-and-swap
                self.api.replace(name, &PostParams::default(), &lease).await
            }
            (LeaseDecision::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(duration_secs);
                self.api.replace(name, &PostParams::default(), &lease).await
            }
        };
        match written {
            Ok(_) => Ok(true),
            // another candidate wrote first
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                tracing::debug!("lost the race for Lease {name}");
                Ok(false)
            }
            Err(e) => Err(self.kube_error(e)),
        }
    }

    /// Steps until `shutdown` resolves, then stops leading (without releasing: call
    /// [`LeaderElector::release`] once the controllers have stopped).
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!("leader election: {e}");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.renew_interval) => {}
            }
        }
        self.set_leading(false);
    }

    /// Gives the lease up if this replica holds it (clears `holderIdentity`, compare-and-swap
    /// on the version read), so a successor takes over at its next look instead of after
    /// the lease expires. Stops leading first in any case.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        self.set_leading(false);
        let name = self.config.lease_name.clone();
        let Some(mut lease) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| self.kube_error(e))?
        else {
            return Ok(());
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !ours {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!("released Lease {name}");
                Ok(())
            }
            // changed meanwhile: it is no longer ours to release
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => Ok(()),
            Err(e) => Err(self.kube_error(e)),
        }
    }
}

/// Resolves when a term of leadership ends (or the elector is gone); cloneable, so every
/// controller of the term can wait on it.
pub type TermEnd = Shared<BoxFuture<'static, ()>>;

/// Runs `work(term_end)` each time `leading` turns `true`. `term_end` resolves the moment
/// leadership is lost: the work must stop on it (at once, or after finishing what is in
/// flight, as a controller with a graceful shutdown does); the next term starts only once
/// it has returned. Returns, between terms, when `shutdown` resolves or the sender is gone.
pub async fn while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
    mut work: F,
) where
    F: FnMut(TermEnd) -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        // a gone elector can no longer say we lead, whatever its last word was
        if leading.has_changed().is_err() {
            return;
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => return,
            lead = leading.wait_for(|l| *l) => {
                if lead.is_err() {
                    return;
                }
            }
        }
        let mut watcher = leading.clone();
        let term_end: TermEnd = async move {
            // an error means the elector is gone, which ends the term too
            let _ = watcher.wait_for(|l| !*l).await;
        }
        .boxed()
        .shared();
        work(term_end.clone()).await;
        // work that ended on its own is not restarted within the same term
        term_end.await;
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::{json, Value};

    use super::*;
    use quiver_testkit::kube_mock::{pair, MockApi};

    const ITEM: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/quiver-operator";
    const COLLECTION: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
    const ME: &str = "operator-a";

    fn lease(holder: Option<&str>, renewed_secs_ago: Option<i64>, duration: Option<i32>) -> Lease {
        let now = Timestamp::now();
        let renew = renewed_secs_ago
            .map(|s| MicroTime(now.checked_sub(SignedDuration::from_secs(s)).unwrap()));
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: duration,
                renew_time: renew,
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::now();
        let d = LEASE_DURATION;
        assert_eq!(decide(None, ME, now, d), LeaseDecision::Create);
        assert_eq!(
            decide(Some(&lease(None, Some(1), Some(15))), ME, now, d),
            LeaseDecision::Acquire,
            "free"
        );
        assert_eq!(
            decide(Some(&lease(Some(""), Some(1), Some(15))), ME, now, d),
            LeaseDecision::Acquire,
            "released"
        );
        assert_eq!(
            decide(Some(&Lease::default()), ME, now, d),
            LeaseDecision::Acquire,
            "no spec"
        );
        assert_eq!(
            decide(Some(&lease(Some(ME), Some(100), Some(15))), ME, now, d),
            LeaseDecision::Renew,
            "ours, even expired"
        );
        assert!(matches!(
            decide(Some(&lease(Some("b"), Some(14), Some(15))), ME, now, d),
            LeaseDecision::Wait { ref holder, .. } if holder == "b"
        ));
        assert_eq!(
            decide(Some(&lease(Some("b"), Some(16), Some(15))), ME, now, d),
            LeaseDecision::Acquire,
            "expired"
        );
        // the holder's own duration counts, not ours
        assert!(matches!(
            decide(Some(&lease(Some("b"), Some(30), Some(60))), ME, now, d),
            LeaseDecision::Wait { .. }
        ));
        // no duration in the lease: ours stands in
        assert!(matches!(
            decide(Some(&lease(Some("b"), Some(10), None)), ME, now, d),
            LeaseDecision::Wait { .. }
        ));
        assert_eq!(
            decide(Some(&lease(Some("b"), None, Some(15))), ME, now, d),
            LeaseDecision::Acquire,
            "never renewed"
        );
    }

    #[test]
    fn wait_reports_the_expiry() {
        let renewed = Timestamp::from_second(1_000).unwrap();
        let mut l = lease(Some("b"), None, Some(15));
        l.spec.as_mut().unwrap().renew_time = Some(MicroTime(renewed));
        let now = Timestamp::from_second(1_010).unwrap();
        assert_eq!(
            decide(Some(&l), ME, now, LEASE_DURATION),
            LeaseDecision::Wait {
                holder: "b".into(),
                expires: Timestamp::from_second(1_015).unwrap()
            }
        );
        // exactly at the expiry it is still held (strictly older means expired)
        let at = Timestamp::from_second(1_015).unwrap();
        assert!(matches!(
            decide(Some(&l), ME, at, LEASE_DURATION),
            LeaseDecision::Wait { .. }
        ));
    }

    #[test]
    fn a_leader_that_cannot_renew_steps_down_by_the_deadline() {
        let t0 = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(still_leading(
            Some(t0),
            t0 + Duration::from_secs(9),
            deadline
        ));
        assert!(!still_leading(
            Some(t0),
            t0 + Duration::from_secs(10),
            deadline
        ));
        assert!(!still_leading(None, t0, deadline));
        // stepping down comes before anyone else may take an unrenewed lease
        assert!(RENEW_DEADLINE < LEASE_DURATION);
    }

    #[test]
    fn identity_prefers_the_pod_name() {
        // POD_NAME is not set in tests: host name plus a suffix, different each time
        if std::env::var("POD_NAME").is_err() {
            let a = identity_from_env();
            let b = identity_from_env();
            assert_ne!(a, b);
            assert!(!a.is_empty());
        }
    }

    fn elector() -> (LeaderElector, MockApi) {
        let (client, api) = pair("ns");
        let e = LeaderElector::new(
            Api::namespaced(client, "ns"),
            LeaderConfig::new("quiver-operator", ME),
        );
        (e, api)
    }

    fn lease_json(rv: &str, holder: &str, renewed_secs_ago: i64, transitions: i32) -> Value {
        let now = Timestamp::now();
        let renewed = now
            .checked_sub(SignedDuration::from_secs(renewed_secs_ago))
            .unwrap();
        let acquired = now.checked_sub(SignedDuration::from_secs(3_600)).unwrap();
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "quiver-operator", "namespace": "ns", "resourceVersion": rv},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": 15,
                "acquireTime": MicroTime(acquired),
                "renewTime": MicroTime(renewed),
                "leaseTransitions": transitions,
            }
        })
    }

    fn time_of(v: &Value) -> Timestamp {
        v.as_str().unwrap().parse().unwrap()
    }

    fn echo(body: &Value, rv: &str) -> Value {
        let mut b = body.clone();
        b["metadata"]["resourceVersion"] = json!(rv);
        b
    }

    #[tokio::test]
    async fn creates_the_lease_when_absent() {
        let (mut e, mut api) = elector();
        let rx = e.subscribe();
        let server = async move {
            api.expect(Method::GET, ITEM).await.fail(404, "NotFound");
            let post = api.expect(Method::POST, COLLECTION).await;
            let spec = &post.body["spec"];
            assert_eq!(post.body["metadata"]["name"], "quiver-operator");
            assert_eq!(spec["holderIdentity"], ME);
            assert_eq!(spec["leaseDurationSeconds"], 15);
            assert_eq!(spec["leaseTransitions"], 0);
            assert_eq!(spec["renewTime"], spec["acquireTime"]);
            let age = Timestamp::now().duration_since(time_of(&spec["renewTime"]));
            assert!(age < SignedDuration::from_secs(5), "{age:?}");
            let answer = echo(&post.body, "1");
            post.respond(201, &answer);
        };
        let ((), leading) = tokio::join!(server, e.step());
        assert!(leading.unwrap());
        assert!(*rx.borrow());
    }

    #[tokio::test]
    async fn renews_its_own_lease_with_the_resource_version() {
        let (mut e, mut api) = elector();
        let server = async move {
            let before = lease_json("41", ME, 4, 3);
            api.expect(Method::GET, ITEM).await.respond(200, &before);
            let put = api.expect(Method::PUT, ITEM).await;
            assert_eq!(put.body["metadata"]["resourceVersion"], "41");
            let (old, new) = (&before["spec"], &put.body["spec"]);
            assert_eq!(new["holderIdentity"], ME);
            assert_eq!(new["acquireTime"], old["acquireTime"]);
            assert_eq!(new["leaseTransitions"], 3);
            assert!(time_of(&new["renewTime"]) > time_of(&old["renewTime"]));
            let answer = echo(&put.body, "42");
            put.respond(200, &answer);
        };
        let ((), leading) = tokio::join!(server, e.step());
        assert!(leading.unwrap());
        assert!(e.is_leading());
    }

    #[tokio::test]
    async fn leaves_a_fresh_lease_of_another_alone() {
        let (mut e, mut api) = elector();
        let rx = e.subscribe();
        let server = async {
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("7", "operator-b", 3, 0));
        };
        let ((), leading) = tokio::join!(server, e.step());
        assert!(!leading.unwrap());
        assert!(!*rx.borrow());
        api.assert_idle().await;
    }

    #[tokio::test]
    async fn takes_over_an_expired_lease() {
        let (mut e, mut api) = elector();
        let server = async move {
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("7", "operator-b", 60, 2));
            let put = api.expect(Method::PUT, ITEM).await;
            assert_eq!(put.body["metadata"]["resourceVersion"], "7");
            let spec = &put.body["spec"];
            assert_eq!(spec["holderIdentity"], ME);
            assert_eq!(spec["leaseTransitions"], 3);
            assert_eq!(spec["acquireTime"], spec["renewTime"]);
            let answer = echo(&put.body, "8");
            put.respond(200, &answer);
        };
        let ((), leading) = tokio::join!(server, e.step());
        assert!(leading.unwrap());
    }

    #[tokio::test]
    async fn a_conflict_on_update_means_not_leader_at_once() {
        let (mut e, mut api) = elector();
        let rx = e.subscribe();
        let server = async move {
            // leading after a renewal ...
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("41", ME, 4, 0));
            let put = api.expect(Method::PUT, ITEM).await;
            let answer = echo(&put.body, "42");
            put.respond(200, &answer);
            // ... the next renewal loses a race: leadership ends with it
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("42", ME, 4, 0));
            api.expect(Method::PUT, ITEM).await.fail(409, "Conflict");
            // two candidates take over an expired lease: the slower one gets 409
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("50", "operator-b", 60, 0));
            api.expect(Method::PUT, ITEM).await.fail(409, "Conflict");
            // and two create an absent one: the slower one gets 409 AlreadyExists
            api.expect(Method::GET, ITEM).await.fail(404, "NotFound");
            api.expect(Method::POST, COLLECTION)
                .await
                .fail(409, "AlreadyExists");
        };
        let client = async {
            assert!(e.step().await.unwrap());
            assert!(*rx.borrow());
            assert!(!e.step().await.unwrap());
            assert!(!*rx.borrow());
            assert!(!e.step().await.unwrap());
            assert!(!e.step().await.unwrap());
        };
        tokio::join!(server, client);
        assert!(!e.is_leading());
    }

    #[tokio::test]
    async fn an_api_error_keeps_a_fresh_leader_until_its_deadline() {
        let (mut e, mut api) = elector();
        let server = async move {
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("41", ME, 4, 0));
            let put = api.expect(Method::PUT, ITEM).await;
            let answer = echo(&put.body, "42");
            put.respond(200, &answer);
            api.expect(Method::GET, ITEM)
                .await
                .fail(500, "InternalError");
        };
        let client = async {
            assert!(e.step().await.unwrap());
            assert!(e.step().await.is_err());
            // renewed a moment ago: still the leader
            assert!(e.is_leading());
        };
        tokio::join!(server, client);

        // a candidate that never led stays a candidate
        let (mut e, mut api) = elector();
        let server = async move {
            api.expect(Method::GET, ITEM)
                .await
                .fail(500, "InternalError");
        };
        let ((), r) = tokio::join!(server, e.step());
        assert!(r.is_err());
        assert!(!e.is_leading());
    }

    #[tokio::test]
    async fn release_clears_the_holder() {
        let (mut e, mut api) = elector();
        let rx = e.subscribe();
        let server = async move {
            api.expect(Method::GET, ITEM).await.fail(404, "NotFound");
            let post = api.expect(Method::POST, COLLECTION).await;
            let answer = echo(&post.body, "1");
            post.respond(201, &answer);
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("1", ME, 1, 0));
            let put = api.expect(Method::PUT, ITEM).await;
            assert_eq!(put.body["metadata"]["resourceVersion"], "1");
            assert!(
                put.body["spec"].get("holderIdentity").is_none(),
                "{}",
                put.body
            );
            let answer = echo(&put.body, "2");
            put.respond(200, &answer);
            // a lease someone else holds is not touched
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &lease_json("3", "operator-b", 1, 1));
            api
        };
        let client = async {
            assert!(e.step().await.unwrap());
            e.release().await.unwrap();
            assert!(!*rx.borrow());
            e.release().await.unwrap();
        };
        let (mut api, ()) = tokio::join!(server, client);
        api.assert_idle().await;
        // the released lease is free for the next candidate
        let released: Lease = serde_json::from_value(json!({
            "metadata": {"name": "quiver-operator"},
            "spec": {"leaseDurationSeconds": 15, "renewTime": MicroTime(Timestamp::now())}
        }))
        .unwrap();
        assert_eq!(
            decide(
                Some(&released),
                "operator-b",
                Timestamp::now(),
                LEASE_DURATION
            ),
            LeaseDecision::Acquire
        );
    }

    #[tokio::test]
    async fn work_runs_only_while_leading() {
        let (tx, rx) = watch::channel(false);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut term = 0;
        let shutdown = async {
            let _ = stop_rx.await;
        };
        let task = tokio::spawn(while_leading(rx, shutdown, move |term_end| {
            term += 1;
            let n = term;
            let events = events_tx.clone();
            async move {
                let _ = events.send(format!("start {n}"));
                term_end.await;
                // a graceful stop: the next term waits for this
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = events.send(format!("stop {n}"));
            }
        }));
        tokio::task::yield_now().await;
        assert!(events.try_recv().is_err(), "no work before leading");
        tx.send(true).unwrap();
        assert_eq!(events.recv().await.unwrap(), "start 1");
        tx.send(false).unwrap();
        // regained while the first term's work is still stopping
        tokio::time::sleep(Duration::from_millis(5)).await;
        tx.send(true).unwrap();
        assert_eq!(events.recv().await.unwrap(), "stop 1");
        assert_eq!(events.recv().await.unwrap(), "start 2");
        tx.send(false).unwrap();
        assert_eq!(events.recv().await.unwrap(), "stop 2");
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("returns on shutdown between terms")
            .unwrap();

        // the elector going away ends the term and the loop
        let (tx, rx) = watch::channel(true);
        let task = tokio::spawn(while_leading(rx, std::future::pending(), |term_end| {
            term_end
        }));
        tokio::task::yield_now().await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("returns when the sender is gone")
            .unwrap();
    }
}
