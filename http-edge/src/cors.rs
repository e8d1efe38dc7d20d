//! Cross-origin requests: which origins may call the APIs (the `CORS_ORIGINS` setting of
//! the original server), and the methods and headers they may use.

use http::{HeaderValue, Method};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// The methods the APIs use: reads, writes, modify (PUT/PATCH) and delete.
pub const ALLOWED_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The allowed origins from the setting: `*`, a comma-separated list, or a JSON list such
/// as `["https://app.example"]`. `None` means any origin (also for an empty setting, or
/// a list that contains `*`).
pub fn origins(setting: &str) -> Option<Vec<String>> {
    let raw = setting.trim();
    let list: Vec<String> = serde_json::from_str::<Vec<String>>(raw).unwrap_or_else(|_| {
        raw.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if list.is_empty() || list.iter().any(|o| o == "*") {
        None
    } else {
        Some(list)
    }
}

/// The CORS layer for `origins` (`None`: any origin). With a list, only those origins
/// get CORS headers, for [`ALLOWED_METHODS`] and any request header (the chromadb
/// client's token headers among them).
pub fn layer(origins: Option<&[String]>) -> CorsLayer {
    match origins {
        None => CorsLayer::new()
            .allow_origin(Any)
            .allow_methods(Any)
            .allow_headers(Any),
        Some(list) => CorsLayer::new()
            .allow_origin(AllowOrigin::list(
                list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
            ))
            .allow_methods(ALLOWED_METHODS)
            .allow_headers(Any),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[test]
    fn setting_forms() {
        assert_eq!(origins("*"), None);
        assert_eq!(origins(r#"["*"]"#), None);
        assert_eq!(origins(""), None);
        assert_eq!(
            origins(r#"["https://a.example", "https://b.example"]"#),
            Some(vec!["https://a.example".into(), "https://b.example".into()])
        );
        assert_eq!(
            origins(" https://a.example , https://b.example "),
            Some(vec!["https://a.example".into(), "https://b.example".into()])
        );
        assert_eq!(origins("https://a.example,*"), None);
    }

    async fn preflight(
        origins: Option<&[String]>,
        origin: &str,
        method: &str,
    ) -> (StatusCode, http::HeaderMap) {
        let app = Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(layer(origins));
        let resp = app
            .oneshot(
                Request::builder()
                    .method("OPTIONS")
                    .uri("/x")
                    .header("origin", origin)
                    .header("access-control-request-method", method)
                    .header(
                        "access-control-request-headers",
                        "authorization,x-chroma-token",
                    )
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        (resp.status(), resp.headers().clone())
    }

    #[tokio::test]
    async fn a_listed_origin_may_use_every_method_of_the_apis() {
        let list = vec!["https://app.example".to_string()];
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (status, headers) = preflight(Some(&list), "https://app.example", method).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                headers["access-control-allow-origin"],
                "https://app.example"
            );
            let methods = headers["access-control-allow-methods"]
                .to_str()
                .expect("ascii");
            assert!(methods.contains(method), "{method} not in {methods}");
        }
    }

    #[tokio::test]
    async fn an_unlisted_origin_gets_no_cors_headers() {
        let list = vec!["https://app.example".to_string()];
        let (_, headers) = preflight(Some(&list), "https://evil.example", "DELETE").await;
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "{headers:?}"
        );
    }

    #[tokio::test]
    async fn any_origin_by_default() {
        let (status, headers) = preflight(None, "https://whoever.example", "DELETE").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["access-control-allow-origin"], "*");
    }
}
