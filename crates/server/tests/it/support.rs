//! `TestServer`: the seeded environment served on free loopback ports.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

pub fn repo() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo");
    PathBuf::from(manifest).join("../..")
}

pub struct TestServer {
    pub http: SocketAddr,
    pub flight: SocketAddr,
    pub tokens: BTreeMap<String, String>,
    /// The environment served, for setting up what a test needs beyond the seed.
    pub visiting: std::sync::Arc<niji_sandbox::Visiting>,
    running: Option<niji_server::Running>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Default::default()).await
    }

    /// A server over an environment whose limits or policies a test replaces.
    pub async fn start_with(overrides: niji_testkit::Overrides<'_>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let seeded = niji_testkit::seed(dir.path(), &repo(), 400, overrides)
            .await
            .expect("seeded environment");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let visiting = seeded.visiting.clone();
        let running = niji_server::serve(seeded.visiting, loopback, loopback)
            .await
            .expect("server starts");
        TestServer {
            http: running.http,
            flight: running.flight,
            tokens: seeded.tokens,
            visiting,
            running: Some(running),
            _dir: dir,
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// A plain HTTP/1.1 request (no client library between the test and the wire); returns
    /// the status code and the JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let (status, _, raw) = self.request_raw(method, path, bearer, body);
        (
            status,
            serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
        )
    }

    /// As [`Self::request`], with the headers (names in lower case) and the body's bytes.
    pub fn request_raw(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, BTreeMap<String, String>, Vec<u8>) {
        let mut stream = TcpStream::connect(self.http).expect("connect");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        niji_testkit::http::read_response(stream).expect("a response")
    }

    pub fn sign_in(&self, user: &str) -> String {
        let (status, body) = self.request(
            "POST",
            "/api/v1/signin",
            None,
            Some(&serde_json::json!({"user": user, "token": self.tokens[user]})),
        );
        assert_eq!(status, 200, "{body}");
        body["session"].as_str().expect("session").to_string()
    }
}
