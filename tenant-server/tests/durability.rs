//! Crash safety and index recovery: records written before a SIGKILL are all there after a
//! restart; a deleted or corrupted HNSW index is rebuilt and queries stay correct.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const P: &str = "durable";
const C: &str = "data";
const N: usize = 2000;
const DIM: usize = 16;
const BATCH: usize = 100;

struct Dataset {
    ids: Vec<String>,
    embs: Vec<Vec<f32>>,
    docs: Vec<String>,
    mds: Vec<Value>,
    uris: Vec<Value>,
}

fn dataset() -> Dataset {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    let embs: Vec<Vec<f32>> = (0..N)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    Dataset {
        ids: (0..N).map(|i| format!("rec-{i:05}")).collect(),
        embs,
        docs: (0..N).map(|i| format!("document number {i} with some text")).collect(),
        mds: (0..N)
            .map(|i| json!({"i": i, "tag": format!("t{}", i % 10), "half": i as f64 / 2.0 + 0.25, "flag": i % 2 == 0, "list": [i % 3, i % 5]}))
            .collect(),
        uris: (0..N)
            .map(|i| if i % 3 == 0 { json!(format!("s3://bucket/{i}")) } else { Value::Null })
            .collect(),
    }
}

async fn write_dataset(s: &TestServer, d: &Dataset) {
    s.create_collection(P, C, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    for start in (0..N).step_by(BATCH) {
        let end = start + BATCH;
        let r = s
            .add(
                P,
                C,
                &json!({
                    "ids": d.ids[start..end],
                    "embeddings": d.embs[start..end],
                    "documents": d.docs[start..end],
                    "metadatas": d.mds[start..end],
                    "uris": d.uris[start..end],
                }),
            )
            .await;
        assert_eq!(r["added"], json!(BATCH));
        assert_eq!(r["total_count"], json!(end));
    }
}

/// Every record in `expect` (index into the dataset, expected document) reads back
/// identically; every id in `gone` is absent.
async fn assert_records(s: &TestServer, d: &Dataset, expect: &[(usize, String)], gone: &[usize]) {
    for chunk in expect.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(|(i, _)| d.ids[*i].as_str()).collect();
        let got = s
            .get_records(
                P,
                C,
                &json!({"ids": ids, "include": ["documents", "metadatas", "embeddings", "uris"]}),
            )
            .await;
        assert_eq!(got["ids"], json!(ids), "ids read back");
        for (k, (i, doc)) in chunk.iter().enumerate() {
            assert_eq!(got["documents"][k], json!(doc), "document of {}", d.ids[*i]);
            assert_eq!(got["metadatas"][k], d.mds[*i], "metadata of {}", d.ids[*i]);
            assert_eq!(got["uris"][k], d.uris[*i], "uri of {}", d.ids[*i]);
            assert_eq!(
                f32s(&got["embeddings"][k]),
                d.embs[*i],
                "embedding of {}",
                d.ids[*i]
            );
        }
    }
    let gone_ids: Vec<&str> = gone.iter().map(|i| d.ids[*i].as_str()).collect();
    let got = s.get_records(P, C, &json!({"ids": gone_ids})).await;
    assert_eq!(got["ids"], json!([]), "deleted records came back");
}

/// Stored vectors find themselves; random queries match brute force (recall@10 ≥ 0.95)
/// and every returned distance is exact.
async fn assert_queries(s: &TestServer, d: &Dataset, live: &[usize], what: &str) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(77);
    let probes: Vec<usize> = (0..30)
        .map(|_| live[rng.random_range(0..live.len())])
        .collect();
    let q: Vec<&Vec<f32>> = probes.iter().map(|i| &d.embs[*i]).collect();
    let res = s
        .query(
            P,
            C,
            &json!({"query_embeddings": q, "n_results": 1, "include": ["distances"]}),
        )
        .await;
    for (k, i) in probes.iter().enumerate() {
        assert_eq!(
            res["ids"][k],
            json!([d.ids[*i]]),
            "{what}: self match of {}",
            d.ids[*i]
        );
        let dist = res["distances"][k][0].as_f64().unwrap();
        assert!(dist.abs() < 1e-4, "{what}: self distance {dist}");
    }

    let data: Vec<Vec<f32>> = live.iter().map(|i| d.embs[*i].clone()).collect();
    let queries: Vec<Vec<f32>> = (0..30)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let res = s
        .query(
            P,
            C,
            &json!({"query_embeddings": queries, "n_results": 10, "include": ["distances"]}),
        )
        .await;
    let mut hits = 0;
    for (k, q) in queries.iter().enumerate() {
        let got = ids_of(&res["ids"][k]);
        assert_eq!(got.len(), 10, "{what}");
        let want: BTreeSet<String> = brute_force("l2", &data, q, 10)
            .iter()
            .map(|(j, _)| d.ids[live[*j]].clone())
            .collect();
        hits += got.iter().filter(|id| want.contains(*id)).count();
        for (id, dist) in got.iter().zip(res["distances"][k].as_array().unwrap()) {
            let i = d.ids.iter().position(|x| x == id).expect("known id");
            let exact = l2(&d.embs[i], q);
            let dist = dist.as_f64().unwrap();
            assert!(
                (dist - exact).abs() <= 1e-4 * exact.max(1.0),
                "{what}: distance of {id}: {dist} vs {exact}"
            );
        }
    }
    let recall = hits as f64 / 300.0;
    assert!(recall >= 0.95, "{what}: recall@10 {recall}");
}

#[tokio::test]
async fn records_survive_sigkill() {
    let mut s = TestServer::start(&[]).await;
    let d = dataset();
    write_dataset(&s, &d).await;
    // some updates and deletes too
    let upd: Vec<usize> = (0..20).collect();
    let r = s
        .post(
            &cpath(P, C, "/update"),
            &json!({
                "ids": upd.iter().map(|i| d.ids[*i].clone()).collect::<Vec<_>>(),
                "documents": upd.iter().map(|i| format!("updated {i}")).collect::<Vec<_>>(),
            }),
        )
        .await;
    assert_eq!(r.ok_object()["updated"], json!(20));
    let gone: Vec<usize> = (N - 10..N).collect();
    let r = s
        .post(
            &cpath(P, C, "/delete"),
            &json!({"ids": gone.iter().map(|i| d.ids[*i].clone()).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(10));

    s.kill();
    s.restart().await;

    let expect: Vec<(usize, String)> = (0..N - 10)
        .map(|i| {
            (
                i,
                if i < 20 {
                    format!("updated {i}")
                } else {
                    d.docs[i].clone()
                },
            )
        })
        .collect();
    assert_eq!(s.count(P, C).await, (N - 10) as u64);
    let c = s.collection(P, C).await;
    assert_eq!(c["count"], json!(N - 10));
    assert_eq!(c["dimension"], json!(DIM));
    assert_eq!(c["configuration"]["hnsw"]["space"], json!("l2"));
    assert_records(&s, &d, &expect, &gone).await;
    let live: Vec<usize> = (0..N - 10).collect();
    assert_queries(&s, &d, &live, "after SIGKILL").await;

    // writes after the restart survive a second crash
    let r = s
        .post(
            &cpath(P, C, "/add"),
            &json!({"ids": [d.ids[N - 1]], "embeddings": [d.embs[N - 1]], "documents": [d.docs[N - 1]], "metadatas": [d.mds[N - 1]], "uris": [d.uris[N - 1]]}),
        )
        .await;
    assert_eq!(r.ok_object()["added"], json!(1));
    s.kill();
    s.restart().await;
    assert_eq!(s.count(P, C).await, (N - 9) as u64);
    assert_records(&s, &d, &[(N - 1, d.docs[N - 1].clone())], &gone[..9]).await;
}

fn index_dir(ws: &Path) -> PathBuf {
    ws.join(P).join("knowledge-graph").join("index")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    list_tree(dir)
        .into_iter()
        .map(|p| dir.join(p))
        .filter(|p| p.is_file())
        .collect()
}

/// Overwrites bytes in the middle of every file under `dir`, and truncates the largest.
fn corrupt(dir: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let files = files_under(dir);
    assert!(!files.is_empty());
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        let mut h = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        let at = len / 2;
        h.seek(SeekFrom::Start(at.saturating_sub(16))).unwrap();
        let garbage: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37) ^ 0xA5).collect();
        h.write_all(&garbage).unwrap();
    }
    let largest = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let len = std::fs::metadata(largest).unwrap().len();
    let h = std::fs::OpenOptions::new()
        .write(true)
        .open(largest)
        .unwrap();
    h.set_len(len / 3).unwrap();
}

#[tokio::test]
async fn index_is_rebuilt_after_deletion_and_corruption() {
    let mut s = TestServer::start(&[]).await;
    let d = dataset();
    write_dataset(&s, &d).await;
    let live: Vec<usize> = (0..N).collect();
    let all: Vec<(usize, String)> = (0..N).map(|i| (i, d.docs[i].clone())).collect();
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    assert_queries(&s, &d, &live, "before shutdown").await;

    let status = s.terminate().await;
    assert!(status.success(), "graceful shutdown exit status {status}");
    assert_eq!(status.code(), Some(0));
    let idx = index_dir(s.workspace());
    assert!(
        !files_under(&idx).is_empty(),
        "no index files written on shutdown: {:?}",
        list_tree(&idx)
    );

    // the index directory removed entirely
    std::fs::remove_dir_all(&idx).unwrap();
    s.restart().await;
    assert_eq!(s.count(P, C).await, N as u64);
    assert_queries(&s, &d, &live, "index deleted, before rebuild").await;
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    assert_queries(&s, &d, &live, "index deleted, after rebuild").await;
    let status = s.terminate().await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        !files_under(&idx).is_empty(),
        "rebuilt index not written on shutdown: {:?}",
        list_tree(&idx)
    );

    // the index files corrupted and one truncated
    corrupt(&idx);
    s.restart().await;
    assert!(s.is_running());
    assert_eq!(s.count(P, C).await, N as u64);
    assert_queries(&s, &d, &live, "index corrupted, first queries").await;
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    assert_queries(&s, &d, &live, "index corrupted, after reindex").await;
    assert_records(&s, &d, &all, &[]).await;
    // still writable, and alive
    let r = s
        .post(&cpath(P, C, "/delete"), &json!({"ids": [d.ids[0]]}))
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(1));
    assert_eq!(s.get("/api/v1/heartbeat").await.status, 200);
    assert!(s.is_running());
    let status = s.terminate().await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[tokio::test]
async fn corrupted_manifest_and_stray_files_are_tolerated() {
    let mut s = TestServer::start(&[]).await;
    let d = dataset();
    write_dataset(&s, &d).await;
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    let status = s.terminate().await;
    assert_eq!(status.code(), Some(0));
    let idx = index_dir(s.workspace());
    let files = files_under(&idx);
    assert!(!files.is_empty());
    // replace every file with something unrelated, and add junk next to them
    for f in &files {
        std::fs::write(f, b"{\"format\": 1, \"not\": \"a manifest\"").unwrap();
    }
    let coll_dir = files[0].parent().unwrap();
    std::fs::write(coll_dir.join("junk.bin"), vec![0u8; 1000]).unwrap();
    std::fs::write(idx.join("stray-file"), b"x").unwrap();
    s.restart().await;
    let live: Vec<usize> = (0..N).collect();
    assert_queries(&s, &d, &live, "files replaced").await;
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    assert_queries(&s, &d, &live, "files replaced, after reindex").await;
    assert!(s.is_running());
}

#[tokio::test]
async fn catalog_changes_survive_sigkill() {
    let mut s = TestServer::start(&[]).await;
    let d = dataset();
    let created = s
        .create_collection(
            P,
            "first-name",
            json!({"metadata": {"owner": "me"}, "configuration": {"hnsw": {"space": "ip"}}}),
        )
        .await;
    s.add(
        P,
        "first-name",
        &json!({"ids": d.ids[..50], "embeddings": d.embs[..50], "documents": d.docs[..50]}),
    )
    .await;
    s.put(
        &cpath(P, "first-name", ""),
        &json!({"new_name": "second-name", "new_metadata": {"owner": "you"}}),
    )
    .await
    .ok_object();
    s.put(
        &cpath(P, "second-name", ""),
        &json!({"new_configuration": {"hnsw": {"ef_search": 77}}}),
    )
    .await
    .ok_object();
    s.create_collection(P, "short-lived", json!({})).await;
    s.add(
        P,
        "short-lived",
        &json!({"ids": ["x"], "embeddings": [[1, 2]]}),
    )
    .await;
    s.delete(&cpath(P, "short-lived", "")).await.ok_object();
    s.create_collection("doomed-project", "some-coll", json!({}))
        .await;
    s.delete("/api/v1/doomed-project").await.ok_object();
    // new vectors for some records, and deletes
    s.post(
        &cpath(P, "second-name", "/upsert"),
        &json!({"ids": d.ids[..5], "embeddings": d.embs[100..105]}),
    )
    .await
    .ok_object();
    s.post(
        &cpath(P, "second-name", "/delete"),
        &json!({"ids": d.ids[45..50]}),
    )
    .await
    .ok_object();

    s.kill();
    s.restart().await;

    let c = s.collection(P, "second-name").await;
    assert_eq!(c["id"], created["id"]);
    assert_eq!(c["metadata"], json!({"owner": "you"}));
    assert_eq!(
        c["configuration"]["hnsw"],
        json!({"space": "ip", "ef_construction": 100, "ef_search": 77, "max_neighbors": 16})
    );
    assert_eq!(c["dimension"], json!(DIM));
    assert_eq!(c["count"], json!(45));
    s.get(&cpath(P, "first-name", ""))
        .await
        .chroma_err(404, "NotFoundError");
    s.get(&cpath(P, "short-lived", ""))
        .await
        .chroma_err(404, "NotFoundError");
    let list = s.get(&format!("/api/v1/{P}/collections")).await;
    assert_eq!(
        list.ok_object()["collections"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    let projects = s.get("/api/v1/projects").await;
    let names: Vec<&str> = projects.ok_object()["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [P]);
    let got = s
        .get_records(
            P,
            "second-name",
            &json!({"ids": d.ids[..5], "include": ["embeddings", "documents"]}),
        )
        .await;
    for k in 0..5 {
        assert_eq!(
            f32s(&got["embeddings"][k]),
            d.embs[100 + k],
            "new vector of {}",
            d.ids[k]
        );
        assert_eq!(
            got["documents"][k],
            json!(d.docs[k]),
            "document kept for {}",
            d.ids[k]
        );
    }
    // query by the new vectors finds them; the deleted ones are gone
    let q = s
        .query(
            P,
            "second-name",
            &json!({"query_embeddings": [d.embs[100]], "n_results": 50}),
        )
        .await;
    let ids = ids_of(&q["ids"][0]);
    assert_eq!(ids.len(), 45);
    for gone in &d.ids[45..50] {
        assert!(!ids.contains(gone), "{gone} was deleted");
    }
}

#[tokio::test]
async fn deleted_records_stay_out_of_a_saved_graph() {
    let mut s = TestServer::start(&[]).await;
    let d = dataset();
    write_dataset(&s, &d).await;
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    // the graph on disk holds every point
    assert_eq!(s.terminate().await.code(), Some(0));
    s.restart().await;
    let gone: Vec<usize> = (0..N).step_by(20).collect();
    let r = s
        .post(
            &cpath(P, C, "/delete"),
            &json!({"ids": gone.iter().map(|i| d.ids[*i].clone()).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(gone.len()));
    let live: Vec<usize> = (0..N).filter(|i| i % 20 != 0).collect();
    check_deleted(&s, &d, &gone, &live, "after delete").await;
    s.kill();
    s.restart().await;
    check_deleted(&s, &d, &gone, &live, "after SIGKILL").await;
    s.wait_indexed(P, C, Duration::from_secs(120)).await;
    check_deleted(&s, &d, &gone, &live, "after SIGKILL, indexed").await;
    assert_eq!(s.terminate().await.code(), Some(0));
    s.restart().await;
    check_deleted(&s, &d, &gone, &live, "after graceful restart").await;
}

/// Queries by the deleted records' own vectors return only live records.
async fn check_deleted(s: &TestServer, d: &Dataset, gone: &[usize], live: &[usize], what: &str) {
    let q: Vec<&Vec<f32>> = gone.iter().take(40).map(|i| &d.embs[*i]).collect();
    let res = s
        .query(P, C, &json!({"query_embeddings": q, "n_results": 10}))
        .await;
    for (k, i) in gone.iter().take(40).enumerate() {
        let ids = ids_of(&res["ids"][k]);
        assert_eq!(ids.len(), 10, "{what}");
        assert!(
            !ids.contains(&d.ids[*i]),
            "{what}: deleted {} returned",
            d.ids[*i]
        );
        for id in &ids {
            let n: usize = id[4..].parse().unwrap();
            assert!(!n.is_multiple_of(20), "{what}: deleted {id} returned");
        }
    }
    assert_eq!(s.count(P, C).await, live.len() as u64, "{what}");
    assert_queries(s, d, live, what).await;
}
