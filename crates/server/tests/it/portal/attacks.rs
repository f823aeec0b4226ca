//! The portal from the attacker's side: forms without the session's token, a session used
//! after sign-out, script in text fields, password guessing, fragments loaded as pages.

#![allow(clippy::unwrap_used)]

use super::{PASSWORD, portal_server, send, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_the_csrf_token_change_nothing_and_are_logged() {
    let server = portal_server().await;
    let (session, csrf) = sign_in(server.http, "aki", PASSWORD).unwrap();
    let p = server.visiting.platform();
    for form in [
        "name=mallory&role=admin&password=aaaaaaaaaaaaaaaa".to_string(),
        "name=mallory&role=admin&password=aaaaaaaaaaaaaaaa&csrf=0000".to_string(),
        format!(
            "name=mallory&role=admin&password=aaaaaaaaaaaaaaaa&csrf={}",
            &csrf[..csrf.len() - 1]
        ),
    ] {
        let (status, _, _) = send(
            server.http,
            "POST",
            "/admin/users",
            Some(&session),
            &[],
            Some(&form),
        );
        assert_eq!(status, 403, "{form}");
    }
    assert!(
        p.db().user("mallory").await.unwrap().is_none(),
        "nothing was created"
    );
    // Another session's token is no good either.
    let (_, bobs) = sign_in(server.http, "bob", PASSWORD).unwrap();
    let form = format!("name=mallory&role=admin&password=aaaaaaaaaaaaaaaa&csrf={bobs}");
    assert_eq!(
        send(
            server.http,
            "POST",
            "/admin/users",
            Some(&session),
            &[],
            Some(&form)
        )
        .0,
        403
    );
    let refused = p
        .audit()
        .entries_since(Some("aki"), "refused", "2000", Some("CSRF"))
        .await
        .unwrap();
    assert_eq!(refused.len(), 4, "each refusal is in the audit log");
    // With the token it works, so the refusals were about the token.
    let form = format!("name=mallory&role=researcher&password=aaaaaaaaaaaaaaaa&csrf={csrf}");
    let (status, _, body) = send(
        server.http,
        "POST",
        "/admin/users",
        Some(&session),
        &[],
        Some(&form),
    );
    assert_eq!(status, 200, "{body}");
    assert!(p.db().user("mallory").await.unwrap().is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_worthless_after_sign_out_and_after_suspension() {
    let server = portal_server().await;
    let (session, csrf) = sign_in(server.http, "alice", PASSWORD).unwrap();
    assert_eq!(
        send(
            server.http,
            "GET",
            "/applications",
            Some(&session),
            &[],
            None
        )
        .0,
        200
    );
    let form = format!("csrf={csrf}");
    assert_eq!(
        send(
            server.http,
            "POST",
            "/signout",
            Some(&session),
            &[],
            Some(&form)
        )
        .0,
        303
    );
    let (status, headers, _) = send(
        server.http,
        "GET",
        "/applications",
        Some(&session),
        &[],
        None,
    );
    assert_eq!(status, 303, "a replayed cookie signs nobody in");
    assert!(headers["location"].starts_with("/signin"));
    // Suspension ends a live session at its next request.
    let (session, _) = sign_in(server.http, "bob", PASSWORD).unwrap();
    server
        .visiting
        .platform()
        .suspend_user("custodian:test", "bob", "review")
        .await
        .unwrap();
    assert_eq!(
        send(
            server.http,
            "GET",
            "/applications",
            Some(&session),
            &[],
            None
        )
        .0,
        303
    );
    assert!(
        sign_in(server.http, "bob", PASSWORD).is_none(),
        "nor can bob sign in"
    );
    let audit = server.visiting.platform().audit();
    assert_eq!(
        audit
            .entries_since(Some("alice"), "signout", "2000", None)
            .await
            .unwrap()
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_locks_the_name_and_the_right_password_then_fails_too() {
    let server = portal_server().await;
    for _ in 0..niji_governance::LOCK_AFTER {
        assert!(sign_in(server.http, "carol", "wrong password guess").is_none());
    }
    assert!(sign_in(server.http, "carol", PASSWORD).is_none(), "locked");
    assert!(
        sign_in(server.http, "dora", PASSWORD).is_some(),
        "only that name"
    );
    let audit = server.visiting.platform().audit();
    let locked = audit
        .entries_since(Some("carol"), "signin", "2000", Some("locked"))
        .await
        .unwrap();
    assert_eq!(locked.len(), 1);
    // Neither the password nor anything like it is in the log.
    let all = audit.recent(10_000).await.unwrap();
    assert!(
        all.iter()
            .all(|e| !e.detail.contains("wrong password") && !e.detail.contains("battery"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_in_every_text_field_of_an_application_comes_back_escaped() {
    let server = portal_server().await;
    let (session, csrf) = sign_in(server.http, "alice", PASSWORD).unwrap();
    let evil = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%3E%3Cimg+src%3Dx+onerror%3Dalert(2)%3E";
    let form = format!(
        "csrf={csrf}&project_id=xss-test&title=t{evil}&purpose=p{evil}&public_interest=public_policy&organisation=u-tokyo&analysts=alice+lead&tables=ndb.receipts%3A+record_key{evil}&period_from={evil}&period_to={evil}&linkage={evil}&duration_months=12"
    );
    let (status, headers, body) = send(
        server.http,
        "POST",
        "/applications",
        Some(&session),
        &[],
        Some(&form),
    );
    assert_eq!(status, 303, "{body}");
    let at = headers["location"].clone();
    let (status, _, page) = send(server.http, "GET", &at, Some(&session), &[], None);
    assert_eq!(status, 200);
    assert!(
        !page.contains("<script>alert"),
        "no script comes back as markup"
    );
    assert!(!page.contains("<img src=x"), "no element either");
    assert!(
        page.contains("&#60;script&#62;alert(1)") || page.contains("&lt;script&gt;alert(1)"),
        "it is shown as text"
    );
    let (_, _, list) = send(
        server.http,
        "GET",
        "/applications",
        Some(&session),
        &[],
        None,
    );
    assert!(!list.contains("<script>alert"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_strict_headers_and_fragments_answer_htmx_only() {
    let server = portal_server().await;
    let (status, headers, _) = send(server.http, "GET", "/catalog", None, &[], None);
    assert_eq!(status, 200);
    let csp = &headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        send(server.http, "GET", "/f/catalog?q=sex", None, &[], None).0,
        404,
        "a fragment as a page"
    );
    let (status, _, body) = send(
        server.http,
        "GET",
        "/f/catalog?q=sex",
        None,
        &[("HX-Request", "true")],
        None,
    );
    assert_eq!(status, 200);
    assert!(!body.contains("<html"), "a fragment is not a page");
    // A fragment that changes state needs the token too, not just the header.
    let (session, _) = sign_in(server.http, "alice", PASSWORD).unwrap();
    let (status, _, _) = send(
        server.http,
        "POST",
        "/f/projects/copay-2022/query",
        Some(&session),
        &[("HX-Request", "true")],
        Some("sql=select+1&mode=dummy"),
    );
    assert_eq!(status, 403);
    // The session cookie cannot be read by script nor sent cross-site.
    let (_, headers, body) = send(server.http, "GET", "/signin", None, &[], None);
    let token = super::hidden(&body, "csrf").unwrap();
    let cookie = headers["set-cookie"].split(';').next().unwrap().to_string();
    let form = format!(
        "user=alice&password={}&csrf={token}",
        PASSWORD.replace(' ', "+")
    );
    let (_, headers, _) = send(
        server.http,
        "POST",
        "/signin",
        Some(&cookie),
        &[],
        Some(&form),
    );
    let session = headers["set-cookie"]
        .lines()
        .find(|c| c.starts_with("niji_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    server.stop().await;
}
