//! Brought-in scripts and consent withdrawals over HTTP, from the side of whoever tries to go
//! around them: a bundle the guard refuses, a member approving their own project's script, a
//! changed file run, a researcher recording a withdrawal.

use serde_json::json;

use crate::support::TestServer;

fn bundle(count: &str) -> serde_json::Value {
    json!([
        {"name": "01_visits.sql", "sql": "CREATE OR REPLACE TABLE work.visits AS SELECT pid, claim_ym FROM ndb.receipts"},
        {"name": "02_count.sql", "sql": count},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_and_withdrawals_over_http_follow_the_same_rules() {
    let server = TestServer::start().await;
    let cathy = server
        .visiting
        .platform()
        .add_user("test", "cathy", niji_governance::UserRole::Custodian)
        .await
        .expect("custodian");
    let s = &server;
    tokio::task::block_in_place(|| {
        let alice = s.sign_in("alice");
        let bob = s.sign_in("bob");
        let dora = s.sign_in("dora");
        let count = "SELECT claim_ym, count(*) AS n FROM work.visits GROUP BY claim_ym";
        let scripts = "/api/v1/projects/copay-2022/scripts";

        let (status, body) = s.request(
            "POST",
            scripts,
            Some(&alice),
            Some(&json!({"name": "probe", "files": [{"name": "x.sql", "sql": "SELECT kana_name FROM ndb.receipts"}]})),
        );
        assert_eq!(status, 422, "{body}");
        assert!(body["problems"][0]["field"] == "files[0]", "{body}");

        let (status, body) = s.request(
            "POST",
            scripts,
            Some(&alice),
            Some(&json!({"name": "monthly", "files": bundle(count)})),
        );
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["state"], "submitted");
        let decision = "/api/v1/projects/copay-2022/scripts/monthly/versions/1/decision";
        let (status, _) = s.request(
            "POST",
            decision,
            Some(&bob),
            Some(&json!({"approve": true})),
        );
        assert_eq!(status, 403, "a member of the project approves nothing");
        let run = "/api/v1/projects/copay-2022/scripts/monthly/run";
        let (status, body) = s.request(
            "POST",
            run,
            Some(&alice),
            Some(&json!({"mode": "dummy", "files": bundle(count)})),
        );
        assert_eq!(status, 422, "not approved yet: {body}");
        let (status, body) = s.request(
            "POST",
            decision,
            Some(&dora),
            Some(&json!({"approve": true})),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = s.request(
            "POST",
            run,
            Some(&alice),
            Some(&json!({"mode": "dummy", "files": bundle(count)})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcomes"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["outcomes"][1]["status"], "ok");
        let changed = bundle(&format!("{count} ORDER BY 1"));
        let (status, _) = s.request(
            "POST",
            run,
            Some(&alice),
            Some(&json!({"mode": "dummy", "files": changed})),
        );
        assert_eq!(status, 422, "a changed file runs only once approved");

        // Consent withdrawals: custodians only, and the same answer whatever the body says.
        let withdrawals = "/api/v1/consent/withdrawals";
        let registration = json!({"database": "nanbyo", "kana_name": "ヤマダ タロウ", "sex": "1",
            "birth_date": "1950-01-01", "consent_no": "999"});
        let bad = json!({"database": "nanbyo", "kana_name": "", "sex": "9",
            "birth_date": "x", "consent_no": ""});
        for body in [&registration, &bad] {
            let (status, answer) = s.request("POST", withdrawals, Some(&alice), Some(body));
            assert_eq!(status, 403, "{answer}");
            assert!(!answer.to_string().contains("ヤマダ"));
        }
        let (status, _) = s.request("GET", withdrawals, Some(&alice), None);
        assert_eq!(status, 403);
        // A body that does not parse: refused as a researcher, named but never quoted as the
        // custodian.
        let garbled = json!({"database": "nanbyo", "kana_name": 19530606});
        let (status, _) = s.request("POST", withdrawals, Some(&alice), Some(&garbled));
        assert_eq!(status, 403);
        let (status, body) = s.request(
            "POST",
            "/api/v1/signin",
            None,
            Some(&json!({"user": "cathy", "token": cathy})),
        );
        assert_eq!(status, 200);
        let custodian = body["session"].as_str().expect("session").to_string();
        let (status, answer) = s.request("POST", withdrawals, Some(&custodian), Some(&garbled));
        assert_eq!(status, 422, "{answer}");
        assert!(!answer.to_string().contains("19530606"), "{answer}");
        let (status, answer) =
            s.request("POST", withdrawals, Some(&custodian), Some(&registration));
        assert_eq!(status, 422, "nobody delivered it: {answer}");
        assert!(!answer.to_string().contains("ヤマダ"));
        let mut later = registration;
        later["not_yet_delivered"] = json!(true);
        let (status, answer) = s.request("POST", withdrawals, Some(&custodian), Some(&later));
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["rows"], 0);
        let (status, answer) = s.request("GET", withdrawals, Some(&custodian), None);
        assert_eq!(status, 200);
        assert_eq!(answer["withdrawals"].as_array().map(Vec::len), Some(1));
    });
    server.stop().await;
}
