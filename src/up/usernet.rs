//! User-mode networking for `husk up` run by a caller without root, as rootless podman: the
//! container's network namespace gets its outbound connections and its published ports from a
//! helper process, pasta (package passt; preferred, as podman 5) or slirp4netns (the fallback),
//! which makes a tap device in it and moves the traffic through sockets of the caller's own
//! network namespace. The host's loopback is reached at pasta's gateway address (`--map-gw`,
//! pasta's default) or at slirp4netns's 10.0.2.2.
//!
//! The namespaces come first, as podman makes them before the runtime runs: the container's
//! init is not dumpable from its start, so a process of the caller's, without CAP_SYS_PTRACE,
//! may not open its `/proc/PID/ns` files. A [`Holder`] (a child of `husk up`'s, dumpable) makes
//! a user namespace mapping the caller's ids to 0, as the rootless config does (with `--userns
//! keep-id|nomap` the container's own maps instead, recorded in the bundle), and a network
//! namespace in it; the helper joins them, the config's `user` and `network` namespaces name
//! them by path, and once the runtime has created the container in them the holder exits.
//!
//! The container's resolv.conf names the helper's DNS forwarder ([`Helper::dns_forwarder`]:
//! pasta's `--dns-forward 169.254.1.1`, slirp4netns's 10.0.2.3; with IPv6 through pasta its
//! IPv6 one too, [`Helper::dns_forwarders`]) unless `--dns` names others, as rootless podman's:
//! the forwarder sends from the caller's network namespace, where a resolver on the host's
//! loopback is reachable.
//!
//! The helper is tied to the container's run: it is a child of the process that runs the
//! container (the foreground `husk up`, the monitor), started in the foreground (pasta's
//! `--foreground`; slirp4netns does not daemonize) with the kernel's parent death signal, so it
//! dies with that process however it ends — a SIGKILL before the helper was recorded, or of the
//! monitor while the container runs. Its pid and start time are recorded in the bundle
//! ([`RECORD`]) as soon as it is spawned, and [`stop`] ends it by pid (checked against its start
//! time) when the container exits, on `husk rm` and on `husk restart`. Only a companion runs
//! these tools; the runtime never does.

use crate::network::ports::PortMapping;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The helper's pid and start time, in the bundle while it runs.
pub const RECORD: &str = "network-helper.json";
/// The helper's stderr (its errors, read back when it fails).
const LOG: &str = "network-helper.log";
/// pasta's pid file.
const PIDFILE: &str = "pasta.pid";
/// slirp4netns's API socket (relative to the bundle: slirp4netns runs there).
const API_SOCKET: &str = "slirp4netns.sock";

/// pasta's IPv6 DNS forwarder (its second `--dns-forward`): an address of RFC 6666's
/// discard-only prefix `100::/64`, which no network uses and no router forwards, so it is never
/// a real host's and a query sent there reaches nobody but pasta; routed to pasta's tap by the
/// container's IPv6 default route. (An `fe80::` one would need the interface's name in
/// resolv.conf.)
pub const PASTA_DNS6: &str = "100::53";

/// True when the routing table `ipv6_route` (`/proc/net/ipv6_route`'s text) has an IPv6 default
/// route out of an interface (not `lo`, not unreachable) that has a global address in `if_inet6`
/// (`/proc/net/if_inet6`'s text): what pasta needs to give the container IPv6.
fn namespace_has_ipv6(ipv6_route: &str, if_inet6: &str) -> bool {
    let defaults = crate::network::default_route6_devices(ipv6_route);
    // (address, index, prefix length, scope, flags, device); scope 00: global
    if_inet6.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 6 && f[3] == "00" && defaults.contains(&f[5])
    })
}

/// True when `resolv_conf` names an IPv6 nameserver.
fn has_ipv6_resolver(resolv_conf: &str) -> bool {
    crate::network::dns::nameservers(resolv_conf)
        .iter()
        .any(|a| {
            a.split('%')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        })
}

/// Which program gives the container its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Helper {
    Pasta,
    Slirp4netns,
}

impl Helper {
    pub fn name(self) -> &'static str {
        match self {
            Helper::Pasta => "pasta",
            Helper::Slirp4netns => "slirp4netns",
        }
    }

    /// The address the container's resolv.conf names (unless `--dns` names others), as rootless
    /// podman's: pasta forwards DNS queries sent there (`--dns-forward`) to the host's first
    /// resolver, slirp4netns's built-in forwarder answers at 10.0.2.3. Both send from the
    /// caller's network namespace, so a resolver on the host's loopback (127.0.0.1, systemd-
    /// resolved's stub) is reached too, which the container's own namespace could not.
    pub fn dns_forwarder(self) -> &'static str {
        match self {
            Helper::Pasta => "169.254.1.1",
            Helper::Slirp4netns => "10.0.2.3",
        }
    }

    /// The nameservers of the container's resolv.conf (unless `--dns` names others): the
    /// [`Helper::dns_forwarder`], and for pasta also its IPv6 forwarder ([`PASTA_DNS6`]) when the
    /// container gets IPv6 (pasta copies the IPv6 address and default route of the caller's
    /// namespace: [`namespace_has_ipv6`]) and the host has an IPv6 resolver, where pasta sends
    /// what arrives there (the first IPv6 `nameserver` of `/etc/resolv.conf`, which pasta reads;
    /// without one its replies never come back). slirp4netns's only forwarder is IPv4.
    pub fn dns_forwarders(self) -> Vec<String> {
        let mut v = vec![self.dns_forwarder().to_string()];
        if self == Helper::Pasta {
            let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
            let has6 =
                namespace_has_ipv6(&read("/proc/net/ipv6_route"), &read("/proc/net/if_inet6"));
            if has6 && has_ipv6_resolver(&read("/etc/resolv.conf")) {
                v.push(PASTA_DNS6.to_string());
            }
        }
        v
    }

    fn package(self) -> &'static str {
        match self {
            Helper::Pasta => "passt",
            Helper::Slirp4netns => "slirp4netns",
        }
    }
}

/// The helper to use and its path: `asked`, or pasta when installed, else slirp4netns. Refused
/// for a caller with root in the initial user namespace; refused, naming the program and its
/// package, when it is not in `$PATH`, and when `/dev/net/tun`, which both open for the
/// container's tap device, is not open to the caller.
pub fn choose(flag: &str, asked: Option<Helper>) -> Result<(Helper, PathBuf)> {
    if crate::up::caller_is_root() {
        // (pasta drops to nobody before it opens the namespaces of root's process)
        bail!(
            "{flag} {}: user-mode networking is for a caller without root; root's containers \
             use husk's networks (the default network, or --network NAME)",
            asked.map_or("pasta", Helper::name)
        );
    }
    let find = |h: Helper| crate::rootless::find_id_map_tool(h.name()).map(|p| (h, p));
    let (helper, path) = match asked {
        Some(h) => find(h).ok_or_else(|| {
            anyhow!(
                "{flag}: {} is not installed (package {}) or not in $PATH",
                h.name(),
                h.package()
            )
        })?,
        None => find(Helper::Pasta)
            .or_else(|| find(Helper::Slirp4netns))
            .ok_or_else(|| {
                anyhow!(
                    "{flag}: the network of a container of a user without root needs pasta \
                     (package passt) or slirp4netns, and neither is installed or in $PATH \
                     (--network none runs it with loopback only)"
                )
            })?,
    };
    let rw = nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK;
    if let Err(e) = nix::unistd::access("/dev/net/tun", rw) {
        bail!(
            "{flag}: {} needs /dev/net/tun readable and writable by you ({e}; udev's rule \
             makes it mode 0666)",
            helper.name()
        );
    }
    Ok((helper, path))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    helper: Helper,
    pid: i32,
    start_time: u64,
}

/// Each published port free now on the host (the helper binds it next): a clear error naming
/// the port rather than the helper's.
fn check_ports(ports: &[PortMapping]) -> Result<()> {
    for m in ports {
        let ip = m
            .host_ip
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let at = std::net::SocketAddr::from((ip, m.host_port));
        let bound = match m.protocol.as_str() {
            "udp" => std::net::UdpSocket::bind(at).map(drop),
            _ => std::net::TcpListener::bind(at).map(drop),
        };
        match bound {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                bail!(
                    "-p {m}: host port {}/{} is already in use",
                    m.host_port,
                    m.protocol
                )
            }
            Err(e) => return Err(e).with_context(|| format!("-p {m}: bind the host port")),
        }
    }
    Ok(())
}

/// Make `cmd`'s process get SIGKILL when this one ends, however it ends (the kernel's parent
/// death signal, which the helpers keep: they only join namespaces their caller owns and drop
/// capabilities), so that a helper never outlives the `husk up` or monitor that runs its
/// container: a SIGKILL of either between the spawn and the record, or while the container
/// runs, leaves no helper to find.
fn dies_with_this_process(cmd: &mut Command) {
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: the closure runs in the forked child before exec; it calls only prctl and
    // getppid (async-signal-safe) and allocates nothing (its error is a raw errno).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // this process already gone before the signal was asked for
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Start `helper` (at `bin`) in the user and network namespaces of `pid`, forwarding `ports` from
/// the caller's network namespace, as a child of this process that dies with it. Recorded in
/// `bundle` as soon as it is spawned (so `stop` finds it from then on); returns once it is ready.
/// On failure nothing of it is left and the error carries what the helper said.
fn start(bundle: &Path, helper: Helper, bin: &Path, pid: i32, ports: &[PortMapping]) -> Result<()> {
    check_ports(ports)?;
    let log_path = bundle.join(LOG);
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let what = || format!("{} ({})", helper.name(), bin.display());
    let said = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Failed to send"))
            .collect();
        lines.join("; ")
    };
    let mut cmd = Command::new(bin);
    cmd.current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // out of the caller's process group: a terminal's ^C goes to the container, not to it
        .process_group(0);
    dies_with_this_process(&mut cmd);
    let pidfile = bundle.join(PIDFILE);
    // the ready pipe of slirp4netns: its write end is inherited (no CLOEXEC), ours is not
    let ready_pipe = match helper {
        Helper::Pasta => {
            let _ = std::fs::remove_file(&pidfile);
            let mut tcp: Vec<String> = Vec::new();
            let mut udp: Vec<String> = Vec::new();
            for m in ports {
                let spec = match m.host_ip {
                    Some(ip) => format!("{ip}/{}:{}", m.host_port, m.container_port),
                    None => format!("{}:{}", m.host_port, m.container_port),
                };
                if m.protocol == "udp" {
                    &mut udp
                } else {
                    &mut tcp
                }
                .push(spec);
            }
            // in the foreground (a daemon would not die with this process): it writes its pid
            // file once the namespace is set up and the ports are bound
            cmd.args([
                "--config-net",
                "--quiet",
                "--foreground",
                "-T",
                "none",
                "-U",
                "none",
            ])
            // both families: pasta ignores the IPv6 one when it gives no IPv6
            .args(["--dns-forward", helper.dns_forwarder()])
            .args(["--dns-forward", PASTA_DNS6]);
            for (flag, specs) in [("-t", &tcp), ("-u", &udp)] {
                if specs.is_empty() {
                    cmd.args([flag, "none"]);
                }
                for s in specs {
                    cmd.args([flag, s]);
                }
            }
            cmd.arg("--pid").arg(&pidfile).arg(pid.to_string());
            None
        }
        Helper::Slirp4netns => {
            let (ready_r, ready_w) = nix::unistd::pipe().context("pipe")?;
            nix::fcntl::fcntl(
                &ready_r,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .context("FD_CLOEXEC")?;
            let _ = std::fs::remove_file(bundle.join(API_SOCKET));
            // (its DNS forwarder at 10.0.2.3 is on by default)
            cmd.args(["--configure", "--mtu=65520"]);
            // a port on an IPv6 host address needs its IPv6 (a slirp4netns whose add_hostfwd
            // takes one: see add_hostfwd)
            if ports
                .iter()
                .any(|m| m.host_ip.is_some_and(|ip| ip.is_ipv6()))
            {
                cmd.arg("--enable-ipv6");
            }
            cmd.arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
                .args(["--api-socket", API_SOCKET])
                .arg(format!("--userns-path=/proc/{pid}/ns/user"))
                .arg("--netns-type=path")
                .arg(format!("/proc/{pid}/ns/net"))
                .arg("tap0");
            Some((ready_r, ready_w))
        }
    };
    let mut child = cmd.spawn().with_context(|| format!("run {}", what()))?;
    let child_pid = child.id() as i32;
    let rec = Record {
        helper,
        pid: child_pid,
        start_time: crate::state::process_start_time(child_pid).unwrap_or(0),
    };
    let fail = |child: &mut std::process::Child, e: anyhow::Error| -> anyhow::Error {
        let _ = child.kill();
        let _ = child.wait();
        for f in [RECORD, API_SOCKET, PIDFILE] {
            let _ = std::fs::remove_file(bundle.join(f));
        }
        e
    };
    let path = bundle.join(RECORD);
    let saved = serde_json::to_vec(&rec)
        .map_err(anyhow::Error::from)
        .and_then(|b| crate::state::write_atomic(&path, &b, 0o600));
    if let Err(e) = saved {
        return Err(fail(&mut child, e));
    }
    crate::fault::step("usernet: helper spawned");
    match ready_pipe {
        None => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => {
                        let e = anyhow!("{} failed ({st}): {}", what(), said());
                        return Err(fail(&mut child, e));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(fail(&mut child, anyhow!("wait for {}: {e}", what()))),
                }
                let written = std::fs::read_to_string(&pidfile)
                    .is_ok_and(|t| t.trim().parse::<i32>().is_ok_and(|p| p > 0));
                if written {
                    break;
                }
                if std::time::Instant::now() >= deadline {
                    let e = anyhow!("{} was not ready within 10 s: {}", what(), said());
                    return Err(fail(&mut child, e));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let _ = std::fs::remove_file(&pidfile);
        }
        Some((ready_r, ready_w)) => {
            drop(ready_w);
            let mut got = [0u8; 1];
            let ready = wait_readable(ready_r.as_fd(), 10_000)
                && std::fs::File::from(ready_r).read(&mut got).unwrap_or(0) == 1;
            if !ready {
                let _ = child.kill();
                let st = child.wait();
                let e = anyhow!(
                    "{} did not become ready ({}): {}",
                    what(),
                    st.map_or_else(|e| e.to_string(), |s| s.to_string()),
                    said()
                );
                return Err(fail(&mut child, e));
            }
            let forwarded = ports
                .iter()
                .try_for_each(|m| add_hostfwd(bundle, m).with_context(|| format!("-p {m}")));
            if let Err(e) = forwarded {
                return Err(fail(&mut child, e));
            }
        }
    }
    crate::fault::step("usernet: helper ready");
    Ok(())
}

/// A child process holding a new user namespace (the caller's uid and gid as 0, setgroups
/// denied, as a rootless runtime makes it; or the maps of `--userns keep-id|nomap`, written by
/// newuidmap and newgidmap) and a network namespace owned by it, until dropped.
pub struct Holder {
    pid: nix::unistd::Pid,
    ended: bool,
}

impl Holder {
    /// `maps`: the container's own (`--userns keep-id|nomap`); without, the caller's ids as 0.
    pub fn new(maps: Option<&super::userns::Maps>) -> Result<Holder> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        // (with maps: the child's user namespace is made, then husk up maps it, then it goes on)
        let (unshared_r, unshared_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let (mapped_r, mapped_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let parent = nix::unistd::getpid();
        let helpers = maps.is_some();
        // SAFETY: husk up runs no other thread; the child only makes its namespaces, writes
        // its own /proc files and pipes, and leaves by _exit.
        match unsafe { nix::unistd::fork() }.context("fork the namespace holder")? {
            nix::unistd::ForkResult::Child => {
                drop((ready_r, unshared_r, mapped_w));
                let made = (|| -> std::io::Result<()> {
                    use nix::sched::CloneFlags;
                    nix::sched::unshare(CloneFlags::CLONE_NEWUSER)?;
                    if helpers {
                        nix::unistd::write(&unshared_w, b"u")?;
                        let mut b = [0u8; 1];
                        if nix::unistd::read(&mapped_r, &mut b)? != 1 {
                            return Err(std::io::Error::other("not mapped"));
                        }
                    } else {
                        std::fs::write("/proc/self/setgroups", "deny")?;
                        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
                        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
                    }
                    nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
                    // gone with husk up, should it die before it ends this
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                    if nix::unistd::getppid() != parent {
                        return Err(std::io::Error::other("husk up is gone"));
                    }
                    Ok(())
                })();
                if made.is_ok() {
                    let _ = nix::unistd::write(&ready_w, b"1");
                    // until husk up kills it (processes forked meanwhile, the container's init
                    // among them, may hold any pipe of husk up's: no end of file to wait for)
                    loop {
                        nix::unistd::pause();
                    }
                }
                // SAFETY: _exit in the forked child: no destructor or atexit handler of the
                // parent's runs twice.
                unsafe { libc::_exit(i32::from(made.is_err())) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop((ready_w, unshared_w, mapped_r));
                let mut h = Holder {
                    pid: child,
                    ended: false,
                };
                if let Some((u, g)) = maps {
                    let mut got = [0u8; 1];
                    let unshared = wait_readable(unshared_r.as_fd(), 10_000)
                        && std::fs::File::from(unshared_r).read(&mut got).unwrap_or(0) == 1;
                    if !unshared {
                        h.end();
                        bail!(
                            "a user namespace for the container's network namespace could not \
                             be made (unprivileged user namespaces refused?)"
                        );
                    }
                    if let Err(e) = crate::image::userns::write_maps(child.as_raw(), u, g) {
                        h.end();
                        return Err(e.context(
                            "map the container's user namespace (/etc/subuid, /etc/subgid)",
                        ));
                    }
                    let _ = std::fs::File::from(mapped_w).write_all(b"m");
                } else {
                    drop((unshared_r, mapped_w));
                }
                let mut got = [0u8; 1];
                let ready = wait_readable(ready_r.as_fd(), 10_000)
                    && std::fs::File::from(ready_r).read(&mut got).unwrap_or(0) == 1;
                if !ready {
                    h.end();
                    match maps {
                        None => bail!(
                            "a user namespace mapping uid {uid} and gid {gid} to 0, and a \
                             network namespace in it, could not be made (unprivileged user \
                             namespaces refused?)"
                        ),
                        Some(_) => bail!(
                            "a network namespace in the container's user namespace could not \
                             be made"
                        ),
                    }
                }
                Ok(h)
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            // (our child, not yet waited for: the pid is its own)
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }

    /// The bundle's config made to join the holder's user and network namespaces by path
    /// (without id mappings of its own: the namespace has them).
    pub fn join_in_config(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join("config.json");
        let text = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let mut v: serde_json::Value =
            serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))?;
        let pid = self.pid();
        let mut ns: Vec<serde_json::Value> = v["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ns.retain(|n| n["type"] != "user" && n["type"] != "network");
        ns.insert(
            0,
            serde_json::json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}),
        );
        ns.push(serde_json::json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
        v["linux"]["namespaces"] = serde_json::Value::Array(ns);
        if let Some(l) = v["linux"].as_object_mut() {
            l.remove("uidMappings");
            l.remove("gidMappings");
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("write {}", path.display()))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.end();
    }
}

/// Make the namespaces of a run of the container in `bundle` (a [`Holder`], named in its
/// config), and start `helper` in them, a child of this process that dies with it. The helper is
/// recorded in the bundle; the caller drops the holder once the container was created (or
/// failed to be), and runs [`stop`] when it exits.
pub fn prepare(bundle: &Path, helper: Helper, bin: &Path, ports: &[PortMapping]) -> Result<Holder> {
    // (a container of --userns keep-id or nomap: its own maps, recorded in the bundle)
    let maps = super::userns::load_maps(bundle)?;
    let holder = Holder::new(maps.as_ref())?;
    holder.join_in_config(bundle)?;
    start(bundle, helper, bin, holder.pid(), ports)?;
    Ok(holder)
}

/// Whether `fd` becomes readable within `ms` milliseconds (EOF counts).
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, ms: u16) -> bool {
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    loop {
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(n) => return n > 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// slirp4netns's `add_hostfwd` over its API socket (reached through the bundle's fd: a store
/// path may be longer than a socket address allows).
fn add_hostfwd(bundle: &Path, m: &PortMapping) -> Result<()> {
    let dir = std::fs::File::open(bundle).with_context(|| format!("open {}", bundle.display()))?;
    let sock = format!("/proc/self/fd/{}/{API_SOCKET}", dir.as_raw_fd());
    let mut s = std::os::unix::net::UnixStream::connect(&sock)
        .with_context(|| format!("connect to slirp4netns's API socket {API_SOCKET}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let req = serde_json::json!({"execute": "add_hostfwd", "arguments": {
        "proto": m.protocol,
        "host_addr": m
            .host_ip
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
            .to_string(),
        "host_port": m.host_port,
        "guest_port": m.container_port,
    }});
    s.write_all(&serde_json::to_vec(&req)?)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    s.take(64 * 1024).read_to_end(&mut reply)?;
    let v: serde_json::Value = serde_json::from_slice(&reply).with_context(|| {
        format!(
            "slirp4netns's reply to add_hostfwd: {:?}",
            String::from_utf8_lossy(&reply)
        )
    })?;
    if let Some(e) = v.get("error") {
        let desc = e["desc"].as_str().unwrap_or("(no description)");
        if let Some(ip @ std::net::IpAddr::V6(_)) = m.host_ip {
            if desc.contains("host_addr") {
                // slirp4netns up to 1.2 reads host_addr as IPv4 only
                bail!(
                    "slirp4netns cannot forward a host port on an IPv6 address: its \
                     add_hostfwd refused host_addr {ip} ({desc}); use pasta (package passt, \
                     --network pasta) or an IPv4 host address"
                );
            }
        }
        bail!(
            "slirp4netns could not forward host port {}/{}: {desc}",
            m.host_port,
            m.protocol,
        );
    }
    Ok(())
}

/// End the recorded helper (SIGTERM, SIGKILL after 3 s) if it is still that process.
fn end(rec: &Record) {
    crate::state::end_recorded_process(rec.pid, rec.start_time);
}

/// End the helper recorded in `bundle`, if any (one stat when there is none), and remove what
/// it left there.
pub fn stop(bundle: &Path) -> Result<()> {
    let path = bundle.join(RECORD);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    if let Ok(rec) = serde_json::from_slice::<Record>(&bytes) {
        end(&rec);
    }
    for f in [API_SOCKET, PIDFILE, LOG, RECORD] {
        match std::fs::remove_file(bundle.join(f)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("remove {}", bundle.join(f).display()))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_record() {
        assert_eq!(Helper::Pasta.name(), "pasta");
        assert_eq!(Helper::Slirp4netns.package(), "slirp4netns");
        let r = Record {
            helper: Helper::Slirp4netns,
            pid: 7,
            start_time: 9,
        };
        let t = serde_json::to_string(&r).unwrap();
        assert_eq!(t, r#"{"helper":"slirp4netns","pid":7,"startTime":9}"#);
        // a record of another process (start time differs) is never signalled
        let other = Record {
            helper: Helper::Pasta,
            pid: std::process::id() as i32,
            start_time: 1,
        };
        end(&other);
    }

    #[test]
    fn ipv6_of_the_namespace_and_resolvers() {
        // a default route via eth0 (flags 0003: up, gateway), eth0 with a global address
        let routes = "\
fd000231000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000231000000000000000000000001 00000400 00000001 00000000 00000003 eth0
";
        let global = "fd000231000000000000000000000002 02 40 00 80 eth0\n\
                      fe800000000000000000000000000001 02 40 20 80 eth0\n";
        assert!(namespace_has_ipv6(routes, global));
        // only link-local there, or the global address elsewhere
        let link = "fe800000000000000000000000000001 02 40 20 80 eth0\n";
        assert!(!namespace_has_ipv6(routes, link));
        let other = "fd000231000000000000000000000002 03 40 00 80 eth1\n";
        assert!(!namespace_has_ipv6(routes, other));
        // no default route, or an unreachable one (flags 0200 | 0001) on lo
        let unreachable =
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            00000000000000000000000000000000 ffffffff 00000001 00000000 00200201 lo\n";
        assert!(!namespace_has_ipv6(
            &routes[..routes.find("\n").unwrap() + 1],
            global
        ));
        assert!(!namespace_has_ipv6(unreachable, global));
        assert!(!namespace_has_ipv6("", ""));

        assert!(has_ipv6_resolver(
            "search x\nnameserver 10.0.0.1\nnameserver ::1\n"
        ));
        assert!(has_ipv6_resolver("nameserver fe80::1%eth0\n"));
        assert!(!has_ipv6_resolver("nameserver 127.0.0.53\noptions edns0\n"));
        assert!(!has_ipv6_resolver("# nameserver ::1\nnameserver\n"));
    }

    #[test]
    fn stop_without_record_is_nothing() {
        let d = tempfile::tempdir().unwrap();
        stop(d.path()).unwrap();
        std::fs::write(d.path().join(RECORD), b"not json").unwrap();
        stop(d.path()).unwrap();
        assert!(!d.path().join(RECORD).exists());
    }
}
