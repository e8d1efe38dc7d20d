//! Many projects on a server that keeps only a few open: projects are closed and reopened
//! as they are used, and their data stays intact.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const PROJECTS: usize = 12;
const RECORDS: usize = 25;
const DIM: usize = 6;

fn project(k: usize) -> String {
    format!("proj-{k:02}")
}

fn coll(k: usize) -> String {
    format!("coll-of-{k:02}")
}

struct ProjectData {
    ids: Vec<String>,
    embs: Vec<Vec<f32>>,
    docs: Vec<String>,
    mds: Vec<Value>,
}

fn data(k: usize) -> ProjectData {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + k as u64);
    ProjectData {
        // the same ids in every project, different contents
        ids: (0..RECORDS).map(|j| format!("id-{j}")).collect(),
        embs: (0..RECORDS)
            .map(|_| (0..DIM).map(|_| rng.random_range(-10.0f32..10.0)).collect())
            .collect(),
        docs: (0..RECORDS)
            .map(|j| format!("project {k} record {j}"))
            .collect(),
        mds: (0..RECORDS)
            .map(|j| json!({"project": k, "j": j, "p": project(k)}))
            .collect(),
    }
}

async fn write_project(s: &TestServer, k: usize) {
    let (p, c) = (project(k), coll(k));
    s.create_collection(&p, &c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    let d = data(k);
    let r = s
        .add(
            &p,
            &c,
            &json!({"ids": d.ids, "embeddings": d.embs, "documents": d.docs, "metadatas": d.mds}),
        )
        .await;
    assert_eq!(r["added"], json!(RECORDS));
}

async fn check_project(s: &TestServer, k: usize, round: &str) {
    let (p, c) = (project(k), coll(k));
    let d = data(k);
    assert_eq!(
        s.count(&p, &c).await,
        RECORDS as u64,
        "{round}: count of {p}"
    );
    let cols = s.get(&format!("/api/v1/{p}/collections")).await;
    let names: Vec<&str> = cols.ok_object()["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [c.as_str()], "{round}: collections of {p}");
    let got = s
        .get_records(
            &p,
            &c,
            &json!({"include": ["documents", "metadatas", "embeddings"]}),
        )
        .await;
    assert_eq!(got["ids"], json!(d.ids), "{round}: ids of {p}");
    assert_eq!(got["documents"], json!(d.docs), "{round}: documents of {p}");
    assert_eq!(got["metadatas"], json!(d.mds), "{round}: metadata of {p}");
    for j in 0..RECORDS {
        assert_eq!(
            f32s(&got["embeddings"][j]),
            d.embs[j],
            "{round}: embedding {j} of {p}"
        );
    }
    let j = (k * 7 + 3) % RECORDS;
    let q = s
        .query(&p, &c, &json!({"query_embeddings": [d.embs[j]], "n_results": 1, "include": ["documents", "distances"]}))
        .await;
    assert_eq!(q["ids"], json!([[d.ids[j]]]), "{round}: query of {p}");
    assert_eq!(
        q["documents"],
        json!([[d.docs[j]]]),
        "{round}: query of {p}"
    );
    let f = s
        .get_records(&p, &c, &json!({"where": {"j": {"$lt": 5}}}))
        .await;
    assert_eq!(f["ids"], json!(d.ids[..5]), "{round}: filter in {p}");
}

fn open_count(listing: &Value) -> usize {
    listing["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["open"] == json!(true))
        .count()
}

#[track_caller]
fn assert_listing(listing: &Value, what: &str) {
    let projects = listing["projects"].as_array().expect("projects");
    let names: Vec<&str> = projects
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..PROJECTS).map(project).collect();
    assert_eq!(names, want, "{what}: listed projects");
    for p in projects {
        assert_eq!(p["collections"], json!(1), "{what}: {p}");
        assert_eq!(p["records"], json!(RECORDS), "{what}: {p}");
        assert!(p["bytes"].as_u64().unwrap() > 0, "{what}: {p}");
    }
}

/// The project listing once no project is in the middle of closing: the same figures as
/// an immediate listing should give (see `listing_is_exact_right_after_evictions`).
async fn settled_listing(s: &TestServer) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = s.get("/api/v1/projects").await.ok_object().clone();
        let projects = listing["projects"].as_array().unwrap();
        if projects.len() == PROJECTS && projects.iter().all(|p| p["records"] == json!(RECORDS)) {
            return listing;
        }
        if Instant::now() > deadline {
            return listing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn listing_is_exact_right_after_evictions() {
    let s = TestServer::start(&["--max-open-projects", "3"]).await;
    for k in 0..PROJECTS {
        write_project(&s, k).await;
        // every listing, even one taken while evicted projects are still closing, shows
        // every project with its figures
        let listing = s.get("/api/v1/projects").await;
        let projects = listing.ok_object()["projects"].as_array().unwrap();
        assert_eq!(projects.len(), k + 1, "{}", listing.text);
        for p in projects {
            assert_eq!(
                p["collections"],
                json!(1),
                "listing after writing project {k}: {p}"
            );
            assert_eq!(
                p["records"],
                json!(RECORDS),
                "listing after writing project {k}: {p}"
            );
        }
    }
}

#[tokio::test]
async fn many_projects_with_few_open() {
    let s = TestServer::start(&["--max-open-projects", "3"]).await;
    for k in 0..PROJECTS {
        write_project(&s, k).await;
    }
    let listing = settled_listing(&s).await;
    assert_listing(&listing, "after writes");
    assert!(open_count(&listing) <= 3, "more than 3 open: {listing}");

    // read everything back twice, in different orders, forcing closes and reopens
    for k in 0..PROJECTS {
        check_project(&s, k, "round 1").await;
    }
    let order = [11, 0, 5, 3, 9, 1, 7, 2, 10, 4, 8, 6];
    for k in order {
        check_project(&s, k, "round 2").await;
    }
    for k in (0..PROJECTS).rev() {
        check_project(&s, k, "round 3").await;
    }

    // concurrent readers of all projects at once
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..3 {
        for k in 0..PROJECTS {
            let client = s.client.clone();
            let url = s.url(&cpath(&project(k), &coll(k), "/get"));
            tasks.spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"include": ["documents", "embeddings"]}))
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (round, k, status, body)
            });
        }
    }
    while let Some(res) = tasks.join_next().await {
        let (round, k, status, body) = res.expect("task");
        assert_eq!(status, 200, "concurrent round {round} project {k}: {body}");
        let d = data(k);
        assert_eq!(
            body["results"]["documents"],
            json!(d.docs),
            "concurrent round {round} project {k}"
        );
        for j in 0..RECORDS {
            assert_eq!(f32s(&body["results"]["embeddings"][j]), d.embs[j]);
        }
    }

    let listing = settled_listing(&s).await;
    assert_listing(&listing, "after reads");
    assert!(open_count(&listing) <= 3, "more than 3 open: {listing}");

    // writes to a project that was closed are kept too
    let p0 = project(0);
    let c0 = coll(0);
    s.post(
        &cpath(&p0, &c0, "/update"),
        &json!({"ids": ["id-0"], "documents": ["changed"]}),
    )
    .await
    .ok_object();
    for k in 1..PROJECTS {
        s.count(&project(k), &coll(k)).await;
    }
    let got = s.get_records(&p0, &c0, &json!({"ids": ["id-0"]})).await;
    assert_eq!(got["documents"], json!(["changed"]));
}

#[tokio::test]
async fn idle_projects_are_closed_and_reopen_intact() {
    let s = TestServer::start(&["--idle-close-secs", "1"]).await;
    for k in 0..3 {
        write_project(&s, k).await;
    }
    // wait for the idle closer
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listing = s.get("/api/v1/projects").await;
        let projects = listing.ok_object()["projects"].as_array().unwrap().clone();
        assert_eq!(projects.len(), 3);
        if projects.iter().all(|p| p["open"] == json!(false)) {
            for p in &projects {
                assert_eq!(p["records"], json!(RECORDS), "closed project figures: {p}");
                assert_eq!(p["collections"], json!(1), "closed project figures: {p}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "projects never closed: {}",
            listing.text
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for k in 0..3 {
        check_project(&s, k, "after idle close").await;
    }
    let listing = s.get("/api/v1/projects").await;
    assert!(open_count(listing.ok_object()) >= 1, "{}", listing.text);
}
