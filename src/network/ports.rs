//! Published ports: `-p [ip:]hostPort:containerPort[/tcp|udp|sctp]`, passed to the portmap
//! plugin as the `portMappings` capability argument.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

fn port(spec: &str, what: &str, s: &str) -> Result<u16> {
    s.parse::<u16>().ok().filter(|p| *p != 0).with_context(|| {
        format!("port {spec:?}: {what} {s:?} is not a port number from 1 to 65535")
    })
}

fn range(spec: &str, what: &str, s: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        None => {
            let p = port(spec, what, s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (a, b) = (port(spec, what, a)?, port(spec, what, b)?);
            if a > b {
                bail!("port {spec:?}: {what} range {s:?} ends before it starts");
            }
            Ok((a, b))
        }
    }
}

/// Parse one `-p` value: `[ip:]hostPort:containerPort[/proto]`, where both ports may be ranges
/// of the same length (`8000-8002:80-82`).
pub fn parse(spec: &str) -> Result<Vec<PortMapping>> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p),
        None => (spec, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        bail!("port {spec:?}: protocol {proto:?} is not tcp, udp or sctp");
    }
    let parts: Vec<&str> = body.split(':').collect();
    let (ip, hp, cp) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [i, h, c] => (Some(*i), *h, *c),
        _ => bail!("port {spec:?}: expected [ip:]hostPort:containerPort[/protocol]"),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(i) => Some(i.parse::<Ipv4Addr>().with_context(|| {
            format!("port {spec:?}: host address {i:?} is not an IPv4 address")
        })?),
    };
    let (h0, h1) = range(spec, "host port", hp)?;
    let (c0, c1) = range(spec, "container port", cp)?;
    if h1 - h0 != c1 - c0 {
        bail!("port {spec:?}: the host and container ranges differ in length");
    }
    Ok((0..=(h1 - h0))
        .map(|i| PortMapping {
            host_port: h0 + i,
            container_port: c0 + i,
            protocol: proto.to_string(),
            host_ip: host_ip.filter(|i| !i.is_unspecified()),
        })
        .collect())
}

/// Parse one `-p` value that must name a single port.
pub fn parse_one(spec: &str) -> Result<PortMapping> {
    let mut v = parse(spec)?;
    if v.len() != 1 {
        bail!("port {spec:?}: expected one port, not a range");
    }
    Ok(v.remove(0))
}

/// Two mappings that would take the same host port.
pub fn clash(a: &PortMapping, b: &PortMapping) -> bool {
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
}

/// Fail when a process of the calling network namespace already listens on the host port.
pub fn check_free(network: &str, m: &PortMapping) -> Result<()> {
    let addr = (m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), m.host_port);
    let r = match m.protocol.as_str() {
        "tcp" => std::net::TcpListener::bind(addr).map(drop),
        "udp" => std::net::UdpSocket::bind(addr).map(drop),
        _ => Ok(()),
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!("network {network}: host port {m} is already in use")
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            bail!("network {network}: host address of port {m} is not an address of this host")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let m = parse_one("127.0.0.1:18080:80").unwrap();
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((m.host_port, m.container_port), (18080, 80));
        assert_eq!(m.protocol, "tcp");
        let m = parse_one("53:5353/udp").unwrap();
        assert_eq!((m.host_ip, m.protocol.as_str()), (None, "udp"));
        assert_eq!(
            serde_json::to_value(parse_one("1.2.3.4:1:2/sctp").unwrap()).unwrap(),
            serde_json::json!({"hostPort":1,"containerPort":2,"protocol":"sctp","hostIP":"1.2.3.4"})
        );
        let r = parse("8000-8002:80-82/udp").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].container_port), (8002, 82));
        assert!(parse_one("8000-8001:80-81").is_err());
        for bad in [
            "80", "0:80", "1:70000", "x:1:2", "1:2/icmp", "1-2:3", "2-1:2-1", "1-:2", "a:b:c:d",
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn clashes() {
        let a = parse_one("8080:80").unwrap();
        assert!(clash(&a, &parse_one("127.0.0.1:8080:81").unwrap()));
        assert!(!clash(&a, &parse_one("8080:80/udp").unwrap()));
        assert!(!clash(
            &parse_one("127.0.0.1:8080:80").unwrap(),
            &parse_one("127.0.0.2:8080:80").unwrap()
        ));
    }
}
