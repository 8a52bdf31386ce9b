//! Where a check connects: a host and port, or a UNIX socket path.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: Host, port: u16 },
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    /// As in a URL: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl Host {
    /// As in a `Host:` header or a certificate name: IPv6 without brackets.
    pub fn bare(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }
}

impl Endpoint {
    /// The endpoint as a URL with `scheme` and `path` (which starts with `/`
    /// or is empty): `icap://10.0.0.5:1344/echo`; a UNIX socket as
    /// `unix:/run/x.sock icap://localhost/echo`, the form every report uses.
    pub fn url(&self, scheme: &str, path: &str) -> String {
        match self {
            Endpoint::Tcp { host, port } => format!("{scheme}://{host}:{port}{path}"),
            Endpoint::Unix(socket) if path.is_empty() => format!("unix:{}", socket.display()),
            Endpoint::Unix(socket) => {
                format!("unix:{} {scheme}://localhost{path}", socket.display())
            }
        }
    }

    /// The name to put in `Host:`: the host, or `localhost` for a UNIX socket.
    pub fn host_header(&self) -> String {
        match self {
            Endpoint::Tcp { host, .. } => host.bare(),
            Endpoint::Unix(_) => "localhost".to_string(),
        }
    }

    /// The host and port in URL form (`[::1]:1344`), or `localhost`.
    pub fn authority(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(_) => "localhost".to_string(),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn urls() {
        let v6 = Endpoint::Tcp {
            host: Host::Ip("::1".parse().unwrap()),
            port: 1344,
        };
        assert_eq!(v6.url("icap", "/echo"), "icap://[::1]:1344/echo");
        assert_eq!(v6.host_header(), "::1");
        assert_eq!(v6.url("tcp", ""), "tcp://[::1]:1344");
        let unix = Endpoint::Unix("/run/c.sock".into());
        assert_eq!(
            unix.url("icap", "/echo"),
            "unix:/run/c.sock icap://localhost/echo"
        );
        assert_eq!(unix.url("tls", ""), "unix:/run/c.sock");
    }
}
