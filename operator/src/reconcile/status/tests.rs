use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::crd::ProjectSpec;

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_700_000_000 + second).unwrap())
}

fn up(type_: &'static str, status: bool, reason: &'static str, message: &str) -> ConditionUpdate {
    ConditionUpdate {
        type_,
        status,
        reason,
        message: message.into(),
    }
}

fn condition(type_: &str, status: &str, reason: &str, since: i64, generation: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: Some(generation),
        last_transition_time: at(since),
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

fn info(state: &str, records: Option<u64>, quotas: Option<Quotas>) -> ProjectInfo {
    ProjectInfo {
        name: "acme".into(),
        collections: Some(2),
        records,
        bytes: 4096,
        open: true,
        state: state.into(),
        moved_to: None,
        stats_source: "live".into(),
        quotas,
        source_sequence: None,
    }
}

// ---------------------------------------------------------------------------------------
// merge_conditions

#[test]
fn new_conditions_start_now() {
    let merged = merge_conditions(
        &[],
        &[
            up(READY, true, "Provisioned", "serving"),
            up(DEGRADED, false, "AsExpected", ""),
        ],
        &at(10),
        Some(3),
    );
    assert_eq!(merged.len(), 2);
    let ready = find(&merged, READY);
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason, "Provisioned");
    assert_eq!(ready.message, "serving");
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(ready.last_transition_time, at(10));
    assert_eq!(find(&merged, DEGRADED).status, "False");
}

#[test]
fn unchanged_status_keeps_its_transition_time() {
    let previous = [condition(READY, "True", "Provisioned", 1, 1)];
    let merged = merge_conditions(
        &previous,
        &[up(READY, true, "Provisioned", "serving")],
        &at(100),
        Some(1),
    );
    assert_eq!(find(&merged, READY).last_transition_time, at(1));
}

#[test]
fn a_flip_moves_the_transition_time() {
    let previous = [condition(READY, "True", "Provisioned", 1, 1)];
    let merged = merge_conditions(
        &previous,
        &[up(READY, false, "ShardUnavailable", "down")],
        &at(100),
        Some(1),
    );
    let ready = find(&merged, READY);
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "ShardUnavailable");
    assert_eq!(ready.last_transition_time, at(100));

    // and back again
    let back = merge_conditions(
        &merged,
        &[up(READY, true, "Provisioned", "serving")],
        &at(200),
        Some(1),
    );
    assert_eq!(find(&back, READY).last_transition_time, at(200));
}

#[test]
fn reason_message_and_generation_change_without_a_transition() {
    let previous = [condition(DEGRADED, "True", "ShardUnavailable", 5, 1)];
    let merged = merge_conditions(
        &previous,
        &[up(DEGRADED, true, "PlacementUnavailable", "no table")],
        &at(50),
        Some(2),
    );
    let degraded = find(&merged, DEGRADED);
    assert_eq!(degraded.reason, "PlacementUnavailable");
    assert_eq!(degraded.message, "no table");
    assert_eq!(degraded.observed_generation, Some(2));
    assert_eq!(degraded.last_transition_time, at(5));
}

#[test]
fn conditions_not_updated_are_kept_after_ours() {
    let previous = [
        condition("Custom", "True", "Theirs", 7, 1),
        condition(DEGRADED, "True", "ShardUnavailable", 8, 1),
        condition(READY, "True", "Provisioned", 9, 1),
    ];
    let merged = merge_conditions(
        &previous,
        &[
            up(READY, false, "Terminating", "deleting"),
            up(PROGRESSING, true, "Terminating", "deleting"),
        ],
        &at(60),
        Some(2),
    );
    let types: Vec<&str> = merged.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, [READY, PROGRESSING, "Custom", DEGRADED]);
    assert_eq!(find(&merged, "Custom"), &previous[0]);
    assert_eq!(find(&merged, DEGRADED), &previous[1]);
    assert_eq!(find(&merged, READY).last_transition_time, at(60));
    assert_eq!(find(&merged, PROGRESSING).last_transition_time, at(60));
}

#[test]
fn merging_the_same_updates_twice_is_a_fixed_point() {
    let updates = condition_updates(&Observation::Serving {
        shard: 1,
        info: info("active", Some(5), None),
    });
    let once = merge_conditions(&[], &updates, &at(1), Some(1));
    let twice = merge_conditions(&once, &updates, &at(99), Some(1));
    assert_eq!(once, twice);
}

// ---------------------------------------------------------------------------------------
// desired_status

#[test]
fn serving_reports_ready_with_shard_endpoint_and_figures() {
    let obs = Observation::Serving {
        shard: 2,
        info: info("active", Some(120), None),
    };
    let s = desired_status(None, &obs, "http://router:8000", Some(4), &at(0));
    assert_eq!(s.phase, Some(ProjectPhase::Ready));
    assert_eq!(s.shard, Some(2));
    assert_eq!(s.endpoint.as_deref(), Some("http://router:8000"));
    assert_eq!(
        (s.collections, s.records, s.bytes),
        (Some(2), Some(120), Some(4096))
    );
    assert_eq!(s.observed_generation, Some(4));
    assert_eq!(find(&s.conditions, READY).status, "True");
    assert_eq!(find(&s.conditions, PROGRESSING).status, "False");
    assert_eq!(find(&s.conditions, DEGRADED).status, "False");
}

#[test]
fn a_failure_keeps_the_last_figures_and_degrades() {
    let good = desired_status(
        None,
        &Observation::Serving {
            shard: 2,
            info: info("active", Some(120), None),
        },
        "http://r",
        Some(1),
        &at(0),
    );
    let bad = desired_status(
        Some(&good),
        &Observation::Unavailable {
            shard: Some(2),
            reason: "ShardUnavailable",
            message: "connection refused".into(),
        },
        "http://r",
        Some(1),
        &at(30),
    );
    assert_eq!(bad.phase, Some(ProjectPhase::Failed));
    assert_eq!((bad.shard, bad.records), (Some(2), Some(120)));
    assert_eq!(bad.endpoint.as_deref(), Some("http://r"));
    let degraded = find(&bad.conditions, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ShardUnavailable")
    );
    assert_eq!(degraded.message, "connection refused");
    assert_eq!(degraded.last_transition_time, at(30));
    assert_eq!(find(&bad.conditions, READY).last_transition_time, at(30));
    // Progressing was False before and still is
    assert_eq!(
        find(&bad.conditions, PROGRESSING).last_transition_time,
        at(0)
    );
    assert!(already_degraded(Some(&bad), "ShardUnavailable"));
    assert!(!already_degraded(Some(&good), "ShardUnavailable"));
}

#[test]
fn a_missing_directory_listing_keeps_unknown_figures_unknown() {
    let obs = Observation::Serving {
        shard: 0,
        info: info("active", None, None),
    };
    let s = desired_status(None, &obs, "e", None, &at(0));
    assert_eq!((s.records, s.bytes), (None, Some(4096)));
}

#[test]
fn moving_is_ready_and_progressing() {
    let obs = Observation::Moving {
        shard: 1,
        from: 1,
        to: 3,
        info: None,
    };
    let s = desired_status(None, &obs, "e", Some(1), &at(0));
    assert_eq!(s.phase, Some(ProjectPhase::Moving));
    assert_eq!(s.shard, Some(1));
    let p = find(&s.conditions, PROGRESSING);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Moving"));
    assert_eq!(find(&s.conditions, READY).status, "True");
}

#[test]
fn invalid_names_fail_without_figures() {
    let previous = ProjectStatus {
        shard: Some(1),
        records: Some(5),
        endpoint: Some("e".into()),
        ..ProjectStatus::default()
    };
    let s = desired_status(
        Some(&previous),
        &Observation::InvalidName {
            message: "bad".into(),
        },
        "e",
        Some(2),
        &at(0),
    );
    assert_eq!(s.phase, Some(ProjectPhase::Failed));
    assert_eq!((s.shard, s.records, s.endpoint), (None, None, None));
    assert_eq!(find(&s.conditions, DEGRADED).reason, "InvalidName");
}

#[test]
fn a_fenced_home_without_a_move_is_degraded() {
    let mut i = info("fenced", Some(1), None);
    i.moved_to = Some("http://s3".into());
    let s = desired_status(
        None,
        &Observation::NotServing { shard: 0, info: i },
        "e",
        None,
        &at(0),
    );
    assert_eq!(s.phase, Some(ProjectPhase::Failed));
    let d = find(&s.conditions, DEGRADED);
    assert_eq!(d.reason, "NotServing");
    assert!(d.message.contains("http://s3"), "{}", d.message);
}

#[test]
fn terminating_keeps_degraded() {
    let failed = desired_status(
        None,
        &Observation::Unavailable {
            shard: None,
            reason: "PlacementUnavailable",
            message: "no table".into(),
        },
        "e",
        Some(1),
        &at(0),
    );
    let t = desired_status(
        Some(&failed),
        &Observation::Terminating {
            message: "deleting".into(),
        },
        "e",
        Some(1),
        &at(5),
    );
    assert_eq!(t.phase, Some(ProjectPhase::Terminating));
    assert_eq!(
        find(&t.conditions, DEGRADED),
        find(&failed.conditions, DEGRADED)
    );
}

// ---------------------------------------------------------------------------------------
// names, shard steps, events

#[test]
fn project_name_rule() {
    for ok in ["abc", "a.b", "A-1_z", "x".repeat(512).as_str()] {
        assert_eq!(validate_project_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "ab",
        "",
        "-ab",
        "ab-",
        ".ab",
        "a..b",
        "a b",
        "a/b",
        "ab\u{e9}",
        "x".repeat(513).as_str(),
    ] {
        assert!(validate_project_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn project_name_prefers_the_spec() {
    let mut p = Project::new(
        "res-name",
        ProjectSpec {
            deletion_policy: Default::default(),
            project_name: None,
            quotas: Quotas::default(),
        },
    );
    assert_eq!(project_name(&p), "res-name");
    p.spec.project_name = Some("Tenant_1".into());
    assert_eq!(project_name(&p), "Tenant_1");
}

#[test]
fn object_name_rule() {
    for ok in ["a", "acme", "a-1.b-2", "0abc"] {
        assert!(is_object_name(ok), "{ok}");
    }
    let long = "a".repeat(254);
    for bad in [
        "",
        "Acme",
        "a_b",
        "-a",
        "a-",
        "a..b",
        ".a",
        "a.",
        long.as_str(),
    ] {
        assert!(!is_object_name(bad), "{bad:?} accepted");
    }
}

#[test]
fn shard_step_provisions_only_when_needed() {
    let q = Quotas {
        max_records: Some(10),
        ..Quotas::default()
    };
    assert_eq!(shard_step(&q, None), ShardStep::Provision);
    let same = info("active", Some(1), Some(q.clone()));
    assert_eq!(shard_step(&q, Some(&same)), ShardStep::Observe);
    let other = info("active", Some(1), Some(Quotas::default()));
    assert_eq!(shard_step(&q, Some(&other)), ShardStep::Provision);
    // a server that reports no quotas enforces none
    let none = info("paused", Some(1), None);
    assert_eq!(
        shard_step(&Quotas::default(), Some(&none)),
        ShardStep::Observe
    );
    assert_eq!(shard_step(&q, Some(&none)), ShardStep::Provision);
    // never a PUT on a copy that does not serve
    for state in ["fenced", "incoming"] {
        let i = info(state, None, None);
        assert_eq!(shard_step(&q, Some(&i)), ShardStep::Observe);
    }
}

#[test]
fn provision_events() {
    let q = Quotas {
        max_bytes: Some(100),
        ..Quotas::default()
    };
    let (reason, note) = provision_event(None, true, &q, 2).unwrap();
    assert_eq!(reason, "Provisioned");
    assert!(note.contains("shard 2"));

    let before = info("active", Some(1), Some(Quotas::default()));
    let (reason, note) = provision_event(Some(&before), false, &q, 2).unwrap();
    assert_eq!(reason, "QuotasUpdated");
    assert_eq!(
        note,
        "quotas on shard 2 changed from maxCollections=none maxRecords=none maxBytes=none \
         to maxCollections=none maxRecords=none maxBytes=100"
    );

    let same = info("active", Some(1), Some(q.clone()));
    assert_eq!(provision_event(Some(&same), false, &q, 2), None);
    // existed, but we had not seen it: nothing known to announce
    assert_eq!(provision_event(None, false, &q, 2), None);
}
