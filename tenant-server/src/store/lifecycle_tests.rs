//! Store-level tests of a project's lifecycle: what a new project's catalog holds, and
//! around moves, paused writes, fences, and admin access that must not create projects.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::project::CollectionMeta;
use super::types::{HnswConfig, RecordInput};
use super::write::WriteMode;
use super::{
    ProjectName, ProjectState, Registry, StatsSource, StoreConfig, StoreError, DEFAULT_DATABASE,
};

fn registry(dir: &std::path::Path, max_open: usize) -> Arc<Registry> {
    let mut cfg = StoreConfig::for_workspace(dir);
    cfg.max_open_projects = max_open;
    Registry::new(cfg).expect("registry")
}

fn meta(name: &str) -> CollectionMeta {
    CollectionMeta {
        id: Uuid::new_v4(),
        name: name.into(),
        database: DEFAULT_DATABASE.into(),
        metadata: None,
        hnsw: HnswConfig::default(),
        configuration: serde_json::Value::Null,
        schema: None,
        dimension: None,
    }
}

fn recs(prefix: &str, n: usize) -> Vec<RecordInput> {
    (0..n)
        .map(|i| RecordInput {
            id: format!("{prefix}{i}"),
            embedding: Some(vec![i as f32, 1.0]),
            ..Default::default()
        })
        .collect()
}

/// Runs `f` on another thread and fails if it does not finish in time (a deadlock).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} did not finish: deadlock?"))
}

#[track_caller]
fn assert_paused<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::ProjectPaused(name)) => assert_eq!(name, "gated", "{what}"),
        other => panic!("{what}: expected ProjectPaused, got {other:?}"),
    }
}

/// A project name the test knows to be valid.
fn pn(name: &str) -> ProjectName {
    ProjectName::new(name).expect("valid project name")
}

#[test]
fn paused_project_refuses_every_write_and_serves_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path(), 16);
    let p = reg.project(&pn("gated")).expect("project");
    let (coll, _) = p.create_collection(meta("coll"), false).expect("create");
    p.create_collection(meta("spare"), false).expect("create");
    p.write(&coll, WriteMode::Add, recs("r", 10)).expect("add");
    p.create_database("other_db").expect("database");
    let coll = p.collection_meta(DEFAULT_DATABASE, "coll").expect("meta");

    let paused = reg
        .pause(&pn("gated"), std::time::Duration::from_secs(60))
        .expect("pause");
    assert_eq!(paused.drained_writes, 0);
    assert_eq!(paused.sequence, p.latest_sequence());
    assert!(reg.is_paused(&pn("gated")));

    assert_paused(p.write(&coll, WriteMode::Add, recs("n", 1)), "add");
    assert_paused(p.write(&coll, WriteMode::Upsert, recs("r", 1)), "upsert");
    assert_paused(p.write(&coll, WriteMode::Update, recs("r", 1)), "update");
    let ids = ["r1".to_string()];
    assert_paused(
        p.delete_records(&coll, Some(&ids), None, None, None),
        "delete records",
    );
    assert_paused(p.create_collection(meta("new"), false), "create collection");
    assert_paused(
        p.create_collection(meta("new"), true),
        "get-or-create of a new collection",
    );
    assert_paused(
        p.modify_collection(&coll.id, |m| m.name = "renamed".into()),
        "modify collection",
    );
    assert_paused(
        p.delete_collection(DEFAULT_DATABASE, "spare"),
        "delete collection",
    );
    assert_paused(p.create_database("third_db"), "create database");
    assert_paused(p.delete_database("other_db"), "delete database");
    assert_paused(reg.delete_project(&pn("gated")), "delete project");

    // reads, and getting an existing collection, still work
    let (existing, created) = p.create_collection(meta("coll"), true).expect("get");
    assert!(!created);
    assert_eq!(existing.id, coll.id);
    assert_eq!(p.counters(&coll.id).expect("counters").count, 10);
    assert_eq!(p.list_collections(DEFAULT_DATABASE).len(), 2);
    assert_eq!(
        p.latest_sequence(),
        paused.sequence,
        "something was written"
    );
    let info = reg
        .project_info(&pn("gated"))
        .expect("info")
        .expect("exists");
    assert_eq!(info.state, ProjectState::Paused);

    assert!(reg.resume(&pn("gated")).expect("resume"));
    assert!(!reg.resume(&pn("gated")).expect("resume again"));
    p.write(&coll, WriteMode::Add, recs("n", 3)).expect("add");
    assert_eq!(p.counters(&coll.id).expect("counters").count, 13);
    assert!(p.latest_sequence() > paused.sequence);
}

#[test]
fn pause_outlives_closing_and_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path(), 1);
    let p = reg.project(&pn("gated")).expect("project");
    let (coll, _) = p.create_collection(meta("coll"), false).expect("create");
    drop(p);
    reg.pause(&pn("gated"), std::time::Duration::from_secs(60))
        .expect("pause");

    let r = Arc::clone(&reg);
    within("evicting and reopening a paused project", move || {
        // opening another project closes the paused one (at most one is open)
        r.project(&pn("other")).expect("other");
        let p = r.project(&pn("gated")).expect("reopen");
        assert_paused(
            p.write(&coll, WriteMode::Add, recs("x", 1)),
            "add after reopen",
        );
        drop(p);
        // and pausing a project that is being closed
        r.project(&pn("other")).expect("other");
        r.pause(&pn("gated"), std::time::Duration::from_secs(60))
            .expect("pause again");
        assert!(r.resume(&pn("gated")).expect("resume"));
        let p = r.project(&pn("gated")).expect("reopen");
        p.write(&coll, WriteMode::Add, recs("x", 1)).expect("add");
    });
}

#[test]
fn fence_closes_refuses_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path(), 16);
    let p = reg.project(&pn("moved")).expect("project");
    let (coll, _) = p.create_collection(meta("coll"), false).expect("create");
    p.write(&coll, WriteMode::Add, recs("r", 4)).expect("add");
    drop(p);
    reg.project(&pn("stays")).expect("project");

    let to = "http://shard-2:7100".to_string();
    let (fence, sequence) = reg.fence(&pn("moved"), Some(to.clone())).expect("fence");
    assert!(
        sequence.is_some_and(|s| s > 0),
        "fencing the open project reports its last sequence: {sequence:?}"
    );
    assert_eq!(fence.moved_to.as_deref(), Some(to.as_str()));
    assert_eq!(reg.open_count(), 1, "the fenced project is still open");

    let is_fenced = |r: Result<_, StoreError>, what: &str| match r {
        Err(StoreError::ProjectFenced { name, moved_to }) => {
            assert_eq!(name, "moved", "{what}");
            assert_eq!(moved_to.as_deref(), Some(to.as_str()), "{what}");
        }
        Err(other) => panic!("{what}: expected ProjectFenced, got {other}"),
        Ok(_) => panic!("{what}: expected ProjectFenced, got a success"),
    };
    is_fenced(reg.project(&pn("moved")).map(|_| ()), "open");
    is_fenced(
        reg.existing_project(&pn("moved")).map(|_| ()),
        "open existing",
    );
    is_fenced(reg.provision(&pn("moved")).map(|_| ()), "provision");
    is_fenced(reg.delete_project(&pn("moved")).map(|_| ()), "delete");
    is_fenced(
        reg.pause(&pn("moved"), std::time::Duration::from_secs(60))
            .map(|_| ()),
        "pause",
    );

    let info = reg
        .project_info(&pn("moved"))
        .expect("info")
        .expect("exists");
    assert_eq!(info.state, ProjectState::Fenced);
    assert_eq!(info.stats_source, StatsSource::Saved);
    assert_eq!(info.records, Some(4));
    assert!(!info.open);
    let served: Vec<String> = reg
        .list()
        .expect("list")
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(served, ["stays"]);
    assert_eq!(reg.list_projects().expect("list").len(), 2);
    assert_eq!(reg.server_stats().expect("stats").fenced_projects, 1);

    reg.close_all();
    drop(reg);
    let reg = registry(dir.path(), 16);
    is_fenced(reg.project(&pn("moved")).map(|_| ()), "open after restart");
    assert!(reg.unfence(&pn("moved")).expect("unfence"));
    assert!(!reg.unfence(&pn("moved")).expect("unfence again"));
    let p = reg.project(&pn("moved")).expect("open after unfence");
    assert_eq!(p.counters(&coll.id).expect("counters").count, 4);
}

#[test]
fn admin_access_never_creates_projects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path(), 16);
    let not_found = |r: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(r, Err(StoreError::ProjectNotFound(ref n)) if n == "ghost"),
            "{what}: {r:?}"
        );
    };
    not_found(
        reg.existing_project(&pn("ghost")).map(|_| ()),
        "open existing",
    );
    not_found(
        reg.pause(&pn("ghost"), std::time::Duration::from_secs(60))
            .map(|_| ()),
        "pause",
    );
    not_found(reg.resume(&pn("ghost")).map(|_| ()), "resume");
    not_found(reg.fence(&pn("ghost"), None).map(|_| ()), "fence");
    not_found(reg.unfence(&pn("ghost")).map(|_| ()), "unfence");
    assert_eq!(reg.project_info(&pn("ghost")).expect("info"), None);
    assert!(!reg.purge_project(&pn("ghost")).expect("purge"));
    assert!(!reg.is_paused(&pn("ghost")), "a failed pause stays paused");
    assert!(!dir.path().join("ghost").exists());

    let (_, created) = reg.provision(&pn("ghost")).expect("provision");
    assert!(created);
    let (_, created) = reg.provision(&pn("ghost")).expect("provision again");
    assert!(!created);
    assert!(matches!(
        ProjectName::new("../etc"),
        Err(StoreError::InvalidArgument(_))
    ));
}

#[test]
fn purge_deletes_paused_and_fenced_projects_and_forgets_the_pause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path(), 16);
    reg.project(&pn("paused-one")).expect("project");
    reg.pause(&pn("paused-one"), std::time::Duration::from_secs(60))
        .expect("pause");
    assert!(reg.purge_project(&pn("paused-one")).expect("purge"));
    assert!(!reg.is_paused(&pn("paused-one")));
    reg.project(&pn("fenced-one")).expect("project");
    reg.fence(&pn("fenced-one"), None).expect("fence");
    assert!(reg.purge_project(&pn("fenced-one")).expect("purge"));
    assert!(!dir.path().join("fenced-one").exists());
    // the name is free again
    reg.project(&pn("fenced-one")).expect("re-created");
}

fn database_names(p: &super::Project) -> Vec<String> {
    p.databases().into_iter().map(|d| d.name).collect()
}

#[test]
fn empty_provision_makes_a_project_without_databases() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let reg = registry(dir.path(), 16);
        let (p, created) = reg.provision_empty(&pn("bare")).expect("provision");
        assert!(created);
        assert!(database_names(&p).is_empty());
        assert!(matches!(
            p.create_collection(meta("coll"), false),
            Err(StoreError::DatabaseNotFound(_))
        ));
        // an existing project is opened as it is, and reported as not created
        let (_, created) = reg.provision_empty(&pn("bare")).expect("again");
        assert!(!created);
        drop(p);
        reg.close_all();
    }
    // reopening creates nothing either
    let reg = registry(dir.path(), 16);
    let p = reg.project(&pn("bare")).expect("reopen");
    assert!(database_names(&p).is_empty());
    for name in ["zz9", "B1x", DEFAULT_DATABASE, "a00"] {
        p.ensure_database(name).expect("create");
    }
    p.ensure_database("a00").expect("exists already");
    // byte order of the names
    assert_eq!(database_names(&p), ["B1x", "a00", DEFAULT_DATABASE, "zz9"]);
}

#[test]
fn project_created_on_first_use_has_its_default_database_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let reg = registry(dir.path(), 16);
        let p = reg.project(&pn("used")).expect("project");
        assert_eq!(database_names(&p), [DEFAULT_DATABASE]);
        let (p2, created) = reg.provision(&pn("provisioned")).expect("provision");
        assert!(created);
        assert_eq!(database_names(&p2), [DEFAULT_DATABASE]);
        p.create_database("other").expect("create");
        p.delete_database(DEFAULT_DATABASE).expect("delete");
        drop((p, p2));
        reg.close_all();
    }
    // a deleted default database stays deleted: only creating the store adds it
    let reg = registry(dir.path(), 16);
    let p = reg.project(&pn("used")).expect("reopen");
    assert_eq!(database_names(&p), ["other"]);
    let (p, created) = reg.provision_empty(&pn("used")).expect("provision");
    assert!(!created);
    assert_eq!(database_names(&p), ["other"]);
}
