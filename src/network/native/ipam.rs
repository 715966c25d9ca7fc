//! Address allocation compatible with CNI's host-local plugin, on the same files, so a network
//! can be attached natively and through the plugin chain in turn without an address given twice:
//! * `DATADIR/NETWORK/` holds one file per allocated address, named by the address, holding
//!   `CONTAINERID\r\nIFNAME`; `last_reserved_ip.N` the last address handed out of range set N
//!   (0: IPv4; 1: the IPv6 range of a dual-stack network);
//! * `DATADIR/NETWORK/lock` is flocked around every change;
//! * a new address is the first free one after the last reserved (wrapping around), from
//!   network+1 to broadcast-1 (IPv6: to the subnet's last address), the gateway never handed
//!   out.

use crate::network::{Ipv4Net, Ipv6Net};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The subnet of one range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subnet {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl Subnet {
    /// The first and last address host-local hands out, as numbers.
    fn bounds(&self) -> (u128, u128) {
        match self {
            Subnet::V4(n) => (
                u128::from(u32::from(n.network())) + 1,
                u128::from(u32::from(n.broadcast())).saturating_sub(1),
            ),
            Subnet::V6(n) => (u128::from(n.network()) + 1, u128::from(n.last())),
        }
    }
    fn addr(&self, n: u128) -> IpAddr {
        match self {
            Subnet::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
            Subnet::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }
    fn number(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Subnet::V4(n), IpAddr::V4(a)) => n.contains(a),
            (Subnet::V6(n), IpAddr::V6(a)) => n.contains(a),
            _ => false,
        }
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subnet::V4(n) => n.fmt(f),
            Subnet::V6(n) => n.fmt(f),
        }
    }
}

/// The allocation directory of one network, for one of its range sets.
pub struct Pool {
    pub dir: PathBuf,
    pub subnet: Subnet,
    pub gateway: IpAddr,
    /// The range set's index in the list (`last_reserved_ip.N`).
    pub set: usize,
}

fn lock(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    crate::network::mkdir(dir, 0o755)?;
    let p = dir.join("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock {}", p.display()))
}

fn owner(id: &str, ifname: &str) -> String {
    format!("{id}\r\n{ifname}")
}

impl Pool {
    /// The allocated addresses in this directory with their owner (`id\r\nifname`, or an older
    /// host-local's bare id).
    fn allocations(&self) -> Result<Vec<(IpAddr, String)>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.dir.display())),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            let data = fs::read_to_string(e.path()).unwrap_or_default();
            out.push((ip, data.trim().to_string()));
        }
        Ok(out)
    }

    /// Allocate an address to (`id`, `ifname`).
    pub fn allocate(&self, network: &str, id: &str, ifname: &str) -> Result<IpAddr> {
        let last_reserved = self.dir.join(format!("last_reserved_ip.{}", self.set));
        let _l = lock(&self.dir)?;
        self.sweep_temp_files();
        let me = owner(id, ifname);
        if let Some((ip, _)) = self
            .allocations()?
            .into_iter()
            .find(|(ip, o)| *o == me && self.subnet.contains(*ip))
        {
            bail!("network {network}: {ip} is already allocated to container {id} ({ifname})");
        }
        let (first, last) = self.subnet.bounds();
        if last < first {
            bail!(
                "network {network}: subnet {} has no host addresses",
                self.subnet
            );
        }
        let count = last - first + 1;
        let start = fs::read_to_string(&last_reserved)
            .ok()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .filter(|ip| self.subnet.contains(*ip))
            .map(Subnet::number)
            .filter(|l| (first..=last).contains(l))
            .map(|l| if l == last { first } else { l + 1 })
            .unwrap_or(first);
        for i in 0..count {
            let ip = self.subnet.addr(first + (start - first + i) % count);
            if ip == self.gateway {
                continue;
            }
            let p = self.dir.join(ip.to_string());
            if p.exists() {
                continue;
            }
            // the file appears with its owner in it (written aside, then linked into place),
            // so a kill at any moment never leaves an address claimed by nobody
            let tmp = self.dir.join(format!(".{ip}.{}", std::process::id()));
            let written = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)
                .and_then(|mut f| f.write_all(me.as_bytes()));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("write {}", tmp.display()));
            }
            let linked = fs::hard_link(&tmp, &p);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("create {}", p.display())),
            }
            crate::network::keep::hold(&last_reserved);
            crate::state::write_atomic(&last_reserved, ip.to_string().as_bytes(), 0o644)?;
            return Ok(ip);
        }
        bail!(
            "network {network}: no IP addresses available in {} (every one is allocated in {})",
            self.subnet,
            self.dir.display()
        )
    }

    /// Remove the temp files (`.NAME.PID`) of writers killed half way: every writer holds the
    /// lock, which the caller has.
    fn sweep_temp_files(&self) {
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let pid = name.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
            if name.starts_with('.') && pid.is_some() {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Release what (`id`, `ifname`) holds, in every range set; nothing to do when it holds
    /// nothing.
    pub fn release(&self, id: &str, ifname: &str) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _l = lock(&self.dir)?;
        self.sweep_temp_files();
        let me = owner(id, ifname);
        for (ip, o) in self.allocations()? {
            if o == me || o == id {
                let p = self.dir.join(ip.to_string());
                crate::network::keep::hold(&p);
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("remove {}", p.display())),
                }
            }
        }
        Ok(())
    }

    /// The address of this range set (`id`, `ifname`) holds.
    pub fn holds(&self, id: &str, ifname: &str) -> Result<Option<IpAddr>> {
        let me = owner(id, ifname);
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(ip, o)| *o == me && self.subnet.contains(*ip))
            .map(|(ip, _)| ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAST_RESERVED: &str = "last_reserved_ip.0";

    fn pool(d: &Path, s: &str) -> Pool {
        let subnet = Ipv4Net::parse(s).unwrap();
        Pool {
            dir: d.join("net"),
            subnet: Subnet::V4(subnet),
            gateway: IpAddr::V4(Ipv4Addr::from(u32::from(subnet.network()) + 1)),
            set: 0,
        }
    }

    /// The IPv6 range set of a dual-stack network shares the directory: its own
    /// `last_reserved_ip.1`, the canonical text form as file name, the last address handed out
    /// (no broadcast), and release removes both families' files of the owner.
    #[test]
    fn ipv6_range_set_beside_ipv4() {
        let d = tempfile::tempdir().unwrap();
        let p4 = pool(d.path(), "10.9.0.0/30"); // one host besides the gateway
        let s6 = Ipv6Net::parse("fd00:9::/126").unwrap(); // ::1 gateway, ::2, ::3
        let p6 = Pool {
            dir: p4.dir.clone(),
            subnet: Subnet::V6(s6),
            gateway: "fd00:9::1".parse().unwrap(),
            set: 1,
        };
        assert_eq!(
            p4.allocate("n", "a", "eth0").unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        let a6 = p6.allocate("n", "a", "eth0").unwrap();
        assert_eq!(a6, "fd00:9::2".parse::<IpAddr>().unwrap());
        assert_eq!(
            fs::read_to_string(p4.dir.join("fd00:9::2")).unwrap(),
            "a\r\neth0"
        );
        assert_eq!(
            fs::read_to_string(p4.dir.join("last_reserved_ip.1")).unwrap(),
            "fd00:9::2"
        );
        assert_eq!(
            p4.holds("a", "eth0").unwrap(),
            Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)))
        );
        assert_eq!(p6.holds("a", "eth0").unwrap(), Some(a6));
        // the last address of the subnet is a host address in IPv6
        assert_eq!(
            p6.allocate("n", "b", "eth0").unwrap(),
            "fd00:9::3".parse::<IpAddr>().unwrap()
        );
        let e = format!("{:#}", p6.allocate("n", "c", "eth0").unwrap_err());
        assert!(
            e.contains("no IP addresses available in fd00:9::/126"),
            "{e}"
        );
        p4.release("a", "eth0").unwrap();
        assert!(!p4.dir.join("10.9.0.2").exists() && !p4.dir.join("fd00:9::2").exists());
        assert_eq!(p6.holds("a", "eth0").unwrap(), None);
        // wraps after ::3 to the freed ::2
        assert_eq!(
            p6.allocate("n", "c", "eth0").unwrap(),
            "fd00:9::2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn allocates_after_the_last_reserved_and_wraps() {
        let d = tempfile::tempdir().unwrap();
        let p = pool(d.path(), "10.9.0.0/29"); // hosts .1-.6, .1 the gateway
        let a = p.allocate("n", "a", "eth0").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(
            fs::read_to_string(p.dir.join("10.9.0.2")).unwrap(),
            "a\r\neth0"
        );
        assert_eq!(
            fs::read_to_string(p.dir.join(LAST_RESERVED)).unwrap(),
            "10.9.0.2"
        );
        let e = format!("{:#}", p.allocate("n", "a", "eth0").unwrap_err());
        assert!(e.contains("already allocated"), "{e}");
        let b = p.allocate("n", "b", "eth0").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        p.release("a", "eth0").unwrap();
        // the next one follows the last reserved, not the lowest free
        assert_eq!(
            p.allocate("n", "c", "eth0").unwrap(),
            Ipv4Addr::new(10, 9, 0, 4)
        );
        for id in ["d", "e"] {
            p.allocate("n", id, "eth0").unwrap();
        }
        // .6 was the last: wrap to .2 (freed by a), skipping the gateway
        assert_eq!(
            p.allocate("n", "f", "eth0").unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        let e = format!("{:#}", p.allocate("n", "g", "eth0").unwrap_err());
        assert!(e.contains("no IP addresses available"), "{e}");
        assert_eq!(
            p.holds("c", "eth0").unwrap(),
            Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 4)))
        );
        p.release("c", "eth0").unwrap();
        assert_eq!(p.holds("c", "eth0").unwrap(), None);
        p.release("nobody", "eth0").unwrap();
    }
}
