//! Network addresses in teleport.yaml: `host:port`, `:port` (every
//! interface), a bare host (the setting's default port), `[v6]:port` and a
//! bare IPv6 address. Part of the config leaf; touches nothing else in the
//! crate. Syntax is checked when the file is read; names are resolved only
//! when an address is turned into a socket address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};

/// A `host[:port]` as written in the file, syntax-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// The host: an IP literal (without brackets), a DNS name, or empty for
    /// every interface (`:3025`).
    pub host: String,
    /// The port, when one was given.
    pub port: Option<u16>,
}

impl Addr {
    /// Parses `host:port`, `:port`, `host`, `[v6]:port`, `[v6]` or a bare IPv6 address.
    pub fn parse(s: &str) -> Result<Addr, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the address is empty; expected host:port, :port or host".into());
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(format!("{t:?} is a URL ({scheme}://); give host:port without a scheme"));
        }
        if let Some(rest) = t.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return Err(format!("{t:?}: missing `]` after the IPv6 address"));
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{t:?}: {host:?} is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(parse_port(t, p)?),
                    None => return Err(format!("{t:?}: expected `:port` after `]`")),
                },
            };
            return Ok(Addr { host: host.to_string(), port });
        }
        if t.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(Addr { host: t.to_string(), port: None });
        }
        let (host, port) = match t.rsplit_once(':') {
            Some((h, p)) => (h, Some(parse_port(t, p)?)),
            None => (t, None),
        };
        if host.contains(':') {
            return Err(format!("{t:?}: an IPv6 address with a port is written [address]:port"));
        }
        if let Some(c) = host.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))) {
            return Err(format!("{t:?}: {c:?} is not allowed in a host name"));
        }
        Ok(Addr { host: host.to_string(), port })
    }

    /// The port, or `default` when none was written.
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    /// `host:port` with the default port filled in (IPv6 in brackets; an
    /// empty host stays empty, as in `:3025`).
    pub fn with_default_port(&self, default: u16) -> String {
        let port = self.port_or(default);
        if self.host.contains(':') { format!("[{}]:{port}", self.host) } else { format!("{}:{port}", self.host) }
    }

    /// A socket address to listen on or dial: an empty host is 0.0.0.0,
    /// an IP literal is used as is, a name is resolved (first answer).
    pub fn to_socket_addr(&self, default_port: u16) -> Result<SocketAddr, String> {
        let port = self.port_or(default_port);
        if self.host.is_empty() {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
        }
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        match (self.host.as_str(), port).to_socket_addrs() {
            Ok(mut addrs) => {
                addrs.next().ok_or_else(|| format!("{}: the name resolved to no address", self.with_default_port(port)))
            }
            Err(e) => Err(format!("{}: cannot resolve the host name: {e}", self.with_default_port(port))),
        }
    }
}

fn parse_port(whole: &str, p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err(format!("{whole:?}: the port after `:` is missing"));
    }
    p.parse::<u16>().map_err(|_| format!("{whole:?}: port {p:?} is not a number from 0 to 65535"))
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) if self.host.contains(':') => write!(f, "[{}]:{p}", self.host),
            Some(p) => write!(f, "{}:{p}", self.host),
            None if self.host.contains(':') => write!(f, "[{}]", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl std::str::FromStr for Addr {
    type Err = String;

    fn from_str(s: &str) -> Result<Addr, String> {
        Addr::parse(s)
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Addr, D::Error> {
        super::fields::parse_scalar(d, "an address, host:port", Addr::parse)
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a listen address with a default port into a socket address, as
/// `--diag-addr` and the `listen_addr` settings take it.
pub fn parse_listen_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    Addr::parse(s)?.to_socket_addr(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = Addr::parse("0.0.0.0:3025").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("0.0.0.0", Some(3025)));
        let a = Addr::parse(":3025").unwrap();
        assert_eq!(a.to_socket_addr(1).unwrap(), "0.0.0.0:3025".parse().unwrap());
        let a = Addr::parse("10.1.2.3").unwrap();
        assert_eq!(a.to_socket_addr(3025).unwrap(), "10.1.2.3:3025".parse().unwrap());
        let a = Addr::parse("[::1]:3080").unwrap();
        assert_eq!(a.to_socket_addr(1).unwrap(), "[::1]:3080".parse().unwrap());
        assert_eq!(a.to_string(), "[::1]:3080");
        let a = Addr::parse("::").unwrap();
        assert_eq!(a.to_socket_addr(3022).unwrap(), "[::]:3022".parse().unwrap());
        let a = Addr::parse("proxy.example.com:443").unwrap();
        assert_eq!(a.with_default_port(3080), "proxy.example.com:443");
        assert_eq!(Addr::parse("proxy.example.com").unwrap().with_default_port(3080), "proxy.example.com:3080");
        assert!(parse_listen_addr("localhost:0", 1).unwrap().ip().is_loopback());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (input, part) in [
            ("", "empty"),
            ("0.0.0.0:30x5", "not a number"),
            ("0.0.0.0:70000", "not a number"),
            ("host:", "missing"),
            ("https://a:3080", "URL"),
            ("[::1", "missing `]`"),
            ("[zz]:1", "not an IPv6"),
            ("[::1]x", "expected `:port`"),
            ("a b:1", "not allowed"),
            ("fe80::1:x:1", "[address]:port"),
        ] {
            let e = Addr::parse(input).unwrap_err();
            assert!(e.contains(part), "{input:?}: {e}");
        }
    }
}
