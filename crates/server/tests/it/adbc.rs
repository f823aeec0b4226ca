//! The Flight SQL endpoint driven by the Python ADBC Flight SQL driver (`scripts/setup-python.sh`
//! installs it into `.venv`; scripts/test.sh runs that first).

use crate::support::{TestServer, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_flight_sql_client_queries_through_the_chokepoint() {
    let python = std::env::var_os("NIJI_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} missing: run scripts/setup-python.sh (scripts/test.sh does)",
        python.display()
    );
    let server = TestServer::start().await;
    let output = tokio::process::Command::new(&python)
        .arg(repo().join("tests/adbc/flightsql_e2e.py"))
        .arg(format!("grpc://{}", server.flight))
        .arg("alice")
        .arg(&server.tokens["alice"])
        .arg("copay-2022")
        .arg("other-study")
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client failed:\n{stdout}\n{stderr}"
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(
        seen["dummy"]["columns"],
        serde_json::json!(["sex", "receipts", "persons"])
    );
    assert_eq!(seen["dummy"]["rows"], 2);
    assert!(
        seen["dummy"]["receipts"].as_u64().is_some_and(|n| n > 100),
        "{seen}"
    );
    assert_eq!(seen["dummy"]["pid_type"], "uint64");
    for (attack, reason) in [
        ("external_table", "DDL not supported"),
        ("copy", "DML not supported"),
        ("raw_id", "id5"),
        ("other_project", "not found"),
        ("two_statements", "exactly one SQL statement"),
    ] {
        let msg = seen[attack].as_str().unwrap_or_default();
        assert!(msg.contains(reason), "{attack}: {msg}");
    }
    assert_eq!(seen["real_released"]["rows"], 2, "{seen}");
    // Rows are held: an answer (not an error) without rows, whose schema says held.
    assert_eq!(seen["real_rows"]["rows"], 0, "{seen}");
    assert_eq!(seen["real_rows"]["status"], "held", "{seen}");
    assert!(
        seen["real_rows"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("held")),
        "{seen}"
    );
    // Flight SQL clients learn which cells were masked and why from the FlightInfo.
    let meta = &seen["real_metadata"];
    assert!(
        meta["status"] == "suppressed" || meta["status"] == "released",
        "{seen}"
    );
    assert_eq!(meta["has_rows"], false, "{seen}");
    assert_eq!(meta["small_groups_withheld"], true, "{seen}");
    assert_eq!(seen["held"]["status"], "held", "{seen}");
    assert_eq!(seen["held"]["has_row_count"], false, "{seen}");
    let held = seen["held"]["message"].as_str().unwrap_or_default();
    assert!(
        held.starts_with("held") && !held.bytes().any(|b| b.is_ascii_digit()),
        "a held result's size is not told: {seen}"
    );
    // Prefectures of few persons are withheld whole; what is masked in place says why.
    assert!(
        meta["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r.as_str().is_some_and(|r| !r.is_empty()))),
        "{seen}"
    );
    assert!(
        seen["bad_token"].as_str().is_some_and(
            |m| m.to_lowercase().contains("unauthenticated") || m.contains("wrong token")
        ),
        "{seen}"
    );
    server.stop().await;
}
