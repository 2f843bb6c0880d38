//! Several `latchkey serve` processes on one PostgreSQL database behave as one server.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::process::*;

fn jwt_kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The status of `GET /api/v1/authenticated/me` on `node` with `token`.
async fn me_status(node: &TestApp, token: &str) -> StatusCode {
    node.api(
        reqwest::Method::GET,
        "/api/v1/authenticated/me",
        token,
        None,
    )
    .await
    .0
}

async fn jwks_kids(node: &TestApp) -> Vec<String> {
    let jwks: Value = reqwest::get(node.url("/oauth/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_database_act_as_one() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let db = TestDb::new(&backend).await;
    // Both start at once on an empty database: one migrates and makes the signing key, and
    // neither fails for the other.
    let env = [("LATCHKEY_API_RATE_PER_MINUTE", "4")];
    let (mut a, mut b) = tokio::join!(Server::start(&db.url, &env), Server::start(&db.url, &env));
    tokio::join!(
        a.wait_for("latchkey is listening"),
        b.wait_for("latchkey is listening")
    );
    let node_a = attach(a.url(""), &db.url).await;
    let node_b = attach(b.url(""), &db.url).await;
    assert_eq!(jwks_kids(&node_a).await, jwks_kids(&node_b).await);
    assert_eq!(
        jwks_kids(&node_a).await.len(),
        1,
        "one first key, not one per node"
    );

    // Signed in on A, the session holds on B (cookies do not depend on the port).
    let client = register(&node_a, true, "openid profile read").await;
    let browser = node_a.signed_in("nodes@example.com").await;
    assert_eq!(
        node_b.get(&browser, "/settings").await.status,
        StatusCode::OK
    );

    // A code issued on A is redeemed on B, once.
    let (code, verifier) = get_code(&node_a, &browser, &client, "openid profile read").await;
    let (status, tokens) = exchange(&node_b, &client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, again) = exchange(&node_a, &client, &code, &verifier).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // ...and that replay revoked what the code had issued, on both nodes.
    let access = tokens["access_token"].as_str().unwrap();
    for node in [&node_a, &node_b] {
        assert_eq!(me_status(node, access).await, StatusCode::UNAUTHORIZED);
    }

    // A token issued on A and revoked on B is refused on A at once.
    let (code, verifier) = get_code(&node_a, &browser, &client, "openid profile read").await;
    let (_, tokens) = exchange(&node_a, &client, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&node_a, &access).await, StatusCode::OK);
    let revoked = reqwest::Client::new()
        .post(node_b.url("/oauth/revoke"))
        .basic_auth(&client.client_id, client.secret.as_ref())
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(me_status(&node_a, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(&node_a, &client, &access).await["active"], false);

    // A key rotated by the operator on A's host signs on B, and both publish it.
    let old_kid = jwt_kid(tokens["id_token"].as_str().unwrap());
    let out = latchkey(&db.url)
        .args(["keys", "rotate", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = serde_json::from_slice::<Value>(&out.stdout).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, old_kid);
    let (code, verifier) = get_code(&node_a, &browser, &client, "openid profile read").await;
    let (_, tokens) = exchange(&node_b, &client, &code, &verifier).await;
    assert_eq!(jwt_kid(tokens["id_token"].as_str().unwrap()), new_kid);
    for node in [&node_a, &node_b] {
        let kids = jwks_kids(node).await;
        assert!(
            kids.contains(&new_kid) && kids.contains(&old_kid),
            "{kids:?}"
        );
    }

    // The per-user API quota (4 a minute here) is counted across both nodes.
    let (_, pat) = node_a
        .user_with_pat("quota-nodes@example.com", "read", false)
        .await;
    fresh_rate_window().await;
    let mut statuses = Vec::new();
    for node in [&node_a, &node_b, &node_a, &node_b, &node_a] {
        statuses.push(
            node.api(
                reqwest::Method::GET,
                "/api/v1/authenticated/streak",
                &pat,
                None,
            )
            .await
            .0
            .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429]);

    a.kill().await;
    b.kill().await;
}
