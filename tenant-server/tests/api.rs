//! Every endpoint of docs/api-v1.md against the real server binary, asserting the exact
//! JSON shapes and Chroma's record semantics.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn strs(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn random_vectors(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, what: &str) {
    let tol = 1e-4 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected}"
    );
}

/// Asserts that a Collection JSON has the documented shape.
#[track_caller]
fn assert_collection_shape(c: &Value) {
    assert_eq!(
        keys(c),
        strs(&[
            "name",
            "id",
            "metadata",
            "count",
            "dimension",
            "configuration",
            "indexing"
        ]),
        "{c}"
    );
    assert_eq!(
        keys(&c["configuration"]["hnsw"]),
        strs(&["space", "ef_construction", "ef_search", "max_neighbors"]),
        "{c}"
    );
    let id = c["id"].as_str().expect("id string");
    assert_eq!(id.len(), 36, "id should be a UUID: {id}");
    assert_eq!(id.matches('-').count(), 4, "id should be a UUID: {id}");
    assert!(c["count"].is_u64(), "{c}");
}

#[tokio::test]
async fn server_info_endpoints() {
    let s = TestServer::start(&[]).await;
    let root = s.get("/").await;
    let body = root.ok_object();
    assert_eq!(keys(body), strs(&["message", "version", "base_workspace"]));
    assert_eq!(body["message"], json!("Quiver tenant server"));
    let version = body["version"].as_str().expect("version string");
    assert!(!version.is_empty());
    assert_eq!(
        body["base_workspace"],
        json!(s.workspace().display().to_string())
    );

    let hb = s.get("/api/v1/heartbeat").await;
    let body = hb.ok_object();
    assert_eq!(keys(body), strs(&["status", "nanosecond heartbeat"]));
    assert_eq!(body["status"], json!("ok"));
    let ns1 = body["nanosecond heartbeat"]
        .as_u64()
        .expect("integer heartbeat");
    // a plausible wall-clock time in nanoseconds (after 2020)
    assert!(ns1 > 1_577_836_800_000_000_000, "{ns1}");
    let ns2 = s.get("/api/v1/heartbeat").await.ok_object()["nanosecond heartbeat"]
        .as_u64()
        .unwrap();
    assert!(ns2 >= ns1);

    let v = s.get("/api/v1/version").await;
    assert_eq!(v.ok_object(), &json!({ "version": version }));
}

#[tokio::test]
async fn projects_are_created_on_first_access_and_listed_with_stats() {
    let s = TestServer::start(&[]).await;
    assert_eq!(
        s.get("/api/v1/projects").await.ok_object(),
        &json!({"projects": []})
    );

    // first access by a read creates the project
    let r = s.get("/api/v1/alpha/collections").await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": "alpha", "collections": []})
    );
    assert!(s.workspace().join("alpha/knowledge-graph/db").is_dir());

    s.create_collection("alpha", "coll1", json!({})).await;
    s.create_collection("alpha", "coll2", json!({})).await;
    s.add(
        "alpha",
        "coll1",
        &json!({"ids": ["a", "b", "c"], "embeddings": [[1, 0], [0, 1], [1, 1]], "documents": ["x", "y", "z"]}),
    )
    .await;
    s.add(
        "alpha",
        "coll2",
        &json!({"ids": ["a", "b"], "embeddings": [[1, 0], [0, 1]]}),
    )
    .await;

    // first access by a write creates another project
    s.create_collection("beta", "only", json!({})).await;
    assert!(s.workspace().join("beta/knowledge-graph/db").is_dir());

    let list = s.get("/api/v1/projects").await;
    let projects = list.ok_object()["projects"]
        .as_array()
        .expect("projects list")
        .clone();
    assert_eq!(keys(list.ok_object()), strs(&["projects"]));
    assert_eq!(projects.len(), 2, "{}", list.text);
    let alpha = &projects[0];
    assert_eq!(
        keys(alpha),
        strs(&["name", "path", "open", "collections", "records", "bytes"])
    );
    assert_eq!(alpha["name"], json!("alpha"));
    assert_eq!(
        alpha["path"],
        json!(s
            .workspace()
            .join("alpha")
            .join("knowledge-graph")
            .display()
            .to_string())
    );
    assert_eq!(alpha["open"], json!(true));
    assert_eq!(alpha["collections"], json!(2));
    assert_eq!(alpha["records"], json!(5));
    assert!(alpha["bytes"].as_u64().expect("bytes") > 0);
    let beta = &projects[1];
    assert_eq!(beta["name"], json!("beta"));
    assert_eq!(beta["collections"], json!(1));
    assert_eq!(beta["records"], json!(0));

    // the figures follow deletes
    let d = s
        .post(&cpath("alpha", "coll1", "/delete"), &json!({"ids": ["a"]}))
        .await;
    assert_eq!(d.ok_object()["deleted"], json!(1));
    let list = s.get("/api/v1/projects").await;
    assert_eq!(
        list.ok_object()["projects"][0]["records"],
        json!(4),
        "{}",
        list.text
    );
}

#[tokio::test]
async fn delete_project_removes_it() {
    let s = TestServer::start(&[]).await;
    s.create_collection("doomed", "coll", json!({})).await;
    s.add(
        "doomed",
        "coll",
        &json!({"ids": ["a"], "embeddings": [[1, 2]]}),
    )
    .await;
    s.create_collection("keeper", "coll", json!({})).await;
    assert!(s.workspace().join("doomed").is_dir());

    let r = s.delete("/api/v1/doomed").await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "message"]));
    assert_eq!(body["project"], json!("doomed"));
    assert!(body["message"].as_str().unwrap().contains("doomed"));
    assert!(
        !s.workspace().join("doomed").exists(),
        "project directory still exists"
    );

    let again = s.delete("/api/v1/doomed").await;
    let msg = again.chroma_err(404, "NotFoundError");
    assert!(msg.contains("doomed"), "{msg}");

    let list = s.get("/api/v1/projects").await;
    let names: Vec<&str> = list.ok_object()["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keeper"]);

    // accessing it again starts an empty project
    let r = s.get("/api/v1/doomed/collections").await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": "doomed", "collections": []})
    );
    s.get(&cpath("doomed", "coll", ""))
        .await
        .chroma_err(404, "NotFoundError");
}

#[tokio::test]
async fn collection_create_defaults_and_spaces() {
    let s = TestServer::start(&[]).await;
    let p = "proj";
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "plain"}),
        )
        .await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "collection"]));
    assert_eq!(body["project"], json!(p));
    let c = &body["collection"];
    assert_collection_shape(c);
    assert_eq!(c["name"], json!("plain"));
    assert_eq!(c["metadata"], Value::Null);
    assert_eq!(c["count"], json!(0));
    assert_eq!(c["dimension"], Value::Null);
    assert_eq!(
        c["configuration"],
        json!({"hnsw": {"space": "cosine", "ef_construction": 100, "ef_search": 100, "max_neighbors": 16}})
    );

    let c = s
        .create_collection(
            p,
            "by-config",
            json!({"configuration": {"hnsw": {"space": "l2", "ef_search": 42}}}),
        )
        .await;
    assert_eq!(c["configuration"]["hnsw"]["space"], json!("l2"));
    assert_eq!(c["configuration"]["hnsw"]["ef_search"], json!(42));

    let by_metadata = s
        .create_collection(
            p,
            "by-metadata",
            json!({"metadata": {"hnsw:space": "ip", "hnsw:construction_ef": 77, "hnsw:search_ef": 33, "hnsw:M": 8, "topic": "news", "n": 3}}),
        )
        .await;
    assert_eq!(
        by_metadata["configuration"],
        json!({"hnsw": {"space": "ip", "ef_construction": 77, "ef_search": 33, "max_neighbors": 8}})
    );
    assert_eq!(by_metadata["metadata"]["topic"], json!("news"));
    assert_eq!(by_metadata["metadata"]["n"], json!(3));
    assert_eq!(by_metadata["metadata"]["hnsw:space"], json!("ip"));

    let c = s
        .create_collection(
            p,
            "all-config",
            json!({"configuration": {"hnsw": {"space": "cosine", "ef_construction": 150, "ef_search": 60, "max_neighbors": 24}}}),
        )
        .await;
    assert_eq!(
        c["configuration"],
        json!({"hnsw": {"space": "cosine", "ef_construction": 150, "ef_search": 60, "max_neighbors": 24}})
    );

    // GET returns the same thing as create
    for name in ["plain", "by-config", "by-metadata", "all-config"] {
        let got = s.collection(p, name).await;
        assert_collection_shape(&got);
        assert_eq!(got["name"], json!(name));
    }
    let by_meta = s.collection(p, "by-metadata").await;
    assert_eq!(by_meta["id"], by_metadata["id"]);
    assert_eq!(by_meta["configuration"], by_metadata["configuration"]);
    assert_eq!(by_meta["metadata"], by_metadata["metadata"]);

    let list = s.get(&format!("/api/v1/{p}/collections")).await;
    let body = list.ok_object();
    assert_eq!(keys(body), strs(&["project", "collections"]));
    assert_eq!(body["project"], json!(p));
    let mut names: Vec<String> = body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_collection_shape(c);
            c["name"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        strs(&["plain", "by-config", "by-metadata", "all-config"])
    );
}

#[tokio::test]
async fn collection_space_is_used_for_distances() {
    let s = TestServer::start(&[]).await;
    let p = "spaces";
    let data = json!({"ids": ["a"], "embeddings": [[3.0, 4.0]]});
    s.create_collection(p, "default", json!({})).await;
    s.create_collection(
        p,
        "space-l2",
        json!({"configuration": {"hnsw": {"space": "l2"}}}),
    )
    .await;
    s.create_collection(p, "space-ip", json!({"metadata": {"hnsw:space": "ip"}}))
        .await;
    for c in ["default", "space-l2", "space-ip"] {
        s.add(p, c, &data).await;
    }
    let q = json!({"query_embeddings": [[1.0, 0.0]], "n_results": 1});
    let d = |r: Value| r["distances"][0][0].as_f64().unwrap();
    // cosine: 1 - 3/5
    assert_close(d(s.query(p, "default", &q).await), 0.4, "cosine default");
    // squared l2: (3-1)^2 + 4^2
    assert_close(d(s.query(p, "space-l2", &q).await), 20.0, "l2");
    // ip: 1 - 3
    assert_close(d(s.query(p, "space-ip", &q).await), -2.0, "ip");
}

/// `GET …/collections/{id}/indexing_status` (the client's `get_indexing_status`) answers
/// what the store knows: every record is counted, and once the indexer has caught up,
/// every record is indexed.
#[tokio::test]
async fn v2_indexing_status_reports_indexed_and_total_records() {
    let s = TestServer::start(&[]).await;
    let base = "/api/v2/tenants/ix-tenant/databases/default_database/collections";
    s.post("/api/v2/tenants", &json!({"name": "ix-tenant"}))
        .await
        .ok_object();
    // a tenant made by create_tenant has no database yet, as in Chroma
    s.post(
        "/api/v2/tenants/ix-tenant/databases",
        &json!({"name": "default_database"}),
    )
    .await
    .ok_object();
    let c = s
        .post(base, &json!({"name": "coll"}))
        .await
        .ok_object()
        .clone();
    let id = c["id"].as_str().expect("collection id").to_string();
    let status = |v: &Value| {
        (
            v["num_indexed_ops"].as_u64().expect("indexed"),
            v["num_unindexed_ops"].as_u64().expect("unindexed"),
            v["total_ops"].as_u64().expect("total"),
            v["op_indexing_progress"].as_f64().expect("progress"),
        )
    };
    let empty = s.get(&format!("{base}/{id}/indexing_status")).await;
    assert_eq!(status(empty.ok_object()), (0, 0, 0, 1.0));

    let n = 300;
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..n)
        .map(|i| vec![i as f32, 1.0, (i % 7) as f32])
        .collect();
    s.post(
        &format!("{base}/{id}/add"),
        &json!({"ids": ids, "embeddings": embeddings}),
    )
    .await
    .ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.get(&format!("{base}/{id}/indexing_status")).await;
        let (indexed, unindexed, total, progress) = status(r.ok_object());
        assert_eq!(total, n, "every record counts");
        assert_eq!(indexed + unindexed, total);
        assert!((progress - indexed as f64 / total as f64).abs() < 1e-9);
        if unindexed == 0 {
            assert_eq!(progress, 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not indexed in time: {indexed}/{total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = s
        .get(&format!(
            "{base}/00000000-0000-0000-0000-000000000000/indexing_status"
        ))
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn collection_json_has_indexing_object() {
    let s = TestServer::start(&[]).await;
    let c = s.create_collection("proj", "coll", json!({})).await;
    // documented shape: "indexing": {"indexed", "unindexed"}
    assert!(
        c["indexing"].is_object(),
        "indexing should be an object right after create: {c}"
    );
    s.add(
        "proj",
        "coll",
        &json!({"ids": ["a", "b"], "embeddings": [[1, 0], [0, 1]]}),
    )
    .await;
    let c = s.collection("proj", "coll").await;
    let ix = &c["indexing"];
    assert_eq!(keys(ix), strs(&["indexed", "unindexed"]), "{c}");
    assert_eq!(
        ix["indexed"].as_u64().unwrap() + ix["unindexed"].as_u64().unwrap(),
        2,
        "{c}"
    );
}

#[tokio::test]
async fn modify_collection() {
    let s = TestServer::start(&[]).await;
    let p = "proj";
    let created = s
        .create_collection(p, "old-name", json!({"metadata": {"a": 1, "b": "x"}}))
        .await;
    s.add(
        p,
        "old-name",
        &json!({"ids": ["r1"], "embeddings": [[1, 2]], "documents": ["d"]}),
    )
    .await;

    // rename
    let r = s
        .put(&cpath(p, "old-name", ""), &json!({"new_name": "new-name"}))
        .await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "collection"]));
    assert_eq!(body["collection"]["name"], json!("new-name"));
    assert_eq!(body["collection"]["id"], created["id"]);
    assert_eq!(body["collection"]["metadata"], json!({"a": 1, "b": "x"}));
    s.get(&cpath(p, "old-name", ""))
        .await
        .chroma_err(404, "NotFoundError");
    let got = s.collection(p, "new-name").await;
    assert_eq!(got["id"], created["id"]);
    assert_eq!(got["count"], json!(1));
    assert_eq!(s.count(p, "new-name").await, 1);
    let recs = s.get_records(p, "new-name", &json!({"ids": ["r1"]})).await;
    assert_eq!(recs["documents"], json!(["d"]));

    // metadata is replaced
    let r = s
        .put(
            &cpath(p, "new-name", ""),
            &json!({"new_metadata": {"c": true}}),
        )
        .await;
    assert_eq!(r.ok_object()["collection"]["metadata"], json!({"c": true}));
    assert_eq!(
        s.collection(p, "new-name").await["metadata"],
        json!({"c": true})
    );

    // ef_search can change
    let r = s
        .put(
            &cpath(p, "new-name", ""),
            &json!({"new_configuration": {"hnsw": {"ef_search": 55}}}),
        )
        .await;
    assert_eq!(
        r.ok_object()["collection"]["configuration"]["hnsw"]["ef_search"],
        json!(55)
    );
    let got = s.collection(p, "new-name").await;
    assert_eq!(
        got["configuration"]["hnsw"],
        json!({"space": "cosine", "ef_construction": 100, "ef_search": 55, "max_neighbors": 16})
    );

    // PATCH is accepted too
    let r = s
        .patch(
            &cpath(p, "new-name", ""),
            &json!({"new_configuration": {"hnsw": {"ef_search": 66}}}),
        )
        .await;
    assert_eq!(
        r.ok_object()["collection"]["configuration"]["hnsw"]["ef_search"],
        json!(66)
    );

    // space, ef_construction and max_neighbors are fixed
    for change in [
        json!({"space": "l2"}),
        json!({"ef_construction": 300}),
        json!({"max_neighbors": 32}),
    ] {
        let r = s
            .put(
                &cpath(p, "new-name", ""),
                &json!({"new_configuration": {"hnsw": change}}),
            )
            .await;
        r.chroma_err(400, "InvalidArgumentError");
    }
    let got = s.collection(p, "new-name").await;
    assert_eq!(
        got["configuration"]["hnsw"],
        json!({"space": "cosine", "ef_construction": 100, "ef_search": 66, "max_neighbors": 16})
    );
    assert_eq!(got["name"], json!("new-name"));
}

#[tokio::test]
async fn delete_collection_and_recreate_is_empty() {
    let s = TestServer::start(&[]).await;
    let p = "proj";
    let first = s.create_collection(p, "coll", json!({})).await;
    s.create_collection(p, "other", json!({})).await;
    s.add(
        p,
        "coll",
        &json!({"ids": ["a", "b"], "embeddings": [[1, 2, 3], [4, 5, 6]]}),
    )
    .await;
    s.add(p, "other", &json!({"ids": ["a"], "embeddings": [[1, 2]]}))
        .await;

    let r = s.delete(&cpath(p, "coll", "")).await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "message"]));
    assert_eq!(body["project"], json!(p));
    s.get(&cpath(p, "coll", ""))
        .await
        .chroma_err(404, "NotFoundError");
    s.get(&cpath(p, "coll", "/count"))
        .await
        .chroma_err(404, "NotFoundError");
    s.delete(&cpath(p, "coll", ""))
        .await
        .chroma_err(404, "NotFoundError");
    let list = s.get(&format!("/api/v1/{p}/collections")).await;
    let names: Vec<&str> = list.ok_object()["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other"]);

    // a new collection with the same name starts empty, with no dimension
    let again = s.create_collection(p, "coll", json!({})).await;
    assert_ne!(again["id"], first["id"]);
    assert_eq!(again["count"], json!(0));
    assert_eq!(again["dimension"], Value::Null);
    assert_eq!(s.count(p, "coll").await, 0);
    let got = s.get_records(p, "coll", &json!({"ids": ["a", "b"]})).await;
    assert_eq!(got["ids"], json!([]));
    let q = s
        .query(
            p,
            "coll",
            &json!({"query_embeddings": [[1, 2]], "n_results": 5}),
        )
        .await;
    assert_eq!(q["ids"], json!([[]]));
    // the other collection is untouched
    assert_eq!(s.count(p, "other").await, 1);
}

#[tokio::test]
async fn get_or_create_returns_existing() {
    let s = TestServer::start(&[]).await;
    let p = "proj";
    let first = s
        .create_collection(
            p,
            "coll",
            json!({"metadata": {"v": 1}, "configuration": {"hnsw": {"space": "l2"}}}),
        )
        .await;
    s.add(p, "coll", &json!({"ids": ["a"], "embeddings": [[1, 2]]}))
        .await;
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "coll", "get_or_create": true, "metadata": {"v": 2}}),
        )
        .await;
    let c = &r.ok_object()["collection"];
    assert_eq!(c["id"], first["id"]);
    assert_eq!(c["count"], json!(1));
    assert_eq!(c["dimension"], json!(2));
    assert_eq!(c["configuration"]["hnsw"]["space"], json!("l2"));
    assert_eq!(s.count(p, "coll").await, 1);

    // get_or_create of a new name creates it
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "fresh", "get_or_create": true}),
        )
        .await;
    assert_eq!(r.ok_object()["collection"]["name"], json!("fresh"));
    assert_eq!(r.ok_object()["collection"]["count"], json!(0));
}

#[tokio::test]
async fn dimension_is_null_until_first_add_then_fixed() {
    let s = TestServer::start(&[]).await;
    let p = "proj";
    let c = s.create_collection(p, "coll", json!({})).await;
    assert_eq!(c["dimension"], Value::Null);
    // a rejected add does not fix it
    s.post(
        &cpath(p, "coll", "/add"),
        &json!({"ids": ["a"], "embeddings": [[]]}),
    )
    .await
    .chroma_err(400, "InvalidArgumentError");
    assert_eq!(s.collection(p, "coll").await["dimension"], Value::Null);

    s.add(p, "coll", &json!({"ids": ["a"], "embeddings": [[1, 2, 3]]}))
        .await;
    assert_eq!(s.collection(p, "coll").await["dimension"], json!(3));
    let r = s
        .post(
            &cpath(p, "coll", "/add"),
            &json!({"ids": ["b"], "embeddings": [[1, 2]]}),
        )
        .await;
    r.chroma_err(400, "InvalidDimension");
    // deleting every record keeps the dimension
    s.post(&cpath(p, "coll", "/delete"), &json!({"ids": ["a"]}))
        .await
        .ok_object();
    assert_eq!(s.count(p, "coll").await, 0);
    let c = s.collection(p, "coll").await;
    assert_eq!(c["dimension"], json!(3));
    s.post(
        &cpath(p, "coll", "/add"),
        &json!({"ids": ["b"], "embeddings": [[1, 2]]}),
    )
    .await
    .chroma_err(400, "InvalidDimension");
    s.add(p, "coll", &json!({"ids": ["b"], "embeddings": [[4, 5, 6]]}))
        .await;
    assert_eq!(s.count(p, "coll").await, 1);
}

#[tokio::test]
async fn add_upsert_update_follow_chroma_semantics() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "recs");
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    let r = s
        .post(
            &cpath(p, c, "/add"),
            &json!({
                "ids": ["r1", "r2"],
                "embeddings": [[1.0, 0.0], [0.0, 1.0]],
                "documents": ["one", "two"],
                "metadatas": [{"k": "v1", "n": 1}, {"k": "v2", "n": 2}],
                "uris": ["u1", "u2"],
            }),
        )
        .await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "added": 2, "total_count": 2})
    );

    // add of an existing id does not overwrite it
    let r = s
        .post(
            &cpath(p, c, "/add"),
            &json!({
                "ids": ["r2", "r3"],
                "embeddings": [[5.0, 5.0], [1.0, 1.0]],
                "documents": ["TWO", "three"],
                "metadatas": [{"k": "changed"}, {"k": "v3"}],
            }),
        )
        .await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "added": 1, "total_count": 3})
    );
    let got = s
        .get_records(
            p,
            c,
            &json!({"ids": ["r2"], "include": ["documents", "metadatas", "embeddings", "uris"]}),
        )
        .await;
    assert_eq!(got["documents"], json!(["two"]));
    assert_eq!(got["metadatas"], json!([{"k": "v2", "n": 2}]));
    assert_eq!(f32s(&got["embeddings"][0]), vec![0.0, 1.0]);
    assert_eq!(got["uris"], json!(["u2"]));

    // update ignores unknown ids and keeps the vector when no embedding is given
    let r = s
        .post(
            &cpath(p, c, "/update"),
            &json!({"ids": ["r1", "ghost"], "documents": ["ONE", "boo"]}),
        )
        .await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "updated": 1, "total_count": 3})
    );
    let got = s
        .get_records(p, c, &json!({"ids": ["r1", "ghost"], "include": ["documents", "metadatas", "embeddings", "uris"]}))
        .await;
    assert_eq!(got["ids"], json!(["r1"]));
    assert_eq!(got["documents"], json!(["ONE"]));
    assert_eq!(got["metadatas"], json!([{"k": "v1", "n": 1}]));
    assert_eq!(got["uris"], json!(["u1"]));
    assert_eq!(f32s(&got["embeddings"][0]), vec![1.0, 0.0]);
    // the unchanged vector is still found by query
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[1.0, 0.0]], "n_results": 1, "include": ["distances"]}),
        )
        .await;
    assert_eq!(q["ids"], json!([["r1"]]));
    assert_close(q["distances"][0][0].as_f64().unwrap(), 0.0, "self distance");

    // update with an embedding moves the record
    s.post(
        &cpath(p, c, "/update"),
        &json!({"ids": ["r1"], "embeddings": [[-3.0, -3.0]]}),
    )
    .await
    .ok_object();
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[-3.0, -3.0]], "n_results": 1}),
        )
        .await;
    assert_eq!(q["ids"], json!([["r1"]]));
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[1.0, 0.0]], "n_results": 3, "include": ["distances"]}),
        )
        .await;
    assert_eq!(q["ids"][0][2], json!("r1"), "{q}");
    assert_close(
        q["distances"][0][2].as_f64().unwrap(),
        25.0,
        "moved distance",
    );
    let got = s
        .get_records(
            p,
            c,
            &json!({"ids": ["r1"], "include": ["documents", "embeddings"]}),
        )
        .await;
    assert_eq!(got["documents"], json!(["ONE"]));
    assert_eq!(f32s(&got["embeddings"][0]), vec![-3.0, -3.0]);

    // upsert updates existing ids and inserts new ones
    let r = s
        .post(
            &cpath(p, c, "/upsert"),
            &json!({
                "ids": ["r2", "r4"],
                "embeddings": [[2.0, 2.0], [4.0, 4.0]],
                "documents": ["two v2", "four"],
                "metadatas": [{"extra": true}, {"k": "v4"}],
            }),
        )
        .await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "upserted": 2, "total_count": 4})
    );
    assert_eq!(s.count(p, c).await, 4);
    let got = s
        .get_records(
            p,
            c,
            &json!({"ids": ["r2", "r4"], "include": ["documents", "metadatas", "embeddings"]}),
        )
        .await;
    assert_eq!(got["ids"], json!(["r2", "r4"]));
    assert_eq!(got["documents"], json!(["two v2", "four"]));
    // upsert merges metadata like update does
    assert_eq!(
        got["metadatas"],
        json!([{"k": "v2", "n": 2, "extra": true}, {"k": "v4"}])
    );
    assert_eq!(f32s(&got["embeddings"][0]), vec![2.0, 2.0]);
    assert_eq!(f32s(&got["embeddings"][1]), vec![4.0, 4.0]);
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[0.0, 1.0]], "n_results": 4}),
        )
        .await;
    // the old vector of r2 ([0, 1]) is gone
    assert_ne!(q["ids"][0][0], json!("r2"), "{q}");
    assert_eq!(q["ids"][0].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn metadata_null_removes_key_and_values_keep_types() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "md-coll");
    s.create_collection(p, c, json!({})).await;
    s.add(
        p,
        c,
        &json!({
            "ids": ["a", "b"],
            "embeddings": [[1, 0], [0, 1]],
            "metadatas": [
                {"int": 3, "float": 3.0, "half": 2.5, "str": "s", "bool": false, "list": ["x", "y"], "nums": [1, 2], "fl": [1.5, 2.5], "bl": [true]},
                {"keep": 1, "drop": 2}
            ],
        }),
    )
    .await;
    let got = s.get_records(p, c, &json!({"ids": ["a"]})).await;
    let md = &got["metadatas"][0];
    assert_eq!(
        md,
        &json!({"int": 3, "float": 3.0, "half": 2.5, "str": "s", "bool": false, "list": ["x", "y"], "nums": [1, 2], "fl": [1.5, 2.5], "bl": [true]})
    );
    assert!(md["int"].is_i64(), "int stays int: {md}");
    assert!(md["float"].is_f64(), "float stays float: {md}");

    // update: null removes, other keys merge
    s.post(
        &cpath(p, c, "/update"),
        &json!({"ids": ["b"], "metadatas": [{"drop": null, "new": "n"}]}),
    )
    .await
    .ok_object();
    let got = s.get_records(p, c, &json!({"ids": ["b"]})).await;
    assert_eq!(got["metadatas"], json!([{"keep": 1, "new": "n"}]));

    // upsert: same rule
    s.post(
        &cpath(p, c, "/upsert"),
        &json!({"ids": ["b"], "embeddings": [[0, 1]], "metadatas": [{"new": null, "keep": 5}]}),
    )
    .await
    .ok_object();
    let got = s.get_records(p, c, &json!({"ids": ["b"]})).await;
    assert_eq!(got["metadatas"], json!([{"keep": 5}]));

    // removing the last key leaves no metadata
    s.post(
        &cpath(p, c, "/update"),
        &json!({"ids": ["b"], "metadatas": [{"keep": null}]}),
    )
    .await
    .ok_object();
    let got = s.get_records(p, c, &json!({"ids": ["b"]})).await;
    assert_eq!(got["metadatas"], json!([null]));
    // and the removed key no longer matches filters
    let got = s.get_records(p, c, &json!({"where": {"keep": 5}})).await;
    assert_eq!(got["ids"], json!([]));
    let got = s.get_records(p, c, &json!({"where": {"drop": 2}})).await;
    assert_eq!(got["ids"], json!([]));
}

#[tokio::test]
async fn base64_embeddings_are_accepted() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "b64");
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    let v1 = [0.5f32, -1.25, 3.0, 1e-3];
    let v2 = [1.0f32 / 3.0, 2.0, -0.1, 7.0];
    let r = s
        .post(
            &cpath(p, c, "/add"),
            &json!({"ids": ["x", "y"], "embeddings": [b64(&v1), v2.to_vec()]}),
        )
        .await;
    assert_eq!(r.ok_object()["added"], json!(2));
    assert_eq!(s.collection(p, c).await["dimension"], json!(4));
    let got = s
        .get_records(p, c, &json!({"ids": ["x", "y"], "include": ["embeddings"]}))
        .await;
    assert_eq!(f32s(&got["embeddings"][0]), v1.to_vec());
    assert_eq!(f32s(&got["embeddings"][1]), v2.to_vec());

    // upsert and update take base64 too
    let v3 = [9.0f32, 9.0, 9.0, 9.0];
    s.post(
        &cpath(p, c, "/update"),
        &json!({"ids": ["x"], "embeddings": [b64(&v3)]}),
    )
    .await
    .ok_object();
    let v4 = [-9.0f32, 0.0, 0.0, 0.0];
    s.post(
        &cpath(p, c, "/upsert"),
        &json!({"ids": ["z"], "embeddings": [b64(&v4)]}),
    )
    .await
    .ok_object();
    let got = s
        .get_records(p, c, &json!({"ids": ["x", "z"], "include": ["embeddings"]}))
        .await;
    assert_eq!(f32s(&got["embeddings"][0]), v3.to_vec());
    assert_eq!(f32s(&got["embeddings"][1]), v4.to_vec());

    // and query embeddings
    let q = s
        .query(p, c, &json!({"query_embeddings": [b64(&v2), b64(&v4)], "n_results": 1, "include": ["distances"]}))
        .await;
    assert_eq!(q["ids"], json!([["y"], ["z"]]));
    assert_close(q["distances"][0][0].as_f64().unwrap(), 0.0, "b64 query");
}

#[tokio::test]
async fn delete_by_ids_where_document_and_limit() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "del");
    s.create_collection(p, c, json!({})).await;
    let n = 20;
    let ids: Vec<String> = (0..n).map(|i| format!("id{i:02}")).collect();
    let embs: Vec<Vec<f32>> = (0..n).map(|i| vec![1.0, i as f32]).collect();
    let docs: Vec<String> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("even {i}")
            } else {
                format!("odd {i}")
            }
        })
        .collect();
    let mds: Vec<Value> = (0..n).map(|i| json!({"g": i % 4, "i": i})).collect();
    s.add(
        p,
        c,
        &json!({"ids": ids, "embeddings": embs, "documents": docs, "metadatas": mds}),
    )
    .await;

    // by ids, unknown ids are not counted
    let r = s
        .post(
            &cpath(p, c, "/delete"),
            &json!({"ids": ["id00", "id01", "nope"]}),
        )
        .await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "deleted": 2, "total_count": 18})
    );
    // by where: g == 1 → id05, id09, id13, id17 remain of 1,5,9,13,17
    let r = s
        .post(&cpath(p, c, "/delete"), &json!({"where": {"g": 1}}))
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(4));
    assert_eq!(r.ok_object()["total_count"], json!(14));
    // by where_document
    let r = s
        .post(
            &cpath(p, c, "/delete"),
            &json!({"where_document": {"$contains": "odd 3"}}),
        )
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(1)); // id03
    assert_eq!(r.ok_object()["total_count"], json!(13));
    // with limit: g == 2 matches id02, id06, id10, id14, id18
    let r = s
        .post(
            &cpath(p, c, "/delete"),
            &json!({"where": {"g": 2}, "limit": 2}),
        )
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(2));
    assert_eq!(r.ok_object()["total_count"], json!(11));
    let left = s.get_records(p, c, &json!({"where": {"g": 2}})).await;
    assert_eq!(ids_of(&left["ids"]).len(), 3);
    // ids and where together: only ids that match
    let r = s
        .post(
            &cpath(p, c, "/delete"),
            &json!({"ids": ["id04", "id07", "id08"], "where": {"g": 0}}),
        )
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(2)); // id04, id08
    assert_eq!(r.ok_object()["total_count"], json!(9));
    // the original server's DELETE …/documents
    let r = s
        .delete_json(
            &cpath(p, c, "/documents"),
            &json!({"ids": ["id07", "id11"]}),
        )
        .await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "deleted": 2, "total_count": 7})
    );
    // deleting nothing
    let r = s
        .post(&cpath(p, c, "/delete"), &json!({"ids": ["id00"]}))
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(0));
    assert_eq!(r.ok_object()["total_count"], json!(7));

    let remaining = sorted(ids_of(&s.get_records(p, c, &json!({})).await["ids"]));
    assert_eq!(remaining.len(), 7);
    assert_eq!(s.count(p, c).await, 7);
    for gone in [
        "id00", "id01", "id03", "id04", "id05", "id07", "id08", "id09", "id11", "id13", "id17",
    ] {
        assert!(
            !remaining.contains(&gone.to_string()),
            "{gone} should be deleted: {remaining:?}"
        );
    }
    for kept in ["id12", "id15", "id16", "id19"] {
        assert!(
            remaining.contains(&kept.to_string()),
            "{kept} should remain: {remaining:?}"
        );
    }
    // deleted records are not returned by query either
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[1.0, 1.0]], "n_results": 20}),
        )
        .await;
    assert_eq!(sorted(ids_of(&q["ids"][0])), remaining);
}

async fn check_query_space(space: &str) {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "query-coll");
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": space}}}))
        .await;
    let n = 60;
    let data = random_vectors(7, n, 8);
    let ids: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    s.add(p, c, &json!({"ids": ids, "embeddings": data})).await;
    let queries = random_vectors(99, 3, 8);
    let r = s
        .post(
            &cpath(p, c, "/query"),
            &json!({"query_embeddings": queries, "n_results": 5, "include": ["distances"]}),
        )
        .await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "collection", "results"]));
    let res = &body["results"];
    assert_eq!(
        keys(res),
        strs(&[
            "ids",
            "distances",
            "embeddings",
            "documents",
            "metadatas",
            "uris",
            "include"
        ])
    );
    assert_eq!(
        res["ids"].as_array().unwrap().len(),
        3,
        "one list per query"
    );
    for (qi, q) in queries.iter().enumerate() {
        let want = brute_force(space, &data, q, 5);
        let got_ids = ids_of(&res["ids"][qi]);
        let want_ids: Vec<String> = want.iter().map(|(i, _)| format!("v{i}")).collect();
        assert_eq!(got_ids, want_ids, "{space} query {qi}");
        let dists = res["distances"][qi].as_array().unwrap();
        for (j, (_, d)) in want.iter().enumerate() {
            assert_close(
                dists[j].as_f64().unwrap(),
                *d,
                &format!("{space} q{qi} rank {j}"),
            );
        }
    }
    // n_results defaults to 10; more than the count returns everything
    let r = s
        .query(p, c, &json!({"query_embeddings": [queries[0]]}))
        .await;
    assert_eq!(r["ids"][0].as_array().unwrap().len(), 10);
    let r = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [queries[0]], "n_results": 1000, "include": ["distances"]}),
        )
        .await;
    assert_eq!(r["ids"][0].as_array().unwrap().len(), n);
    let d: Vec<f64> = r["distances"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "nearest first: {d:?}");
    // every distance equals the brute-force one
    for (id, dist) in ids_of(&r["ids"][0]).iter().zip(&d) {
        let i: usize = id[1..].parse().unwrap();
        assert_close(*dist, distance(space, &data[i], &queries[0]), id);
    }
}

#[tokio::test]
async fn query_l2_matches_brute_force() {
    check_query_space("l2").await;
}

#[tokio::test]
async fn query_cosine_matches_brute_force() {
    check_query_space("cosine").await;
}

#[tokio::test]
async fn query_ip_matches_brute_force() {
    check_query_space("ip").await;
}

#[tokio::test]
async fn query_graph_path_distances_are_exact() {
    // enough records that the unfiltered query goes through the HNSW graph
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "big");
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    let n = 1500;
    let data = random_vectors(3, n, 12);
    for chunk in 0..(n / 500) {
        let ids: Vec<String> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| format!("v{i}"))
            .collect();
        s.add(
            p,
            c,
            &json!({"ids": ids, "embeddings": data[chunk * 500..(chunk + 1) * 500]}),
        )
        .await;
    }
    s.wait_indexed(p, c, std::time::Duration::from_secs(60))
        .await;
    let queries = random_vectors(4, 20, 12);
    let res = s
        .query(
            p,
            c,
            &json!({"query_embeddings": queries, "n_results": 10, "include": ["distances"]}),
        )
        .await;
    let mut hits = 0;
    for (qi, q) in queries.iter().enumerate() {
        let got = ids_of(&res["ids"][qi]);
        assert_eq!(got.len(), 10);
        let dists = res["distances"][qi].as_array().unwrap();
        for (id, d) in got.iter().zip(dists) {
            let i: usize = id[1..].parse().unwrap();
            assert_close(d.as_f64().unwrap(), l2(&data[i], q), id);
        }
        let want: BTreeSet<String> = brute_force("l2", &data, q, 10)
            .iter()
            .map(|(i, _)| format!("v{i}"))
            .collect();
        hits += got.iter().filter(|id| want.contains(*id)).count();
    }
    assert!(hits as f64 / 200.0 >= 0.9, "recall {hits}/200");
}

#[tokio::test]
async fn get_by_query_params_and_body() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "get-coll");
    s.create_collection(p, c, json!({})).await;
    let n = 10;
    let ids: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let embs: Vec<Vec<f32>> = (0..n).map(|i| vec![i as f32, 1.0]).collect();
    let docs: Vec<String> = (0..n).map(|i| format!("doc {i}")).collect();
    let mds: Vec<Value> = (0..n)
        .map(|i| json!({"i": i, "even": i % 2 == 0}))
        .collect();
    s.add(
        p,
        c,
        &json!({"ids": ids, "embeddings": embs, "documents": docs, "metadatas": mds}),
    )
    .await;

    // GET, repeated ids, default include, answered in storage order (Chroma's), not in
    // the order asked
    let r = s.get(&cpath(p, c, "/get?ids=k3&ids=k1&ids=missing")).await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "collection", "results"]));
    assert_eq!(body["project"], json!(p));
    assert_eq!(body["collection"], json!(c));
    assert_eq!(
        body["results"],
        json!({
            "ids": ["k1", "k3"],
            "embeddings": null,
            "documents": ["doc 1", "doc 3"],
            "metadatas": [{"i": 1, "even": false}, {"i": 3, "even": false}],
            "uris": null,
            "include": ["documents", "metadatas"],
        })
    );

    // repeated include
    let r = s
        .get(&cpath(
            p,
            c,
            "/get?ids=k2&include=embeddings&include=metadatas",
        ))
        .await;
    let res = &r.ok_object()["results"];
    assert_eq!(res["documents"], Value::Null);
    assert_eq!(res["metadatas"], json!([{"i": 2, "even": true}]));
    assert_eq!(f32s(&res["embeddings"][0]), vec![2.0, 1.0]);
    assert_eq!(res["include"], json!(["metadatas", "embeddings"]));

    // where as JSON text, with limit and offset (write order)
    let w = qs(&json!({"even": true}).to_string());
    let r = s
        .get(&cpath(p, c, &format!("/get?where={w}&limit=2&offset=1")))
        .await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(["k2", "k4"]));
    let wd = qs(&json!({"$contains": "doc 7"}).to_string());
    let r = s
        .get(&cpath(p, c, &format!("/get?where_document={wd}")))
        .await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(["k7"]));

    // plain GET returns everything in write order
    let r = s.get(&cpath(p, c, "/get")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(ids));
    let r = s.get(&cpath(p, c, "/get?limit=3")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(["k0", "k1", "k2"]));
    let r = s.get(&cpath(p, c, "/get?offset=8")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(["k8", "k9"]));
    let r = s.get(&cpath(p, c, "/get?offset=20")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!([]));

    // POST body: same answers
    let res = s
        .get_records(p, c, &json!({"ids": ["k3", "k1", "missing"]}))
        .await;
    assert_eq!(res["ids"], json!(["k1", "k3"]));
    assert_eq!(res["documents"], json!(["doc 1", "doc 3"]));
    let res = s
        .get_records(
            p,
            c,
            &json!({"where": {"even": true}, "limit": 2, "offset": 1}),
        )
        .await;
    assert_eq!(res["ids"], json!(["k2", "k4"]));
    let res = s
        .get_records(p, c, &json!({"where": {"i": {"$gte": 5}}, "where_document": {"$contains": "doc"}, "limit": 10}))
        .await;
    assert_eq!(res["ids"], json!(["k5", "k6", "k7", "k8", "k9"]));
    let res = s.get_records(p, c, &json!({"limit": 0})).await;
    assert_eq!(res["ids"], json!([]));
    // an empty body means "everything"
    let r = s.post_raw(&cpath(p, c, "/get"), "").await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(ids));
}

#[tokio::test]
async fn count_and_peek() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "count-peek");
    s.create_collection(p, c, json!({})).await;
    let r = s.get(&cpath(p, c, "/count")).await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "count": 0})
    );
    let r = s.get(&cpath(p, c, "/peek")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!([]));

    let n = 15;
    let ids: Vec<String> = (0..n).map(|i| format!("p{i:02}")).collect();
    let embs: Vec<Vec<f32>> = (0..n).map(|i| vec![i as f32 + 1.0, 0.5]).collect();
    let docs: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let mds: Vec<Value> = (0..n).map(|i| json!({"i": i})).collect();
    s.add(
        p,
        c,
        &json!({"ids": ids, "embeddings": embs, "documents": docs, "metadatas": mds, "uris": ids}),
    )
    .await;
    let r = s.get(&cpath(p, c, "/count")).await;
    assert_eq!(
        r.ok_object(),
        &json!({"project": p, "collection": c, "count": n})
    );

    let r = s.get(&cpath(p, c, "/peek")).await;
    let body = r.ok_object();
    assert_eq!(keys(body), strs(&["project", "collection", "results"]));
    let res = &body["results"];
    assert_eq!(res["ids"], json!(ids[..10]));
    assert_eq!(res["documents"], json!(docs[..10]));
    assert_eq!(res["metadatas"], json!(mds[..10]));
    assert_eq!(res["uris"], Value::Null);
    assert_eq!(
        res["include"],
        json!(["documents", "metadatas", "embeddings"])
    );
    for i in 0..10 {
        assert_eq!(f32s(&res["embeddings"][i]), embs[i]);
    }
    let r = s.get(&cpath(p, c, "/peek?limit=3")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(ids[..3]));
    let r = s.get(&cpath(p, c, "/peek?limit=100")).await;
    assert_eq!(r.ok_object()["results"]["ids"], json!(ids));
}

/// Four records with different missing fields.
async fn include_fixture(s: &TestServer, p: &str, c: &str) -> BTreeMap<String, Value> {
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    s.add(
        p,
        c,
        &json!({
            "ids": ["full", "doc-only", "md-only", "uri-only"],
            "embeddings": [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]],
            "documents": ["the doc", "just a doc", null, null],
            "metadatas": [{"m": 1}, null, {"m": 3}, null],
            "uris": ["uri://full", null, null, "uri://only"],
        }),
    )
    .await;
    let mut expect = BTreeMap::new();
    expect.insert(
        "full".to_string(),
        json!({"embeddings": [0.0, 0.0], "documents": "the doc", "metadatas": {"m": 1}, "uris": "uri://full", "distances": 0.0}),
    );
    expect.insert(
        "doc-only".to_string(),
        json!({"embeddings": [1.0, 0.0], "documents": "just a doc", "metadatas": null, "uris": null, "distances": 1.0}),
    );
    expect.insert(
        "md-only".to_string(),
        json!({"embeddings": [2.0, 0.0], "documents": null, "metadatas": {"m": 3}, "uris": null, "distances": 4.0}),
    );
    expect.insert(
        "uri-only".to_string(),
        json!({"embeddings": [3.0, 0.0], "documents": null, "metadatas": null, "uris": "uri://only", "distances": 9.0}),
    );
    expect
}

const ORDER: [&str; 5] = ["documents", "metadatas", "embeddings", "distances", "uris"];

fn field_matches(field: &str, got: &Value, want: &Value) -> bool {
    match field {
        "embeddings" => got.is_array() && f32s(got) == f32s(want),
        "distances" => got
            .as_f64()
            .is_some_and(|g| (g - want.as_f64().unwrap()).abs() < 1e-4),
        _ => got == want,
    }
}

#[tokio::test]
async fn get_include_every_combination() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "inc");
    let expect = include_fixture(&s, p, c).await;
    let fields = ["documents", "metadatas", "embeddings", "uris"];
    for mask in 0..(1u32 << fields.len()) {
        let include: Vec<&str> = fields
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, f)| *f)
            .collect();
        let ids = ["uri-only", "full", "md-only", "doc-only"];
        let res = s
            .get_records(p, c, &json!({"ids": ids, "include": include}))
            .await;
        assert_eq!(
            keys(&res),
            strs(&[
                "ids",
                "embeddings",
                "documents",
                "metadatas",
                "uris",
                "include"
            ]),
            "{res}"
        );
        // storage order, whatever the order asked
        let stored = ["full", "doc-only", "md-only", "uri-only"];
        assert_eq!(res["ids"], json!(stored));
        let echoed: Vec<&str> = ORDER
            .iter()
            .copied()
            .filter(|f| include.contains(f))
            .collect();
        assert_eq!(res["include"], json!(echoed), "include {include:?}");
        for f in fields {
            if include.contains(&f) {
                let list = res[f]
                    .as_array()
                    .unwrap_or_else(|| panic!("{f} should be a list for {include:?}: {res}"));
                assert_eq!(list.len(), ids.len());
                for (id, got) in stored.iter().zip(list) {
                    let want = &expect[*id][f];
                    assert!(
                        field_matches(f, got, want),
                        "{f} of {id}: got {got}, want {want}"
                    );
                }
            } else {
                assert_eq!(
                    res[f],
                    Value::Null,
                    "{f} not included in {include:?}: {res}"
                );
            }
        }
    }
}

#[tokio::test]
async fn query_include_every_combination() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "qinc");
    let expect = include_fixture(&s, p, c).await;
    for mask in 0..(1u32 << ORDER.len()) {
        let include: Vec<&str> = ORDER
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, f)| *f)
            .collect();
        let res = s
            .query(
                p,
                c,
                &json!({"query_embeddings": [[0.0, 0.0], [3.0, 0.0]], "n_results": 4, "include": include}),
            )
            .await;
        assert_eq!(
            keys(&res),
            strs(&[
                "ids",
                "distances",
                "embeddings",
                "documents",
                "metadatas",
                "uris",
                "include"
            ]),
            "{res}"
        );
        assert_eq!(
            res["ids"],
            json!([
                ["full", "doc-only", "md-only", "uri-only"],
                ["uri-only", "md-only", "doc-only", "full"]
            ])
        );
        assert_eq!(res["include"], json!(include), "include {include:?}");
        for f in ORDER {
            if !include.contains(&f) {
                assert_eq!(
                    res[f],
                    Value::Null,
                    "{f} not included in {include:?}: {res}"
                );
                continue;
            }
            let outer = res[f]
                .as_array()
                .unwrap_or_else(|| panic!("{f} should be a list for {include:?}: {res}"));
            assert_eq!(outer.len(), 2);
            for (qi, inner) in outer.iter().enumerate() {
                let ids = ids_of(&res["ids"][qi]);
                let inner = inner.as_array().unwrap();
                assert_eq!(inner.len(), ids.len());
                for (id, got) in ids.iter().zip(inner) {
                    let mut want = expect[id.as_str()][f].clone();
                    if f == "distances" && qi == 1 {
                        let x = expect[id.as_str()]["embeddings"][0].as_f64().unwrap();
                        want = json!((x - 3.0).powi(2));
                    }
                    assert!(
                        field_matches(f, got, &want),
                        "query {qi} {f} of {id}: got {got}, want {want}"
                    );
                }
            }
        }
    }
    // the defaults
    let res = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[0.0, 0.0]], "n_results": 1}),
        )
        .await;
    assert_eq!(
        res["include"],
        json!(["documents", "metadatas", "distances"])
    );
    assert_eq!(res["embeddings"], Value::Null);
    assert_eq!(res["uris"], Value::Null);
    assert_eq!(res["documents"], json!([["the doc"]]));
    let res = s.get_records(p, c, &json!({"ids": ["full"]})).await;
    assert_eq!(res["include"], json!(["documents", "metadatas"]));
}

// ---- filters ----

/// The filter fixture: 30 records whose metadata covers every value type, including
/// missing keys and a key that is an int on some records and a float on others.
struct Rec {
    id: String,
    i: Option<i64>,
    /// int on even records, float (i + 0.25) on odd ones
    num: f64,
    s: &'static str,
    b: bool,
    tags: Option<Vec<String>>,
    nums: Option<Vec<i64>>,
    neg: f64,
    doc: String,
}

fn filter_fixture() -> Vec<Rec> {
    let colors = ["red", "green", "blue"];
    let words = ["alpha", "beta", "gamma", "delta"];
    (0..30i64)
        .map(|i| Rec {
            id: format!("r{i:02}"),
            i: (i % 7 != 6).then_some(i),
            num: if i % 2 == 0 {
                i as f64
            } else {
                i as f64 + 0.25
            },
            s: colors[(i % 3) as usize],
            b: i % 2 == 0,
            tags: (i % 3 != 2).then(|| vec![format!("t{}", i % 4), "all".to_string()]),
            nums: (i < 10).then(|| vec![i, i + 1]),
            neg: i as f64 * -1.5,
            doc: format!(
                "doc {i} {} {}",
                colors[(i % 3) as usize],
                words[(i % 4) as usize]
            ),
        })
        .collect()
}

fn fixture_metadata(r: &Rec, idx: i64) -> Value {
    let mut m = Map::new();
    if let Some(i) = r.i {
        m.insert("i".into(), json!(i));
    }
    if idx % 2 == 0 {
        m.insert("num".into(), json!(idx));
    } else {
        m.insert("num".into(), json!(r.num));
    }
    m.insert("s".into(), json!(r.s));
    m.insert("b".into(), json!(r.b));
    if let Some(t) = &r.tags {
        m.insert("tags".into(), json!(t));
    }
    if let Some(n) = &r.nums {
        m.insert("nums".into(), json!(n));
    }
    m.insert("neg".into(), json!(r.neg));
    Value::Object(m)
}

async fn load_filter_fixture(s: &TestServer, p: &str, c: &str) -> Vec<Rec> {
    let recs = filter_fixture();
    s.create_collection(p, c, json!({})).await;
    let vectors = random_vectors(11, recs.len(), 4);
    s.add(
        p,
        c,
        &json!({
            "ids": recs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            "embeddings": vectors,
            "documents": recs.iter().map(|r| r.doc.clone()).collect::<Vec<_>>(),
            "metadatas": recs.iter().enumerate().map(|(i, r)| fixture_metadata(r, i as i64)).collect::<Vec<_>>(),
        }),
    )
    .await;
    recs
}

type Pred = Box<dyn Fn(&Rec) -> bool>;

fn case(w: Value, f: impl Fn(&Rec) -> bool + 'static) -> (Value, Pred) {
    (w, Box::new(f))
}

fn where_cases() -> Vec<(Value, Pred)> {
    let has_tag = |r: &Rec, t: &str| r.tags.as_ref().is_some_and(|v| v.iter().any(|x| x == t));
    let has_num = |r: &Rec, n: i64| r.nums.as_ref().is_some_and(|v| v.contains(&n));
    vec![
        case(json!({"s": "red"}), |r: &Rec| r.s == "red"),
        case(json!({"s": {"$eq": "green"}}), |r: &Rec| r.s == "green"),
        case(json!({"s": {"$ne": "green"}}), |r: &Rec| r.s != "green"),
        case(json!({"i": 3}), |r: &Rec| r.i == Some(3)),
        case(json!({"i": {"$eq": 3.0}}), |r: &Rec| r.i == Some(3)),
        // $ne also matches records without the key
        case(json!({"i": {"$ne": 3}}), |r: &Rec| r.i != Some(3)),
        case(json!({"i": {"$gt": 20}}), |r: &Rec| {
            r.i.is_some_and(|i| i > 20)
        }),
        case(json!({"i": {"$gte": 20}}), |r: &Rec| {
            r.i.is_some_and(|i| i >= 20)
        }),
        case(json!({"i": {"$lt": 5}}), |r: &Rec| {
            r.i.is_some_and(|i| i < 5)
        }),
        case(json!({"i": {"$lte": 5}}), |r: &Rec| {
            r.i.is_some_and(|i| i <= 5)
        }),
        case(json!({"i": {"$gt": 20.5}}), |r: &Rec| {
            r.i.is_some_and(|i| i > 20)
        }),
        case(json!({"i": {"$lte": 4.99}}), |r: &Rec| {
            r.i.is_some_and(|i| i <= 4)
        }),
        // ints and floats in the same key compare numerically
        case(json!({"num": {"$gt": 10}}), |r: &Rec| r.num > 10.0),
        case(json!({"num": {"$gte": 11}}), |r: &Rec| r.num >= 11.0),
        case(json!({"num": {"$lt": 7.25}}), |r: &Rec| r.num < 7.25),
        case(json!({"num": {"$lte": 7.25}}), |r: &Rec| r.num <= 7.25),
        case(json!({"num": 4.0}), |r: &Rec| r.num == 4.0),
        case(json!({"num": {"$eq": 7.25}}), |r: &Rec| r.num == 7.25),
        case(json!({"num": 7}), |r: &Rec| r.num == 7.0),
        case(json!({"num": {"$ne": 8.0}}), |r: &Rec| r.num != 8.0),
        case(json!({"num": {"$in": [6.0, 7.25, 100]}}), |r: &Rec| {
            r.num == 6.0 || r.num == 7.25
        }),
        case(json!({"neg": {"$gt": -3}}), |r: &Rec| r.neg > -3.0),
        case(json!({"neg": {"$lt": -40}}), |r: &Rec| r.neg < -40.0),
        case(json!({"neg": {"$gte": -1.5}}), |r: &Rec| r.neg >= -1.5),
        case(json!({"b": true}), |r: &Rec| r.b),
        case(json!({"b": {"$eq": false}}), |r: &Rec| !r.b),
        case(json!({"b": {"$ne": true}}), |r: &Rec| !r.b),
        // a bool is not the number 1
        case(json!({"b": 1}), |_: &Rec| false),
        case(json!({"s": {"$in": ["red", "blue"]}}), |r: &Rec| {
            r.s != "green"
        }),
        case(json!({"i": {"$in": [1, 2, 3, 100]}}), |r: &Rec| {
            matches!(r.i, Some(1..=3))
        }),
        // $nin also matches records without the key
        case(json!({"i": {"$nin": [1, 2, 3]}}), |r: &Rec| {
            !matches!(r.i, Some(1..=3))
        }),
        case(json!({"s": {"$nin": ["red"]}}), |r: &Rec| r.s != "red"),
        case(json!({"tags": {"$contains": "t1"}}), move |r: &Rec| {
            has_tag(r, "t1")
        }),
        case(json!({"tags": {"$contains": "all"}}), move |r: &Rec| {
            has_tag(r, "all")
        }),
        // $not_contains also matches records without the key
        case(json!({"tags": {"$not_contains": "t1"}}), move |r: &Rec| {
            !has_tag(r, "t1")
        }),
        case(json!({"nums": {"$contains": 5}}), move |r: &Rec| {
            has_num(r, 5)
        }),
        case(json!({"nums": {"$not_contains": 5}}), move |r: &Rec| {
            !has_num(r, 5)
        }),
        case(json!({"missing": 1}), |_: &Rec| false),
        case(json!({"missing": {"$ne": 1}}), |_: &Rec| true),
        case(
            json!({"$and": [{"s": "red"}, {"i": {"$gt": 10}}]}),
            |r: &Rec| r.s == "red" && r.i.is_some_and(|i| i > 10),
        ),
        case(json!({"$or": [{"s": "red"}, {"b": true}]}), |r: &Rec| {
            r.s == "red" || r.b
        }),
        case(
            json!({"$or": [
                {"$and": [{"s": "blue"}, {"i": {"$lt": 10}}]},
                {"$and": [{"tags": {"$contains": "t0"}}, {"b": false}]},
                {"$and": [{"num": {"$gt": 25}}, {"$or": [{"s": "green"}, {"i": {"$nin": [28]}}]}]}
            ]}),
            move |r: &Rec| {
                (r.s == "blue" && r.i.is_some_and(|i| i < 10))
                    || (has_tag(r, "t0") && !r.b)
                    || (r.num > 25.0 && (r.s == "green" || r.i != Some(28)))
            },
        ),
        case(
            json!({"$and": [{"$or": [{"i": {"$lt": 3}}, {"i": {"$gt": 26}}]}, {"b": true}]}),
            |r: &Rec| r.i.is_some_and(|i| !(3..=26).contains(&i)) && r.b,
        ),
        // several keys in one object mean $and
        case(json!({"s": "red", "b": true}), |r: &Rec| {
            r.s == "red" && r.b
        }),
        case(
            json!({"s": {"$ne": "red"}, "i": {"$gte": 15}, "tags": {"$contains": "all"}}),
            move |r: &Rec| r.s != "red" && r.i.is_some_and(|i| i >= 15) && has_tag(r, "all"),
        ),
    ]
}

fn doc_cases() -> Vec<(Value, Pred)> {
    vec![
        case(json!({"$contains": "alpha"}), |r: &Rec| {
            r.doc.contains("alpha")
        }),
        case(json!({"$contains": "ALPHA"}), |_: &Rec| false),
        case(json!({"$contains": "doc 3 "}), |r: &Rec| r.id == "r03"),
        case(json!({"$not_contains": "alpha"}), |r: &Rec| {
            !r.doc.contains("alpha")
        }),
        case(json!({"$regex": "^doc 1[0-9] "}), |r: &Rec| {
            r.id.starts_with("r1")
        }),
        case(json!({"$regex": "(red|blue) gamma$"}), |r: &Rec| {
            r.doc.ends_with("red gamma") || r.doc.ends_with("blue gamma")
        }),
        case(json!({"$not_regex": "gamma|delta"}), |r: &Rec| {
            !r.doc.contains("gamma") && !r.doc.contains("delta")
        }),
        case(
            json!({"$and": [{"$contains": "red"}, {"$not_contains": "beta"}]}),
            |r: &Rec| r.doc.contains("red") && !r.doc.contains("beta"),
        ),
        case(
            json!({"$or": [{"$contains": "doc 3 "}, {"$regex": "delta$"}]}),
            |r: &Rec| r.id == "r03" || r.doc.ends_with("delta"),
        ),
        case(
            json!({"$and": [{"$or": [{"$contains": "green"}, {"$contains": "blue"}]}, {"$not_regex": "^doc 2"}]}),
            |r: &Rec| {
                (r.doc.contains("green") || r.doc.contains("blue")) && !r.doc.starts_with("doc 2")
            },
        ),
    ]
}

fn expected_ids(recs: &[Rec], pred: &Pred) -> Vec<String> {
    sorted(
        recs.iter()
            .filter(|r| pred(r))
            .map(|r| r.id.clone())
            .collect(),
    )
}

#[tokio::test]
async fn metadata_filters_on_get_and_query() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "filters");
    let recs = load_filter_fixture(&s, p, c).await;
    let mut failures = Vec::new();
    for (w, pred) in where_cases() {
        let want = expected_ids(&recs, &pred);
        let got = s.get_records(p, c, &json!({"where": w})).await;
        let got_ids = sorted(ids_of(&got["ids"]));
        if got_ids != want {
            failures.push(format!("get where {w}: got {got_ids:?}, want {want:?}"));
        }
        let q = s
            .query(
                p,
                c,
                &json!({"query_embeddings": [[0.1, 0.2, 0.3, 0.4]], "n_results": 100, "where": w}),
            )
            .await;
        let q_ids = sorted(ids_of(&q["ids"][0]));
        if q_ids != want {
            failures.push(format!("query where {w}: got {q_ids:?}, want {want:?}"));
        }
        // GET with where as JSON text
        let r = s
            .get(&cpath(p, c, &format!("/get?where={}", qs(&w.to_string()))))
            .await;
        let g_ids = sorted(ids_of(&r.ok_object()["results"]["ids"]));
        if g_ids != want {
            failures.push(format!("GET ?where={w}: got {g_ids:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} filter mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn document_filters_on_get_and_query() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "docs");
    let recs = load_filter_fixture(&s, p, c).await;
    let mut failures = Vec::new();
    for (wd, pred) in doc_cases() {
        let want = expected_ids(&recs, &pred);
        let got = s.get_records(p, c, &json!({"where_document": wd})).await;
        let got_ids = sorted(ids_of(&got["ids"]));
        if got_ids != want {
            failures.push(format!(
                "get where_document {wd}: got {got_ids:?}, want {want:?}"
            ));
        }
        let q = s
            .query(p, c, &json!({"query_embeddings": [[0.1, 0.2, 0.3, 0.4]], "n_results": 100, "where_document": wd}))
            .await;
        let q_ids = sorted(ids_of(&q["ids"][0]));
        if q_ids != want {
            failures.push(format!(
                "query where_document {wd}: got {q_ids:?}, want {want:?}"
            ));
        }
    }
    // where and where_document together
    let got = s
        .get_records(
            p,
            c,
            &json!({"where": {"b": true}, "where_document": {"$contains": "red"}}),
        )
        .await;
    let want = expected_ids(
        &recs,
        &(Box::new(|r: &Rec| r.b && r.doc.contains("red")) as Pred),
    );
    assert_eq!(sorted(ids_of(&got["ids"])), want);
    // and with ids
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[0.0, 0.0, 0.0, 0.0]], "n_results": 100, "ids": ["r00", "r03", "r06", "r09"], "where": {"s": "red"}, "where_document": {"$not_contains": "doc 9 "}}),
        )
        .await;
    assert_eq!(sorted(ids_of(&q["ids"][0])), strs(&["r00", "r03", "r06"]));
    assert!(
        failures.is_empty(),
        "{} filter mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn query_filters_restrict_nearest_neighbours() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "qfilter");
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    let n = 40;
    let data: Vec<Vec<f32>> = (0..n).map(|i| vec![i as f32, 0.0]).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
    let mds: Vec<Value> = (0..n).map(|i| json!({"odd": i % 2 == 1})).collect();
    s.add(
        p,
        c,
        &json!({"ids": ids, "embeddings": data, "metadatas": mds}),
    )
    .await;
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[10.2, 0.0], [0.0, 0.0]], "n_results": 3, "where": {"odd": true}, "include": ["distances"]}),
        )
        .await;
    assert_eq!(q["ids"], json!([["x11", "x9", "x13"], ["x1", "x3", "x5"]]));
    assert_close(q["distances"][0][0].as_f64().unwrap(), 0.64, "x11");
    let q = s
        .query(p, c, &json!({"query_embeddings": [[0.0, 0.0]], "n_results": 3, "ids": ["x30", "x20", "x25", "x39"]}))
        .await;
    assert_eq!(q["ids"], json!([["x20", "x25", "x30"]]));
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[0.0, 0.0]], "n_results": 3, "where": {"odd": "nope"}}),
        )
        .await;
    assert_eq!(q["ids"], json!([[]]));
    // n_results 0
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[0.0, 0.0]], "n_results": 0}),
        )
        .await;
    assert_eq!(q["ids"], json!([[]]));
}

#[tokio::test]
async fn large_integers_compare_exactly() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "bigint");
    s.create_collection(p, c, json!({})).await;
    // 2^53 and 2^53 + 1 are the same f64
    s.add(
        p,
        c,
        &json!({"ids": ["lo", "hi"], "embeddings": [[1, 0], [0, 1]], "metadatas": [{"n": 9007199254740992i64}, {"n": 9007199254740993i64}]}),
    )
    .await;
    let got = s.get_records(p, c, &json!({"ids": ["hi"]})).await;
    assert_eq!(got["metadatas"], json!([{"n": 9007199254740993i64}]));
    let got = s
        .get_records(p, c, &json!({"where": {"n": 9007199254740993i64}}))
        .await;
    assert_eq!(got["ids"], json!(["hi"]), "$eq on a large int");
    let got = s
        .get_records(p, c, &json!({"where": {"n": {"$gt": 9007199254740992i64}}}))
        .await;
    assert_eq!(got["ids"], json!(["hi"]), "$gt on a large int");
    let got = s
        .get_records(p, c, &json!({"where": {"n": {"$ne": 9007199254740992i64}}}))
        .await;
    assert_eq!(got["ids"], json!(["hi"]), "$ne on a large int");
}

#[tokio::test]
async fn long_collection_names_work() {
    // Chroma's rule: 3 to 512 characters
    let s = TestServer::start(&[]).await;
    for len in [3, 300, 512] {
        let name = "c".repeat(len);
        let r = s
            .post("/api/v1/proj/collections", &json!({"name": name}))
            .await;
        assert_eq!(r.status, 200, "collection name of {len} chars: {}", r.text);
        assert_eq!(s.collection("proj", &name).await["name"], json!(name));
    }
}

#[tokio::test]
async fn long_project_names_work() {
    // project names follow the same rule as tenant names: up to 512 characters
    let s = TestServer::start(&[]).await;
    let mut names = Vec::new();
    for len in [3, 200, 201, 255, 300, 512] {
        names.push("p".repeat(len));
    }
    // long names that differ only at the end are different projects
    names.push(format!("{}a", "q".repeat(299)));
    names.push(format!("{}b", "q".repeat(299)));
    for (k, name) in names.iter().enumerate() {
        let len = name.len();
        let r = s.get(&format!("/api/v1/{name}/collections")).await;
        assert_eq!(r.status, 200, "project name of {len} chars: {}", r.text);
        assert_eq!(r.body["project"], json!(name));
        assert_eq!(
            r.body["collections"],
            json!([]),
            "project name of {len} chars"
        );
        let r = s
            .post(
                &format!("/api/v1/{name}/collections"),
                &json!({"name": "coll1"}),
            )
            .await;
        assert_eq!(r.status, 200, "project name of {len} chars: {}", r.text);
        let ids: Vec<String> = (0..=k).map(|i| format!("r{i}")).collect();
        let embs = vec![vec![1.0f32, 2.0]; k + 1];
        s.add(name, "coll1", &json!({"ids": ids, "embeddings": embs}))
            .await;
    }
    for (k, name) in names.iter().enumerate() {
        assert_eq!(
            s.count(name, "coll1").await,
            k as u64 + 1,
            "project of {} chars",
            name.len()
        );
    }
    // listed under their real names, with their figures
    let list = s.get("/api/v1/projects").await;
    let projects = list.ok_object()["projects"].as_array().unwrap().clone();
    for (k, name) in names.iter().enumerate() {
        let p = projects
            .iter()
            .find(|p| p["name"] == json!(name))
            .unwrap_or_else(|| panic!("project of {} chars not listed: {}", name.len(), list.text));
        assert_eq!(p["records"], json!(k + 1), "{p}");
        assert_eq!(p["collections"], json!(1), "{p}");
    }
    assert_eq!(projects.len(), names.len(), "{}", list.text);
    // and deleted like any other
    for name in &names {
        s.delete(&format!("/api/v1/{name}")).await.ok_object();
        s.delete(&format!("/api/v1/{name}"))
            .await
            .chroma_err(404, "NotFoundError");
    }
    assert_eq!(
        s.get("/api/v1/projects").await.ok_object(),
        &json!({"projects": []})
    );
    assert!(
        list_tree(s.workspace()).is_empty(),
        "{:?}",
        list_tree(s.workspace())
    );
}

#[tokio::test]
async fn filters_follow_metadata_changes() {
    let s = TestServer::start(&[]).await;
    let (p, c) = ("proj", "md-changes");
    s.create_collection(p, c, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    s.add(
        p,
        c,
        &json!({
            "ids": ["a", "b", "c"],
            "embeddings": [[1, 0], [0, 1], [1, 1]],
            "metadatas": [{"v": 3, "tag": ["x", "y"], "s": "old"}, {"v": 4}, {"v": 5}],
            "documents": ["first text", "second text", "third text"],
        }),
    )
    .await;
    // update changes values: the old ones stop matching
    s.post(
        &cpath(p, c, "/update"),
        &json!({"ids": ["a"], "metadatas": [{"v": 300, "tag": ["z"], "s": "new"}], "documents": ["changed text"]}),
    )
    .await
    .ok_object();
    let ids = |w: Value| {
        let s = &s;
        async move { ids_of(&s.get_records(p, c, &json!({"where": w})).await["ids"]) }
    };
    assert_eq!(ids(json!({"v": 3})).await, Vec::<String>::new());
    assert_eq!(ids(json!({"v": {"$gt": 200}})).await, ["a"]);
    assert_eq!(ids(json!({"v": {"$lt": 10}})).await, ["b", "c"]);
    assert_eq!(
        ids(json!({"tag": {"$contains": "x"}})).await,
        Vec::<String>::new()
    );
    assert_eq!(ids(json!({"tag": {"$contains": "z"}})).await, ["a"]);
    assert_eq!(ids(json!({"s": "old"})).await, Vec::<String>::new());
    assert_eq!(ids(json!({"s": {"$ne": "new"}})).await, ["b", "c"]);
    let got = s
        .get_records(p, c, &json!({"where_document": {"$contains": "first"}}))
        .await;
    assert_eq!(got["ids"], json!([]));
    let got = s
        .get_records(p, c, &json!({"where_document": {"$contains": "changed"}}))
        .await;
    assert_eq!(got["ids"], json!(["a"]));

    // upsert with a new embedding keeps one record, findable by its new values only
    s.post(
        &cpath(p, c, "/upsert"),
        &json!({"ids": ["b"], "embeddings": [[7, 7]], "metadatas": [{"v": 40}]}),
    )
    .await
    .ok_object();
    assert_eq!(ids(json!({"v": 40})).await, ["b"]);
    assert_eq!(ids(json!({"v": 4})).await, Vec::<String>::new());
    assert_eq!(ids(json!({"v": {"$gte": 0}})).await.len(), 3);
    let q = s
        .query(
            p,
            c,
            &json!({"query_embeddings": [[7, 7]], "n_results": 10, "where": {"v": {"$gte": 0}}}),
        )
        .await;
    assert_eq!(q["ids"][0].as_array().unwrap().len(), 3, "{q}");
    assert_eq!(q["ids"][0][0], json!("b"));
    assert_eq!(s.count(p, c).await, 3);
    // deleted records stop matching
    s.post(&cpath(p, c, "/delete"), &json!({"ids": ["b"]}))
        .await
        .ok_object();
    assert_eq!(ids(json!({"v": 40})).await, Vec::<String>::new());
    assert_eq!(ids(json!({"v": {"$ne": 1}})).await, ["a", "c"]);
}

#[tokio::test]
async fn concurrent_writes_are_all_applied() {
    let s = TestServer::start(&[]).await;
    let p = "proj";
    s.create_collection(p, "concurrent", json!({})).await;
    let tasks_n = 8;
    let per_task = 10;
    let batch = 20;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..tasks_n {
        let client = s.client.clone();
        let add = s.url(&cpath(p, "concurrent", "/add"));
        let upsert = s.url(&cpath(p, "concurrent", "/upsert"));
        tasks.spawn(async move {
            for r in 0..per_task {
                let ids: Vec<String> = (0..batch).map(|i| format!("t{t}-r{r}-{i}")).collect();
                let embs: Vec<Vec<f32>> = (0..batch).map(|i| vec![t as f32, r as f32, i as f32]).collect();
                let resp = client
                    .post(&add)
                    .json(&json!({"ids": ids, "embeddings": embs, "metadatas": vec![json!({"t": t}); batch]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
                // everybody also upserts the same shared ids
                let resp = client
                    .post(&upsert)
                    .json(&json!({"ids": ["shared-1", "shared-2"], "embeddings": [[t as f32, 0.0, 1.0], [t as f32, 1.0, 0.0]], "documents": [format!("by {t}"), format!("by {t}")]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("writer task");
    }
    let total = tasks_n * per_task * batch + 2;
    assert_eq!(s.count(p, "concurrent").await, total as u64);
    let all = s.get_records(p, "concurrent", &json!({})).await;
    let ids = ids_of(&all["ids"]);
    assert_eq!(ids.len(), total);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), total, "duplicate ids returned");
    for t in 0..tasks_n {
        let got = s
            .get_records(p, "concurrent", &json!({"where": {"t": t}}))
            .await;
        assert_eq!(
            ids_of(&got["ids"]).len(),
            per_task * batch,
            "records of task {t}"
        );
    }
    let q = s
        .query(
            p,
            "concurrent",
            &json!({"query_embeddings": [[0.0, 0.0, 1.0]], "n_results": total + 10}),
        )
        .await;
    assert_eq!(
        q["ids"][0].as_array().unwrap().len(),
        total,
        "query sees every record once"
    );

    // concurrent first writes of different dimensions: one dimension wins, consistently
    for round in 0..8 {
        let name = format!("race-{round}");
        s.create_collection(p, &name, json!({})).await;
        let mut tasks = tokio::task::JoinSet::new();
        for dim in [2usize, 3, 4] {
            let client = s.client.clone();
            let url = s.url(&cpath(p, &name, "/add"));
            tasks.spawn(async move {
                let ids: Vec<String> = (0..5).map(|i| format!("d{dim}-{i}")).collect();
                let embs = vec![vec![1.0f32; dim]; 5];
                let resp = client
                    .post(&url)
                    .json(&json!({"ids": ids, "embeddings": embs}))
                    .send()
                    .await
                    .unwrap();
                (dim, resp.status().as_u16())
            });
        }
        let mut winners = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (dim, status) = r.unwrap();
            assert!(status == 200 || status == 400, "status {status}");
            if status == 200 {
                winners.push(dim);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: accepted dimensions {winners:?}"
        );
        let c = s.collection(p, &name).await;
        assert_eq!(c["dimension"], json!(winners[0]));
        assert_eq!(c["count"], json!(5));
        let got = s
            .get_records(p, &name, &json!({"include": ["embeddings"]}))
            .await;
        for e in got["embeddings"].as_array().unwrap() {
            assert_eq!(f32s(e).len(), winners[0]);
        }
    }
}

/// Restricted origins: a listed origin may use every method of the APIs (reads, writes,
/// modify, delete) on the data and admin paths; an unlisted one gets no CORS headers.
#[tokio::test]
async fn cors_preflight_for_listed_and_unlisted_origins() {
    let s = TestServer::start(&[
        "--cors-origins",
        "https://app.example,https://other.example",
    ])
    .await;
    let http = s.http();
    let coll = "/api/v1/proj/collections/coll";
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert_cors_preflight(&http, coll, "https://app.example", method, true).await;
    }
    assert_cors_preflight(
        &http,
        "/api/v2/tenants/t1/databases",
        "https://other.example",
        "DELETE",
        true,
    )
    .await;
    assert_cors_preflight(&http, coll, "https://evil.example", "DELETE", false).await;
    assert!(
        !s.workspace().join("proj").exists(),
        "a preflight opens no project"
    );
}
