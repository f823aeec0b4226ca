//! The portal tested as people use it: each role's journey in headless Chromium (screenshots
//! under docs/screenshots/, axe-core in every screen), every route asked as every role, and
//! the attacker's side (no CSRF token, replayed sessions, script in text fields, guessing).

mod attacks;
mod browser;
mod journeys;
mod routes;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use crate::support::TestServer;

pub const PASSWORD: &str = "correct horse battery staple";

/// The seed's users with passwords, and one account of every other role.
pub async fn portal_server() -> TestServer {
    // Cells resting on fewer than 1,000 facilities are masked: every count of the seed is, so
    // the journey has masked cells for checkers to judge (as a strict custodian would set it).
    let policy = std::fs::read_to_string(crate::support::repo().join("policies/disclosure.toml"))
        .expect("disclosure policy")
        .replace("min_facilities = 3", "min_facilities = 1000");
    let mut server = TestServer::start_with(niji_testkit::Overrides {
        disclosure: Some(&policy),
        ..Default::default()
    })
    .await;
    let p = server.visiting.platform().clone();
    let shell = "custodian:test";
    for (id, name) in [
        ("u-tokyo", "東京大学"),
        ("kyoto-u", "京都大学"),
        ("mhlw", "厚生労働省"),
        ("pharma-a", "製薬A社"),
    ] {
        p.add_organisation(shell, id, name)
            .await
            .expect("organisation");
    }
    for (user, role) in [
        ("frank", niji_governance::UserRole::Chair),
        ("kenji", niji_governance::UserRole::OutputChecker),
        ("kaori", niji_governance::UserRole::OutputChecker),
        ("kumi", niji_governance::UserRole::Custodian),
        ("aki", niji_governance::UserRole::Admin),
        ("hana", niji_governance::UserRole::Analyst),
    ] {
        let token = p.add_user(shell, user, role).await.expect("user");
        server.tokens.insert(user.into(), token);
    }
    for (user, org) in [
        ("alice", "u-tokyo"),
        ("bob", "u-tokyo"),
        ("carol", "kyoto-u"),
        ("dora", "kyoto-u"),
        ("erin", "mhlw"),
        ("frank", "mhlw"),
        ("hana", "pharma-a"),
    ] {
        p.set_organisation(shell, user, org)
            .await
            .expect("organisation of user");
    }
    let users: Vec<String> = server.tokens.keys().cloned().collect();
    for user in users {
        p.set_password(shell, &user, PASSWORD)
            .await
            .expect("password");
    }
    server
}

/// A raw HTTP/1.1 exchange with a cookie and extra headers; the status, headers and body.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> (u16, BTreeMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = form.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if form.is_some() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    if let Some(c) = cookie {
        head.push_str(&format!("Cookie: {c}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(stream, "{head}\r\n{body}").expect("write");
    let (status, headers, raw) = niji_testkit::http::read_response(stream).expect("a response");
    (status, headers, String::from_utf8_lossy(&raw).into_owned())
}

/// Signs in over HTTP as a browser would (the sign-in page's cookie and token first); the
/// session cookie (`name=value`) and the session's CSRF token from a page.
pub fn sign_in(addr: SocketAddr, user: &str, password: &str) -> Option<(String, String)> {
    let (_, headers, body) = send(addr, "GET", "/signin", None, &[], None);
    let signin_cookie = headers.get("set-cookie")?.split(';').next()?.to_string();
    let token = hidden(&body, "csrf")?;
    let form = format!(
        "user={user}&password={}&csrf={token}&next=/",
        password.replace(' ', "+")
    );
    let (status, headers, _) = send(
        addr,
        "POST",
        "/signin",
        Some(&signin_cookie),
        &[],
        Some(&form),
    );
    if status != 303 {
        return None;
    }
    let session = headers
        .get("set-cookie")?
        .lines()
        .find(|c| c.starts_with("niji_session="))?
        .split(';')
        .next()?
        .to_string();
    let (_, _, page) = send(addr, "GET", "/account", Some(&session), &[], None);
    Some((session, hidden(&page, "csrf")?))
}

/// The value of the first hidden field `name` in a page.
pub fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}
