//! Developer documentation: the guide at `/docs` (English and Russian, every example a
//! runnable command against this server's own issuer) and the API explorer at `/docs/api`
//! (Swagger UI, embedded in the binary, rendering `/api/openapi.json`).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use super::render;
use crate::app::AppState;
use crate::config::ClientRegistration;
use crate::domain::scope;
use crate::http::{Ctx, PageError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(guide))
        .route(
            "/docs/api",
            get(|| async { Redirect::permanent("/docs/api/") }),
        )
        .route("/docs/api/", get(explorer_index))
        .route("/docs/api/{*file}", get(explorer_file))
}

/// The redirect URI the guide's example app registers.
pub const EXAMPLE_REDIRECT: &str = "http://127.0.0.1:9000/callback";

/// What the guide's runnable examples may expect, besides a 2xx or 3xx answer.
#[derive(Clone, Copy)]
enum Expect {
    Success,
    Status(u16),
}

/// One example: a shell command (curl, or the `latchkey` CLI) using the variables the guide
/// introduces (`$PAT`, `$CLIENT_ID`, `$ACCESS_TOKEN`…).
struct Example {
    id: &'static str,
    expect: Expect,
    command: String,
}

/// Every example of the guide, for `issuer`. Both languages show the same commands.
fn examples(issuer: &str) -> Vec<Example> {
    let ok = |id, command: String| Example {
        id,
        expect: Expect::Success,
        command,
    };
    let i = issuer;
    let r = EXAMPLE_REDIRECT;
    let client = r#"-u "$CLIENT_ID:$CLIENT_SECRET""#;
    let bearer = r#"-H "Authorization: Bearer $ACCESS_TOKEN""#;
    let pat = r#"-H "Authorization: Bearer $PAT""#;
    let heartbeat = r#"{\"time\": $(date +%s), \"entity\": \"src/main.rs\", \"type\": \"file\", \"project\": \"latchkey\", \"language\": \"Rust\", \"is_write\": true}"#;
    vec![
        ok("discovery", format!("curl {i}/.well-known/openid-configuration")),
        ok(
            "pat-cli",
            r#"latchkey pat create --email you@example.com --scopes "apps profile read" --json"#
                .to_owned(),
        ),
        ok(
            "create-app",
            format!(
                r#"curl -X POST {i}/oauth/clients \
  {pat} \
  -H "Content-Type: application/json" \
  -d '{{"name": "My editor plugin", "homepage_url": "https://plugin.example", "redirect_uri": "{r}", "scopes": "openid profile email read offline_access"}}'"#
            ),
        ),
        ok(
            "create-app-cli",
            format!(
                r#"latchkey client create --owner you@example.com --name "My CLI" \
  --redirect-uri {r} --scopes "profile read" --public --json"#
            ),
        ),
        ok("list-apps", format!("curl {i}/oauth/clients {pat}")),
        ok(
            "pkce",
            r#"CODE_VERIFIER=$(openssl rand -hex 32)
CODE_CHALLENGE=$(printf '%s' "$CODE_VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
echo "$CODE_CHALLENGE""#
                .to_owned(),
        ),
        ok(
            "authorize",
            format!(
                r#"curl -i "{i}/oauth/authorize?response_type=code&client_id=$CLIENT_ID&redirect_uri={}&scope=openid%20profile%20read%20offline_access&state=af0ifjsldkj&code_challenge=$CODE_CHALLENGE&code_challenge_method=S256""#,
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            ),
        ),
        ok(
            "token-form",
            format!(
                r#"curl -X POST {i}/oauth/token \
  {client} \
  -d grant_type=authorization_code \
  -d code="$CODE" \
  -d redirect_uri={r} \
  -d code_verifier="$CODE_VERIFIER""#
            ),
        ),
        ok(
            "token-json",
            format!(
                r#"curl -X POST {i}/oauth/token \
  -H "Content-Type: application/json" \
  -d "{{\"grant_type\": \"authorization_code\", \"client_id\": \"$CLIENT_ID\", \"client_secret\": \"$CLIENT_SECRET\", \"code\": \"$CODE\", \"redirect_uri\": \"{r}\", \"code_verifier\": \"$CODE_VERIFIER\"}}""#
            ),
        ),
        ok(
            "token-public",
            format!(
                r#"curl -X POST {i}/oauth/token \
  -d grant_type=authorization_code \
  -d client_id="$PUBLIC_CLIENT_ID" \
  -d code="$CODE" \
  -d redirect_uri={r} \
  -d code_verifier="$CODE_VERIFIER""#
            ),
        ),
        ok(
            "refresh",
            format!(
                r#"curl -X POST {i}/oauth/token \
  {client} \
  -d grant_type=refresh_token \
  -d refresh_token="$REFRESH_TOKEN""#
            ),
        ),
        ok(
            "revoke",
            format!(
                r#"curl -X POST {i}/oauth/revoke \
  {client} \
  -d token="$REFRESH_TOKEN" \
  -d token_type_hint=refresh_token"#
            ),
        ),
        ok(
            "introspect",
            format!(r#"curl -X POST {i}/oauth/introspect {client} -d token="$ACCESS_TOKEN""#),
        ),
        ok(
            "client-credentials",
            format!(
                r#"curl -X POST {i}/oauth/token {client} -d grant_type=client_credentials -d scope=read"#
            ),
        ),
        ok("userinfo", format!("curl {i}/oauth/userinfo {bearer}")),
        ok("jwks", format!("curl {i}/oauth/jwks")),
        ok(
            "device-code",
            format!(
                r#"curl -X POST {i}/oauth/device/code -d client_id="$DEVICE_CLIENT_ID" -d scope="profile read""#
            ),
        ),
        ok(
            "device-poll",
            format!(
                r#"curl -X POST {i}/oauth/token \
  -d grant_type=urn:ietf:params:oauth:grant-type:device_code \
  -d device_code="$DEVICE_CODE" \
  -d client_id="$DEVICE_CLIENT_ID""#
            ),
        ),
        ok(
            "heartbeat",
            format!(
                r#"curl -X POST {i}/api/v1/users/current/heartbeats \
  -u "$API_KEY:" \
  -H "Content-Type: application/json" \
  -d "{heartbeat}""#
            ),
        ),
        ok(
            "heartbeats-bulk",
            format!(
                r#"curl -X POST {i}/api/v1/users/current/heartbeats.bulk \
  -u "$API_KEY:" \
  -H "Content-Type: application/json" \
  -d "[{heartbeat}, {heartbeat}]""#
            ),
        ),
        ok("me", format!("curl {i}/api/v1/authenticated/me {bearer}")),
        ok(
            "hours",
            format!(
                r#"curl "{i}/api/v1/authenticated/hours?start_date=2026-11-01&end_date=2026-11-23" {bearer}"#
            ),
        ),
        ok(
            "streak",
            format!("curl {i}/api/v1/authenticated/streak {bearer}"),
        ),
        ok(
            "projects",
            format!("curl {i}/api/v1/authenticated/projects {bearer}"),
        ),
        ok(
            "latest",
            format!("curl {i}/api/v1/authenticated/heartbeats/latest {bearer}"),
        ),
        ok(
            "api-key",
            format!("curl {i}/api/v1/authenticated/api_keys {bearer}"),
        ),
        Example {
            id: "error",
            expect: Expect::Status(401),
            command: format!(
                r#"curl -i {i}/api/v1/authenticated/me -H "Authorization: Bearer lk_at_not_a_real_token""#
            ),
        },
        ok(
            "rate-limit",
            format!("curl -i {i}/api/v1/authenticated/me {bearer}"),
        ),
        ok(
            "reset-secret",
            format!("curl -X POST {i}/oauth/clients/$APP_ID/secret {pat}"),
        ),
        ok(
            "revoke-all",
            format!("curl -X POST {i}/oauth/clients/$APP_ID/revoke_tokens {pat}"),
        ),
        ok(
            "leaked",
            format!(
                r#"curl -X POST {i}/oauth/leaked \
  -H "Content-Type: application/json" \
  -d '["lk_at_found_in_a_public_repository"]'"#
            ),
        ),
        ok("verify-cli", "latchkey client verify $CLIENT_ID".to_owned()),
        ok(
            "par-push",
            format!(
                r#"curl -X POST {i}/oauth/par \
  {client} \
  -d response_type=code \
  -d redirect_uri={r} \
  -d scope="openid profile read" \
  -d state=af0ifjsldkj \
  -d code_challenge="$CODE_CHALLENGE" \
  -d code_challenge_method=S256"#
            ),
        ),
        ok(
            "par-authorize",
            format!(r#"curl -i "{i}/oauth/authorize?client_id=$CLIENT_ID&request_uri=$REQUEST_URI""#),
        ),
        ok(
            "logout",
            format!(
                r#"curl -i "{i}/oauth/logout?client_id=$CLIENT_ID&id_token_hint=$ID_TOKEN&post_logout_redirect_uri=http://127.0.0.1:9000/signed-out&state=af0ifjsldkj""#
            ),
        ),
        ok(
            "resource-create",
            r#"latchkey resource create --identifier https://api.example.com --name "Example API" --jwt --json"#
                .to_owned(),
        ),
        ok(
            "register",
            format!(
                r#"curl -X POST {i}/oauth/register \
  -H "Authorization: Bearer $PAT" \
  -H "Content-Type: application/json" \
  -d '{{"client_name": "My Assistant", "redirect_uris": ["{r}"],
       "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
       "scope": "profile read"}}'"#
            ),
        ),
        ok(
            "register-read",
            format!(
                r#"curl {i}/oauth/register/$REGISTERED_CLIENT_ID \
  -H "Authorization: Bearer $REGISTRATION_ACCESS_TOKEN""#
            ),
        ),
        ok(
            "dpop",
            format!(
                r#"# The app's key pair: keep dpop.pem, the tokens will be bound to it
openssl genpkey -algorithm ed25519 -out dpop.pem
b64url() {{ openssl base64 -A | tr '+/' '-_' | tr -d '='; }}
JWK="{{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"$(openssl pkey -in dpop.pem -pubout -outform DER | tail -c 32 | b64url)\"}}"
# dpop METHOD URL [ACCESS_TOKEN]: a fresh proof for one request
dpop() {{
  local claims="{{\"jti\":\"$(openssl rand -hex 16)\",\"htm\":\"$1\",\"htu\":\"$2\",\"iat\":$(date +%s)"
  if [ -n "${{3:-}}" ]; then claims+=",\"ath\":\"$(printf '%s' "$3" | openssl dgst -sha256 -binary | b64url)\""; fi
  local input="$(printf '%s' "{{\"typ\":\"dpop+jwt\",\"alg\":\"EdDSA\",\"jwk\":$JWK}}" | b64url).$(printf '%s}}' "$claims" | b64url)"
  printf '%s' "$input" > dpop.in
  printf '%s.%s' "$input" "$(openssl pkeyutl -sign -inkey dpop.pem -rawin -in dpop.in | b64url)"
}}
TOKENS=$(curl --fail-with-body -X POST {i}/oauth/token {client} \
  -H "DPoP: $(dpop POST {i}/oauth/token)" \
  -d grant_type=authorization_code -d code="$CODE" \
  -d redirect_uri={r} -d code_verifier="$CODE_VERIFIER")
echo "$TOKENS"
ACCESS_TOKEN=$(printf '%s' "$TOKENS" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
curl --fail-with-body {i}/api/v1/authenticated/me \
  -H "Authorization: DPoP $ACCESS_TOKEN" \
  -H "DPoP: $(dpop GET {i}/api/v1/authenticated/me "$ACCESS_TOKEN")""#
            ),
        ),
    ]
}

/// `text` escaped as the templates escape it.
fn escape_html(text: &str) -> String {
    match askama::filters::escape(text, askama::filters::Html) {
        Ok(escaped) => escaped.to_string(),
        Err(never) => match never {},
    }
}

/// The guide's examples as HTML blocks, by id. Each block says what it expects, so the
/// test that runs them knows what success is.
pub struct Examples(BTreeMap<&'static str, String>);

impl Examples {
    fn new(issuer: &str) -> Examples {
        Examples(
            examples(issuer)
                .into_iter()
                .map(|e| {
                    let expect = match e.expect {
                        Expect::Success => "success".to_owned(),
                        Expect::Status(code) => code.to_string(),
                    };
                    let html = format!(
                        "<pre class=\"example\" id=\"example-{id}\" data-example=\"{id}\" data-expect=\"{expect}\"><code>{}</code></pre>",
                        escape_html(&e.command),
                        id = e.id,
                    );
                    (e.id, html)
                })
                .collect(),
        )
    }

    /// The block for `id` (empty for an unknown id: the test that runs the examples checks
    /// that every example appears in both languages).
    pub fn get(&self, id: &str) -> &str {
        self.0.get(id).map(String::as_str).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "docs/guide.html")]
struct GuidePage {
    ctx: Ctx,
    issuer: String,
    ex: Examples,
    /// Each known scope with its description in the page's language.
    scopes: Vec<(&'static str, String)>,
    rate_limits: bool,
    login_rate: u32,
    token_rate: u32,
    api_rate: u32,
    dpop_nonce: bool,
    /// `off`, `open` or `token`.
    registration: &'static str,
    /// The DPoP proof algorithms, as a list for the text.
    dpop_algs: String,
    dpop_max_age: i64,
}

async fn guide(State(state): State<AppState>, ctx: Ctx) -> Result<Response, PageError> {
    let config = &state.config;
    let scopes = scope::KNOWN
        .iter()
        .map(|name| (*name, ctx.t(scope::description_key(name))))
        .collect();
    render(GuidePage {
        issuer: config.issuer.clone(),
        ex: Examples::new(&config.issuer),
        scopes,
        rate_limits: config.rate_limits,
        login_rate: config.login_rate_per_minute,
        token_rate: config.token_rate_per_minute,
        api_rate: config.api_rate_per_minute,
        dpop_nonce: config.dpop_nonce,
        registration: match config.client_registration {
            ClientRegistration::Off => "off",
            ClientRegistration::Open => "open",
            ClientRegistration::Token => "token",
        },
        dpop_algs: crate::oauth::dpop::ALGS.join(", "),
        dpop_max_age: crate::oauth::dpop::MAX_AGE,
        ctx,
    })
}

/// Swagger UI's settings: this server's document, no call to the public validator, the
/// plain layout (no box to load another document), "Try it out" on.
static EXPLORER: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new(["/api/openapi.json"])
            .validator_url("none")
            .use_base_layout()
            .try_it_out_enabled(true)
            .persist_authorization(false)
            .display_request_duration(true),
    )
});

async fn explorer_index() -> Response {
    explorer_asset("index.html")
}

async fn explorer_file(Path(file): Path<String>) -> Response {
    explorer_asset(&file)
}

fn explorer_asset(file: &str) -> Response {
    match utoipa_swagger_ui::serve(file, EXPLORER.clone()) {
        Ok(Some(asset)) => {
            let mut response = (
                [(header::CACHE_CONTROL, "public, max-age=3600")],
                asset.bytes.into_owned(),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&asset.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            if asset.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => PageError::NotFound.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
