//! The IPv6 loopback of a dual-stack network's published ports: a userland proxy, as Docker's
//! `docker-proxy`. The kernel cannot DNAT a connection from `[::1]` to a container (IPv6 has
//! no `route_localnet`: the reply, its destination `::1` again once conntrack has undone the
//! masquerade, arrives on the bridge, and an input route lookup of a loopback address matches
//! the loopback device alone), so the native driver's `ip6` rules leave `::1` out and one
//! process per such port listens on `[::1]:PORT` and relays to `[CONTAINER]:PORT`. Through the
//! CNI plugins the same proxies run, and a table of husk's keeps portmap's DNAT, which takes
//! `::1` like any local address, off those ports
//! ([`super::native::nft::loopback_guard_batch`]).
//!
//! The attach binds the socket itself (so a port in use is its error, and the port answers as
//! soon as the attach returns) and hands it to `husk network proxy RECORD PROTO TARGET` as its
//! standard input; the proxy's pid and start time go into the attachment's record, and
//! releasing the record ends it (pidfd, start time checked). A proxy whose record is gone (a
//! husk killed between starting it and recording it, the record then released by gc) ends
//! itself within half a second.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ports::PortMapping;

/// A running proxy, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proxy {
    pub pid: i32,
    pub start_time: u64,
    /// `[::1]:PORT/PROTO`, for messages.
    pub listen: String,
}

/// The mappings that answer on `[::1]`: tcp or udp, with no host address or `::`/`::1`.
pub fn wanted(ports: &[PortMapping]) -> Vec<&PortMapping> {
    ports
        .iter()
        .filter(|m| matches!(m.protocol.as_str(), "tcp" | "udp"))
        .filter(|m| match m.host_ip {
            None => true,
            Some(IpAddr::V6(a)) => a.is_unspecified() || a.is_loopback(),
            Some(IpAddr::V4(_)) => false,
        })
        .collect()
}

/// Start the proxy of `m` to the container's `ip6`, for the attachment recorded at `record`;
/// none where this namespace has no `::1` (its `lo` without IPv6).
pub fn start(
    network: &str,
    record: &Path,
    m: &PortMapping,
    ip6: Ipv6Addr,
) -> Result<Option<Proxy>> {
    let at = (Ipv6Addr::LOCALHOST, m.host_port);
    let listen = format!("[::1]:{}/{}", m.host_port, m.protocol);
    let bound = match m.protocol.as_str() {
        "tcp" => TcpListener::bind(at).map(OwnedFd::from),
        "udp" => UdpSocket::bind(at).map(OwnedFd::from),
        p => bail!("network {network}: port {m}: no proxy for protocol {p}"),
    };
    let sock = match bound {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("network {network}: port {m}: bind {listen}"))
        }
    };
    let to = SocketAddr::from((ip6, m.container_port));
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("network")
        .arg("proxy")
        .arg(record)
        .arg(&m.protocol)
        .arg(to.to_string())
        .stdin(Stdio::from(sock))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // holding no directory of the caller's busy
        .current_dir("/")
        // out of the caller's session: a terminal's hangup or ^C is not its
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("network {network}: port {m}: start the proxy of {listen}"))?;
    let pid = child.id() as i32;
    Ok(Some(Proxy {
        pid,
        start_time: crate::state::process_start_time(pid).unwrap_or(0),
        listen,
    }))
}

/// True while the recorded proxy runs (the same process: its start time checked; not a
/// zombie waiting for its parent).
pub fn running(p: &Proxy) -> bool {
    let zombie = || {
        std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .unwrap_or(true)
    };
    p.pid > 0 && crate::state::process_start_time(p.pid) == Some(p.start_time) && !zombie()
}

/// End the recorded proxy (SIGTERM, SIGKILL after 3 s) if it is still that process.
pub fn stop(p: &Proxy) {
    crate::state::end_recorded_process(p.pid, p.start_time);
}

/// The proxy process (`husk network proxy RECORD PROTO TARGET`): relays what its standard
/// input, a bound socket, receives to `to`, until it is ended or `record` is gone.
pub fn run(record: &Path, proto: &str, to: &str) -> Result<()> {
    let to: SocketAddr = to
        .parse()
        .with_context(|| format!("proxy target {to:?}: expected [IPv6]:PORT"))?;
    let sock = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("the proxy's socket (standard input)")?;
    let rec = record.to_path_buf();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if !rec.exists() {
            std::process::exit(0);
        }
    });
    match proto {
        "tcp" => tcp(TcpListener::from(sock), to),
        "udp" => udp(UdpSocket::from(sock), to),
        p => bail!("proxy protocol {p:?}: expected tcp or udp"),
    }
}

fn tcp(l: TcpListener, to: SocketAddr) -> Result<()> {
    l.local_addr()
        .context("the proxy's standard input is not a listening socket")?;
    for c in l.incoming() {
        let Ok(c) = c else {
            // out of descriptors, say: not a busy loop
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        std::thread::spawn(move || {
            let Ok(u) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
                return;
            };
            let (Ok(mut c2), Ok(mut u2)) = (c.try_clone(), u.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            let (mut u, mut c) = (u, c);
            let _ = std::io::copy(&mut u, &mut c);
            let _ = c.shutdown(std::net::Shutdown::Write);
            let _ = up.join();
        });
    }
    Ok(())
}

/// Each client address gets a socket of its own towards the container (so replies find it),
/// dropped after a minute without a reply.
fn udp(s: UdpSocket, to: SocketAddr) -> Result<()> {
    let s = Arc::new(s);
    let peers: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = s.recv_from(&mut buf).context("proxy: receive")?;
        let known = peers.lock().expect("peers").get(&from).cloned();
        let up = match known {
            Some(u) => u,
            None => {
                let Ok(u) = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)) else {
                    continue;
                };
                if u.connect(to).is_err() {
                    continue;
                }
                let _ = u.set_read_timeout(Some(Duration::from_secs(60)));
                let u = Arc::new(u);
                peers.lock().expect("peers").insert(from, u.clone());
                let (s, u2, peers) = (s.clone(), u.clone(), peers.clone());
                std::thread::spawn(move || {
                    let mut b = vec![0u8; 65536];
                    while let Ok(k) = u2.recv(&mut b) {
                        let _ = s.send_to(&b[..k], from);
                    }
                    peers.lock().expect("peers").remove(&from);
                });
                u
            }
        };
        let _ = up.send(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::parse_one;
    use std::io::Read;

    #[test]
    fn ports_answering_on_the_loopback() {
        let ms: Vec<PortMapping> = [
            "8080:80",
            "[::]:8081:80",
            "[::1]:8082:80/udp",
            "127.0.0.1:8083:80",
            "0.0.0.0:8084:80",
            "[fd00::1]:8085:80",
            "8086:80/sctp",
        ]
        .iter()
        .map(|s| parse_one(s).unwrap())
        .collect();
        let w: Vec<u16> = wanted(&ms).iter().map(|m| m.host_port).collect();
        assert_eq!(w, [8080, 8081, 8082]);
    }

    /// In a network namespace whose `lo` is down (no `::1`): no proxy, and no error.
    #[test]
    fn no_proxy_without_the_loopback() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP no_proxy_without_the_loopback: needs root");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let m = parse_one("18430:80").unwrap();
            let p = start(
                "n",
                Path::new("/nonexistent"),
                &m,
                "fd00::2".parse().unwrap(),
            );
            assert_eq!(p.unwrap(), None);
        })
        .join()
        .unwrap();
    }

    /// A proxy of this process's own making (its loop on a thread): tcp and udp relayed to
    /// servers on the loopback, both ways.
    #[test]
    fn relays_both_ways() {
        let Ok(server) = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) else {
            eprintln!("SKIP relays_both_ways: no IPv6 loopback here");
            return;
        };
        let to = server.local_addr().unwrap();
        let front = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let at = front.local_addr().unwrap();
        std::thread::spawn(move || tcp(front, to));
        std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            std::io::Write::write_all(&mut c, &[b"re:", &b[..]].concat()).unwrap();
        });
        let mut c = TcpStream::connect(at).unwrap();
        std::io::Write::write_all(&mut c, b"ping").unwrap();
        let mut got = String::new();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "re:ping");

        let echo = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let to = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            while let Ok((n, from)) = echo.recv_from(&mut b) {
                let _ = echo.send_to(&[b"echo:", &b[..n]].concat(), from);
            }
        });
        let front = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let at = front.local_addr().unwrap();
        std::thread::spawn(move || udp(front, to));
        let c = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", at).unwrap();
        let mut b = [0u8; 64];
        let (n, from) = c.recv_from(&mut b).unwrap();
        assert_eq!((&b[..n], from), (&b"echo:ping"[..], at));
    }
}
