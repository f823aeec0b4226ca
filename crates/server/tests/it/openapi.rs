//! The OpenAPI document: served, derived from the handlers' types, and complete. Every
//! operation it documents exists, and every one but sign-in and health refuses a caller
//! without a session (so a route added undocumented, or documented and left open, fails here).

use serde_json::json;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_each_refuses_a_caller_without_a_session() {
    let server = TestServer::start().await;
    let s = &server;
    tokio::task::block_in_place(|| {
        let (status, doc) = s.request("GET", "/api/v1/openapi.json", None, None);
        assert_eq!(status, 200);
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{doc}"
        );
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/api/v1/signin",
            "/api/v1/query",
            "/api/v1/projects/{id}/tables",
            "/api/v1/outputs/{id}/approve",
            "/api/v1/applications",
            "/api/v1/applications/{id}/decision",
            "/api/v1/review/queue",
            "/api/v1/notifications/read",
            "/api/v1/projects/{id}/scripts/{name}/run",
            "/api/v1/consent/withdrawals",
        ] {
            assert!(paths.contains_key(path), "{path} undocumented");
        }
        // Schemas are the types': the application form with its fields, the error body.
        let schemas = &doc["components"]["schemas"];
        let form = &schemas["ApplicationForm"]["properties"];
        for field in [
            "purpose",
            "public_interest",
            "tables",
            "duration_months",
            "brought_in",
        ] {
            assert!(form.get(field).is_some(), "ApplicationForm.{field}: {form}");
        }
        assert!(schemas["ErrorBody"]["properties"].get("problems").is_some());
        assert_eq!(
            doc["components"]["securitySchemes"]["session"]["scheme"],
            "bearer"
        );

        let open = ["/api/v1/signin", "/api/v1/health"];
        let mut operations = 0;
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete", "patch"] {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                operations += 1;
                let concrete = path
                    .replace("{id}", "A000001")
                    .replace("{name}", "monthly")
                    .replace("{version}", "1");
                assert!(
                    !concrete.contains('{'),
                    "{path} has a parameter the test does not fill"
                );
                let (status, body) =
                    s.request(&method.to_uppercase(), &concrete, None, Some(&json!({})));
                assert!(
                    status != 404 && status != 405,
                    "{method} {path} is documented but not served ({status})"
                );
                if !open.contains(&path.as_str()) {
                    assert_eq!(status, 401, "{method} {path} without a session: {body}");
                    assert!(
                        operation["security"].is_array(),
                        "{method} {path} does not document its session"
                    );
                }
            }
        }
        assert!(operations >= 32, "{operations} operations");
    });
    server.stop().await;
}
