//! The OpenAPI document: every JSON route the router serves is in it, every operation in it is
//! served, and it describes the answers the server gives.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

/// The route paths of an axum router, read from its `Debug` form (axum prints each route's
/// path there, then its fallback router; it has no other way to list them).
fn router_paths(router: &axum::Router<latchkey::app::AppState>) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let routes = text.split("fallback_router").next().unwrap();
    routes
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_json_route_is_documented() {
    let (router, doc) = latchkey::app::json_routes().split_for_parts();
    let served = router_paths(&router);
    let documented: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
    assert!(
        served.len() >= 28,
        "the router lists its routes: {served:?}"
    );
    assert_eq!(served, documented, "served vs documented JSON routes");
    // Every operation has a description of its success answer and its errors, and an
    // operationId of its own (client generators name methods after it).
    let mut ids = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let value = serde_json::to_value(item).unwrap();
        for (method, operation) in value.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                ids.insert(id.clone()),
                "{method} {path}: operationId `{id}` is taken"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents its success"
            );
        }
    }
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_in_the_document_resolves() {
    let (_, paths) = latchkey::app::json_routes().split_for_parts();
    let doc = serde_json::to_value(latchkey::api::openapi::document(
        paths,
        "http://127.0.0.1:8080",
    ))
    .unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 50, "{}", found.len());
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("a local reference: {target}"));
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

#[test]
fn no_page_route_is_a_documented_json_route() {
    let (_, doc) = latchkey::app::json_routes().split_for_parts();
    let pages = router_paths(&latchkey::app::page_routes());
    assert!(pages.contains("/oauth/authorize"), "{pages:?}");
    for path in doc.paths.paths.keys() {
        assert!(
            !pages.contains(path),
            "{path} is both a page and a JSON route"
        );
    }
}

on_both_backends! {
    async fn the_served_document_is_openapi_3_1_and_every_operation_answers(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        let response = client.get(app.url("/api/openapi.json")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let doc: Value = response.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], app.base.as_str(), "the server's own issuer");
        for scheme in ["bearer", "client", "api_key", "oauth2"] {
            assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]["scopes"]["read"],
            "Read your coding activity: hours, streaks, heartbeats and API key"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]["authorizationUrl"],
            format!("{}/oauth/authorize", app.base)
        );
        // Every documented operation is routed: no 404 for the path, no 405 for the method.
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000").replace("{user}", "current");
            for method in item.as_object().unwrap().keys() {
                operations += 1;
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let status = client.request(method.clone(), app.url(&concrete)).send().await.unwrap().status();
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
                assert!(!status.is_server_error(), "{method} {path}: {status}");
            }
        }
        assert!(operations >= 32, "{operations}");
    }
}
