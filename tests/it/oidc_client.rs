//! A relying party written by others (the `openidconnect` crate) against latchkey: discovery,
//! JWKS, code flow with PKCE, ID-token verification (signature, issuer, audience, nonce),
//! userinfo and refresh.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenIntrospectionResponse, TokenResponse,
};
use reqwest::StatusCode;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

/// openidconnect's HTTP client, over reqwest (redirects off, as the crate requires).
fn http_client() -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>>
            + Send,
    >,
> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    move |request: openidconnect::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut builder = http.request(parts.method, parts.uri.to_string()).body(body);
            for (name, value) in &parts.headers {
                builder = builder.header(name, value);
            }
            let response = builder.send().await?;
            let mut out = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            let bytes = response.bytes().await?;
            Ok(out.body(bytes.to_vec()).expect("response"))
        })
    }
}

on_both_backends! {
    async fn an_independent_openid_connect_client_completes_the_flow(backend) {
        let app = spawn_app(&backend).await;
        let registered = register(&app, true, "openid profile email read").await;
        let user_browser = app.signed_in("oidc@example.com").await;
        let user = app.store.user_by_email("oidc@example.com").await.unwrap().unwrap();
        let http = http_client();

        let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery and JWKS");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(registered.client_id.clone()),
            Some(ClientSecret::new(registered.secret.clone().unwrap())),
        )
        .set_redirect_uri(RedirectUrl::new(registered.redirect_uri.clone()).unwrap())
        .set_introspection_url(openidconnect::IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap());

        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();

        // The user's browser: the consent page, then Authorize.
        let consent = Page::from(user_browser.get(url.as_str()).send().await.unwrap()).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
        let mut form = consent_fields(&consent.body);
        form.push(("decision".into(), "allow".into()));
        let back = Page::from(user_browser.post(app.url("/oauth/authorize")).form(&form).send().await.unwrap()).await;
        let params = location_params(&back);
        assert_eq!(params["state"], *csrf.secret());
        assert_eq!(params["iss"], app.base, "RFC 9207 mix-up defence");

        let tokens = client
            .exchange_code(AuthorizationCode::new(params["code"].clone()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("token exchange");
        let id_token = tokens.id_token().expect("an ID token");
        let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("the ID token verifies");
        assert_eq!(claims.subject().as_str(), user.id);
        assert_eq!(claims.issuer().as_str(), app.base);
        assert!(claims.auth_time().is_some());
        assert!(claims.access_token_hash().is_some(), "at_hash");
        // A wrong nonce is refused by the client library.
        assert!(id_token.claims(&client.id_token_verifier(), &Nonce::new("other".into())).is_err());
        // at_hash matches the access token.
        let expected = openidconnect::AccessTokenHash::from_token(tokens.access_token(), id_token.signing_alg().unwrap(), id_token.signing_key(&client.id_token_verifier()).unwrap()).unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected));

        let info: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None)
            .unwrap()
            .request_async(&http)
            .await
            .expect("userinfo");
        assert_eq!(info.subject().as_str(), user.id);
        assert_eq!(info.email().map(|e| e.as_str()), Some("oidc@example.com"));

        let refreshed = client
            .exchange_refresh_token(tokens.refresh_token().unwrap())
            .unwrap()
            .request_async(&http)
            .await
            .expect("refresh");
        assert_ne!(refreshed.access_token().secret(), tokens.access_token().secret());
        assert_ne!(refreshed.refresh_token().unwrap().secret(), tokens.refresh_token().unwrap().secret());

        // Introspection through the library too. (Its revocation call insists on https, which
        // this loopback test server does not speak, so revocation goes over plain HTTP here.)
        let live = client.introspect(refreshed.access_token()).request_async(&http).await.expect("introspection");
        assert!(live.active());
        assert_eq!(live.sub(), Some(user.id.as_str()));
        assert_eq!(live.username(), Some("oidc@example.com"));
        assert_eq!(live.client_id().map(|c| c.as_str()), Some(registered.client_id.as_str()));
        let revoked = reqwest::Client::new()
            .post(app.url("/oauth/revoke"))
            .basic_auth(&registered.client_id, registered.secret.as_ref())
            .form(&[("token", refreshed.refresh_token().unwrap().secret()), ("token_type_hint", &"refresh_token".to_owned())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::OK);
        let dead = client.introspect(refreshed.access_token()).request_async(&http).await.expect("introspection");
        assert!(!dead.active(), "revoking the refresh token revoked its access token");
    }

    async fn a_public_client_library_flow_with_pkce(backend) {
        let app = spawn_app(&backend).await;
        let registered = register_with(&app, false, "openid profile", &["http://127.0.0.1/cb"]).await;
        let user_browser = app.signed_in("native@example.com").await;
        let http = http_client();
        let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http).await.unwrap();
        // A native app: no secret, its loopback listener on some port.
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new(registered.client_id.clone()), None)
            .set_auth_type(openidconnect::AuthType::RequestBody)
            .set_redirect_uri(RedirectUrl::new("http://127.0.0.1:61000/cb".into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, _, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge)
            .url();
        let consent = Page::from(user_browser.get(url.as_str()).send().await.unwrap()).await;
        let mut form = consent_fields(&consent.body);
        form.push(("decision".into(), "allow".into()));
        let back = Page::from(user_browser.post(app.url("/oauth/authorize")).form(&form).send().await.unwrap()).await;
        assert!(back.location().starts_with("http://127.0.0.1:61000/cb?"), "{}", back.location());
        let code = location_params(&back)["code"].clone();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("a public client exchanges its code with PKCE alone");
        let claims = tokens.id_token().unwrap().claims(&client.id_token_verifier(), &nonce).unwrap();
        assert_eq!(claims.audiences()[0].as_str(), registered.client_id);
    }

    async fn a_rotated_key_keeps_old_id_tokens_verifiable(backend) {
        let app = spawn_app(&backend).await;
        latchkey::oauth::keys::ensure_key(&app.store).await.unwrap();
        let first = app.store.active_signing_key().await.unwrap().unwrap();
        let second = latchkey::oauth::keys::rotate(&app.store).await.unwrap();
        let jwks: serde_json::Value = reqwest::get(app.url("/oauth/jwks")).await.unwrap().json().await.unwrap();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(kids.contains(&first.kid.as_str()) && kids.contains(&second.kid.as_str()));
        assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k["kty"] == "RSA" && k["alg"] == "RS256" && k["use"] == "sig" && k.get("d").is_none()));
        assert_eq!(app.store.active_signing_key().await.unwrap().unwrap().kid, second.kid);
        assert!(app.store.retire_signing_key(&first.kid, latchkey::store::now()).await.unwrap());
        assert!(!app.store.retire_signing_key(&second.kid, latchkey::store::now()).await.unwrap(), "the signing key cannot be retired");
        let jwks: serde_json::Value = reqwest::get(app.url("/oauth/jwks")).await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    }
}
