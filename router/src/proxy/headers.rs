//! Header handling between client, router and shard.

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use quiver_placement::protocol::{REQUEST_ID_HEADER, TRACEPARENT_HEADER};

/// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are not forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // headers named by `Connection` are hop-by-hop too
    let named: Vec<HeaderName> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

/// The headers sent to the shard: the client's, minus hop-by-hop ones and `Host`, plus a
/// request id and a W3C `traceparent` when the client sent none (with `trace_id`, the
/// router's own, so that router and shard logs correlate), and `X-Forwarded-*`.
/// Returns the request id used.
pub fn upstream_headers(
    client: &HeaderMap,
    peer: Option<SocketAddr>,
    trace_id: Option<&str>,
) -> (HeaderMap, HeaderValue) {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    let host = headers.remove("host");
    let request_id = match headers.get(REQUEST_ID_HEADER) {
        Some(v) => v.clone(),
        None => {
            let v = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"));
            headers.insert(REQUEST_ID_HEADER, v.clone());
            v
        }
    };
    if !headers
        .get(TRACEPARENT_HEADER)
        .is_some_and(|v| valid_traceparent(v.as_bytes()))
    {
        headers.remove("tracestate");
        if let Ok(v) = HeaderValue::from_str(&new_traceparent(trace_id)) {
            headers.insert(TRACEPARENT_HEADER, v);
        }
    }
    if let Some(peer) = peer {
        let ip = peer.ip().to_string();
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            headers.insert("x-forwarded-for", v);
        }
    }
    if let Some(host) = host {
        headers.insert("x-forwarded-host", host);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    (headers, request_id)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.
pub fn valid_traceparent(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let parts: Vec<&str> = s.trim().split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

fn new_traceparent(trace_id: Option<&str>) -> String {
    let span: u64 = rand::random::<u64>() | 1;
    match trace_id.filter(|t| t.len() == 32 && t.bytes().any(|b| b != b'0')) {
        Some(t) => format!("00-{t}-{span:016x}-01"),
        None => format!("00-{:032x}-{span:016x}-01", rand::random::<u128>() | 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_ids_only_when_absent_and_strips_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("host", HeaderValue::from_static("router:7100"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let (out, id) = upstream_headers(
            &h,
            Some("10.0.0.9:5555".parse().unwrap()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        );
        assert!(out.get("connection").is_none());
        assert!(out.get("x-secret").is_none());
        assert!(out.get("host").is_none());
        assert_eq!(out["x-forwarded-host"], "router:7100");
        assert_eq!(out["x-forwarded-for"], "10.0.0.9");
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out[REQUEST_ID_HEADER], id);
        assert!(out[TRACEPARENT_HEADER]
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(valid_traceparent(out[TRACEPARENT_HEADER].as_bytes()));

        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT_HEADER, HeaderValue::from_static(tp));
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("req-1"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        let (out, id) = upstream_headers(&h, Some("10.0.0.9:5555".parse().unwrap()), None);
        assert_eq!(out[TRACEPARENT_HEADER], tp);
        assert_eq!(id, "req-1");
        assert_eq!(out["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
    }

    #[test]
    fn traceparent_validation() {
        assert!(valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(b"00-xyz-00f067aa0ba902b7-01"));
        assert!(!valid_traceparent(b"garbage"));
    }
}
