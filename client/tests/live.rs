//! End-to-end checks of every client method against a running tenant server.
//!
//! Ignored by a plain `cargo test`, since it needs a server: tests/python/run.sh starts one
//! with the Python package's `quiver run` and runs it there with
//! `QUIVER_TEST_URL=http://127.0.0.1:PORT cargo test --release --workspace --test live -- --ignored`,
//! so the Rust and the Python client are checked against the same server. Uses, then
//! deletes, a project named `client-live-<pid>`.

use quiver_client::{
    AddRequest, ClientError, CollectionConfiguration, DeleteRequest, GetRequest, HnswConfiguration,
    Include, Metadata, ModifyCollectionRequest, QueryRequest, QuiverClient, Space, UpdateRequest,
};
use serde_json::json;

fn meta(v: serde_json::Value) -> Metadata {
    v.as_object().expect("object").clone()
}

fn api_error(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, error, .. }) => (status, error),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a running server: set QUIVER_TEST_URL (tests/python/run.sh does)"]
async fn every_method_against_a_live_server() {
    let url = std::env::var("QUIVER_TEST_URL")
        .expect("QUIVER_TEST_URL=http://HOST:PORT of a running tenant server");
    let c = QuiverClient::new(&url).unwrap();
    let project = format!("client-live-{}", std::process::id());

    assert_eq!(c.heartbeat().await.unwrap().status, "ok");
    let version = c.version().await.unwrap();
    assert_eq!(c.server_info().await.unwrap().version, version);

    // Collections.
    let config = CollectionConfiguration {
        hnsw: Some(HnswConfiguration {
            space: Some(Space::L2),
            ef_search: Some(50),
            ..Default::default()
        }),
    };
    let info = c
        .create_collection(
            &project,
            "docs",
            Some(meta(json!({"owner": "me"}))),
            Some(config),
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        (info.name.as_str(), info.count, info.dimension),
        ("docs", 0, None)
    );
    let hnsw = info.configuration.hnsw.clone().unwrap();
    assert_eq!((hnsw.space, hnsw.ef_search), (Some(Space::L2), Some(50)));
    let again = c
        .create_collection(&project, "docs", None, None, true)
        .await
        .unwrap();
    assert_eq!(again.id, info.id);
    assert_eq!(
        api_error(
            c.create_collection(&project, "docs", None, None, false)
                .await
        ),
        (409, "UniqueConstraintError".into())
    );
    assert_eq!(
        api_error(
            c.create_collection(&project, "bad name/!", None, None, false)
                .await
        )
        .0,
        400
    );
    let cosine = c
        .create_collection(&project, "other", None, None, false)
        .await
        .unwrap();
    assert_eq!(
        cosine.configuration.hnsw.unwrap().space,
        Some(Space::Cosine)
    );
    let names: Vec<String> = c
        .list_collections(&project)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&"docs".into()) && names.contains(&"other".into()));

    // Records through the collection handle.
    let docs = c.collection(project.clone(), "docs");
    let mut add = AddRequest::new(
        vec!["a".into(), "b".into(), "c".into()],
        vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 2.0]],
    );
    add.documents = Some(vec![Some("alpha".into()), Some("beta".into()), None]);
    add.metadatas = Some(vec![
        Some(meta(json!({"k": 1, "tag": "x"}))),
        Some(meta(json!({"k": 2, "tag": "y"}))),
        None,
    ]);
    add.uris = Some(vec![None, Some("s3://b".into()), None]);
    let r = docs.add(&add).await.unwrap();
    assert_eq!((r.added, r.total_count), (3, 3));
    assert_eq!(
        docs.add(&add).await.unwrap().added,
        0,
        "add does not overwrite"
    );
    assert_eq!(docs.count().await.unwrap(), 3);
    assert_eq!(docs.info().await.unwrap().dimension, Some(2));
    assert_eq!(
        api_error(
            docs.add(&AddRequest::new(
                vec!["d".into()],
                vec![vec![1.0, 2.0, 3.0]]
            ))
            .await
        ),
        (400, "InvalidDimension".into())
    );

    let peek = docs.peek(Some(2)).await.unwrap();
    assert_eq!(peek.ids.len(), 2);
    assert!(peek.embeddings.is_some());

    let got = docs
        .get(&GetRequest {
            ids: Some(vec!["b".into(), "c".into()]),
            include: Some(vec![
                Include::Documents,
                Include::Metadatas,
                Include::Uris,
                Include::Embeddings,
            ]),
            ..Default::default()
        })
        .await
        .unwrap();
    let bi = got.ids.iter().position(|i| i == "b").unwrap();
    let ci = 1 - bi;
    assert_eq!(got.documents.as_ref().unwrap()[bi].as_deref(), Some("beta"));
    assert_eq!(got.documents.as_ref().unwrap()[ci], None);
    assert_eq!(got.uris.as_ref().unwrap()[bi].as_deref(), Some("s3://b"));
    assert_eq!(
        got.embeddings.as_ref().unwrap()[bi].as_deref(),
        Some(&[1.0f32, 0.0][..])
    );
    let filtered = docs
        .get(&GetRequest {
            where_metadata: Some(json!({"k": {"$gte": 2}})),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.ids, vec!["b"]);
    assert!(filtered.embeddings.is_none());

    let mut q = QueryRequest::new(vec![vec![0.9, 0.0], vec![0.0, 1.9]], 2);
    q.include = Some(vec![Include::Distances, Include::Metadatas]);
    let res = docs.query(&q).await.unwrap();
    assert_eq!(res.ids[0], vec!["b", "a"]);
    assert_eq!(res.ids[1][0], "c");
    let d = &res.distances.as_ref().unwrap()[0];
    assert!((d[0] - 0.01).abs() < 1e-5, "squared L2: {d:?}");
    assert!(res.documents.is_none());
    q.where_metadata = Some(json!({"tag": "x"}));
    assert_eq!(docs.query(&q).await.unwrap().ids[0], vec!["a"]);

    let up = docs
        .update(&UpdateRequest {
            ids: vec!["a".into(), "zzz".into()],
            metadatas: Some(vec![Some(meta(json!({"tag": null, "k": 5}))), None]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(up.updated, 1);
    let a = docs
        .get(&GetRequest {
            ids: Some(vec!["a".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.metadatas.unwrap()[0], Some(meta(json!({"k": 5}))));
    let ups = docs
        .upsert(&AddRequest::new(
            vec!["c".into(), "d".into()],
            vec![vec![3.0, 3.0], vec![4.0, 4.0]],
        ))
        .await
        .unwrap();
    assert_eq!((ups.upserted, ups.total_count), (2, 4));
    let del = docs
        .delete(&DeleteRequest {
            where_metadata: Some(json!({"k": 2})),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((del.deleted, del.total_count), (1, 3));

    // Modify: ef_search, then rename.
    let m = docs
        .modify(&ModifyCollectionRequest {
            new_configuration: Some(CollectionConfiguration {
                hnsw: Some(HnswConfiguration {
                    ef_search: Some(77),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m.configuration.hnsw.unwrap().ef_search, Some(77));
    let renamed = c
        .modify_collection(
            &project,
            "docs",
            &ModifyCollectionRequest {
                new_name: Some("docs2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.id.as_str()),
        ("docs2", info.id.as_str())
    );
    let e = docs.count().await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.kind(), Some("NotFoundError"));

    // Projects.
    let listed = c.list_projects().await.unwrap();
    let p = listed
        .iter()
        .find(|p| p.name == project)
        .expect("project listed");
    assert_eq!(p.records, 3);
    c.delete_collection(&project, "other").await.unwrap();
    assert!(c
        .delete_collection(&project, "other")
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(c.delete_project(&project).await.unwrap().project, project);
    assert!(c.delete_project(&project).await.unwrap_err().is_not_found());
}
