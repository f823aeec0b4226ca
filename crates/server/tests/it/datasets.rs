//! Standard datasets over HTTP and Flight SQL, from the requester's side and from the side of
//! whoever tries to get one without a grant: the file and its digest, the same refusal for a
//! dataset that exists and one that does not, a build by a non-custodian.

use sha2::{Digest, Sha256};

use crate::support::{TestServer, repo};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_request_gets_the_file_over_http_and_flight_and_nothing_else_does() {
    let mut server = TestServer::start_with(niji_testkit::Overrides {
        nanbyo_registry: true,
        ..Default::default()
    })
    .await;
    let p = server.visiting.platform().clone();
    let shell = format!("{}test", niji_governance::SHELL_ACTOR_PREFIX);
    p.add_organisation(&shell, "pharma-a", "Pharma A")
        .await
        .unwrap();
    for (name, role) in [
        ("paula", niji_governance::UserRole::Analyst),
        ("quinn", niji_governance::UserRole::Analyst),
        ("cathy", niji_governance::UserRole::Custodian),
    ] {
        let token = p.add_user("test", name, role).await.unwrap();
        server.tokens.insert(name.into(), token);
    }
    p.set_organisation(&shell, "paula", "pharma-a")
        .await
        .unwrap();
    let s = &server;
    let name = "natural-history";
    let file = format!("/api/v1/datasets/{name}/file");
    let csv = tokio::task::block_in_place(|| {
        let paula = s.sign_in("paula");
        let quinn = s.sign_in("quinn");
        let dora = s.sign_in("dora");
        let cathy = s.sign_in("cathy");
        let (status, body) = s.request("GET", "/api/v1/datasets", Some(&paula), None);
        assert_eq!(status, 200, "{body}");
        let listed = body["datasets"].as_array().unwrap();
        assert_eq!(listed.len(), 7, "{body}");
        // The anonymised extract says so, with its columns and no report before a build.
        let extract = listed
            .iter()
            .find(|d| d["name"] == "anonymised-patients")
            .unwrap();
        assert_eq!(extract["record_level"], true);
        assert_eq!(extract["columns"][0]["name"], "record_id");
        assert!(extract["anonymisation"].is_null());
        // No grant: the same 403 for a dataset and for none.
        let (status, a, _) = s.request_raw("GET", &file, Some(&paula), None);
        let (status_none, b, _) =
            s.request_raw("GET", "/api/v1/datasets/no-such/file", Some(&paula), None);
        assert_eq!((status, status_none), (403, 403));
        assert!(!a.contains_key("x-niji-sha256") && !b.contains_key("x-niji-sha256"));
        // Only custodians build.
        let build = format!("/api/v1/datasets/{name}/build");
        assert_eq!(s.request("POST", &build, Some(&paula), None).0, 403);
        let (status, built) = s.request("POST", &build, Some(&cathy), None);
        assert_eq!(status, 200, "{built}");
        // The fast track.
        let form = serde_json::json!({
            "dataset": name,
            "purpose": "Trial feasibility by age band and sex",
            "public_interest": "Treatment for a disease with none approved",
            "pledge": true,
        });
        let (status, filed) = s.request(
            "POST",
            "/api/v1/datasets/requests",
            Some(&paula),
            Some(&form),
        );
        assert_eq!(status, 201, "{filed}");
        assert_eq!(filed["state"], "submitted");
        let decision = format!(
            "/api/v1/datasets/requests/{}/decision",
            filed["id"].as_str().unwrap()
        );
        let grant = serde_json::json!({"grant": true});
        assert_eq!(
            s.request("POST", &decision, Some(&paula), Some(&grant)).0,
            403
        );
        let (status, decided) = s.request("POST", &decision, Some(&dora), Some(&grant));
        assert_eq!(status, 200, "{decided}");
        // The file, with its version and digest.
        let (status, headers, bytes) =
            s.request_raw("GET", &format!("{file}?format=csv"), Some(&paula), None);
        assert_eq!(status, 200);
        assert_eq!(headers["x-niji-sha256"], hex(&bytes));
        assert_eq!(
            headers["x-niji-sha256"],
            built["csv_sha256"].as_str().unwrap()
        );
        assert_eq!(
            headers["x-niji-dataset-version"],
            built["version"].as_str().unwrap()
        );
        assert!(headers["content-type"].starts_with("text/csv"));
        let (status, headers, parquet) =
            s.request_raw("GET", &format!("{file}?format=parquet"), Some(&paula), None);
        assert_eq!(status, 200);
        assert_eq!(
            headers["x-niji-sha256"],
            built["parquet_sha256"].as_str().unwrap()
        );
        assert_eq!(&parquet[..4], b"PAR1");
        assert_eq!(
            s.request("GET", &format!("{file}?format=xlsx"), Some(&paula), None)
                .0,
            422
        );
        // paula's grant is not quinn's.
        assert_eq!(s.request_raw("GET", &file, Some(&quinn), None).0, 403);
        // An anonymised extract's report: custodians see its counts (small numbers, which
        // across versions tell who came and went); others see how it was anonymised only.
        let (status, extract) = s.request(
            "POST",
            "/api/v1/datasets/anonymised-patients/build",
            Some(&cathy),
            None,
        );
        assert_eq!(status, 200, "{extract}");
        let report_as = |session: &String| {
            let (status, body) = s.request("GET", "/api/v1/datasets", Some(session), None);
            assert_eq!(status, 200, "{body}");
            body["datasets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == "anonymised-patients")
                .unwrap()["anonymisation"]
                .clone()
        };
        let full = report_as(&cathy);
        assert!(full["records_in"].as_u64().unwrap() > 0, "{full}");
        let summary = report_as(&paula);
        assert_eq!(summary["k"], full["k"]);
        assert_eq!(summary["levels"], full["levels"]);
        for count in [
            "records_in",
            "records_out",
            "records_suppressed",
            "cells_suppressed",
            "pooled",
            "coded",
            "groups",
        ] {
            assert!(summary.get(count).is_none(), "{count} shown: {summary}");
        }
        // Feasibility counts: for approved organisations only, structured, never SQL.
        let counts = "/api/v1/feasibility/counts";
        let ask = serde_json::json!({"disease_no": 6, "fiscal_year": 2021, "age_from": 40});
        assert_eq!(
            s.request("POST", counts, Some(&paula), Some(&ask)).0,
            403,
            "not approved yet"
        );
        tokio::runtime::Handle::current()
            .block_on(p.approve_dataset_organisation("cathy", "pharma-a"))
            .unwrap();
        let (status, answer) = s.request("POST", counts, Some(&paula), Some(&ask));
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["patients"].is_string() && answer["rounded_to"] == 10,
            "{answer}"
        );
        let sql = serde_json::json!({"disease_no": 6, "fiscal_year": 2021, "sql": "SELECT 1"});
        assert_eq!(s.request("POST", counts, Some(&paula), Some(&sql)).0, 422);
        let injected = serde_json::json!({"disease_no": 6, "fiscal_year": 2021, "prefecture": "13' OR '1'='1"});
        assert_eq!(
            s.request("POST", counts, Some(&paula), Some(&injected)).0,
            422
        );
        assert_eq!(
            s.request("POST", counts, Some(&quinn), Some(&ask)).0,
            422,
            "quinn has no organisation"
        );
        bytes
    });
    let rows = String::from_utf8(csv).unwrap().lines().count() - 1;
    // Over Flight SQL, through a client niji did not write.
    let python = std::env::var_os("NIJI_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let flight = |user: &'static str| {
        let python = python.clone();
        let uri = format!("grpc://{}", s.flight);
        let token = s.tokens[user].clone();
        async move {
            let out = tokio::process::Command::new(&python)
                .arg(repo().join("tests/adbc/dataset_e2e.py"))
                .args([uri.as_str(), user, token.as_str(), name])
                .output()
                .await
                .expect("python runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("one JSON object")
        }
    };
    let seen = flight("paula").await;
    assert_eq!(seen["rows"], rows, "{seen}");
    assert_eq!(seen["columns"][0], "fiscal_year", "{seen}");
    assert_eq!(
        seen["columns"].as_array().unwrap().last().unwrap(),
        "masked"
    );
    let refused = flight("quinn").await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no granted"),
        "{refused}"
    );
    // Every delivery audited, the Flight one too.
    let deliveries = p
        .audit()
        .entries_since(
            Some("paula"),
            "dataset.deliver",
            "2000-01-01T00:00:00Z",
            None,
        )
        .await
        .unwrap();
    let formats: Vec<String> = deliveries
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["format"].to_string()
        })
        .collect();
    assert_eq!(formats, ["\"csv\"", "\"parquet\"", "\"flight\""]);
    server.stop().await;
}
