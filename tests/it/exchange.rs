//! Token exchange (RFC 8693).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const API: &str = "https://orders.example.com";
const DOWNSTREAM: &str = "https://billing.example.com";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What is refused: (name, subject token, extra parameters, error).
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

/// Exchange `subject` as `client` with `extra` parameters.
async fn exchange_as(
    app: &TestApp,
    client: &RegisteredApp,
    subject: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", GRANT),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
    ];
    form.extend_from_slice(extra);
    let (status, body, _) = token_request(app, client, &form).await;
    (status, body)
}

on_both_backends! {
    async fn an_allowed_service_trades_a_users_token_for_a_narrower_one(backend) {
        let app = spawn_app(&backend).await;
        let now = latchkey::store::now();
        app.store.create_resource_server(API, "Orders", false, now).await.unwrap().unwrap();
        app.store.create_resource_server(DOWNSTREAM, "Billing", true, now).await.unwrap().unwrap();
        // The user's token from their app, for the orders API.
        let front = register(&app, true, "profile read").await;
        let browser = app.signed_in("shopper@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &front, "profile read").await;
        let (status, tokens, _) = token_request(&app, &front, &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &front.redirect_uri),
            ("code_verifier", &verifier), ("resource", API),
        ]).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let subject = tokens["access_token"].as_str().unwrap();

        // The orders service may exchange only once an admin allowed it.
        let orders = register(&app, true, "profile read").await;
        let (status, body) = exchange_as(&app, &orders, subject, &[("resource", DOWNSTREAM)]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{body}");
        let admin = app.signed_in("exchange-admin@example.com").await;
        let root = app.store.user_by_email("exchange-admin@example.com").await.unwrap().unwrap();
        app.store.set_admin(&root.id, true, now).await.unwrap();
        let allowed = app.submit(&admin, "/admin", &format!("/admin/apps/{}/token-exchange", orders.id), &[("allowed", "1")]).await;
        assert_eq!(allowed.status, StatusCode::SEE_OTHER);

        // Refusals.
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let cases: Vec<Case> = vec![
            ("no resource", subject, vec![], "invalid_target"),
            ("an unknown audience", subject, vec![("audience", "https://nowhere.example")], "invalid_target"),
            ("a wider scope", subject, vec![("resource", DOWNSTREAM), ("scope", "read email")], "invalid_scope"),
            ("a refresh token as subject", refresh, vec![("resource", DOWNSTREAM)], "invalid_request"),
            ("a made-up subject", "lk_at_nothing", vec![("resource", DOWNSTREAM)], "invalid_request"),
            ("a refresh token asked for", subject, vec![("resource", DOWNSTREAM), ("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")], "invalid_request"),
            ("an actor token", subject, vec![("resource", DOWNSTREAM), ("actor_token", subject), ("actor_token_type", ACCESS)], "invalid_request"),
        ];
        for (name, token, extra, error) in cases {
            let (status, body) = exchange_as(&app, &orders, token, &extra).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{name}: {body}");
        }

        // The exchange: a JWT for billing, narrower, naming the orders service as the actor.
        let (status, body) = exchange_as(&app, &orders, subject, &[("audience", DOWNSTREAM), ("scope", "read")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["issued_token_type"], ACCESS);
        assert_eq!(body["scope"], "read");
        assert!(body.get("refresh_token").is_none());
        let exchanged = body["access_token"].as_str().unwrap().to_owned();
        let c = jwt_claims(&exchanged);
        assert_eq!(c["aud"], DOWNSTREAM);
        assert_eq!(c["sub"], app.store.user_by_email("shopper@example.com").await.unwrap().unwrap().id.as_str());
        assert_eq!(c["client_id"], orders.client_id.as_str());
        assert_eq!(c["act"], json!({"sub": orders.client_id}));
        let info = introspect(&app, &orders, &exchanged).await;
        assert_eq!((info["active"].as_bool(), info["act"]["sub"].as_str()), (Some(true), Some(orders.client_id.as_str())), "{info}");

        // Another allowed service exchanges that one in turn: the actors nest.
        let billing = register(&app, true, "read").await;
        let cli = std::process::Command::new(crate::process::BIN)
            .args(["client", "token-exchange", &billing.client_id, "on"])
            .env("LATCHKEY_DATABASE_URL", &app.database_url)
            .output()
            .unwrap();
        assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
        let said: Value = serde_json::from_slice(&cli.stdout).unwrap();
        assert_eq!(said["token_exchange"], true);
        let (status, body) = exchange_as(&app, &billing, &exchanged, &[("resource", API)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let nested = introspect(&app, &billing, body["access_token"].as_str().unwrap()).await;
        assert_eq!(nested["act"], json!({"sub": billing.client_id, "act": {"sub": orders.client_id}}));

        // Revoking the user's chain takes every token made from it.
        let response = reqwest::Client::new().post(app.url("/oauth/revoke")).basic_auth(&front.client_id, front.secret.as_ref()).form(&[("token", refresh)]).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(introspect(&app, &orders, &exchanged).await["active"], false);
        assert!(app.audit_kinds().await.contains(&"token_exchanged".to_owned()));
    }
}
