//! Search quality: recall@10 against brute force on a seeded Gaussian mixture, unfiltered
//! (through the HNSW graph) and with 10% and 1% metadata filters.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

const P: &str = "recall";
const C: &str = "mixture";
const N: usize = 20_000;
const DIM: usize = 32;
const CLUSTERS: usize = 40;
const QUERIES: usize = 200;
const K: usize = 10;
/// Spread of the cluster centres relative to the clusters' own spread (1.0): small enough
/// that clusters overlap and the graph search has real work to do.
const CENTRE_SCALE: f32 = 0.5;

struct Mixture {
    centers: Vec<Vec<f32>>,
    spread: Normal<f32>,
}

impl Mixture {
    fn new(rng: &mut impl Rng) -> Mixture {
        let unit = Normal::new(0.0f32, 1.0).unwrap();
        Mixture {
            centers: (0..CLUSTERS)
                .map(|_| (0..DIM).map(|_| unit.sample(rng) * CENTRE_SCALE).collect())
                .collect(),
            spread: Normal::new(0.0f32, 1.0).unwrap(),
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> Vec<f32> {
        let c = &self.centers[rng.random_range(0..CLUSTERS)];
        c.iter().map(|x| x + self.spread.sample(rng)).collect()
    }
}

fn recall(
    res: &Value,
    queries: &[Vec<f32>],
    data: &[Vec<f32>],
    allowed: &dyn Fn(usize) -> bool,
) -> f64 {
    let idx: Vec<usize> = (0..data.len()).filter(|i| allowed(*i)).collect();
    let subset: Vec<Vec<f32>> = idx.iter().map(|i| data[*i].clone()).collect();
    let mut hits = 0;
    let mut total = 0;
    for (qi, q) in queries.iter().enumerate() {
        let want: BTreeSet<String> = brute_force("l2", &subset, q, K)
            .iter()
            .map(|(j, _)| format!("v{}", idx[*j]))
            .collect();
        let got = ids_of(&res["ids"][qi]);
        assert!(got.len() <= K);
        for id in &got {
            let i: usize = id[1..].parse().unwrap();
            assert!(
                allowed(i),
                "query {qi} returned {id}, which the filter excludes"
            );
        }
        // distances are exact and ascending
        let d: Vec<f64> = res["distances"][qi]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(
            d.windows(2).all(|w| w[0] <= w[1]),
            "query {qi}: not nearest first {d:?}"
        );
        for (id, dist) in got.iter().zip(&d) {
            let i: usize = id[1..].parse().unwrap();
            let exact = l2(&data[i], q);
            assert!(
                (dist - exact).abs() <= 1e-4 * exact.max(1.0),
                "distance of {id}: {dist} vs {exact}"
            );
        }
        hits += got.iter().filter(|id| want.contains(*id)).count();
        total += want.len();
    }
    hits as f64 / total as f64
}

async fn run_queries(s: &TestServer, queries: &[Vec<f32>], filter: Option<Value>) -> Value {
    let mut all_ids = Vec::new();
    let mut all_d = Vec::new();
    for chunk in queries.chunks(50) {
        let mut body = json!({"query_embeddings": chunk, "n_results": K, "include": ["distances"]});
        if let Some(w) = &filter {
            body["where"] = w.clone();
        }
        let res = s.query(P, C, &body).await;
        all_ids.extend(res["ids"].as_array().unwrap().iter().cloned());
        all_d.extend(res["distances"].as_array().unwrap().iter().cloned());
    }
    json!({"ids": all_ids, "distances": all_d})
}

#[tokio::test]
async fn recall_at_10_unfiltered_and_filtered() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_cafe);
    let mix = Mixture::new(&mut rng);
    let data: Vec<Vec<f32>> = (0..N).map(|_| mix.sample(&mut rng)).collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| mix.sample(&mut rng)).collect();

    let s = TestServer::start(&[]).await;
    s.create_collection(P, C, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    for start in (0..N).step_by(2000) {
        let end = start + 2000;
        let ids: Vec<String> = (start..end).map(|i| format!("v{i}")).collect();
        let mds: Vec<Value> = (start..end).map(|i| json!({"bucket": i % 100})).collect();
        let r = s
            .add(
                P,
                C,
                &json!({"ids": ids, "embeddings": data[start..end], "metadatas": mds}),
            )
            .await;
        assert_eq!(r["added"], json!(2000));
    }
    let r = s
        .put(
            &cpath(P, C, ""),
            &json!({"new_configuration": {"hnsw": {"ef_search": 200}}}),
        )
        .await;
    assert_eq!(
        r.ok_object()["collection"]["configuration"]["hnsw"]["ef_search"],
        json!(200)
    );
    s.wait_indexed(P, C, Duration::from_secs(150)).await;
    let c = s.collection(P, C).await;
    assert_eq!(c["indexing"], json!({"indexed": N, "unindexed": 0}));
    assert_eq!(c["count"], json!(N));

    let res = run_queries(&s, &queries, None).await;
    let r_all = recall(&res, &queries, &data, &|_| true);
    let res = run_queries(&s, &queries, Some(json!({"bucket": {"$lt": 10}}))).await;
    let r_10 = recall(&res, &queries, &data, &|i| i % 100 < 10);
    let res = run_queries(&s, &queries, Some(json!({"bucket": 7}))).await;
    let r_1 = recall(&res, &queries, &data, &|i| i % 100 == 7);
    eprintln!("recall@10: unfiltered {r_all:.4}, 10% filter {r_10:.4}, 1% filter {r_1:.4}");
    assert!(r_all >= 0.95, "unfiltered recall@10 {r_all}");
    assert!(r_10 >= 0.99, "10% filter recall@10 {r_10}");
    assert!(r_1 >= 0.99, "1% filter recall@10 {r_1}");
}
