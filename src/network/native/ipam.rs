//! Address allocation compatible with CNI's host-local plugin, on the same files, so a network
//! can be attached natively and through the plugin chain in turn without an address given twice:
//! * `DATADIR/NETWORK/` holds one file per allocated address, named by the address, holding
//!   `CONTAINERID\r\nIFNAME`; `last_reserved_ip.0` the last address handed out of range set 0;
//! * `DATADIR/NETWORK/lock` is flocked around every change;
//! * a new address is the first free one after the last reserved (wrapping around), from
//!   network+1 to broadcast-1, the gateway never handed out.

use crate::network::Ipv4Net;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const LAST_RESERVED: &str = "last_reserved_ip.0";

/// The allocation directory of one network.
pub struct Pool {
    pub dir: PathBuf,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
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
    fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.dir.display())),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let data = fs::read_to_string(e.path()).unwrap_or_default();
            out.push((ip, data.trim().to_string()));
        }
        Ok(out)
    }

    /// Allocate an address to (`id`, `ifname`).
    pub fn allocate(&self, network: &str, id: &str, ifname: &str) -> Result<Ipv4Addr> {
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
        let first = u32::from(self.subnet.network()) + 1;
        let last = u32::from(self.subnet.broadcast()) - 1;
        if last < first {
            bail!(
                "network {network}: subnet {} has no host addresses",
                self.subnet
            );
        }
        let count = last - first + 1;
        let start = fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|l| (first..=last).contains(l))
            .map(|l| if l == last { first } else { l + 1 })
            .unwrap_or(first);
        for i in 0..count {
            let ip = Ipv4Addr::from(first + (start - first + i) % count);
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
            crate::network::keep::hold(&self.dir.join(LAST_RESERVED));
            crate::state::write_atomic(
                &self.dir.join(LAST_RESERVED),
                ip.to_string().as_bytes(),
                0o644,
            )?;
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

    /// Release what (`id`, `ifname`) holds; nothing to do when it holds nothing.
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

    /// The address (`id`, `ifname`) holds.
    pub fn holds(&self, id: &str, ifname: &str) -> Result<Option<Ipv4Addr>> {
        let me = owner(id, ifname);
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, o)| *o == me)
            .map(|(ip, _)| ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(d: &Path, s: &str) -> Pool {
        let subnet = Ipv4Net::parse(s).unwrap();
        Pool {
            dir: d.join("net"),
            subnet,
            gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
        }
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
            Some(Ipv4Addr::new(10, 9, 0, 4))
        );
        p.release("c", "eth0").unwrap();
        assert_eq!(p.holds("c", "eth0").unwrap(), None);
        p.release("nobody", "eth0").unwrap();
    }
}
