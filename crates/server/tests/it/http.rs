//! The HTTP JSON API end to end.

use serde_json::json;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_signs_in_queries_refuses_and_holds() {
    let server = TestServer::start().await;
    let s = &server;
    let (status, _) =
        tokio::task::block_in_place(|| s.request("GET", "/api/v1/health", None, None));
    assert_eq!(status, 200);
    tokio::task::block_in_place(|| {
        // Unauthenticated and badly authenticated calls.
        let (status, body) = s.request(
            "POST",
            "/api/v1/query",
            None,
            Some(&json!({"project": "copay-2022", "mode": "dummy", "sql": "SELECT 1"})),
        );
        assert_eq!(status, 401, "{body}");
        let (status, _) = s.request(
            "POST",
            "/api/v1/query",
            Some("nijis_forged"),
            Some(&json!({"project": "copay-2022", "mode": "dummy", "sql": "SELECT 1"})),
        );
        assert_eq!(status, 401);
        let (status, body) = s.request(
            "POST",
            "/api/v1/signin",
            None,
            Some(&json!({"user": "alice", "token": "niji_wrong"})),
        );
        assert_eq!(status, 401, "wrong credentials: {body}");
        assert!(!body.to_string().contains("niji_wrong"));

        let alice = s.sign_in("alice");
        let (status, body) = s.request("GET", "/api/v1/projects", Some(&alice), None);
        assert_eq!(status, 200);
        assert_eq!(body["projects"][0]["id"], "copay-2022");
        let (status, body) = s.request(
            "GET",
            "/api/v1/projects/copay-2022/tables",
            Some(&alice),
            None,
        );
        assert_eq!(status, 200);
        let receipts = body["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == "ndb.receipts")
            .expect("receipts")
            .clone();
        let names: Vec<&str> = receipts["columns"]
            .as_array()
            .expect("cols")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            names.contains(&"pid") && !names.contains(&"id5") && !names.contains(&"person_idx"),
            "{names:?}"
        );

        let query = |mode: &str, sql: &str| {
            s.request(
                "POST",
                "/api/v1/query",
                Some(&alice),
                Some(&json!({"project": "copay-2022", "mode": mode, "sql": sql})),
            )
        };
        let (status, body) = query(
            "dummy",
            "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex ORDER BY sex",
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["columns"][1]["name"], "n");
        assert_eq!(body["rows"].as_array().map(Vec::len), Some(2));
        let (status, body) = query(
            "real",
            "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex",
        );
        assert_eq!(status, 200);
        assert_eq!(body["status"], "released", "{body}");
        assert_eq!(body["rows"].as_array().map(Vec::len), Some(2));
        let (status, body) = query("real", "SELECT pid, days FROM ndb.receipts LIMIT 3");
        assert_eq!(status, 200);
        assert_eq!(body["status"], "held");
        assert_eq!(body["rows"], json!([]));
        assert!(body.get("row_count").is_none(), "{body}");
        // Rows of groups on too few persons are withheld, and the outcome says so.
        let (status, body) = query(
            "real",
            "SELECT prefecture, count(*) AS n FROM ndb.receipts GROUP BY prefecture",
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["small_groups_withheld"], true, "{body}");
        // A value that fails a cast gives NULL on real data: no error, no value in the text.
        let (status, body) = query(
            "real",
            "SELECT count(*) AS n FROM ndb.receipts WHERE CAST(claim_ym AS SMALLINT) > 0",
        );
        assert_eq!(status, 200, "{body}");
        assert_ne!(body["status"], "error", "{body}");
        let (status, body) = query("dummy", "COPY (SELECT 1) TO '/tmp/x.csv'");
        assert_eq!(status, 422);
        assert_eq!(body["status"], "refused");
        let (status, body) = query(
            "dummy",
            "SELECT * FROM ndb.receipts WHERE claim_ym = 'x' / 0",
        );
        assert!(status == 422 || status == 500, "{status} {body}");
        assert!(
            !body.to_string().contains("/store/"),
            "no paths leak: {body}"
        );
        // carol is no member of copay-2022.
        let carol = s.sign_in("carol");
        let (status, body) = s.request(
            "POST",
            "/api/v1/query",
            Some(&carol),
            Some(&json!({"project": "copay-2022", "mode": "dummy", "sql": "SELECT 1"})),
        );
        assert_eq!(status, 403, "not permitted: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("not permitted"))
        );
        // Malformed requests are rejected by the server, not passed on.
        let (status, _) = s.request(
            "POST",
            "/api/v1/query",
            Some(&alice),
            Some(&json!({"project": "copay-2022", "mode": "raw", "sql": "SELECT 1"})),
        );
        assert_eq!(status, 422, "axum rejects a body that does not deserialise");
        let (status, _) = s.request("GET", "/api/v1/health", None, None);
        assert_eq!(status, 200, "still serving");
    });
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_output_checking_shows_rows_to_checkers_only_and_refuses_the_author_a_vote() {
    let server = TestServer::start().await;
    let s = &server;
    tokio::task::block_in_place(|| {
        let alice = s.sign_in("alice");
        let bob = s.sign_in("bob");
        let carol = s.sign_in("carol");
        let dora = s.sign_in("dora");
        let (status, held) = s.request(
            "POST",
            "/api/v1/query",
            Some(&alice),
            Some(&json!({"project": "copay-2022", "mode": "real", "sql": "SELECT pid, days FROM ndb.receipts LIMIT 3"})),
        );
        assert_eq!(status, 200, "{held}");
        assert_eq!(held["status"], "held");
        assert!(
            held.get("row_count").is_none(),
            "a held result's size is not told: {held}"
        );
        let id = held["query_id"].as_str().expect("id").to_string();
        let path = format!("/api/v1/outputs/{id}");

        // The checker sees the held rows; the author's colleague only SQL and findings; a
        // researcher of another project is told nothing exists.
        let (status, view) = s.request("GET", &path, Some(&dora), None);
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["result"]["row_count"], 3);
        assert_eq!(view["result"]["rows"].as_array().map(Vec::len), Some(3));
        let (status, view) = s.request("GET", &path, Some(&bob), None);
        assert_eq!(status, 200, "{view}");
        assert!(view["result"].is_null(), "{view}");
        assert!(
            view["sql"]
                .as_str()
                .is_some_and(|q| q.contains("SELECT pid"))
        );
        let (status, _) = s.request("GET", &path, Some(&carol), None);
        assert_eq!(status, 404);
        let (status, list) = s.request("GET", "/api/v1/outputs", Some(&bob), None);
        assert_eq!(status, 200);
        let listed = list["outputs"]
            .as_array()
            .expect("list")
            .iter()
            .find(|o| o["id"] == id.as_str())
            .expect("listed");
        assert!(listed.get("rows").is_none(), "{listed}");

        // Row-level results cannot be asked out; nobody but a checker votes.
        let (status, body) = s.request(
            "POST",
            &format!("{path}/request"),
            Some(&alice),
            Some(&json!({"justification": "the rows are needed for a linkage check of the protocol"})),
        );
        assert_eq!(status, 422, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot waive"))
        );
        let (status, body) = s.request(
            "POST",
            &format!("{path}/approve"),
            Some(&alice),
            Some(&json!({"reason": "mine"})),
        );
        assert_eq!(status, 403, "{body}");
        let (status, body) = s.request(
            "POST",
            &format!("{path}/approve"),
            Some(&dora),
            Some(&json!({"reason": "fine"})),
        );
        assert_eq!(status, 422, "not under review: {body}");
    });
    server.stop().await;
}

/// Busy and the time limit have statuses of their own: a client retries the first later, and
/// knows the second ran out of time (which it sees by the clock anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_tells_busy_and_time_limit_apart() {
    let limits = "memory_per_query_mb = 512\ntimeout_seconds = 2\nconcurrent_per_project = 1\nconcurrent_overall = 1\nqueue_wait_ms = 100\nmax_result_rows = 100000\n";
    let server = TestServer::start_with(niji_testkit::Overrides {
        limits: Some(limits),
        ..Default::default()
    })
    .await;
    let server = std::sync::Arc::new(server);
    let alice = tokio::task::block_in_place(|| server.sign_in("alice"));
    let slow = "SELECT max(a.points + b.days) FROM ndb.receipts a CROSS JOIN ndb.receipts b CROSS JOIN ndb.diagnoses c";
    let ask = |s: &TestServer, sql: &str| {
        s.request(
            "POST",
            "/api/v1/query",
            Some(&alice),
            Some(&json!({"project": "copay-2022", "mode": "dummy", "sql": sql})),
        )
    };
    // Make the dummy store before the race, so that only the query holds the slot.
    let (status, body) = tokio::task::block_in_place(|| ask(&server, "SELECT 1 AS one"));
    assert_eq!(status, 200, "{body}");
    let (first, second) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let running = scope.spawn(|| ask(&server, slow));
            std::thread::sleep(std::time::Duration::from_millis(500));
            let busy = ask(&server, "SELECT 1 AS one");
            (running.join().expect("slow query"), busy)
        })
    });
    assert_eq!(first.0, 504, "time limit: {}", first.1);
    assert!(
        first.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit")),
        "{}",
        first.1
    );
    assert_eq!(second.0, 429, "busy: {}", second.1);
    assert_eq!(second.1["status"], "refused", "{}", second.1);
    std::sync::Arc::into_inner(server)
        .expect("one owner")
        .stop()
        .await;
}
