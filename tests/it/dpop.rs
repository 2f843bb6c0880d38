//! DPoP (RFC 9449): proofs at the token endpoint bind tokens to the client's key; the resource
//! API and userinfo accept a bound token only with a fresh proof made with that key.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

enum Pair {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A client's DPoP key: makes proofs, knows its public JWK and thumbprint.
struct DpopKey {
    pair: Pair,
    jwk: Value,
    jkt: String,
}

impl DpopKey {
    fn es256() -> DpopKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..]));
        DpopKey {
            jkt: thumbprint(&format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
            )),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            pair: Pair::Es256(pair),
        }
    }

    fn ed25519() -> DpopKey {
        let pair = Ed25519KeyPair::generate().unwrap();
        let x = B64.encode(pair.public_key().as_ref());
        DpopKey {
            jkt: thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#)),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
            pair: Pair::Ed25519(pair),
        }
    }

    fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Es256(_) => "ES256",
            Pair::Ed25519(_) => "EdDSA",
        }
    }

    /// A JWS over `header` and `claims` with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = match &self.pair {
            Pair::Es256(pair) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", B64.encode(signature))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk})
    }

    /// A fresh proof for `method url` (with `ath` for `token`, and `nonce`).
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.sign(&self.header(), &claims(method, url, token, None))
    }

    fn proof_with_nonce(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: &str,
    ) -> String {
        self.sign(&self.header(), &claims(method, url, token, Some(nonce)))
    }
}

fn thumbprint(canonical: &str) -> String {
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

fn claims(method: &str, url: &str, token: Option<&str>, nonce: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": latchkey::store::now(),
    });
    if let Some(token) = token {
        claims["ath"] = json!(B64.encode(Sha256::digest(token.as_bytes())));
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    claims
}

/// A token request as `client` with `proofs` as its `DPoP` headers: (status, body, headers).
async fn token_with(
    app: &TestApp,
    client: &RegisteredApp,
    proofs: &[&str],
    form: &[(&str, &str)],
) -> (StatusCode, Value, HeaderMap) {
    let mut request = reqwest::Client::new().post(app.url("/oauth/token"));
    let mut form = form.to_vec();
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.client_id, Some(secret)),
        None => form.push(("client_id", &client.client_id)),
    }
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    let response = request.form(&form).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn code_form<'a>(
    client: &'a RegisteredApp,
    code: &'a str,
    verifier: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &client.redirect_uri),
        ("code_verifier", verifier),
    ]
}

/// `method path` on the resource side with `Authorization: {scheme} {token}` and `proofs`.
async fn resource(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: &str,
    proofs: &[&str],
) -> (StatusCode, Value, HeaderMap) {
    let mut request = reqwest::Client::new()
        .request(method, app.url(path))
        .header("Authorization", authorization);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn challenges(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A signed-in user's tokens for `client`, bound to `key`.
async fn bound_tokens(app: &TestApp, client: &RegisteredApp, key: &DpopKey, scope: &str) -> Value {
    let browser = app
        .signed_in(&format!("{}@example.com", uuid::Uuid::new_v4().simple()))
        .await;
    let (code, verifier) = get_code(app, &browser, client, scope).await;
    let proof = key.proof("POST", &app.url("/oauth/token"), None);
    let (status, body, _) =
        token_with(app, client, &[&proof], &code_form(client, &code, &verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

on_both_backends! {
    async fn a_bound_token_works_only_with_a_fresh_proof_of_its_key(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "openid profile read").await;
        let key = DpopKey::es256();
        let tokens = bound_tokens(&app, &client, &key, "openid profile read").await;
        assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
        let access = tokens["access_token"].as_str().unwrap();
        let me = app.url("/api/v1/authenticated/me");
        let dpop = format!("DPoP {access}");
        let get = reqwest::Method::GET;

        let proof = key.proof("GET", &me, Some(access));
        let (status, body, _) = resource(&app, get.clone(), "/api/v1/authenticated/me", &dpop, &[&proof]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["id"].is_string(), "{body}");

        // Every refusal the RFC names; each with a DPoP challenge.
        let other = DpopKey::ed25519();
        let stale = key.sign(&key.header(), &{
            let mut c = claims("GET", &me, Some(access), None);
            c["iat"] = json!(latchkey::store::now() - 300);
            c
        });
        let future = key.sign(&key.header(), &{
            let mut c = claims("GET", &me, Some(access), None);
            c["iat"] = json!(latchkey::store::now() + 300);
            c
        });
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            ("replayed proof", vec![proof.clone()], "invalid_dpop_proof"),
            ("no proof", vec![], "invalid_dpop_proof"),
            ("wrong htm", vec![key.proof("POST", &me, Some(access))], "invalid_dpop_proof"),
            ("wrong htu", vec![key.proof("GET", &app.url("/api/v1/authenticated/streak"), Some(access))], "invalid_dpop_proof"),
            ("stale iat", vec![stale], "invalid_dpop_proof"),
            ("iat in the future", vec![future], "invalid_dpop_proof"),
            ("no ath", vec![key.proof("GET", &me, None)], "invalid_dpop_proof"),
            ("ath of another token", vec![key.proof("GET", &me, Some("lk_at_other"))], "invalid_dpop_proof"),
            ("another key", vec![other.proof("GET", &me, Some(access))], "invalid_dpop_proof"),
            ("two proofs", vec![key.proof("GET", &me, Some(access)), key.proof("GET", &me, Some(access))], "invalid_dpop_proof"),
        ];
        for (name, proofs, error) in cases {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            let (status, body, headers) = resource(&app, get.clone(), "/api/v1/authenticated/me", &dpop, &proofs).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
            assert_eq!(body["error"], error, "{name}: {body}");
            let challenge = challenges(&headers).join(" | ");
            assert!(challenge.starts_with(&format!("DPoP error=\"{error}\"")), "{name}: {challenge}");
            assert!(challenge.contains("algs=\"ES256"), "{name}: {challenge}");
        }

        // A bound token is not a bearer token.
        let proof = key.proof("GET", &me, Some(access));
        let (status, body, headers) = resource(&app, get.clone(), "/api/v1/authenticated/me", &format!("Bearer {access}"), &[&proof]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_token");
        assert!(challenges(&headers).iter().any(|c| c.starts_with("DPoP algs=")), "{headers:?}");

        // userinfo, both methods, checks the same way.
        let userinfo = app.url("/oauth/userinfo");
        let (status, body, _) = resource(&app, get.clone(), "/oauth/userinfo", &dpop, &[&key.proof("GET", &userinfo, Some(access))]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["sub"].is_string());
        let (status, body, _) = resource(&app, reqwest::Method::POST, "/oauth/userinfo", &dpop, &[&key.proof("POST", &userinfo, Some(access))]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body, _) = resource(&app, get.clone(), "/oauth/userinfo", &dpop, &[&key.proof("GET", &me, Some(access))]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_dpop_proof");
        let (status, _, _) = resource(&app, get.clone(), "/oauth/userinfo", &format!("Bearer {access}"), &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Introspection names the key (RFC 9449 §6.2), with the thumbprint computed here.
        let info = introspect(&app, &client, access).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["token_type"], "DPoP");
        assert_eq!(info["cnf"]["jkt"], key.jkt.as_str());

        // An unbound token is not accepted in the DPoP scheme.
        let (_, plain) = {
            let browser = app.signed_in("plain@example.com").await;
            let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
            exchange(&app, &client, &code, &verifier).await
        };
        assert_eq!(plain["token_type"], "Bearer");
        let plain_access = plain["access_token"].as_str().unwrap();
        let proof = key.proof("GET", &me, Some(plain_access));
        let (status, _, _) = resource(&app, get.clone(), "/api/v1/authenticated/me", &format!("DPoP {plain_access}"), &[&proof]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(introspect(&app, &client, plain_access).await.get("cnf").is_none());
    }

    async fn the_token_endpoint_refuses_bad_proofs_before_spending_the_code(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let key = DpopKey::es256();
        let browser = app.signed_in("proofs@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let form = code_form(&client, &code, &verifier);
        let token_url = app.url("/oauth/token");
        let good = key.proof("POST", &token_url, None);
        let tamper = {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            let mut claims: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
            claims["htu"] = json!(app.url("/oauth/token2"));
            parts[1] = B64.encode(claims.to_string());
            parts.join(".")
        };
        let mut private = key.header();
        private["jwk"]["d"] = json!(B64.encode([1u8; 32]));
        let mut symmetric = key.header();
        symmetric["alg"] = json!("HS256");
        let mut untyped = key.header();
        untyped["typ"] = json!("JWT");
        let post = claims("POST", &token_url, None, None);
        let mut no_jti = post.clone();
        no_jti.as_object_mut().unwrap().remove("jti");
        let cases = vec![
            ("wrong htu", key.proof("POST", &app.url("/oauth/par"), None)),
            ("another host", key.proof("POST", "http://example.com/oauth/token", None)),
            ("wrong htm", key.proof("GET", &token_url, None)),
            ("altered after signing", tamper),
            ("private key in jwk", key.sign(&private, &post)),
            ("symmetric alg", key.sign(&symmetric, &post)),
            ("typ not dpop+jwt", key.sign(&untyped, &post)),
            ("no jti", key.sign(&key.header(), &no_jti)),
            ("not a JWT", "not-a-jwt".to_owned()),
        ];
        for (name, proof) in cases {
            let (status, body, _) = token_with(&app, &client, &[&proof], &form).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
            assert_eq!(body["error"], "invalid_dpop_proof", "{name}: {body}");
        }
        // None of that spent the code.
        let (status, body, _) = token_with(&app, &client, &[&good], &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "DPoP");
        // A replayed proof is refused (and the code is spent now anyway).
        let browser = app.signed_in("proofs2@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (status, body, _) = token_with(&app, &client, &[&good], &code_form(&client, &code, &verifier)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_dpop_proof");
        assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
        // The metadata lists the algorithms.
        let metadata: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
        let algs = metadata["dpop_signing_alg_values_supported"].as_array().unwrap();
        assert!(algs.contains(&json!("ES256")) && algs.contains(&json!("EdDSA")), "{metadata}");
    }

    async fn a_public_apps_refresh_token_is_bound_to_its_key(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, false, "profile").await;
        let key = DpopKey::ed25519();
        let tokens = bound_tokens(&app, &client, &key, "profile").await;
        assert_eq!(tokens["token_type"], "DPoP");
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
        let token_url = app.url("/oauth/token");

        let (status, body, _) = token_with(&app, &client, &[], &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
        let thief = DpopKey::es256();
        let (status, body, _) = token_with(&app, &client, &[&thief.proof("POST", &token_url, None)], &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");

        // The refusals neither rotated the token nor revoked the chain.
        let (status, rotated, _) = token_with(&app, &client, &[&key.proof("POST", &token_url, None)], &form).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        assert_eq!(rotated["token_type"], "DPoP");
        // A retry inside the grace window with the same key gets the same pair; with no proof,
        // nothing.
        let (status, again, _) = token_with(&app, &client, &[&key.proof("POST", &token_url, None)], &form).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["access_token"], rotated["access_token"]);
        let (status, _, _) = token_with(&app, &client, &[], &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // The successor is bound too.
        let next = [("grant_type", "refresh_token"), ("refresh_token", rotated["refresh_token"].as_str().unwrap())];
        let (status, body, _) = token_with(&app, &client, &[&thief.proof("POST", &token_url, None)], &next).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let access = rotated["access_token"].as_str().unwrap();
        let me = app.url("/api/v1/authenticated/me");
        let (status, body, _) = resource(&app, reqwest::Method::GET, "/api/v1/authenticated/me", &format!("DPoP {access}"), &[&key.proof("GET", &me, Some(access))]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn a_confidential_apps_refresh_token_is_not_bound(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let first = DpopKey::es256();
        let tokens = bound_tokens(&app, &client, &first, "profile").await;
        let refresh = tokens["refresh_token"].as_str().unwrap();
        // Its credentials bind it: another key gets tokens bound to that key, no proof gets
        // bearer tokens.
        let second = DpopKey::ed25519();
        let (status, rotated, _) = token_with(&app, &client, &[&second.proof("POST", &app.url("/oauth/token"), None)], &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let info = introspect(&app, &client, rotated["access_token"].as_str().unwrap()).await;
        assert_eq!(info["cnf"]["jkt"], second.jkt.as_str());
        let (status, plain, _) = token_with(&app, &client, &[], &[("grant_type", "refresh_token"), ("refresh_token", rotated["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(status, StatusCode::OK, "{plain}");
        assert_eq!(plain["token_type"], "Bearer");
        // Client credentials with a proof are bound as well.
        let (status, body, _) = token_with(&app, &client, &[&first.proof("POST", &app.url("/oauth/token"), None)], &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "DPoP");
    }

    async fn dpop_jkt_and_a_proof_at_par_bind_the_code(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let key = DpopKey::es256();
        let other = DpopKey::es256();
        let token_url = app.url("/oauth/token");
        let browser = app.signed_in("jkt@example.com").await;

        // dpop_jkt on the authorization request.
        let (verifier, challenge) = pkce_pair();
        let authorize_with = |jkt: String, challenge: String| {
            vec![
                ("response_type", "code".to_owned()),
                ("client_id", client.client_id.clone()),
                ("redirect_uri", client.redirect_uri.clone()),
                ("scope", "profile".to_owned()),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256".to_owned()),
                ("dpop_jkt", jkt),
            ]
        };
        let params = authorize_with(key.jkt.clone(), challenge.clone());
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = authorize(&app, &browser, &params, "allow").await;
        let code = location_params(&page)["code"].clone();
        let (status, body, _) = token_with(&app, &client, &[&other.proof("POST", &token_url, None)], &code_form(&client, &code, &verifier)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");

        let page = authorize(&app, &browser, &params, "allow").await;
        let code = location_params(&page)["code"].clone();
        let (status, body, _) = token_with(&app, &client, &[], &code_form(&client, &code, &verifier)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a bound code needs a proof: {body}");

        let page = authorize(&app, &browser, &params, "allow").await;
        let code = location_params(&page)["code"].clone();
        let (status, body, _) = token_with(&app, &client, &[&key.proof("POST", &token_url, None)], &code_form(&client, &code, &verifier)).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A malformed dpop_jkt is an invalid request, sent back to the app.
        let bad = authorize_with("short".into(), challenge.clone());
        let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = authorize(&app, &browser, &bad, "allow").await;
        assert_eq!(location_params(&page)["error"], "invalid_request");

        // A proof at /oauth/par binds the pushed request's code; a dpop_jkt that disagrees with
        // it is refused.
        let par_url = app.url("/oauth/par");
        let push = |proof: String, extra: Vec<(&'static str, String)>| {
            let mut form = vec![
                ("response_type", "code".to_owned()),
                ("redirect_uri", client.redirect_uri.clone()),
                ("scope", "profile".to_owned()),
                ("code_challenge", challenge.clone()),
                ("code_challenge_method", "S256".to_owned()),
            ];
            form.extend(extra);
            reqwest::Client::new()
                .post(par_url.clone())
                .basic_auth(&client.client_id, client.secret.as_ref())
                .header("DPoP", proof)
                .form(&form)
                .send()
        };
        let response = push(key.proof("POST", &par_url, None), vec![("dpop_jkt", other.jkt.clone())]).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof");
        let response = push(key.proof("POST", &token_url, None), vec![]).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a proof for another URL");

        let response = push(key.proof("POST", &par_url, None), vec![]).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let pushed: Value = response.json().await.unwrap();
        let page = authorize(&app, &browser, &[("client_id", &client.client_id), ("request_uri", pushed["request_uri"].as_str().unwrap())], "allow").await;
        let code = location_params(&page)["code"].clone();
        let (status, body, _) = token_with(&app, &client, &[&other.proof("POST", &token_url, None)], &code_form(&client, &code, &verifier)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    }

    async fn nonces_when_the_server_requires_them(backend) {
        let app = spawn_app_with(&backend, |s| s.dpop_nonce = Some("on".into())).await;
        let client = register(&app, true, "profile").await;
        let key = DpopKey::es256();
        let token_url = app.url("/oauth/token");
        let browser = app.signed_in("nonce@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let form = code_form(&client, &code, &verifier);

        let (status, body, headers) = token_with(&app, &client, &[&key.proof("POST", &token_url, None)], &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("use_dpop_nonce")), "{body}");
        let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
        let forged = key.proof_with_nonce("POST", &token_url, None, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let (status, body, _) = token_with(&app, &client, &[&forged], &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("use_dpop_nonce")), "{body}");
        // The refusals did not spend the code.
        let (status, tokens, headers) = token_with(&app, &client, &[&key.proof_with_nonce("POST", &token_url, None, &nonce)], &form).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert!(headers.contains_key("dpop-nonce"), "a fresh nonce comes with each answer");

        let access = tokens["access_token"].as_str().unwrap();
        let me = app.url("/api/v1/authenticated/me");
        let dpop = format!("DPoP {access}");
        let (status, body, headers) = resource(&app, reqwest::Method::GET, "/api/v1/authenticated/me", &dpop, &[&key.proof("GET", &me, Some(access))]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(challenges(&headers)[0].starts_with("DPoP error=\"use_dpop_nonce\""), "{headers:?}");
        let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
        let (status, body, _) = resource(&app, reqwest::Method::GET, "/api/v1/authenticated/me", &dpop, &[&key.proof_with_nonce("GET", &me, Some(access), &nonce)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn an_app_may_require_dpop(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("dpop-owner@example.com", "apps", false).await;
        let (status, created) = app.api(reqwest::Method::POST, "/oauth/clients", &pat, Some(json!({
            "name": "Bound app",
            "redirect_uris": ["https://bound.example/cb"],
            "scopes": ["profile"],
            "dpop_bound_access_tokens": true,
        }))).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["dpop_bound_access_tokens"], true);
        let client = RegisteredApp {
            id: created["id"].as_str().unwrap().to_owned(),
            client_id: created["client_id"].as_str().unwrap().to_owned(),
            secret: created["client_secret"].as_str().map(str::to_owned),
            redirect_uri: "https://bound.example/cb".into(),
        };
        let browser = app.signed_in("bound-user@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let form = code_form(&client, &code, &verifier);
        let (status, body, _) = token_with(&app, &client, &[], &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
        let key = DpopKey::es256();
        let (status, body, _) = token_with(&app, &client, &[&key.proof("POST", &app.url("/oauth/token"), None)], &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "DPoP");
    }

    async fn a_proof_used_on_one_node_is_refused_on_another(backend) {
        let first = spawn_app(&backend).await;
        let second = spawn_node(&first).await;
        let client = register(&first, true, "profile").await;
        let key = DpopKey::es256();
        let tokens = bound_tokens(&first, &client, &key, "profile").await;
        let access = tokens["access_token"].as_str().unwrap();
        // Both nodes answer for the same issuer (one load balancer in front of them).
        let me = first.url("/api/v1/authenticated/me");
        let proof = key.proof("GET", &me, Some(access));
        let dpop = format!("DPoP {access}");
        let (status, body, _) = resource(&first, reqwest::Method::GET, "/api/v1/authenticated/me", &dpop, &[&proof]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body, _) = resource(&second, reqwest::Method::GET, "/api/v1/authenticated/me", &dpop, &[&proof]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_dpop_proof");
        let (status, body, _) = resource(&second, reqwest::Method::GET, "/api/v1/authenticated/me", &dpop, &[&key.proof("GET", &me, Some(access))]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
