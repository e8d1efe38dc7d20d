use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as AxumMethod, StatusCode as AxumStatus, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::*;

#[test]
fn project_path_encodes_one_segment() {
    assert_eq!(project_path("acme", "").unwrap(), "/projects/acme");
    assert_eq!(
        project_path("a.b_c-d~1", "/quotas").unwrap(),
        "/projects/a.b_c-d~1/quotas"
    );
    // separators, query and fragment characters, spaces and non-ASCII stay in the segment
    assert_eq!(
        project_path("a/b?c#d e%", "").unwrap(),
        "/projects/a%2Fb%3Fc%23d%20e%25"
    );
    assert_eq!(project_path("é", "").unwrap(), "/projects/%C3%A9");
    for bad in ["", ".", ".."] {
        assert_eq!(
            project_path(bad, ""),
            Err(AdminError::BadProjectName(bad.to_string()))
        );
    }
}

#[test]
fn base_url_is_normalised_and_checked() {
    let http = reqwest::Client::new();
    let c = AdminClient::new("http://shard-0:7100/", None, http.clone()).unwrap();
    assert_eq!(c.base(), "http://shard-0:7100");
    let c = AdminClient::new(" https://shard-0 ", Some(String::new()), http.clone()).unwrap();
    assert_eq!(c.base(), "https://shard-0");
    assert_eq!(c.token, None, "an empty token is no token");
    for bad in [
        "shard-0:7100",
        "ftp://shard-0",
        "http://shard-0/admin",
        "http://shard-0?x=1",
        "http://shard-0#x",
        "",
    ] {
        assert!(
            matches!(
                AdminClient::new(bad, None, http.clone()),
                Err(AdminError::BadBaseUrl { .. })
            ),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn request_joins_prefix_and_adds_token() {
    let c = AdminClient::new(
        "http://shard-0:7100",
        Some("s3cret".into()),
        reqwest::Client::new(),
    )
    .unwrap();
    let req = c
        .request(Method::GET, &project_path("a b", "/snapshot").unwrap())
        .build()
        .unwrap();
    assert_eq!(
        req.url().as_str(),
        "http://shard-0:7100/admin/v1/projects/a%20b/snapshot"
    );
    assert_eq!(req.headers()["authorization"], "Bearer s3cret");

    let open = AdminClient::new("http://shard-0:7100", None, reqwest::Client::new()).unwrap();
    let req = open.request(Method::GET, "/stats").build().unwrap();
    assert_eq!(req.url().as_str(), "http://shard-0:7100/admin/v1/stats");
    assert!(req.headers().get("authorization").is_none());
}

#[test]
fn error_body_parsing() {
    let e = status_error(
        StatusCode::NOT_FOUND,
        br#"{"error":"NotFoundError","message":"Project [x] not found"}"#,
    );
    assert_eq!(
        e,
        AdminError::Status {
            status: 404,
            error: "NotFoundError".into(),
            message: "Project [x] not found".into()
        }
    );
    assert!(e.is_not_found());
    assert!(!e.is_conflict());
    assert_eq!(e.kind(), Some("NotFoundError"));

    // a proxy's plain-text page
    let e = status_error(StatusCode::BAD_GATEWAY, b"  upstream down\n");
    assert_eq!(
        e,
        AdminError::Status {
            status: 502,
            error: "BadGateway".into(),
            message: "upstream down".into()
        }
    );
    // JSON without the expected shape is text too
    let e = status_error(StatusCode::CONFLICT, br#"{"oops":1}"#);
    assert!(e.is_conflict());
    assert_eq!(e.kind(), Some("Conflict"));

    let e = status_error(StatusCode::INTERNAL_SERVER_ERROR, &[b'x'; 5000]);
    let AdminError::Status { message, .. } = e else {
        panic!("not a status error");
    };
    assert!(message.chars().count() <= MAX_ERROR_TEXT + 1);

    assert_eq!(AdminError::Transport("x".into()).status(), None);
}

#[test]
fn quotas_serialise_as_the_api_expects() {
    let q = Quotas {
        max_collections: Some(10),
        max_records: None,
        max_bytes: Some(1 << 30),
    };
    assert_eq!(
        serde_json::to_value(ProvisionBody { quotas: Some(&q) }).unwrap(),
        json!({"quotas": {"maxCollections": 10, "maxBytes": 1073741824}})
    );
    assert_eq!(
        serde_json::to_value(ProvisionBody { quotas: None }).unwrap(),
        json!({})
    );
    let parsed: Quotas =
        serde_json::from_value(json!({"maxCollections": null, "maxRecords": 5, "maxBytes": null}))
            .unwrap();
    assert_eq!(
        parsed,
        Quotas {
            max_records: Some(5),
            ..Quotas::default()
        }
    );
}

// ---------------------------------------------------------------------------------------
// Round trips against a tiny fake server

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    auth: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn info(name: &str) -> Value {
    json!({
        "name": name, "collections": 2, "records": 7, "bytes": 4096, "open": true,
        "state": "active", "movedTo": null, "statsSource": "live",
        "quotas": {"maxCollections": 10, "maxRecords": null, "maxBytes": null}
    })
}

async fn handle(
    State(fake): State<Fake>,
    method: AxumMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String("<not json>".into()))
    };
    fake.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body_json,
    });
    let path = uri.path();
    let reply = |code: AxumStatus, v: Value| (code, axum::Json(v)).into_response();
    match (method.as_str(), path) {
        ("GET", "/admin/v1/projects") => reply(
            AxumStatus::OK,
            json!({"projects": [info("a"), {
                "name": "b", "collections": null, "records": null, "bytes": 10,
                "open": false, "state": "fenced", "movedTo": "http://x", "statsSource": "directory"
            }]}),
        ),
        ("GET", "/admin/v1/projects/a%20b") => reply(AxumStatus::OK, info("a b")),
        ("PUT", "/admin/v1/projects/new") => reply(AxumStatus::CREATED, info("new")),
        ("PUT", "/admin/v1/projects/old") => reply(AxumStatus::OK, info("old")),
        ("PUT", "/admin/v1/projects/old/quotas") => reply(AxumStatus::OK, info("old")),
        ("DELETE", "/admin/v1/projects/old") => {
            reply(AxumStatus::OK, json!({"project": "old", "deleted": true}))
        }
        ("GET", "/admin/v1/stats") => reply(
            AxumStatus::OK,
            json!({"version": "0.1.0", "projects": 3, "fencedProjects": 1, "pausedProjects": 0,
                   "openProjects": 2, "maxOpenProjects": 256, "evictions": 5, "idleCloses": 1,
                   "loadedMemoryBytes": 100, "diskBytes": 2000, "rssBytes": null}),
        ),
        ("PUT", "/admin/v1/projects/moved") => reply(
            AxumStatus::SERVICE_UNAVAILABLE,
            json!({"error": "ProjectMoved", "message": "Project [moved] moved"}),
        ),
        ("GET", "/admin/v1/projects/garbage") => (AxumStatus::OK, "not json").into_response(),
        _ => reply(
            AxumStatus::NOT_FOUND,
            json!({"error": "NotFoundError", "message": format!("no {path}")}),
        ),
    }
}

async fn serve() -> (Fake, String) {
    let fake = Fake::default();
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (fake, format!("http://{addr}"))
}

#[tokio::test]
async fn round_trip_against_a_fake_server() {
    let (fake, base) = serve().await;
    let c = AdminClient::new(&base, Some("tok".into()), reqwest::Client::new()).unwrap();

    let list = c.list_projects().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].records, Some(7));
    assert_eq!(list[0].quotas.as_ref().unwrap().max_collections, Some(10));
    assert_eq!(list[1].records, None);
    assert_eq!(list[1].state, "fenced");
    assert_eq!(list[1].moved_to.as_deref(), Some("http://x"));

    assert_eq!(c.project_info("a b").await.unwrap().unwrap().name, "a b");
    assert_eq!(c.project_info("missing").await.unwrap(), None);

    let q = Quotas {
        max_records: Some(100),
        ..Quotas::default()
    };
    let (_, created) = c.provision("new", Some(&q)).await.unwrap();
    assert!(created);
    let (_, created) = c.provision("old", None).await.unwrap();
    assert!(!created);
    c.set_quotas("old", &q).await.unwrap();
    assert!(c.delete_project("old").await.unwrap());
    assert!(!c.delete_project("gone").await.unwrap());
    let stats = c.server_stats().await.unwrap();
    assert_eq!((stats.projects, stats.rss_bytes), (3, None));

    let err = c.provision("moved", None).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.kind(), Some("ProjectMoved"));
    assert!(matches!(
        c.project_info("garbage").await,
        Err(AdminError::Decode(_))
    ));

    let seen = fake.seen.lock().unwrap().clone();
    let calls: Vec<(String, String)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.uri.clone()))
        .collect();
    let expect = [
        ("GET", "/admin/v1/projects"),
        ("GET", "/admin/v1/projects/a%20b"),
        ("GET", "/admin/v1/projects/missing"),
        ("PUT", "/admin/v1/projects/new"),
        ("PUT", "/admin/v1/projects/old"),
        ("PUT", "/admin/v1/projects/old/quotas"),
        ("DELETE", "/admin/v1/projects/old"),
        ("DELETE", "/admin/v1/projects/gone"),
        ("GET", "/admin/v1/stats"),
        ("PUT", "/admin/v1/projects/moved"),
        ("GET", "/admin/v1/projects/garbage"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(m, u)| (m.to_string(), u.to_string()))
        .collect();
    assert_eq!(calls, expect);
    assert!(seen.iter().all(|s| s.auth.as_deref() == Some("Bearer tok")));
    assert_eq!(seen[3].body, json!({"quotas": {"maxRecords": 100}}));
    assert_eq!(seen[4].body, json!({}));
    assert_eq!(seen[5].body, json!({"maxRecords": 100}));
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    // bind then drop: nothing listens on that port any more
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = AdminClient::new(&format!("http://{addr}"), None, reqwest::Client::new()).unwrap();
    let err = c.list_projects().await.unwrap_err();
    assert!(matches!(err, AdminError::Transport(_)), "{err:?}");
    assert_eq!(err.status(), None);
}
