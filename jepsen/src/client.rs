//! A small blocking HTTP/1.1 client for the workloads: one connection per request (a partition
//! or a killed node then costs exactly one operation), every step bounded by a timeout, and a
//! clear line between "no answer" (the operation's outcome is unknown) and an answer.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why no answer arrived.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// The connection could not be opened: the request certainly never reached the server.
    #[error("connect: {0}")]
    NotSent(std::io::Error),
    /// The request may have been received; its effect is unknown.
    #[error("{0}")]
    Lost(String),
}

/// Client of one server address.
#[derive(Clone, Debug)]
pub struct Http {
    addr: SocketAddr,
    timeout: Duration,
}

impl Http {
    /// A client of `addr` whose every request gives up after `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Http {
        Http { addr, timeout }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request and reads the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, NoAnswer> {
        let stream = TcpStream::connect_timeout(&self.addr, self.timeout).map_err(NoAnswer::NotSent)?;
        let lost = |e: std::io::Error| NoAnswer::Lost(e.to_string());
        stream.set_read_timeout(Some(self.timeout)).map_err(lost)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(lost)?;
        stream.set_nodelay(true).map_err(lost)?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut writer = &stream;
        writer.write_all(head.as_bytes()).map_err(lost)?;
        writer.write_all(body).map_err(lost)?;
        let mut reader = BufReader::new(&stream);
        read_response(&mut reader, method == "HEAD").map_err(lost)
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn read_response(reader: &mut impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 =
        line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("headers cut short"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let find = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v): &(String, String)| v.clone());
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid("chunk size"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("content-length"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::read_response;

    #[test]
    fn parses_sized_and_chunked_bodies() {
        let sized = b"HTTP/1.1 201 Created\r\nDocker-Content-Digest: sha256:ab\r\nContent-Length: 3\r\n\r\nabc";
        let r = read_response(&mut &sized[..], false).expect("sized");
        assert_eq!((r.status, r.body.as_slice()), (201, &b"abc"[..]));
        assert_eq!(r.header("docker-content-digest"), Some("sha256:ab"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = read_response(&mut &chunked[..], false).expect("chunked");
        assert_eq!(r.body, b"abcde");
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(read_response(&mut &cut[..], false).is_err(), "a short body is no answer");
    }
}
