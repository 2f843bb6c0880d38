//! A table of malformed requests to every route: each must answer 4xx, never 5xx, and never
//! leak internals.

use reqwest::Method;

use crate::helpers::*;
use crate::on_both_backends;

/// (method, path, content type, body)
fn cases(csrf: &str) -> Vec<(Method, String, &'static str, Vec<u8>)> {
    let form = "application/x-www-form-urlencoded";
    let with_csrf = |rest: &str| format!("csrf={csrf}&{rest}").into_bytes();
    let mut cases = vec![
        (Method::GET, "/lang/%FF%FE".to_owned(), "", vec![]),
        (Method::GET, "/lang/".to_owned(), "", vec![]),
        (
            Method::GET,
            "/login?return_to=%00%01".to_owned(),
            "",
            vec![],
        ),
        (
            Method::GET,
            "/login?return_to=%2F%2Fevil.example".to_owned(),
            "",
            vec![],
        ),
        (Method::GET, "/setup?token=%FF".to_owned(), "", vec![]),
        (
            Method::GET,
            "/setup?token=lk_setup_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000".to_owned(),
            "",
            vec![],
        ),
        (Method::GET, "/settings?saved=%ZZ".to_owned(), "", vec![]),
        (
            Method::GET,
            "/device?user_code=%FF%FE".to_owned(),
            "",
            vec![],
        ),
        (
            Method::GET,
            format!("/device?user_code={}", "B".repeat(10_000)),
            "",
            vec![],
        ),
        (Method::GET, "/static/../Cargo.toml".to_owned(), "", vec![]),
        (Method::PUT, "/login".to_owned(), form, vec![]),
        (Method::DELETE, "/settings".to_owned(), "", vec![]),
        (Method::PATCH, "/healthz".to_owned(), "", vec![]),
    ];
    for path in [
        "/login",
        "/signup",
        "/logout",
        "/setup",
        "/settings/profile",
        "/settings/password",
        "/device",
        "/device/authorize",
    ] {
        cases.extend([
            (Method::POST, path.to_owned(), form, vec![]),
            (Method::POST, path.to_owned(), form, b"%%%===&&&".to_vec()),
            (
                Method::POST,
                path.to_owned(),
                form,
                vec![0xff, 0xfe, 0x00, 0x80],
            ),
            (
                Method::POST,
                path.to_owned(),
                "application/json",
                br#"{"email":"a@b.c"}"#.to_vec(),
            ),
            (
                Method::POST,
                path.to_owned(),
                "text/plain",
                b"hello".to_vec(),
            ),
            (Method::POST, path.to_owned(), "", b"email=a".to_vec()),
        ]);
        if path == "/logout" {
            // With a valid token, any extra fields are simply ignored by sign-out.
            continue;
        }
        cases.extend([
            (
                Method::POST,
                path.to_owned(),
                form,
                with_csrf("email=%FF%FE&password=x"),
            ),
            (
                Method::POST,
                path.to_owned(),
                form,
                with_csrf("email[]=1&email[]=2"),
            ),
            (
                Method::POST,
                path.to_owned(),
                form,
                with_csrf(&format!("email={}&password=x", "a".repeat(100_000))),
            ),
            (
                Method::POST,
                path.to_owned(),
                form,
                with_csrf(&format!("name={}", "n".repeat(2_000_000))),
            ),
            (
                Method::POST,
                path.to_owned(),
                form,
                with_csrf("token=lk_setup_bad&email=a%40b.c&password=x"),
            ),
        ]);
    }
    cases
}

on_both_backends! {
    async fn malformed_requests_get_4xx_never_5xx(backend) {
        let app = spawn_app(&backend).await;
        // Half of the cases run signed in, so the handlers behind the session check are reached.
        let anonymous = browser_without_pool();
        let signed_in = browser_without_pool();
        let page = app.sign_up(&signed_in, "mal@example.com", "correct horse battery").await;
        assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER);
        for (client, form_page, signed) in [(&anonymous, "/login", false), (&signed_in, "/settings", true)] {
            let csrf = app.get(client, form_page).await.csrf();
            for (method, path, content_type, body) in cases(&csrf) {
                let oversized = body.len() > 1024 * 1024;
                let mut request = client.request(method.clone(), app.url(&path)).body(body);
                if !content_type.is_empty() {
                    request = request.header("content-type", content_type);
                }
                let response = match request.send().await {
                    Ok(response) => response,
                    // A body over the 1 MiB limit is answered 413 before it has all been sent;
                    // the server then closes the connection, and the client may see only that.
                    Err(e) if oversized && e.is_request() => continue,
                    Err(e) => panic!("{method} {path}: {e}"),
                };
                let page = Page::from(response).await;
                let status = page.status;
                // Junk in a GET's query may be ignored (a bad `return_to` becomes `/`); every
                // malformed write must be refused.
                let acceptable = if method == Method::GET {
                    status.is_client_error() || status.is_success() || status.is_redirection()
                } else {
                    // Pages behind sign-in send an anonymous visitor to the sign-in page.
                    status.is_client_error() || (!signed && page.location().starts_with("/login?return_to="))
                };
                assert!(
                    acceptable,
                    "{method} {path} [{content_type}] answered {status}: {}",
                    &page.body[..page.body.len().min(300)]
                );
                assert!(!status.is_server_error());
                for leak in ["panicked", "sqlx", "stack backtrace", "Error {"] {
                    assert!(!page.body.contains(leak), "{method} {path} leaked {leak}");
                }
                if status.is_client_error() {
                    assert!(
                        page.headers.get("content-type").is_some_and(|ct| {
                            let ct = ct.to_str().unwrap();
                            ct.starts_with("text/html") || ct.starts_with("application/json")
                        }),
                        "{method} {path}: a friendly page or JSON"
                    );
                }
            }
        }
        // A bad return_to is replaced by `/`.
        let page = app.get(&anonymous, "/login?return_to=%00%01").await;
        assert_eq!(hidden_value(&page.body, "return_to").as_deref(), Some("/"));
        // Nothing malformed created an account.
        assert_eq!(app.store.list_users().await.unwrap().len(), 1);
    }

    async fn api_and_oauth_routes_answer_malformed_requests_with_json_4xx(backend) {
        let app = spawn_app(&backend).await;
        let (user, pat) = app.user_with_pat("api@example.com", "apps read profile", false).await;
        let key = app.store.api_key(&user.id).await.unwrap();
        let form = "application/x-www-form-urlencoded";
        let json = "application/json";
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2_000_000));
        // (method, path, content type, body, bearer)
        let cases: Vec<(Method, &str, &str, Vec<u8>, &str)> = vec![
            (Method::POST, "/oauth/token", form, b"".to_vec(), ""),
            (Method::POST, "/oauth/token", form, b"grant_type=authorization_code&client_id=%FF".to_vec(), ""),
            (Method::POST, "/oauth/token", json, b"[1,2,3]".to_vec(), ""),
            (Method::POST, "/oauth/token", json, b"{\"grant_type\": {\"a\": 1}}".to_vec(), ""),
            (Method::POST, "/oauth/token", "text/plain", b"grant_type=client_credentials".to_vec(), ""),
            (Method::POST, "/oauth/token", form, vec![0xff, 0xfe], ""),
            (Method::GET, "/oauth/token", "", vec![], ""),
            (Method::POST, "/oauth/revoke", form, b"token=x".to_vec(), ""),
            (Method::POST, "/oauth/device/code", form, b"client_id=%FF&scope=%FF".to_vec(), ""),
            (Method::POST, "/oauth/device/code", json, b"{\"client_id\": [1]}".to_vec(), ""),
            (Method::GET, "/oauth/device/code", "", vec![], ""),
            (Method::POST, "/oauth/token", form, b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=lk_dc_x&client_id=0123456789abcdef0123456789abcdef".to_vec(), ""),
            (Method::POST, "/oauth/introspect", form, b"token=x&client_id=0123456789abcdef0123456789abcdef".to_vec(), ""),
            (Method::GET, "/oauth/userinfo", "", vec![], "lk_at_nope"),
            (Method::GET, "/oauth/userinfo", "", vec![], ""),
            (Method::POST, "/oauth/clients", json, b"{".to_vec(), &pat),
            (Method::POST, "/oauth/clients", json, br#"{"name": 5, "redirect_uri": []}"#.to_vec(), &pat),
            (Method::POST, "/oauth/clients", json, big.clone().into_bytes(), &pat),
            (Method::PATCH, "/oauth/clients/not-a-uuid", json, b"{}".to_vec(), &pat),
            (Method::DELETE, "/oauth/clients/%FF%FE", "", vec![], &pat),
            (Method::POST, "/oauth/leaked", json, b"{\"tokens\": 5}".to_vec(), ""),
            (Method::POST, "/oauth/leaked", form, b"x=1".to_vec(), ""),
            (Method::POST, "/api/v1/users/current/heartbeats", json, b"{".to_vec(), &key),
            (Method::POST, "/api/v1/users/current/heartbeats", json, b"[]".to_vec(), &key),
            (Method::POST, "/api/v1/users/current/heartbeats.bulk", json, b"{\"time\": 1}".to_vec(), &key),
            (Method::POST, "/api/v1/users/current/heartbeats.bulk", json, b"[1, \"x\", null]".to_vec(), ""),
            (Method::GET, "/api/v1/authenticated/hours?start_date=%FF", "", vec![], &pat),
            (Method::GET, "/api/v1/authenticated/hours?start_date=0000-00-00", "", vec![], &pat),
            (Method::GET, "/api/v1/authenticated/hours?end_date=99999-01-01", "", vec![], &pat),
            (Method::GET, "/api/v1/authenticated/projects?include_archived=2", "", vec![], &pat),
            (Method::GET, "/api/v1/authenticated/me", "", vec![], "Bearer lk_pat_x"),
            (Method::POST, "/api/v1/authenticated/me", json, b"{}".to_vec(), &pat),
            (Method::GET, "/oauth/authorize?client_id=%FF&response_type=code", "", vec![], ""),
            (Method::GET, "/oauth/authorize?client_id=0123456789abcdef0123456789abcdef&client_id=x", "", vec![], ""),
            (Method::GET, "/.well-known/openid-configuration/extra", "", vec![], ""),
        ];
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        for (method, path, content_type, body, bearer) in cases {
            let oversized = body.len() > 1024 * 1024;
            let mut request = client.request(method.clone(), app.url(path)).body(body);
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            if !bearer.is_empty() {
                request = request.header("authorization", format!("Bearer {bearer}"));
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if oversized && e.is_request() => continue,
                Err(e) => panic!("{method} {path}: {e}"),
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            assert!(status.is_client_error(), "{method} {path} answered {status}: {}", &text[..text.len().min(300)]);
            for leak in ["panicked", "sqlx", "stack backtrace"] {
                assert!(!text.contains(leak), "{method} {path} leaked {leak}");
            }
        }
    }
}
