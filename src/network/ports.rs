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

/// Parse one `-p` value.
pub fn parse(spec: &str) -> Result<PortMapping> {
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
    if hp.contains('-') || cp.contains('-') {
        bail!("port {spec:?}: port ranges are not supported yet");
    }
    let host_ip = match ip {
        None | Some("") => None,
        Some(i) => Some(i.parse::<Ipv4Addr>().with_context(|| {
            format!("port {spec:?}: host address {i:?} is not an IPv4 address")
        })?),
    };
    Ok(PortMapping {
        host_port: port(spec, "host port", hp)?,
        container_port: port(spec, "container port", cp)?,
        protocol: proto.to_string(),
        host_ip: host_ip.filter(|i| !i.is_unspecified()),
    })
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
        let m = parse("127.0.0.1:18080:80").unwrap();
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((m.host_port, m.container_port), (18080, 80));
        assert_eq!(m.protocol, "tcp");
        let m = parse("53:5353/udp").unwrap();
        assert_eq!((m.host_ip, m.protocol.as_str()), (None, "udp"));
        assert_eq!(
            serde_json::to_value(parse("1.2.3.4:1:2/sctp").unwrap()).unwrap(),
            serde_json::json!({"hostPort":1,"containerPort":2,"protocol":"sctp","hostIP":"1.2.3.4"})
        );
        for bad in [
            "80", "0:80", "1:70000", "x:1:2", "1:2/icmp", "1-2:3-4", "a:b:c:d",
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn clashes() {
        let a = parse("8080:80").unwrap();
        assert!(clash(&a, &parse("127.0.0.1:8080:81").unwrap()));
        assert!(!clash(&a, &parse("8080:80/udp").unwrap()));
        assert!(!clash(
            &parse("127.0.0.1:8080:80").unwrap(),
            &parse("127.0.0.2:8080:80").unwrap()
        ));
    }
}
