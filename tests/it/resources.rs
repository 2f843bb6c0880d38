//! Resource indicators (RFC 8707) and JWT access tokens (RFC 9068).

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const API: &str = "https://api.example.com";
const JWT_API: &str = "https://jwt-api.example.com/v1";

async fn with_resource_servers(app: &TestApp) {
    let now = latchkey::store::now();
    app.store
        .create_resource_server(API, "Example API", false, now)
        .await
        .unwrap()
        .unwrap();
    app.store
        .create_resource_server(JWT_API, "JWT API", true, now)
        .await
        .unwrap()
        .unwrap();
}

/// A code for `client` asking for `resource`, through sign-in and consent.
async fn code_for(
    app: &TestApp,
    client: &RegisteredApp,
    scope: &str,
    resource: &str,
) -> (String, String) {
    let browser = app
        .signed_in(&format!("{}@example.com", uuid::Uuid::new_v4().simple()))
        .await;
    let (verifier, challenge) = pkce_pair();
    let page = authorize(
        app,
        &browser,
        &[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", &client.redirect_uri),
            ("scope", scope),
            ("nonce", "n"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", resource),
        ],
        "allow",
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let params = location_params(&page);
    assert!(params.contains_key("code"), "{params:?}");
    (params["code"].clone(), verifier)
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    app.api(
        reqwest::Method::GET,
        "/api/v1/authenticated/me",
        token,
        None,
    )
    .await
    .0
}

async fn revoke(app: &TestApp, client: &RegisteredApp, token: &str) {
    let response = reqwest::Client::new()
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.client_id, client.secret.as_ref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// The claims of `jwt`, verified by the `jsonwebtoken` crate against the provider's published
/// JWKS (not latchkey's own code); `typ` must be `at+jwt`.
async fn verify_with_jwks(app: &TestApp, jwt: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(app.url("/oauth/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the signing key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[JWT_API]);
    validation.set_issuer(&[app.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("a valid RFC 9068 access token")
    .claims
}

on_both_backends! {
    async fn tokens_for_a_resource_server_carry_its_audience_and_not_this_api(backend) {
        let app = spawn_app(&backend).await;
        with_resource_servers(&app).await;
        let client = register(&app, true, "profile read").await;
        let (code, verifier) = code_for(&app, &client, "profile read", API).await;
        let (status, tokens, _) = token_request(&app, &client, &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &verifier), ("resource", API),
        ]).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap();
        assert!(access.starts_with("lk_at_"), "an opaque token for an opaque resource server");
        let info = introspect(&app, &client, access).await;
        assert_eq!(info["active"], true);
        assert_eq!(info["aud"], API);
        // The token is for the other API, not latchkey's.
        assert_eq!(me_status(&app, access).await, StatusCode::UNAUTHORIZED);

        // Refresh keeps the audience; asking for another resource is refused.
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let (status, body, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("resource", JWT_API)]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{body}");
        let (status, rotated, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
        assert_eq!(status, StatusCode::OK, "the refused request did not spend the token: {rotated}");
        assert_eq!(introspect(&app, &client, rotated["access_token"].as_str().unwrap()).await["aud"], API);

        // Without a resource, tokens are for latchkey's own API, as always.
        let browser = app.signed_in("plain-resource@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (_, plain) = exchange(&app, &client, &code, &verifier).await;
        let plain_access = plain["access_token"].as_str().unwrap();
        assert_eq!(me_status(&app, plain_access).await, StatusCode::OK);
        assert!(introspect(&app, &client, plain_access).await.get("aud").is_none());
    }

    async fn unknown_or_mismatched_resources_are_invalid_target(backend) {
        let app = spawn_app(&backend).await;
        with_resource_servers(&app).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("target@example.com").await;
        let (_, challenge) = pkce_pair();
        let page = authorize(&app, &browser, &[
            ("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", &client.redirect_uri),
            ("scope", "profile"), ("state", "s"), ("code_challenge", &challenge), ("code_challenge_method", "S256"),
            ("resource", "https://unknown.example.com"),
        ], "allow").await;
        let params = location_params(&page);
        assert_eq!(params["error"], "invalid_target", "{params:?}");
        assert_eq!(params["state"], "s");

        let (code, verifier) = code_for(&app, &client, "profile", API).await;
        let form = |resource: &'static str| vec![
            ("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()), ("resource", resource),
        ];
        let (status, body, _) = token_request(&app, &client, &form("https://unknown.example.com")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{body}");
        let (status, body, _) = token_request(&app, &client, &form(JWT_API)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "another resource than the code's: {body}");
        let (status, body, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("resource", "urn:nobody")]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{body}");
    }

    async fn a_jwt_resource_server_gets_rfc_9068_tokens_checked_against_the_jwks(backend) {
        let app = spawn_app(&backend).await;
        with_resource_servers(&app).await;
        let client = register(&app, true, "openid profile read").await;
        let (code, verifier) = code_for(&app, &client, "openid read", JWT_API).await;
        let (status, tokens) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let jwt = tokens["access_token"].as_str().unwrap();
        let claims = verify_with_jwks(&app, jwt).await;
        assert_eq!(claims["aud"], JWT_API);
        assert_eq!(claims["client_id"], client.client_id.as_str());
        assert_eq!(claims["scope"], tokens["scope"]);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 64));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
        // The ID token's at_hash is over the JWT the client got.
        let id_token = tokens["id_token"].as_str().unwrap();
        let id_claims = jwt_claims(id_token);
        assert_eq!(claims["sub"], id_claims["sub"], "sub is the user");
        let digest = Sha256::digest(jwt.as_bytes());
        assert_eq!(id_claims["at_hash"], base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]));

        // Introspection and revocation take the JWT.
        let info = introspect(&app, &client, jwt).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["aud"], JWT_API);
        revoke(&app, &client, jwt).await;
        assert_eq!(introspect(&app, &client, jwt).await["active"], false);
        // A JWT with a forged signature is nobody's.
        let forged = format!("{}.{}", jwt.rsplit_once('.').unwrap().0, "AAAA");
        assert_eq!(introspect(&app, &client, &forged).await["active"], false);

        // Client credentials: the app is the subject.
        let (status, body, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("scope", "read"), ("resource", JWT_API)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["sub"], client.client_id.as_str());
        assert!(claims.get("cnf").is_none());
    }

    async fn admins_register_resource_servers_on_the_admin_page_and_the_cli(backend) {
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("resource-admin@example.com").await;
        let root = app.store.user_by_email("resource-admin@example.com").await.unwrap().unwrap();
        app.store.set_admin(&root.id, true, latchkey::store::now()).await.unwrap();
        let made = app.submit(&admin, "/admin", "/admin/resources", &[("identifier", "https://calendar.example.com"), ("name", "Calendar"), ("jwt", "on")]).await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
        let server = app.store.resource_server("https://calendar.example.com").await.unwrap().expect("registered");
        assert!(server.jwt);
        let page = app.get(&admin, "/admin").await;
        assert!(page.body.contains("https://calendar.example.com") && page.body.contains("JWT (RFC 9068)"), "{}", page.body);
        for (identifier, name) in [("calendar.example.com", "No scheme"), ("https://x.example/#f", "Fragment"), ("https://calendar.example.com", "Taken"), ("https://ok.example", "")] {
            let refused = app.submit(&admin, "/admin", "/admin/resources", &[("identifier", identifier), ("name", name)]).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{identifier} {name}");
        }
        let deleted = app.submit(&admin, "/admin", &format!("/admin/resources/{}/delete", server.id), &[]).await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER);
        assert!(app.store.resource_server("https://calendar.example.com").await.unwrap().is_none());
        assert!(app.audit_kinds().await.iter().filter(|k| k.as_str() == "resource_server_changed").count() == 2);

        // The same from the command line.
        let cli = |args: &[&str]| {
            let out = std::process::Command::new(crate::process::BIN)
                .args(args)
                .env("LATCHKEY_DATABASE_URL", &app.database_url)
                .output()
                .expect("latchkey runs");
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
        };
        let (ok, out, err) = cli(&["resource", "create", "--identifier", "urn:example:files", "--name", "Files", "--json"]);
        assert!(ok, "{err}");
        let created: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(created["token_format"], "opaque");
        let (ok, _, err) = cli(&["resource", "create", "--identifier", "not a uri", "--name", "Bad"]);
        assert!(!ok && err.contains("absolute URI"), "{err}");
        let (_, out, _) = cli(&["resource", "list", "--json"]);
        let listed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(listed["resource_servers"][0]["identifier"], "urn:example:files");
        let (ok, _, _) = cli(&["resource", "delete", "urn:example:files"]);
        assert!(ok);
        assert!(app.store.resource_servers().await.unwrap().is_empty());
    }
}
