//! Every error class of docs/api-v1.md: status, `{"error", "message"}` body, the
//! `chroma-trace-id` header, and that a rejected write changes nothing.

mod common;

use common::*;
use serde_json::{json, Value};

const P: &str = "proj";
const C: &str = "coll";

/// A server with `P/C` holding three records of dimension 2.
async fn server_with_data(extra: &[&str]) -> TestServer {
    let s = TestServer::start(extra).await;
    s.create_collection(P, C, json!({"configuration": {"hnsw": {"space": "l2"}}}))
        .await;
    s.add(
        P,
        C,
        &json!({
            "ids": ["e1", "e2", "e3"],
            "embeddings": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
            "documents": ["doc1", "doc2", "doc3"],
            "metadatas": [{"k": 1}, {"k": 2}, {"k": 3}],
        }),
    )
    .await;
    s
}

/// The three records are exactly as `server_with_data` wrote them, and nothing else exists.
async fn assert_untouched(s: &TestServer) {
    assert_eq!(s.count(P, C).await, 3, "count changed");
    let got = s
        .get_records(
            P,
            C,
            &json!({"include": ["documents", "metadatas", "embeddings"]}),
        )
        .await;
    assert_eq!(
        got["ids"],
        json!(["e1", "e2", "e3"]),
        "records changed: {got}"
    );
    assert_eq!(
        got["documents"],
        json!(["doc1", "doc2", "doc3"]),
        "documents changed"
    );
    assert_eq!(
        got["metadatas"],
        json!([{"k": 1}, {"k": 2}, {"k": 3}]),
        "metadata changed"
    );
    assert_eq!(f32s(&got["embeddings"][0]), vec![1.0, 0.0]);
    assert_eq!(f32s(&got["embeddings"][1]), vec![0.0, 1.0]);
    assert_eq!(f32s(&got["embeddings"][2]), vec![1.0, 1.0]);
    let q = s
        .query(
            P,
            C,
            &json!({"query_embeddings": [[1.0, 0.0]], "n_results": 10}),
        )
        .await;
    assert_eq!(
        q["ids"][0].as_array().unwrap().len(),
        3,
        "query sees other records: {q}"
    );
    assert_eq!(q["ids"][0][0], json!("e1"));
}

fn op(o: &str) -> String {
    cpath(P, C, o)
}

#[tokio::test]
async fn malformed_and_non_object_bodies() {
    let s = server_with_data(&[]).await;
    let endpoints = [
        "/api/v1/proj/collections".to_string(),
        op("/add"),
        op("/upsert"),
        op("/update"),
        op("/delete"),
        op("/query"),
        op("/get"),
    ];
    for path in &endpoints {
        for body in ["{\"ids\": [", "{ids: 1}", "not json", "{\"a\": 1}}"] {
            let r = s.post_raw(path, body).await;
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(!msg.is_empty(), "{path} {body}");
        }
        for body in ["[1, 2]", "\"string\"", "42", "null", "true"] {
            s.post_raw(path, body)
                .await
                .chroma_err(400, "InvalidArgumentError");
        }
    }
    // PUT and DELETE bodies too
    s.request(
        reqwest::Method::PUT,
        &op(""),
        Some(b"{\"new_name\": ".to_vec()),
    )
    .await
    .chroma_err(400, "InvalidArgumentError");
    s.request(reqwest::Method::PUT, &op(""), Some(b"[]".to_vec()))
        .await
        .chroma_err(400, "InvalidArgumentError");
    s.request(
        reqwest::Method::DELETE,
        &op("/documents"),
        Some(b"{\"ids\": [".to_vec()),
    )
    .await
    .chroma_err(400, "InvalidArgumentError");
    assert_untouched(&s).await;
    let list = s.get("/api/v1/proj/collections").await;
    assert_eq!(list.ok_object()["collections"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn missing_and_mistyped_fields() {
    let s = server_with_data(&[]).await;
    let cases = [
        // missing
        ("/add", json!({"embeddings": [[1, 2]]})),
        ("/add", json!({"ids": ["n1"]})),
        ("/add", json!({"ids": ["n1"], "documents": ["d"]})),
        ("/upsert", json!({"embeddings": [[1, 2]]})),
        ("/update", json!({"documents": ["x"]})),
        ("/query", json!({"n_results": 1})),
        ("/query", json!({})),
        ("/delete", json!({})),
        // mistyped
        ("/add", json!({"ids": "n1", "embeddings": [[1, 2]]})),
        ("/add", json!({"ids": [1], "embeddings": [[1, 2]]})),
        ("/add", json!({"ids": [], "embeddings": []})),
        ("/add", json!({"ids": [""], "embeddings": [[1, 2]]})),
        ("/add", json!({"ids": ["n1"], "embeddings": [1, 2]})),
        ("/add", json!({"ids": ["n1"], "embeddings": "AAAA"})),
        ("/add", json!({"ids": ["n1"], "embeddings": [["a", "b"]]})),
        ("/add", json!({"ids": ["n1"], "embeddings": [{"x": 1}]})),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "documents": [5]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "documents": "d"}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [5]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"a": {"b": 1}}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"$a": 1}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"": 1}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"a": []}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"a": [1, "x"]}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"a": [null]}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "metadatas": [{"a": [[1]]}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [[1, 2]], "uris": [1]}),
        ),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": ["!!not base64!!"]}),
        ),
        ("/add", json!({"ids": ["n1"], "embeddings": ["AAAAAAA="]})), // 5 bytes
        ("/add", json!({"ids": ["n1"], "embeddings": [[]]})),
        (
            "/query",
            json!({"query_embeddings": [[1, 0]], "n_results": -1}),
        ),
        (
            "/query",
            json!({"query_embeddings": [[1, 0]], "n_results": "5"}),
        ),
        (
            "/query",
            json!({"query_embeddings": [[1, 0]], "n_results": 1.5}),
        ),
        (
            "/query",
            json!({"query_embeddings": [[1, 0]], "include": ["bogus"]}),
        ),
        (
            "/query",
            json!({"query_embeddings": [[1, 0]], "include": "documents"}),
        ),
        (
            "/query",
            json!({"query_embeddings": [[1, 0]], "include": [1]}),
        ),
        ("/query", json!({"query_embeddings": [[1, 0]], "ids": "e1"})),
        ("/query", json!({"query_embeddings": "x"})),
        ("/get", json!({"include": ["bogus"]})),
        ("/get", json!({"limit": -1})),
        ("/get", json!({"offset": "1"})),
        ("/get", json!({"ids": [1]})),
        ("/delete", json!({"ids": "e1"})),
        ("/delete", json!({"ids": ["e1"], "limit": -2})),
    ];
    for (path, body) in &cases {
        let r = s.post(&op(path), body).await;
        assert_eq!(r.status, 400, "{path} {body} -> {} {}", r.status, r.text);
        r.chroma_err(400, "InvalidArgumentError");
    }
    for q in [
        "/get?limit=abc",
        "/get?offset=-1",
        "/get?include=bogus",
        "/get?where=%7Bnot%20json",
        "/get?where_document=%5B",
        "/peek?limit=x",
    ] {
        s.get(&op(q)).await.chroma_err(400, "InvalidArgumentError");
    }
    // collection-level fields
    for body in [
        json!({}),
        json!({"name": 5}),
        json!({"name": "ok-name", "metadata": "x"}),
        json!({"name": "ok-name", "metadata": {"a": [1, 2]}}),
        json!({"name": "ok-name", "metadata": {"a": {"b": 1}}}),
        json!({"name": "ok-name", "configuration": {"hnsw": {"space": "hamming"}}}),
        json!({"name": "ok-name", "configuration": {"hnsw": {"ef_search": 0}}}),
        json!({"name": "ok-name", "configuration": {"hnsw": {"ef_construction": "big"}}}),
        json!({"name": "ok-name", "configuration": {"hnsw": {"max_neighbors": 100000}}}),
        json!({"name": "ok-name", "configuration": {"hnsw": 5}}),
        json!({"name": "ok-name", "metadata": {"hnsw:space": "nope"}}),
        json!({"name": "ok-name", "get_or_create": "yes"}),
    ] {
        let r = s.post("/api/v1/proj/collections", &body).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text);
        r.chroma_err(400, "InvalidArgumentError");
    }
    for body in [
        json!({"new_name": 5}),
        json!({"new_metadata": [1]}),
        json!({"new_configuration": {"hnsw": {"ef_search": -5}}}),
        json!({"new_configuration": {"hnsw": {"space": "l2"}}}),
        json!({"new_configuration": {"hnsw": "x"}}),
    ] {
        s.put(&op(""), &body)
            .await
            .chroma_err(400, "InvalidArgumentError");
    }
    s.get(&cpath(P, "ok-name", ""))
        .await
        .chroma_err(404, "NotFoundError");
    let c = s.collection(P, C).await;
    assert_eq!(c["name"], json!(C));
    assert_eq!(c["configuration"]["hnsw"]["space"], json!("l2"));
    assert_untouched(&s).await;
}

#[tokio::test]
async fn wrong_dimension() {
    let s = server_with_data(&[]).await;
    let want = "Collection expecting embedding with dimension of 2, got 3";
    for (path, body) in [
        ("/add", json!({"ids": ["n1"], "embeddings": [[1, 2, 3]]})),
        ("/upsert", json!({"ids": ["e1"], "embeddings": [[1, 2, 3]]})),
        ("/upsert", json!({"ids": ["n1"], "embeddings": [[1, 2, 3]]})),
        ("/update", json!({"ids": ["e1"], "embeddings": [[1, 2, 3]]})),
        ("/query", json!({"query_embeddings": [[1, 2, 3]]})),
        ("/query", json!({"query_embeddings": [[1, 2], [1, 2, 3]]})),
        (
            "/add",
            json!({"ids": ["n1"], "embeddings": [b64(&[1.0, 2.0, 3.0])]}),
        ),
    ] {
        let r = s.post(&op(path), &body).await;
        let msg = r.chroma_err(400, "InvalidDimension");
        assert_eq!(msg, want, "{path} {body}");
    }
    let r = s
        .post(&op("/add"), &json!({"ids": ["n1"], "embeddings": [[1]]}))
        .await;
    assert_eq!(
        r.chroma_err(400, "InvalidDimension"),
        "Collection expecting embedding with dimension of 2, got 1"
    );
    assert_untouched(&s).await;

    // a first batch of mixed dimensions is rejected as a whole and fixes nothing
    s.create_collection(P, "fresh", json!({})).await;
    let r = s
        .post(
            &cpath(P, "fresh", "/add"),
            &json!({"ids": ["a", "b"], "embeddings": [[1, 2], [1, 2, 3]]}),
        )
        .await;
    assert_eq!(r.chroma_err(400, "InvalidDimension"), want);
    let c = s.collection(P, "fresh").await;
    assert_eq!(c["dimension"], Value::Null);
    assert_eq!(c["count"], json!(0));
    s.add(
        P,
        "fresh",
        &json!({"ids": ["a"], "embeddings": [[1, 2, 3, 4]]}),
    )
    .await;
    assert_eq!(s.collection(P, "fresh").await["dimension"], json!(4));
}

#[tokio::test]
async fn lists_of_different_lengths() {
    let s = server_with_data(&[]).await;
    for (path, body) in [
        (
            "/add",
            json!({"ids": ["n1", "n2"], "embeddings": [[1, 2], [3, 4], [5, 6]]}),
        ),
        ("/add", json!({"ids": ["n1", "n2"], "embeddings": [[1, 2]]})),
        (
            "/add",
            json!({"ids": ["n1", "n2"], "embeddings": [[1, 2], [3, 4]], "documents": ["a"]}),
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2"], "embeddings": [[1, 2], [3, 4]], "metadatas": [{}, {}, {}]}),
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2"], "embeddings": [[1, 2], [3, 4]], "uris": ["u"]}),
        ),
        (
            "/upsert",
            json!({"ids": ["e1", "n2"], "embeddings": [[1, 2]]}),
        ),
        ("/update", json!({"ids": ["e1", "e2"], "documents": ["x"]})),
        (
            "/update",
            json!({"ids": ["e1"], "metadatas": [{"a": 1}, {"a": 2}]}),
        ),
    ] {
        let r = s.post(&op(path), &body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        r.chroma_err(400, "InvalidArgumentError");
    }
    assert_untouched(&s).await;
}

#[tokio::test]
async fn duplicate_ids_in_a_batch() {
    let s = server_with_data(&[]).await;
    for (path, body) in [
        (
            "/add",
            json!({"ids": ["n1", "n2", "n1"], "embeddings": [[1, 2], [3, 4], [5, 6]]}),
        ),
        (
            "/add",
            json!({"ids": ["e1", "e1"], "embeddings": [[1, 2], [3, 4]]}),
        ),
        (
            "/upsert",
            json!({"ids": ["e1", "n2", "e1"], "embeddings": [[1, 2], [3, 4], [5, 6]]}),
        ),
        (
            "/update",
            json!({"ids": ["e2", "e2"], "documents": ["x", "y"]}),
        ),
    ] {
        let r = s.post(&op(path), &body).await;
        let msg = r.chroma_err(400, "DuplicateIDError");
        assert!(
            msg.contains("e1") || msg.contains("n1") || msg.contains("e2"),
            "{msg}"
        );
    }
    assert_untouched(&s).await;
}

#[tokio::test]
async fn unknown_project_and_collection() {
    let s = server_with_data(&[]).await;
    let r = s.delete("/api/v1/never-existed").await;
    let msg = r.chroma_err(404, "NotFoundError");
    assert!(msg.contains("never-existed"), "{msg}");

    let want = "Collection [nope] does not exist";
    let n = |o: &str| cpath(P, "nope", o);
    let add = json!({"ids": ["a"], "embeddings": [[1, 2]]});
    let resps = vec![
        s.get(&n("")).await,
        s.put(&n(""), &json!({"new_name": "other"})).await,
        s.delete(&n("")).await,
        s.post(&n("/add"), &add).await,
        s.post(&n("/upsert"), &add).await,
        s.post(&n("/update"), &add).await,
        s.post(&n("/delete"), &json!({"ids": ["a"]})).await,
        s.delete_json(&n("/documents"), &json!({"ids": ["a"]}))
            .await,
        s.post(&n("/query"), &json!({"query_embeddings": [[1, 2]]}))
            .await,
        s.post(&n("/get"), &json!({})).await,
        s.get(&n("/get")).await,
        s.get(&n("/count")).await,
        s.get(&n("/peek")).await,
    ];
    for r in resps {
        assert_eq!(r.chroma_err(404, "NotFoundError"), want);
    }
    // an unknown collection in another (new) project
    let r = s.get(&cpath("other-proj", "nope", "/count")).await;
    assert_eq!(r.chroma_err(404, "NotFoundError"), want);
    // nothing was created by those requests
    let list = s.get("/api/v1/proj/collections").await;
    assert_eq!(list.ok_object()["collections"].as_array().unwrap().len(), 1);
    assert_untouched(&s).await;
}

#[tokio::test]
async fn duplicate_collection_names() {
    let s = server_with_data(&[]).await;
    let r = s
        .post("/api/v1/proj/collections", &json!({"name": C}))
        .await;
    assert_eq!(
        r.chroma_err(409, "UniqueConstraintError"),
        format!("Collection [{C}] already exists")
    );
    let r = s
        .post(
            "/api/v1/proj/collections",
            &json!({"name": C, "get_or_create": false}),
        )
        .await;
    r.chroma_err(409, "UniqueConstraintError");
    s.create_collection(P, "second", json!({})).await;
    let r = s
        .put(&cpath(P, "second", ""), &json!({"new_name": C}))
        .await;
    assert_eq!(
        r.chroma_err(409, "UniqueConstraintError"),
        format!("Collection [{C}] already exists")
    );
    // both still there, unchanged
    assert_eq!(s.collection(P, "second").await["name"], json!("second"));
    assert_untouched(&s).await;
    // the same name in another project is fine
    s.create_collection("proj-two", C, json!({})).await;
}

#[tokio::test]
async fn illegal_project_names() {
    let s = TestServer::start(&[]).await;
    let long = "x".repeat(513);
    let bad = [
        "..",
        "%2E%2E",
        ".",
        "a",
        "ab",
        "ab%2Fcd",
        "..%2F..%2Fetc",
        "%2E%2E%2Fescape",
        "a%20bc",
        "abc%20",
        "-abc",
        "abc-",
        ".abc",
        "abc.",
        "a..b",
        "ab%5Ccd",
        "abc%00",
        "%C3%A9t%C3%A9",
        long.as_str(),
    ];
    for name in bad {
        let resps = [
            s.raw("GET", &format!("/api/v1/{name}/collections"), None),
            s.raw(
                "POST",
                &format!("/api/v1/{name}/collections"),
                Some(&br#"{"name": "fine-name"}"#[..]),
            ),
            s.raw(
                "GET",
                &format!("/api/v1/{name}/collections/fine-name/count"),
                None,
            ),
            s.raw(
                "POST",
                &format!("/api/v1/{name}/collections/fine-name/add"),
                Some(&br#"{"ids": ["a"], "embeddings": [[1, 2]]}"#[..]),
            ),
            s.raw("DELETE", &format!("/api/v1/{name}"), None),
        ];
        for (i, r) in resps.iter().enumerate() {
            assert_eq!(
                r.status, 400,
                "project name {name:?} request {i}: {} {}",
                r.status, r.text
            );
            r.chroma_err(400, "InvalidArgumentError");
        }
    }
    let tree = list_tree(s.workspace());
    assert!(
        tree.is_empty(),
        "illegal names created files in the workspace: {tree:?}"
    );
    // and nothing outside it
    let parent = s.workspace().parent().unwrap();
    assert!(!parent.join("escape").exists());
    assert!(!parent.join("knowledge-graph").exists());
    let list = s.get("/api/v1/projects").await;
    assert_eq!(list.ok_object(), &json!({"projects": []}));
}

#[tokio::test]
async fn illegal_project_name_with_invalid_utf8_gets_json_error() {
    let s = TestServer::start(&[]).await;
    let r = s.raw("GET", "/api/v1/ab%FFcd/collections", None);
    assert_eq!(r.status, 400, "{}", r.text);
    r.chroma_err(400, "InvalidArgumentError");
    assert!(list_tree(s.workspace()).is_empty());
}

#[tokio::test]
async fn illegal_collection_names() {
    let s = server_with_data(&[]).await;
    let long = "c".repeat(513);
    for name in [
        "",
        "a",
        "ab",
        "a b",
        "-abc",
        "abc-",
        ".abc",
        "abc.",
        "a..b",
        "ab/cd",
        "ab\\cd",
        "été",
        "abc\n",
        long.as_str(),
    ] {
        let r = s
            .post("/api/v1/proj/collections", &json!({"name": name}))
            .await;
        assert_eq!(r.status, 400, "collection name {name:?}: {}", r.text);
        r.chroma_err(400, "InvalidArgumentError");
        let r = s.put(&op(""), &json!({"new_name": name})).await;
        assert_eq!(r.status, 400, "rename to {name:?}: {}", r.text);
        r.chroma_err(400, "InvalidArgumentError");
    }
    let list = s.get("/api/v1/proj/collections").await;
    let names: Vec<&str> = list.ok_object()["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [C]);
    assert_untouched(&s).await;
}

#[tokio::test]
async fn bad_filters() {
    let s = server_with_data(&[]).await;
    let bad_where = [
        json!([1]),
        json!("k"),
        json!(5),
        json!({"k": {"$foo": 1}}),
        json!({"$foo": [{"k": 1}]}),
        json!({"$and": []}),
        json!({"$or": {"k": 1}}),
        json!({"$and": [1]}),
        json!({"k": {"$gt": "x"}}),
        json!({"k": {"$lt": true}}),
        json!({"k": {"$in": "x"}}),
        json!({"k": {"$nin": [[1]]}}),
        json!({"k": [1, 2]}),
        json!({"k": null}),
        json!({"k": {}}),
        json!({"k": {"$eq": 1, "$ne": 2}}),
        json!({"k": {"$eq": {"a": 1}}}),
        json!({"k": {"$contains": [1]}}),
        json!({"$and": [{"k": 1}, {}]}),
    ];
    for w in &bad_where {
        let resps = [
            s.post(&op("/get"), &json!({"where": w})).await,
            s.get(&op(&format!("/get?where={}", qs(&w.to_string()))))
                .await,
            s.post(
                &op("/query"),
                &json!({"query_embeddings": [[1, 0]], "where": w}),
            )
            .await,
            s.post(&op("/delete"), &json!({"where": w})).await,
        ];
        for (i, r) in resps.iter().enumerate() {
            assert_eq!(r.status, 400, "where {w} request {i}: {}", r.text);
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(msg.starts_with("Invalid where clause"), "where {w}: {msg}");
        }
    }
    let bad_doc = [
        json!([1]),
        json!("text"),
        json!({"$foo": "x"}),
        json!({"$contains": 1}),
        json!({"$regex": ["a"]}),
        json!({"$and": []}),
        json!({"$or": "x"}),
        json!({"$contains": "a", "$not_contains": "b"}),
        json!({"$and": [{"$contains": "a"}, {"$bogus": "b"}]}),
    ];
    for wd in &bad_doc {
        let resps = [
            s.post(&op("/get"), &json!({"where_document": wd})).await,
            s.get(&op(&format!("/get?where_document={}", qs(&wd.to_string()))))
                .await,
            s.post(
                &op("/query"),
                &json!({"query_embeddings": [[1, 0]], "where_document": wd}),
            )
            .await,
            s.post(&op("/delete"), &json!({"where_document": wd})).await,
        ];
        for (i, r) in resps.iter().enumerate() {
            assert_eq!(r.status, 400, "where_document {wd} request {i}: {}", r.text);
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(
                msg.starts_with("Invalid where_document clause"),
                "where_document {wd}: {msg}"
            );
        }
    }
    for wd in [
        json!({"$regex": "(unclosed"}),
        json!({"$not_regex": "[a-"}),
        json!({"$and": [{"$contains": "a"}, {"$regex": "a{2,1}"}]}),
    ] {
        let resps = [
            s.post(&op("/get"), &json!({"where_document": wd})).await,
            s.post(
                &op("/query"),
                &json!({"query_embeddings": [[1, 0]], "where_document": wd}),
            )
            .await,
            s.post(&op("/delete"), &json!({"where_document": wd})).await,
        ];
        for r in resps {
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(msg.starts_with("Regex syntax errror"), "{wd}: {msg}");
        }
    }
    assert_untouched(&s).await;
}

#[tokio::test]
async fn oversize_body() {
    let s = server_with_data(&["--max-body-bytes", "1000"]).await;
    let ids: Vec<String> = (0..60).map(|i| format!("big-{i}")).collect();
    let embs: Vec<Vec<f32>> = (0..60).map(|i| vec![i as f32, 1.5]).collect();
    let body = json!({"ids": ids, "embeddings": embs});
    assert!(serde_json::to_vec(&body).unwrap().len() > 1000);
    let r = s.post(&op("/add"), &body).await;
    r.chroma_err(413, "PayloadTooLargeError");
    let r = s
        .post(
            &op("/query"),
            &json!({"query_embeddings": vec![vec![0.5f32; 2]; 200]}),
        )
        .await;
    r.chroma_err(413, "PayloadTooLargeError");
    let r = s.post_raw(&op("/get"), vec![b' '; 5000]).await;
    r.chroma_err(413, "PayloadTooLargeError");
    assert_untouched(&s).await;
    // a body just under the limit is fine
    let ids: Vec<String> = (0..20).map(|i| format!("ok-{i}")).collect();
    let embs: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32, 1.0]).collect();
    let body = json!({"ids": ids, "embeddings": embs});
    assert!(serde_json::to_vec(&body).unwrap().len() < 1000);
    assert_eq!(s.add(P, C, &body).await["added"], json!(20));
}

#[tokio::test]
async fn nan_and_infinite_vectors() {
    let s = server_with_data(&[]).await;
    let nan = b64(&[f32::NAN, 1.0]);
    let inf = b64(&[1.0, f32::INFINITY]);
    for (path, body) in [
        ("/add", json!({"ids": ["n1"], "embeddings": [nan]})),
        ("/add", json!({"ids": ["n1"], "embeddings": [inf]})),
        // 1e39 overflows f32
        ("/add", json!({"ids": ["n1"], "embeddings": [[1e39, 1.0]]})),
        ("/add", json!({"ids": ["n1"], "embeddings": [[1.0, -1e39]]})),
        (
            "/upsert",
            json!({"ids": ["e1"], "embeddings": [[1e39, 1.0]]}),
        ),
        ("/update", json!({"ids": ["e1"], "embeddings": [nan]})),
        ("/query", json!({"query_embeddings": [[1e39, 0.0]]})),
        ("/query", json!({"query_embeddings": [nan]})),
        ("/query", json!({"query_embeddings": [[1.0, 0.0], inf]})),
    ] {
        let r = s.post(&op(path), &body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        r.chroma_err(400, "InvalidArgumentError");
    }
    assert_untouched(&s).await;
    // and in a first batch: nothing is written, the dimension stays unset
    s.create_collection(P, "fresh", json!({})).await;
    let r = s
        .post(
            &cpath(P, "fresh", "/add"),
            &json!({"ids": ["a", "b"], "embeddings": [[1.0, 2.0], [1e39, 2.0]]}),
        )
        .await;
    r.chroma_err(400, "InvalidArgumentError");
    let c = s.collection(P, "fresh").await;
    assert_eq!(c["count"], json!(0));
    assert_eq!(c["dimension"], Value::Null);
}

#[tokio::test]
async fn unknown_routes() {
    let s = server_with_data(&[]).await;
    for (method, path) in [
        ("GET", "/api/v0/heartbeat"),
        ("GET", "/api/v1/proj/collections/coll/frobnicate/deeper"),
        ("GET", "/nope"),
        ("GET", "/api/v1/proj/collections/coll/frobnicate"),
        ("POST", "/api/v1/proj/collections/coll/frobnicate"),
        ("GET", "/api/v1/proj/collections/coll/add/extra"),
        ("GET", "/api/v1/proj/something"),
    ] {
        let r = s.raw(method, path, None);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        let msg = r.chroma_err(404, "NotFoundError");
        assert!(!msg.is_empty());
    }
    assert_untouched(&s).await;
}

#[tokio::test]
async fn wrong_method_gets_json_error() {
    let s = server_with_data(&[]).await;
    for (method, path) in [
        ("GET", "/api/v1/proj/collections/coll/add"),
        ("PUT", "/api/v1/proj/collections/coll/query"),
        ("POST", "/api/v1/heartbeat"),
    ] {
        let r = s.raw(method, path, None);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
        assert!(
            r.body["error"].is_string() && r.body["message"].is_string(),
            "{method} {path}: 405 body is not a JSON error: {:?}",
            r.text
        );
        assert!(
            r.header("chroma-trace-id").is_some(),
            "{method} {path}: no chroma-trace-id"
        );
    }
}

#[tokio::test]
async fn a_batch_with_one_bad_record_writes_nothing() {
    let s = server_with_data(&[]).await;
    let nan = b64(&[f32::NAN, 0.0]);
    let cases = [
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [1, 2, 3], [3, 4]]}),
            "InvalidDimension",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], nan, [3, 4]]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [1e39, 0], [3, 4]]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [], [3, 4]]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], ["x", 1], [3, 4]]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [2, 3], [3, 4]], "metadatas": [{"a": 1}, {"a": {"deep": 1}}, {"a": 3}]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [2, 3], [3, 4]], "metadatas": [{"a": 1}, {"$bad": 1}, {"a": 3}]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [2, 3], [3, 4]], "metadatas": [{"a": 1}, {"l": [1, "x"]}, {"a": 3}]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], [2, 3], [3, 4]], "documents": ["a", 5, "c"]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "", "n3"], "embeddings": [[1, 2], [2, 3], [3, 4]]}),
            "InvalidArgumentError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n1"], "embeddings": [[1, 2], [2, 3], [3, 4]]}),
            "DuplicateIDError",
        ),
        (
            "/add",
            json!({"ids": ["n1", "n2", "n3"], "embeddings": [[1, 2], null, [3, 4]]}),
            "InvalidArgumentError",
        ),
        // upsert: the existing e1 must not change either
        (
            "/upsert",
            json!({"ids": ["e1", "n2", "n3"], "embeddings": [[9, 9], [1, 2, 3], [3, 4]], "documents": ["changed", "x", "y"]}),
            "InvalidDimension",
        ),
        (
            "/upsert",
            json!({"ids": ["e1", "n2", "n3"], "embeddings": [[9, 9], null, [3, 4]], "documents": ["changed", "x", "y"]}),
            "InvalidArgumentError",
        ),
        (
            "/upsert",
            json!({"ids": ["e1", "n2", "n3"], "embeddings": [[9, 9], [1, 1], [3, 4]], "metadatas": [{"k": 100}, {"bad": {"x": 1}}, null]}),
            "InvalidArgumentError",
        ),
        (
            "/update",
            json!({"ids": ["e1", "e2", "e3"], "documents": ["changed", "changed", "changed"], "embeddings": [[9, 9], [1e39, 1], [9, 9]]}),
            "InvalidArgumentError",
        ),
        (
            "/update",
            json!({"ids": ["e1", "e2", "e3"], "metadatas": [{"k": null}, {"k": []}, {"k": 5}]}),
            "InvalidArgumentError",
        ),
        (
            "/update",
            json!({"ids": ["e1", "e2", "e1"], "documents": ["changed", "changed", "changed"]}),
            "DuplicateIDError",
        ),
    ];
    for (path, body, kind) in &cases {
        let r = s.post(&op(path), body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        r.chroma_err(400, kind);
        let got = s
            .get_records(P, C, &json!({"ids": ["n1", "n2", "n3"]}))
            .await;
        assert_eq!(
            got["ids"],
            json!([]),
            "{path} {body} wrote part of the batch"
        );
        assert_untouched(&s).await;
    }
}

#[tokio::test]
async fn every_error_carries_trace_header_and_json_content_type() {
    let s = server_with_data(&[]).await;
    let r = s.post_raw(&op("/add"), "{").await;
    r.chroma_err(400, "InvalidArgumentError");
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let r = s.get(&cpath(P, "missing", "")).await;
    r.chroma_err(404, "NotFoundError");
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let r = s.get("/nowhere").await;
    r.chroma_err(404, "NotFoundError");
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
}

#[tokio::test]
async fn huge_n_results_and_limits_are_safe() {
    let mut s = server_with_data(&[]).await;
    for n in [1_000_000_000u64, 1_000_000_000_000, u64::MAX] {
        let r = s
            .post(
                &op("/query"),
                &json!({"query_embeddings": [[1.0, 0.0]], "n_results": n}),
            )
            .await;
        assert_eq!(r.status, 200, "n_results {n}: {}", r.text);
        assert_eq!(
            r.body["results"]["ids"][0].as_array().map(Vec::len),
            Some(3),
            "n_results {n}"
        );
        assert!(s.is_running(), "server died on n_results {n}");
    }
    for q in [
        "/get?limit=18446744073709551615",
        "/get?offset=18446744073709551615",
        "/peek?limit=18446744073709551615",
    ] {
        let r = s.get(&op(q)).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text);
    }
    let r = s
        .post(
            &op("/delete"),
            &json!({"where": {"k": 99}, "limit": u64::MAX}),
        )
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(0));
    assert_eq!(s.get("/api/v1/heartbeat").await.status, 200);
    assert_untouched(&s).await;
}

#[tokio::test]
async fn oversize_chunked_body() {
    use std::io::{Read, Write};
    let s = server_with_data(&["--max-body-bytes", "1000"]).await;
    let ids: Vec<String> = (0..200).map(|i| format!("chunked-{i}")).collect();
    let embs: Vec<Vec<f32>> = (0..200).map(|i| vec![i as f32, 1.5]).collect();
    let body = serde_json::to_vec(&json!({"ids": ids, "embeddings": embs})).unwrap();
    assert!(body.len() > 1000);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        op("/add")
    );
    conn.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(300) {
        if conn
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
        {
            break;
        }
        let _ = conn.write_all(chunk);
        let _ = conn.write_all(b"\r\n");
    }
    let _ = conn.write_all(b"0\r\n\r\n");
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "chunked oversize body: {text}"
    );
    assert!(text.contains("PayloadTooLargeError"), "{text}");
    assert_untouched(&s).await;
}
