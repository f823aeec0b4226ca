//! One HTTP/1.1 request over a fresh loopback connection, as a browser or an API client makes
//! it: enough for the benchmarks' clients and the tests that drive a `niji serve` process,
//! with nothing between them and the server.

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

/// Sends `method path` with `headers` and `body` on `stream` and reads the whole answer.
pub fn exchange(
    stream: TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Response> {
    let mut s = stream;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(s, "{head}\r\n{body}")?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .with_context(|| format!("no HTTP status in {line:?}"))?;
    let mut cookies = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h
            .strip_prefix("set-cookie: ")
            .or_else(|| h.strip_prefix("Set-Cookie: "))
        {
            cookies.push(v.split(';').next().unwrap_or("").to_string());
        }
    }
    let mut body = String::new();
    r.read_to_string(&mut body)?;
    Ok(Response {
        status,
        cookies,
        body,
    })
}

/// [`exchange`] on a new connection to `addr`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Response> {
    exchange(TcpStream::connect(addr)?, method, path, headers, body)
}
