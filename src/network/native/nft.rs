//! The firewall side of a native attachment: one nftables table per attachment, `ip husk-HASH`
//! (HASH from the container id and the network, so detach and gc find it from the record alone),
//! made and removed each by ONE `nft -f -` run with a generated batch (applied atomically by
//! the kernel). Nothing outside these tables is touched.
//!
//! * `prerouting` and `output` (nat, dstnat): a published port to a local address (`fib daddr
//!   type local`, as portmap's `--dst-type LOCAL`), optionally only that of `hostIP`, is DNATed
//!   to the container;
//! * `postrouting` (nat, srcnat): masquerade of what the container sends out of its subnet
//!   (ipMasq), of its own published ports reached from itself (hairpin) and of connections from
//!   the host's loopback (portmap's SNAT for 127.0.0.0/8, with `route_localnet` on the bridge).

use super::super::ports::PortMapping;
use crate::network::Ipv4Net;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The `nft` program: on PATH, else the usual sbin dirs.
pub fn program() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .context("nft (the nftables tool) not found on PATH or in /usr/sbin: install nftables, or use the CNI plugins with HUSK_NETWORK_DRIVER=plugins")
}

/// What the rules of one attachment are made of.
pub struct Rules<'a> {
    pub table: &'a str,
    pub ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub masquerade: bool,
    pub ports: &'a [PortMapping],
}

impl Rules<'_> {
    /// True when the attachment needs no table at all.
    pub fn empty(&self) -> bool {
        !self.masquerade && self.ports.is_empty()
    }

    /// The batch that creates the table (a table left by an earlier run is replaced).
    pub fn add_batch(&self) -> String {
        let t = self.table;
        let ip = self.ip;
        let mut s = delete_batch(t);
        s.push_str(&format!("add table ip {t}\n"));
        if !self.ports.is_empty() {
            for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
                s.push_str(&format!(
                    "add chain ip {t} {chain} {{ type nat hook {hook} priority -100; policy accept; }}\n"
                ));
                for m in self.ports {
                    let daddr = match m.host_ip {
                        Some(h) => format!("ip daddr {h} "),
                        None => String::new(),
                    };
                    s.push_str(&format!(
                        "add rule ip {t} {chain} fib daddr type local {daddr}{p} dport {hp} dnat to {ip}:{cp}\n",
                        p = m.protocol,
                        hp = m.host_port,
                        cp = m.container_port,
                    ));
                }
            }
        }
        s.push_str(&format!(
            "add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
        ));
        if !self.ports.is_empty() {
            s.push_str(&format!(
                "add rule ip {t} postrouting ip saddr {ip} ip daddr {ip} masquerade\n\
                 add rule ip {t} postrouting ip saddr 127.0.0.0/8 ip daddr {ip} masquerade\n"
            ));
        }
        if self.masquerade {
            s.push_str(&format!(
                "add rule ip {t} postrouting ip saddr {ip} ip daddr != {net} ip daddr != 224.0.0.0/4 masquerade\n",
                net = self.subnet
            ));
        }
        s
    }
}

/// The batch that removes table `t` whether or not it exists (`add` of an existing table is a
/// no-op, so the `delete` always has something to delete).
pub fn delete_batch(t: &str) -> String {
    format!("add table ip {t}\ndelete table ip {t}\n")
}

/// A running `nft -f -`: the batch is written, [`Running::wait`] collects the outcome. Its
/// kernel work (a table's hooks are registered and unregistered under RCU grace periods) then
/// overlaps the caller's rtnetlink requests.
pub struct Running {
    network: String,
    child: std::process::Child,
    written: std::io::Result<()>,
}

/// Start `nft -f -` with `batch` in the calling network namespace.
pub fn spawn(network: &str, batch: &str) -> Result<Running> {
    let nft = program()?;
    let mut child = Command::new(&nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("network {network}: run {}", nft.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // a batch is a few hundred bytes: far below a pipe's capacity, so this never blocks
    let written = stdin.write_all(batch.as_bytes());
    drop(stdin);
    Ok(Running {
        network: network.to_string(),
        child,
        written,
    })
}

impl Running {
    pub fn wait(self) -> Result<()> {
        let network = self.network;
        let o = self.child.wait_with_output()?;
        self.written
            .with_context(|| format!("network {network}: write the rules to nft"))?;
        if !o.status.success() {
            bail!(
                "network {network}: nft failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    }
}

/// Run `nft -f -` with `batch` in the calling network namespace, to its end.
pub fn apply(network: &str, batch: &str) -> Result<()> {
    spawn(network, batch)?.wait()
}

/// True when table `t` exists in the calling network namespace.
pub fn exists(t: &str) -> Result<bool> {
    let nft = program()?;
    let o = Command::new(&nft)
        .args(["list", "table", "ip", t])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("run {}", nft.display()))?;
    Ok(o.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches() {
        let ports = crate::network::ports::parse("127.0.0.1:8080:80").unwrap();
        let r = Rules {
            table: "husk-x",
            ip: Ipv4Addr::new(10, 89, 0, 2),
            subnet: Ipv4Net::parse("10.89.0.0/24").unwrap(),
            masquerade: true,
            ports: &ports,
        };
        let b = r.add_batch();
        assert!(
            b.starts_with("add table ip husk-x\ndelete table ip husk-x\n"),
            "{b}"
        );
        assert!(b.contains(
            "add rule ip husk-x output fib daddr type local ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.89.0.2:80\n"
        ), "{b}");
        assert!(
            b.contains(
                "ip saddr 10.89.0.2 ip daddr != 10.89.0.0/24 ip daddr != 224.0.0.0/4 masquerade"
            ),
            "{b}"
        );
        let internal = Rules {
            masquerade: false,
            ports: &[],
            ..r
        };
        assert!(internal.empty());
    }
}
