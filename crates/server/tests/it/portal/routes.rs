//! Every route asked as every role, and as nobody: pages without a session send to the
//! sign-in page, pages beyond one's role answer 403, and wherever the API has the same read
//! the portal answers as the API does for the same user (one authorisation path).

#![allow(clippy::unwrap_used)]

use super::{PASSWORD, portal_server, send, sign_in};

const ROLES: [&str; 8] = [
    "alice", "hana", "dora", "frank", "kenji", "kumi", "aki", "carol",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_as_every_role_is_refused_where_the_role_may_not_go() {
    let server = portal_server().await;
    let sessions: Vec<(&str, String, String)> = ROLES
        .iter()
        .map(|u| {
            let (cookie, csrf) = sign_in(server.http, u, PASSWORD).unwrap();
            (*u, cookie, csrf)
        })
        .collect();
    let bearer: Vec<String> = ROLES.iter().map(|u| server.sign_in(u)).collect();

    // Public pages.
    for path in [
        "/",
        "/catalog",
        "/dashboard",
        "/signin",
        "/static/niji.css",
        "/static/htmx.min.js",
    ] {
        assert_eq!(
            send(server.http, "GET", path, None, &[], None).0,
            200,
            "{path}"
        );
    }
    // Pages that need a session send anyone else to sign in, and back.
    let signed_in_pages = [
        "/account",
        "/applications",
        "/applications/new",
        "/review",
        "/projects",
        "/projects/copay-2022",
        "/projects/copay-2022/audit",
        "/outputs",
        "/datasets",
        "/audit",
        "/admin",
    ];
    for path in signed_in_pages {
        let (status, headers, _) = send(server.http, "GET", path, None, &[], None);
        assert_eq!(status, 303, "{path}");
        assert!(headers["location"].starts_with("/signin?next="), "{path}");
    }

    // The portal answers as the API does for the same user.
    let twins = [
        ("/applications", "/api/v1/applications"),
        ("/review", "/api/v1/review/queue"),
        ("/projects", "/api/v1/projects"),
        ("/projects/copay-2022", "/api/v1/projects/copay-2022/tables"),
        (
            "/projects/other-study",
            "/api/v1/projects/other-study/tables",
        ),
        ("/outputs", "/api/v1/outputs"),
    ];
    for ((user, cookie, _), token) in sessions.iter().zip(&bearer) {
        for (page, api) in twins {
            let portal = send(server.http, "GET", page, Some(cookie), &[], None).0;
            let (api_status, _) = server.request("GET", api, Some(token), None);
            assert_eq!(portal, api_status, "{user}: {page} answers as {api}");
        }
    }

    // Screens of one role's work: who may open them, and 403 for everyone else.
    let screens: [(&str, &[&str]); 5] = [
        ("/applications/new", &["alice", "carol"]),
        (
            "/datasets",
            &["alice", "carol", "hana", "dora", "frank", "kumi"],
        ),
        ("/audit", &["kumi"]),
        ("/admin", &["kumi", "aki"]),
        ("/projects/copay-2022/audit", &["alice"]),
    ];
    for (path, allowed) in screens {
        for (user, cookie, _) in &sessions {
            let status = send(server.http, "GET", path, Some(cookie), &[], None).0;
            let expected = if allowed.contains(user) { 200 } else { 403 };
            assert_eq!(status, expected, "{user} GET {path}");
        }
    }

    // Actions beyond one's role, with a valid token, are refused by the platform's checks.
    let actions: [(&str, &str, &[&str]); 6] = [
        (
            "/admin/organisations",
            "id=evil&name=Evil",
            &["kumi", "aki"],
        ),
        ("/datasets/incidence/open", "", &["kumi"]),
        ("/datasets/incidence/publish", "publish=yes", &["kumi"]),
        ("/admin/users/bob/suspend", "reason=test", &["kumi", "aki"]),
        ("/f/audit/verify", "", &["kumi"]),
        (
            "/datasets/organisations",
            "organisation=pharma-a",
            &["kumi"],
        ),
    ];
    for (path, form, allowed) in actions {
        for (user, cookie, csrf) in &sessions {
            if allowed.contains(user) {
                continue;
            }
            let body = format!("{form}&csrf={csrf}");
            let status = send(
                server.http,
                "POST",
                path,
                Some(cookie),
                &[("HX-Request", "true")],
                Some(&body),
            )
            .0;
            assert_eq!(status, 403, "{user} POST {path}");
        }
        // Without a token nobody gets through, not even those who may.
        for (user, cookie, _) in &sessions {
            let status = send(
                server.http,
                "POST",
                path,
                Some(cookie),
                &[("HX-Request", "true")],
                Some(form),
            )
            .0;
            assert_eq!(status, 403, "{user} POST {path} without a token");
        }
    }
    let p = server.visiting.platform();
    assert!(
        p.organisations()
            .await
            .unwrap()
            .iter()
            .all(|(id, _)| id != "evil")
    );
    assert!(
        p.db().user("bob").await.unwrap().is_some(),
        "bob was not suspended"
    );
    assert!(p.published_datasets().await.unwrap().is_empty());
    server.stop().await;
}
