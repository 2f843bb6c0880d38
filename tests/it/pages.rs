//! Page contracts: labels, Russian pages, the language switcher, security headers, CSRF.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn the_login_page_has_the_pinned_labels(backend) {
        let app = spawn_app(&backend).await;
        let page = app.get(&browser(), "/login").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<label for=\"email\">Email</label>"));
        assert!(page.body.contains("<label for=\"password\">Password</label>"));
        assert!(page.body.contains(">Sign in</button>"));
        assert!(page.body.contains("id=\"email\""), "the label points at the field");
    }

    async fn pages_are_russian_for_russian_browsers(backend) {
        let app = spawn_app(&backend).await;
        let response = browser()
            .get(app.url("/login"))
            .header("accept-language", "ru-RU,ru;q=0.9,en;q=0.5")
            .send()
            .await
            .unwrap();
        let page = Page::from(response).await;
        assert!(page.body.contains("<html lang=\"ru\">"));
        assert!(page.body.contains(">Электронная почта</label>"));
        assert!(page.body.contains(">Пароль</label>"));
        assert!(page.body.contains(">Войти</button>"));
    }

    async fn the_language_switcher_sets_a_cookie_and_goes_back(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        let english = app.get(&client, "/login").await;
        assert!(english.body.contains("href=\"/lang/ru?return_to=%2Flogin\""), "switcher visible");

        let switch = app.get(&client, "/lang/ru?return_to=/login").await;
        assert_eq!(switch.status, StatusCode::SEE_OTHER);
        assert_eq!(switch.location(), "/login");
        let russian = app.get(&client, "/login").await;
        assert!(russian.body.contains(">Войти</button>"));

        // The cookie wins over Accept-Language, and only local return paths are followed.
        let back = app.get(&client, "/lang/en?return_to=https://evil.example/").await;
        assert_eq!(back.location(), "/");
        assert_eq!(app.get(&client, "/lang/xx").await.status, StatusCode::NOT_FOUND);
    }

    async fn every_page_has_a_plain_text_title(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("tia@example.com").await;
        for path in ["/", "/settings", "/oauth/applications", "/oauth/applications/new", "/nope"] {
            let page = app.get(&client, path).await;
            let start = page.body.find("<title>").expect("a title") + "<title>".len();
            let title = &page.body[start..start + page.body[start..].find("</title>").unwrap()];
            assert!(!title.contains('<') && title.len() < 120, "{path}: {title}");
            assert!(title.ends_with("· latchkey"), "{path}: {title}");
        }
    }

    async fn signed_in_russian_pages_and_errors(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("ola@example.com").await;
        app.get(&client, "/lang/ru").await;
        let settings = app.get(&client, "/settings").await;
        assert!(settings.body.contains("Часовой пояс"));
        assert!(settings.body.contains("Выйти"));
        let missing = app.get(&client, "/no/such/page").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(missing.body.contains("Не найдено"));
    }

    async fn every_response_carries_the_security_headers(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        for path in ["/", "/login", "/signup", "/settings", "/nope", "/healthz", "/static/style.css"] {
            let page = app.get(&client, path).await;
            let csp = page.headers["content-security-policy"].to_str().unwrap();
            for directive in ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"] {
                assert!(csp.contains(directive), "{path}: {csp}");
            }
            assert!(!csp.contains("unsafe-inline"), "{path}");
            assert_eq!(page.headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(page.headers["referrer-policy"], "no-referrer", "{path}");
            assert_eq!(page.headers["x-frame-options"], "DENY", "{path}");
            assert!(page.headers.contains_key("x-request-id"), "{path}");
        }
        let login = app.get(&browser(), "/login").await;
        assert_eq!(login.headers["cache-control"], "no-store");
        let cookie = login.headers["set-cookie"].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    }

    async fn https_issuers_get_host_prefixed_secure_cookies(backend) {
        let app = spawn_app_with(&backend, |s| s.issuer = Some("https://id.example.com".into())).await;
        let page = app.get(&browser(), "/login").await;
        let cookie = page.headers["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("__Host-lk_csrf="), "{cookie}");
        assert!(cookie.contains("Secure"), "{cookie}");
        assert!(page.headers.contains_key("strict-transport-security"));
    }

    async fn forms_without_the_right_csrf_token_are_refused(backend) {
        let app = spawn_app(&backend).await;
        app.signed_in("pat@example.com").await;
        let client = browser();
        app.get(&client, "/login").await; // has a CSRF cookie now

        let cases: [(&str, Vec<(&str, &str)>); 5] = [
            ("/login", vec![("email", "pat@example.com"), ("password", "correct horse battery")]),
            ("/login", vec![("email", "pat@example.com"), ("password", "correct horse battery"), ("csrf", "forged")]),
            ("/signup", vec![("email", "new@example.com"), ("password", "correct horse battery"), ("csrf", "")]),
            ("/logout", vec![]),
            ("/settings/profile", vec![("name", "x"), ("csrf", "0000")]),
        ];
        for (path, form) in cases {
            let page = Page::from(client.post(app.url(path)).form(&form).send().await.unwrap()).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
            assert!(page.body.contains("This form has expired"), "{path}: {}", page.body);
            assert!(page.body.contains(&format!("href=\"{path}\"")), "offers to retry: {}", page.body);
        }
        assert!(app.store.user_by_email("new@example.com").await.unwrap().is_none());

        // A cross-site form: the token from one browser does not work with another's cookie.
        let other = browser();
        let token = app.get(&client, "/login").await.csrf();
        app.get(&other, "/login").await;
        let page = other
            .post(app.url("/login"))
            .form(&[("email", "pat@example.com"), ("password", "correct horse battery"), ("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
    }

    async fn the_csrf_failure_page_is_translated(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        let page = Page::from(
            client
                .post(app.url("/login"))
                .header("accept-language", "ru")
                .form(&[("email", "a@b.c")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("Срок действия формы истёк"), "{}", page.body);
    }
}
