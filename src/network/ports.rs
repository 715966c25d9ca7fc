//! Published ports: `-p [ip:]hostPort:containerPort[/tcp|udp|sctp]`, passed to the portmap
//! plugin as the `portMappings` capability argument. An IPv6 host address is written in
//! brackets, as Docker's: `-p [::1]:8080:80`.
//!
//! The host address says which family a port is published on, as portmap and Docker read it:
//! none, both (IPv6 only on a dual-stack network); an IPv4 one (`0.0.0.0` too), IPv4 only; an
//! IPv6 one (`[::]` too), IPv6 only.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// True when the mapping is published on IPv4 (no host address, or an IPv4 one).
    pub fn on_v4(&self) -> bool {
        !matches!(self.host_ip, Some(IpAddr::V6(_)))
    }
    /// True when the mapping is published on IPv6 (of a dual-stack network): no host address,
    /// or an IPv6 one.
    pub fn on_v6(&self) -> bool {
        !matches!(self.host_ip, Some(IpAddr::V4(_)))
    }
    /// The host address the rules match (none for an unspecified one: any local address).
    pub fn dst(&self) -> Option<IpAddr> {
        self.host_ip.filter(|i| !i.is_unspecified())
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            None => write!(f, "{}", Ipv4Addr::UNSPECIFIED)?,
        }
        write!(
            f,
            ":{}->{}/{}",
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
    let (ip, ports) = match body.strip_prefix('[') {
        // Docker's form of an IPv6 host address: [::1]:8080:80
        Some(rest) => {
            let Some((i, ports)) = rest.split_once("]:") else {
                bail!("port {spec:?}: expected [IPv6]:hostPort:containerPort[/protocol]");
            };
            let i6 = i.parse::<std::net::Ipv6Addr>().with_context(|| {
                format!("port {spec:?}: host address [{i}] is not an IPv6 address")
            })?;
            (Some(IpAddr::V6(i6)), ports)
        }
        None => (None, body),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, hp, cp) = match (ip, parts.as_slice()) {
        (ip, [h, c]) => (ip, *h, *c),
        (None, [i, h, c]) => {
            let ip = match *i {
                "" => None,
                i => Some(IpAddr::V4(i.parse::<Ipv4Addr>().with_context(|| {
                    format!("port {spec:?}: host address {i:?} is not an IPv4 address")
                })?)),
            };
            (ip, *h, *c)
        }
        (None, [_, _, _, ..]) => bail!(
            "port {spec:?}: expected [ip:]hostPort:containerPort[/protocol] (an IPv6 host \
             address goes in brackets: [::1]:8080:80)"
        ),
        _ => bail!("port {spec:?}: expected [ip:]hostPort:containerPort[/protocol]"),
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
            host_ip: ip,
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

/// Two mappings that would take the same host port: the same port and protocol on addresses
/// that meet (no address is every address; an unspecified one every address of its family).
pub fn clash(a: &PortMapping, b: &PortMapping) -> bool {
    let meet = match (a.host_ip, b.host_ip) {
        (None, _) | (_, None) => true,
        (Some(x), Some(y)) => {
            x == y || (x.is_ipv4() == y.is_ipv4() && (x.is_unspecified() || y.is_unspecified()))
        }
    };
    a.host_port == b.host_port && a.protocol == b.protocol && meet
}

/// Fail when a process of the calling network namespace already listens on the host port, on
/// its address or, without one, on IPv4's any address and (`dual_stack`) IPv6's.
pub fn check_free(network: &str, m: &PortMapping, dual_stack: bool) -> Result<()> {
    let mut addrs = Vec::new();
    match m.host_ip {
        Some(ip) => addrs.push(ip),
        None => {
            addrs.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            if dual_stack {
                addrs.push(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
            }
        }
    }
    for ip in addrs {
        let addr = (ip, m.host_port);
        let r = match m.protocol.as_str() {
            "tcp" => std::net::TcpListener::bind(addr).map(drop),
            "udp" => std::net::UdpSocket::bind(addr).map(drop),
            _ => Ok(()),
        };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                bail!("network {network}: host port {m} is already in use")
            }
            // IPv6's any address where IPv6 is off: nothing can listen there either
            Err(_) if m.host_ip.is_none() && ip.is_ipv6() => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                bail!("network {network}: host address of port {m} is not an address of this host")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuse a mapping on an IPv6 host address when the network has no IPv6 subnet.
pub fn check_family(network: &str, m: &PortMapping, dual_stack: bool) -> Result<()> {
    if !dual_stack && !m.on_v4() {
        bail!(
            "network {network}: port {m} has an IPv6 host address, and network {network} has \
             no IPv6 subnet (create it with --ipv6)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let m = parse_one("127.0.0.1:18080:80").unwrap();
        assert_eq!(m.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
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
    fn ipv6_host_addresses() {
        let m = parse_one("[::1]:8080:80").unwrap();
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        assert_eq!((m.host_port, m.container_port), (8080, 80));
        assert_eq!(m.to_string(), "[::1]:8080->80/tcp");
        assert!(m.on_v6() && !m.on_v4());
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"::1"})
        );
        // [::]: every IPv6 address, and only IPv6 (as Docker and portmap read it)
        let any6 = parse_one("[::]:8080:80/udp").unwrap();
        assert_eq!(any6.host_ip, Some("::".parse().unwrap()));
        assert_eq!((any6.dst(), any6.protocol.as_str()), (None, "udp"));
        assert!(any6.on_v6() && !any6.on_v4());
        // 0.0.0.0: IPv4 only; no address: both
        let any4 = parse_one("0.0.0.0:8080:80").unwrap();
        assert!(any4.on_v4() && !any4.on_v6() && any4.dst().is_none());
        let both = parse_one("8080:80").unwrap();
        assert!(both.on_v4() && both.on_v6());
        let r = parse("[fd00::5]:8000-8001:80-81").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].to_string(), "[fd00::5]:8001->81/tcp");
        // a record written before IPv6 host addresses still reads
        let old: PortMapping = serde_json::from_str(
            r#"{"hostPort":1,"containerPort":2,"protocol":"tcp","hostIP":"127.0.0.1"}"#,
        )
        .unwrap();
        assert_eq!(old.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        for (bad, want) in [
            ("::1:8080:80", "in brackets"),
            ("[::1]8080:80", "[IPv6]:hostPort"),
            ("[127.0.0.1]:8080:80", "not an IPv6 address"),
            ("[::1]:1:8080:80", "expected [ip:]"),
            ("[::1:8080:80", "[IPv6]:hostPort"),
            ("fd00::1:8080:80", "in brackets"),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(bad) && e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn families() {
        let six = parse_one("[::1]:8080:80").unwrap();
        let e = check_family("n", &six, false).unwrap_err().to_string();
        assert!(
            e.contains("network n") && e.contains("[::1]:8080") && e.contains("--ipv6"),
            "{e}"
        );
        check_family("n", &six, true).unwrap();
        check_family("n", &parse_one("8080:80").unwrap(), false).unwrap();
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
        // the families: an unspecified address meets its own family only
        let p = |s: &str| parse_one(s).unwrap();
        assert!(clash(&a, &p("[::1]:8080:80")));
        assert!(clash(&p("[::]:8080:80"), &p("[::1]:8080:80")));
        assert!(clash(&p("0.0.0.0:8080:80"), &p("127.0.0.1:8080:80")));
        assert!(!clash(&p("0.0.0.0:8080:80"), &p("[::]:8080:80")));
        assert!(!clash(&p("127.0.0.1:8080:80"), &p("[::1]:8080:80")));
        assert!(!clash(&p("[::1]:8080:80"), &p("[::2]:8080:80")));
    }
}
