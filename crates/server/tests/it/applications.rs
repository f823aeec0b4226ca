//! Application review over HTTP, from each side: the statuses a refusal gets (403 for a role
//! or a recusal, 422 for a state, a quorum or a form, 404 for someone else's application), the
//! problems of a form by field, and an approval that is a working project at once.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use crate::support::{TestServer, repo};

/// Organisations and the committee beside the seed's users: alice and bob (u-tokyo) apply;
/// dora (kyoto-u), dave (u-tokyo) and erin (mhlw) review; frank (mhlw) chairs.
async fn committee(server: &mut TestServer) {
    let p = server.visiting.platform();
    let shell = "custodian:test";
    for (id, name) in [
        ("u-tokyo", "東京大学"),
        ("kyoto-u", "京都大学"),
        ("mhlw", "厚生労働省"),
    ] {
        p.add_organisation(shell, id, name).await.unwrap();
    }
    for (user, role) in [
        ("dave", niji_governance::UserRole::Committee),
        ("frank", niji_governance::UserRole::Chair),
    ] {
        let token = p.add_user(shell, user, role).await.unwrap();
        server.tokens.insert(user.into(), token);
    }
    for (user, org) in [
        ("alice", "u-tokyo"),
        ("bob", "u-tokyo"),
        ("dave", "u-tokyo"),
        ("dora", "kyoto-u"),
        ("erin", "mhlw"),
        ("frank", "mhlw"),
        ("carol", "kyoto-u"),
    ] {
        p.set_organisation(shell, user, org).await.unwrap();
    }
}

fn form() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("sandbox/examples/application.toml")).unwrap();
    let mut form =
        serde_json::to_value(niji_governance::ApplicationForm::from_toml(&text).unwrap()).unwrap();
    form["project_id"] = json!("copay-followup");
    form
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_review_refuses_each_side_beyond_its_part_and_an_approval_answers_at_once() {
    let mut server = TestServer::start().await;
    committee(&mut server).await;
    let s = |u: &str| server.sign_in(u);
    let (alice, carol, dave, dora, erin, frank) = (
        s("alice"),
        s("carol"),
        s("dave"),
        s("dora"),
        s("erin"),
        s("frank"),
    );

    let (status, body) = server.request(
        "POST",
        "/api/v1/applications",
        Some(&alice),
        Some(&json!({"form": form()})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["problems"], json!([]), "{body}");
    let id = body["application"].as_str().unwrap().to_string();
    let at = |rest: &str| format!("/api/v1/applications/{id}{rest}");
    assert_eq!(
        server.request("POST", &at("/submit"), Some(&alice), None).0,
        200
    );
    assert_eq!(
        server
            .request("PUT", &at(""), Some(&alice), Some(&json!({"form": form()})))
            .0,
        422,
        "a submitted form is what reviewers read"
    );
    assert_eq!(
        server.request("GET", &at(""), Some(&carol), None).0,
        404,
        "a stranger sees nothing"
    );
    assert_eq!(
        server
            .request(
                "POST",
                &at("/assignments"),
                Some(&alice),
                Some(&json!({"reviewer": "dora", "databases": ["ndb"]}))
            )
            .0,
        403
    );
    for (reviewer, db) in [("dora", "ndb"), ("dave", "kaigo"), ("erin", "kaigo")] {
        let (status, body) = server.request(
            "POST",
            &at("/assignments"),
            Some(&frank),
            Some(&json!({"reviewer": reviewer, "databases": [db]})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["recused"].is_string(), reviewer == "dave", "{body}");
    }
    let approve = json!({"vote": "approve"});
    let (status, body) = server.request("POST", &at("/votes"), Some(&dave), Some(&approve));
    assert_eq!(status, 403, "a colleague is recused: {body}");
    let (status, body) = server.request(
        "POST",
        &at("/decision"),
        Some(&frank),
        Some(&json!({"outcome": "approved", "reason": "ok"})),
    );
    assert_eq!(status, 422);
    assert!(
        body["message"].as_str().unwrap().contains("no quorum"),
        "{body}"
    );
    for reviewer in [&dora, &erin] {
        assert_eq!(
            server
                .request("POST", &at("/votes"), Some(reviewer), Some(&approve))
                .0,
            200
        );
    }
    let widening = json!({"outcome": "approved", "reason": "ok", "conditions": {"columns": {"ndb.receipts": ["record_key", "birth_date"]}}});
    let (status, body) = server.request("POST", &at("/decision"), Some(&frank), Some(&widening));
    assert_eq!(status, 422);
    assert_eq!(
        body["problems"][0]["field"], "conditions.columns.ndb.receipts",
        "{body}"
    );
    let (status, body) = server.request("POST", &at("/decision"), Some(&frank), Some(&json!({"outcome": "approved", "reason": "公益性あり", "conditions": {"min_persons": 15}})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server
            .request("POST", &at("/votes"), Some(&erin), Some(&approve))
            .0,
        422,
        "no vote after the decision"
    );
    let (status, body) = server.request("POST", &at("/accept"), Some(&alice), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["project"]["min_persons"], 15);
    let (status, body) = server.request("POST", "/api/v1/query", Some(&alice), Some(&json!({"project": "copay-followup", "mode": "dummy", "sql": "SELECT count(*) AS n FROM ndb.receipts"})));
    assert_eq!(
        status, 200,
        "the approval is a working project at once: {body}"
    );
    // An amendment accepted while the project's views are warm narrows them at the next query.
    let diagnoses = json!({"project": "copay-followup", "mode": "dummy", "sql": "SELECT count(*) AS n FROM ndb.diagnoses"});
    assert_eq!(
        server
            .request("POST", "/api/v1/query", Some(&alice), Some(&diagnoses))
            .0,
        200
    );
    let mut narrower = form();
    narrower["tables"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["table"] != "ndb.diagnoses");
    let (status, body) = server.request(
        "POST",
        "/api/v1/projects/copay-followup/amendments",
        Some(&alice),
        Some(&json!({"form": narrower})),
    );
    assert_eq!(status, 201, "{body}");
    let amendment = body["application"].as_str().unwrap().to_string();
    let on = |rest: &str| format!("/api/v1/applications/{amendment}{rest}");
    assert_eq!(
        server.request("POST", &on("/submit"), Some(&alice), None).0,
        200
    );
    for reviewer in ["dora", "erin"] {
        let assign = json!({"reviewer": reviewer, "databases": ["ndb"]});
        assert_eq!(
            server
                .request("POST", &on("/assignments"), Some(&frank), Some(&assign))
                .0,
            200
        );
    }
    for reviewer in [&dora, &erin] {
        assert_eq!(
            server
                .request("POST", &on("/votes"), Some(reviewer), Some(&approve))
                .0,
            200
        );
    }
    let (status, body) = server.request(
        "POST",
        &on("/decision"),
        Some(&frank),
        Some(&json!({"outcome": "approved", "reason": "ok"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.request("POST", &on("/accept"), Some(&alice), None).0,
        200
    );
    let (status, body) = server.request("POST", "/api/v1/query", Some(&alice), Some(&diagnoses));
    assert_eq!(
        status, 422,
        "the amended project no longer has ndb.diagnoses: {body}"
    );
    let (_, body) = server.request("GET", "/api/v1/notifications", Some(&alice), None);
    let kinds: Vec<&str> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"approved") && kinds.contains(&"active"),
        "{kinds:?}"
    );
    let (status, body) = server.request("GET", "/api/v1/review/queue", Some(&alice), None);
    assert_eq!(status, 403, "{body}");

    // A form with problems is saved as a draft and refused at submission, field by field.
    let mut bad = form();
    bad["project_id"] = json!("marketing");
    bad["public_interest"] = json!("marketing");
    let (status, body) = server.request(
        "POST",
        "/api/v1/applications",
        Some(&alice),
        Some(&json!({"form": bad})),
    );
    assert_eq!(status, 201);
    let bad_id = body["application"].as_str().unwrap().to_string();
    let (status, body) = server.request(
        "POST",
        &format!("/api/v1/applications/{bad_id}/submit"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 422);
    assert!(
        body["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["field"] == "public_interest"),
        "{body}"
    );
    // Suspended since signing in: the session ends at the next request.
    let p = server.visiting.platform();
    p.suspend_user("custodian:test", "alice", "review")
        .await
        .unwrap();
    let (status, _) = server.request("GET", "/api/v1/applications", Some(&alice), None);
    assert_eq!(status, 401, "a suspended user's session ends");
    p.reinstate_user("custodian:test", "alice", "reviewed")
        .await
        .unwrap();
    let (status, _) = server.request("GET", "/api/v1/applications", Some(&alice), None);
    assert_eq!(
        status, 401,
        "and stays ended: reinstated users sign in again"
    );
    server.stop().await;
}
