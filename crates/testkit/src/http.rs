//! One HTTP/1.1 request over a fresh loopback connection, as a browser or an API client makes
//! it, and the reading of a whole response: for the benchmarks' clients and the tests that
//! drive a server, with nothing between them and it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use anyhow::Context as _;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// `name=value` of each `Set-Cookie`.
    pub cookies: Vec<String>,
    pub body: String,
}

/// Sends `method path` with `headers` and `body` on a new connection to `addr` and reads the
/// whole answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(stream, "{head}\r\n{body}")?;
    let (status, headers, raw) = read_response(stream)?;
    let cookies = headers
        .get("set-cookie")
        .map(|all| {
            all.lines()
                .map(|c| c.split(';').next().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(Response {
        status,
        cookies,
        body: String::from_utf8(raw).context("a body that is not UTF-8")?,
    })
}

/// A whole HTTP/1.1 response: the status, the headers (names in lower case; a repeated header,
/// such as `set-cookie`, keeps every value, one per line) and the body's bytes.
pub fn read_response(
    stream: TcpStream,
) -> anyhow::Result<(u16, BTreeMap<String, String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in {status_line:?}"))?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            headers
                .entry(name.trim().to_ascii_lowercase())
                .and_modify(|v| {
                    v.push('\n');
                    v.push_str(&value);
                })
                .or_insert(value);
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let mut raw = Vec::new();
    match length {
        Some(n) => {
            raw.resize(n, 0);
            reader.read_exact(&mut raw)?;
        }
        None => {
            reader.read_to_end(&mut raw)?;
        }
    }
    Ok((status, headers, raw))
}
