//! `husk network`: CNI networks, attach/detach, published ports (root).
//!
//! Every test makes its own network namespace (`ip netns add`) and runs husk's network commands
//! in it through `nsenter --net` (the mount namespace stays the host's, so the pins husk makes
//! outlive the command). Bridges, veths, addresses, routes and firewall rules only ever exist in
//! that namespace, which is deleted on drop, failure or not; the traffic goes to its loopback and
//! to the test's own containers. After every detach and at the end, the namespace must hold no
//! extra link, address, route, iptables rule, host-local allocation, pin or record.

mod common;

use common::*;
use serde_json::Value;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Two root tests of one body `$body(driver)`: `$native` with the native driver (None),
/// `$plugins` through the CNI plugins husk's list names (`Some("plugins")`); each keeps its own
/// name, so a summary says which driver failed.
macro_rules! by_each_driver {
    ($(#[$n:meta])* $native:ident, $(#[$p:meta])* $plugins:ident, $body:ident) => {
        $(#[$n])*
        #[test]
        fn $native() {
            root_or_skip!(stringify!($native));
            $body(None);
        }

        $(#[$p])*
        #[test]
        fn $plugins() {
            root_or_skip!(stringify!($plugins));
            $body(Some("plugins"));
        }
    };
}

static NS_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace and the network dirs of one test.
struct TestNet {
    ns: String,
    dir: PathBuf,
    cni_path: String,
    timeout: Option<String>,
    /// HUSK_NETWORK_DRIVER for husk's commands (None: the default, native).
    driver: Option<&'static str>,
}

impl TestNet {
    fn new(tag: &str) -> TestNet {
        let ns = format!(
            "hk-{tag}-{}-{}",
            std::process::id(),
            NS_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {ns}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("husk-net-{tag}-"))
            .tempdir()
            .unwrap()
            .keep();
        let t = TestNet {
            ns,
            dir,
            cni_path: "/usr/lib/cni".into(),
            timeout: None,
            driver: None,
        };
        for d in ["conf", "cni", "run", "bin"] {
            std::fs::create_dir_all(t.dir.join(d)).unwrap();
        }
        let o = t.ip(&["link", "set", "lo", "up"]);
        assert!(o.status.success());
        t
    }

    fn ip(&self, args: &[&str]) -> Output {
        let mut c = Command::new("ip");
        c.arg("-n").arg(&self.ns).args(args);
        run_timeout(&mut c, CMD_TIMEOUT)
    }

    /// A command run in the namespace (network only).
    fn in_ns(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns)).arg(prog);
        c
    }

    /// `husk [--root ROOT] network ARGS` in the namespace.
    fn husk(&self, root: Option<&Path>, args: &[&str]) -> Output {
        let mut c = self.husk_command(root, args);
        run_timeout(&mut c, Duration::from_secs(90))
    }

    /// [`TestNet::husk`] with more environment.
    fn husk_env(&self, root: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.husk_command(root, args);
        c.envs(env.iter().copied());
        run_timeout(&mut c, Duration::from_secs(90))
    }

    /// The command of [`TestNet::husk`], not started.
    fn husk_command(&self, root: Option<&Path>, args: &[&str]) -> Command {
        let mut c = self.in_ns(runtime().to_str().unwrap());
        if let Some(r) = root {
            c.arg("--root").arg(r);
        }
        c.arg("network")
            .args(args)
            .env("HUSK_NETWORK_DIR", self.dir.join("conf"))
            .env("HUSK_CNI_CONFIG_DIR", self.dir.join("cni"))
            .env("HUSK_NETWORK_RUN_DIR", self.dir.join("run"))
            .env("CNI_PATH", &self.cni_path);
        if let Some(t) = &self.timeout {
            c.env("HUSK_CNI_TIMEOUT", t);
        }
        if let Some(d) = self.driver {
            c.env("HUSK_NETWORK_DRIVER", d);
        }
        c
    }

    /// `husk --root ROOT delete --force ID` of container `c` in the namespace, with the network
    /// run dir (its attachments are released there); it must succeed.
    fn delete_force(&self, c: &Ctr) {
        let mut d = self.in_ns(runtime().to_str().unwrap());
        d.arg("--root")
            .arg(&c.root)
            .args(["delete", "--force", &c.id])
            .env("HUSK_NETWORK_RUN_DIR", self.dir.join("run"))
            .env("CNI_PATH", &self.cni_path);
        let o = run_timeout(&mut d, CMD_TIMEOUT);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }

    fn husk_ok(&self, root: Option<&Path>, args: &[&str]) -> String {
        let o = self.husk(root, args);
        assert!(
            o.status.success(),
            "husk network {args:?} failed: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// The error of a command that must fail.
    fn husk_err(&self, root: Option<&Path>, args: &[&str]) -> String {
        let o = self.husk(root, args);
        assert_eq!(
            code(&o.status),
            1,
            "husk network {args:?} should fail: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stderr)
    }

    /// The iptables and ip6tables rules of the namespace (`-A ...`).
    fn iptables_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        for save in ["iptables-save", "ip6tables-save"] {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.ns, save]);
            let o = run_timeout(&mut c, CMD_TIMEOUT);
            assert!(o.status.success(), "{save}: {}", text(&o.stderr));
            rules.extend(
                text(&o.stdout)
                    .lines()
                    .filter(|l| l.starts_with("-A"))
                    .map(String::from),
            );
        }
        rules
    }

    /// IPv6 on in the namespace (a host that turns it off for new namespaces has it off here).
    fn enable_ipv6(&self) {
        for key in [
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.default.disable_ipv6=0",
            "net.ipv6.conf.lo.disable_ipv6=0",
        ] {
            let mut c = self.in_ns("sysctl");
            c.args(["-qw", key]);
            let o = run_timeout(&mut c, CMD_TIMEOUT);
            assert!(o.status.success(), "sysctl {key}: {}", text(&o.stderr));
        }
    }

    /// The nftables tables of the namespace (`family name`).
    fn nft_tables(&self) -> Vec<String> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "nft", "list", "tables"]);
        let o = run_timeout(&mut c, CMD_TIMEOUT);
        assert!(o.status.success(), "nft list tables: {}", text(&o.stderr));
        text(&o.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("table "))
            .map(String::from)
            .collect()
    }

    /// Every firewall rule of the namespace, iptables' and nftables' (the native driver's
    /// tables), as text.
    fn firewall(&self) -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "nft", "list", "ruleset"]);
        let o = run_timeout(&mut c, CMD_TIMEOUT);
        assert!(o.status.success(), "nft list ruleset: {}", text(&o.stderr));
        format!("{}\n{}", self.iptables_rules().join("\n"), text(&o.stdout))
    }

    /// What must be gone once nothing is attached: the caller names the container ids and
    /// addresses that were used, and whether bridges may remain (a network still exists).
    fn leaks(&self, ids: &[&str], ips: &[String], bridges_ok: bool) -> Vec<String> {
        let mut l = Vec::new();
        let links = text(&self.ip(&["-o", "link", "show"]).stdout);
        for line in links.lines() {
            let name = line.split(':').nth(1).unwrap_or("").trim();
            let name = name.split('@').next().unwrap_or(name);
            if name == "lo" || (bridges_ok && name.starts_with("husk")) {
                continue;
            }
            l.push(format!("link {name}"));
        }
        // both families: an IPv6 address of a detached container must be gone as well
        let addrs = text(&self.ip(&["-o", "addr", "show"]).stdout);
        for line in addrs.lines() {
            let dev = line.split_whitespace().nth(1).unwrap_or("");
            if dev != "lo" && !(bridges_ok && dev.starts_with("husk")) {
                l.push(format!("address {line}"));
            }
            for ip in ips {
                if line.contains(&format!(" {ip}/")) {
                    l.push(format!("container address {line}"));
                }
            }
        }
        let mut routes = text(&self.ip(&["-4", "route", "show", "table", "all"]).stdout);
        routes.push_str(&text(
            &self.ip(&["-6", "route", "show", "table", "all"]).stdout,
        ));
        for line in routes.lines() {
            let dev_ok = line.contains("dev lo")
                || (bridges_ok && line.split_whitespace().any(|w| w.starts_with("husk")));
            if !dev_ok {
                l.push(format!("route {line}"));
            }
        }
        // the plugins' shared chains stay (they never remove them); per-container ones must go
        const SHARED: &[&str] = &[
            "CNI-FORWARD",
            "CNI-ADMIN",
            "CNI-HOSTPORT-DNAT",
            "CNI-HOSTPORT-MASQ",
            "CNI-HOSTPORT-SETMARK",
        ];
        for r in self.iptables_rules() {
            let per_container = r
                .split(|c: char| c.is_whitespace() || c == '"')
                .any(|w| w.starts_with("CNI-") && !SHARED.contains(&w));
            let named = ids.iter().any(|i| r.contains(i))
                || ips
                    .iter()
                    .any(|ip| r.contains(&format!("{ip}/")) || r.contains(&format!("{ip} ")));
            if per_container || named {
                l.push(format!("iptables {r}"));
            }
        }
        for tb in self.nft_tables() {
            if tb.starts_with("ip husk-") || tb.starts_with("ip6 husk-") {
                l.push(format!("nftables table {tb}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.dir.join("run/ipam")) {
            for net in rd.flatten() {
                for f in std::fs::read_dir(net.path()).unwrap().flatten() {
                    let n = f.file_name().to_string_lossy().into_owned();
                    if n != "lock" && !n.starts_with("last_reserved_ip") {
                        l.push(format!("host-local allocation {}", f.path().display()));
                    }
                }
            }
        }
        for sub in ["netns", "attachments"] {
            if let Ok(rd) = std::fs::read_dir(self.dir.join("run").join(sub)) {
                for e in rd.flatten() {
                    l.push(format!("{sub} {}", e.path().display()));
                }
            }
        }
        for m in mounts_under(&self.dir) {
            l.push(format!("mount {}", m.display()));
        }
        // a process naming the test's dirs (a published port's [::1] proxy)
        let dir = self.dir.to_string_lossy().into_owned();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&dir) && cmd.contains(" proxy ") {
                l.push(format!(
                    "process {}: {cmd}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
        l
    }

    fn assert_clean(&self, what: &str, ids: &[&str], ips: &[String], bridges_ok: bool) {
        let l = self.leaks(ids, ips, bridges_ok);
        assert!(l.is_empty(), "{what}: left behind: {l:#?}");
    }

    /// Write an executable fake plugin into `bin/`, on the plugin path.
    fn fake_plugin(&mut self, name: &str, script: &str) {
        let p = self.dir.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.cni_path = format!("/usr/lib/cni:{}", self.dir.join("bin").display());
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for m in mounts_under(&self.dir) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running container of the test rootfs with its own network namespace, running `args`.
fn container(tag: &str, args: &[&str], net_raw: bool) -> Ctr {
    let mut c = Ctr::new(tag, "default");
    c.args(args);
    if net_raw {
        for set in ["bounding", "effective", "permitted"] {
            c.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_NET_RAW".into());
        }
    }
    c.create_ok(&[]);
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    assert!(c.wait_status("running", Duration::from_secs(5)));
    c
}

fn exec(c: &Ctr, cmd: &str) -> Output {
    c.rt(&["exec", &c.id, "/bin/sh", "-c", cmd])
}

/// The container's address from `attach`'s output: `eth0 10.89.0.2/24 ...`.
fn attached_ip(out: &str) -> String {
    let cidr = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("attach output {out:?}"));
    cidr.split('/').next().unwrap().to_string()
}

/// Every address of `attach`'s output, either family: `eth0 10.77.31.2/24,fd00:89:1::2/64 ...`.
fn attached_ips(out: &str) -> Vec<String> {
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("attach output {out:?}"))
        .split(',')
        .map(|c| c.split('/').next().unwrap().to_string())
        .collect()
}

/// GET `url` from the namespace's host side with busybox wget.
fn fetch(t: &TestNet, url: &str) -> Output {
    let mut c = t.in_ns("busybox");
    c.args(["wget", "-q", "-O", "-", url]);
    run_timeout(&mut c, CMD_TIMEOUT)
}

/// Send a datagram to 127.0.0.1:`port` from the namespace (a thread that joined it) and return
/// the reply.
fn udp_roundtrip(ns: &str, port: u16) -> Result<String, String> {
    udp_roundtrip_to(ns, "127.0.0.1".parse().unwrap(), port)
}

/// [`udp_roundtrip`] to `ip` (either family).
fn udp_roundtrip_to(ns: &str, ip: std::net::IpAddr, port: u16) -> Result<String, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns: {e}"))?;
        let any: std::net::IpAddr = match ip {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        let s = std::net::UdpSocket::bind((any, 0)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            s.send_to(b"ping", (ip, port)).map_err(|e| e.to_string())?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err("no reply".into())
    })
    .join()
    .unwrap()
}

by_each_driver!(
    attach_publish_and_detach,
    /// The same through the CNI plugins husk's list names.
    attach_publish_and_detach_through_the_plugins,
    publish_and_detach
);

fn publish_and_detach(driver: Option<&'static str>) {
    let mut t = TestNet::new("pub");
    t.driver = driver;
    assert_eq!(t.husk_ok(None, &["create", "n1"]).trim(), "n1");
    let ls = t.husk_ok(None, &["ls"]);
    assert!(ls.contains("n1") && ls.contains("10.89.0.0/24"), "{ls}");
    let web = container(
        "netweb",
        &["/bin/httpd", "-f", "-p", "80", "-h", "/"],
        false,
    );
    let cli = container("netcli", &["/probe", "pause"], true);

    let out = t.husk_ok(
        Some(&web.root),
        &[
            "attach",
            "-p",
            "127.0.0.1:18080:80",
            "-p",
            "15353:5353/udp",
            "n1",
            &web.id,
        ],
    );
    assert!(out.contains("127.0.0.1:18080->80/tcp"), "{out}");
    let web_ip = attached_ip(&out);
    // the same host port for another container is refused, naming the port and its holder
    let e = t.husk_err(
        Some(&cli.root),
        &["attach", "-p", "18080:81", "n1", &cli.id],
    );
    assert!(e.contains("18080") && e.contains(&web.id), "{e}");
    let cli_ip = attached_ip(&t.husk_ok(Some(&cli.root), &["attach", "n1", &cli.id]));
    assert_ne!(web_ip, cli_ip);
    let want = driver.unwrap_or("native");
    assert_eq!(record(&t, &web.id, "n1")["driver"], want);

    // inspect shows both attachments
    let v: Value = serde_json::from_str(&t.husk_ok(None, &["inspect", "n1"])).unwrap();
    assert_eq!(v["attachments"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["subnet"], "10.89.0.0/24");

    // published port from the namespace's host loopback, and the container's own address
    let o = fetch(&t, "http://127.0.0.1:18080/etc/hostname");
    assert_eq!(
        text(&o.stdout).trim(),
        "testroot",
        "{:?} {}",
        o.status,
        text(&o.stderr)
    );
    let o = fetch(&t, &format!("http://{web_ip}/etc/hostname"));
    assert_eq!(text(&o.stdout).trim(), "testroot", "{}", text(&o.stderr));
    // container to container: ping and HTTP by address
    let o = exec(&cli, &format!("ping -c 1 -W 3 {web_ip}"));
    assert!(
        o.status.success(),
        "ping: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = exec(&cli, &format!("wget -q -O - http://{web_ip}/etc/hostname"));
    assert_eq!(text(&o.stdout).trim(), "testroot", "{}", text(&o.stderr));
    // the container's lo is up (the loopback plugin ran)
    let o = exec(&web, "wget -q -O - http://127.0.0.1/etc/hostname");
    assert_eq!(text(&o.stdout).trim(), "testroot", "{}", text(&o.stderr));
    // udp: an echo server in the container behind the published udp port
    let o = web.rt(&["exec", "-d", &web.id, "/probe", "udp-echo", "5353"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(udp_roundtrip(&t.ns, 15353).unwrap(), "echo:ping");
    // CHECK passes on a healthy attachment (the one without published ports: Debian's portmap
    // 1.1.1 fails CHECK of an IPv4-only mapping, containernetworking/plugins#819)
    t.husk_ok(Some(&cli.root), &["check", "n1", &cli.id]);
    let e = t.husk_err(Some(&cli.root), &["attach", "n1", &cli.id]);
    assert!(e.contains("already attached to network n1"), "{e}");

    // the network is in use: rm refuses, naming the container
    let e = t.husk_err(None, &["rm", "n1"]);
    assert!(e.contains("n1") && e.contains(&web.id), "{e}");

    t.husk_ok(Some(&web.root), &["detach", "n1", &web.id]);
    assert!(!fetch(&t, "http://127.0.0.1:18080/etc/hostname")
        .status
        .success());
    t.husk_ok(Some(&cli.root), &["detach", "n1", &cli.id]);
    let ips = [web_ip.clone(), cli_ip.clone()];
    t.assert_clean("after detach", &[&web.id, &cli.id], &ips, true);
    let e = t.husk_err(None, &["detach", "n1", &web.id]);
    assert!(e.contains("not attached to network n1"), "{e}");

    t.husk_ok(None, &["rm", "n1"]);
    t.assert_clean("after rm", &[&web.id, &cli.id], &ips, false);
    assert!(t.husk_ok(None, &["ls", "-q"]).trim().is_empty());
}

#[test]
fn several_networks_gc_and_prune() {
    if !require_root("several_networks_gc_and_prune") {
        return;
    }
    let t = TestNet::new("multi");
    t.husk_ok(
        None,
        &[
            "create",
            "--subnet",
            "10.77.1.0/24",
            "--gateway",
            "10.77.1.254",
            "a",
        ],
    );
    t.husk_ok(None, &["create", "--internal", "b"]);
    let c = container("netmulti", &["/probe", "pause"], false);
    let ip_a = attached_ip(&t.husk_ok(
        Some(&c.root),
        &["attach", "-p", "18081-18082:80-81", "a", &c.id],
    ));
    let out_b = t.husk_ok(Some(&c.root), &["attach", "b", &c.id]);
    assert!(ip_a.starts_with("10.77.1."), "{ip_a}");
    assert!(out_b.starts_with("eth1 "), "{out_b}");
    let ip_b = attached_ip(&out_b);
    // a port range publishes each port of it
    let rules = t.firewall();
    assert!(
        rules.contains("dport 18081") && rules.contains("dport 18082"),
        "{rules}"
    );
    let o = exec(&c, "ip -o -4 addr show");
    let addrs = text(&o.stdout);
    assert!(
        addrs.contains(&format!("eth0    inet {ip_a}/24")) || addrs.contains(&ip_a),
        "{addrs}"
    );
    assert!(addrs.contains(&ip_b), "{addrs}");
    // the internal network gives no default route; the other one does, through its gateway
    let o = exec(&c, "ip route");
    let routes = text(&o.stdout);
    assert!(
        routes.contains("default via 10.77.1.254 dev eth0"),
        "{routes}"
    );
    assert_eq!(routes.matches("default").count(), 1, "{routes}");

    // the container goes away without a detach: its netns stays pinned until gc
    let pid = c.state().unwrap()["pid"].as_i64().unwrap() as i32;
    drop(c);
    assert!(!pid_alive(pid));
    assert!(
        !t.leaks(&[], &[], true).is_empty(),
        "the pin should hold the veths until gc"
    );
    let gone = t.husk_ok(None, &["gc"]);
    assert_eq!(gone.lines().count(), 2, "{gone}");
    t.assert_clean("after gc", &[], &[ip_a.clone(), ip_b.clone()], true);

    let pruned = t.husk_ok(None, &["prune"]);
    assert_eq!(pruned.split_whitespace().collect::<Vec<_>>(), ["a", "b"]);
    t.assert_clean("after prune", &[], &[ip_a, ip_b], false);
}

#[test]
fn bad_input_leaves_nothing() {
    if !require_root("bad_input_leaves_nothing") {
        return;
    }
    let mut t = TestNet::new("bad");
    // malformed and overlapping subnets, bad gateway, duplicate name
    let e = t.husk_err(None, &["create", "--subnet", "10.66.0.1/24", "x"]);
    assert!(
        e.contains("network x") && e.contains("10.66.0.1/24") && e.contains("host bits"),
        "{e}"
    );
    let e = t.husk_err(None, &["create", "--subnet", "banana", "x"]);
    assert!(e.contains("banana"), "{e}");
    t.husk_ok(None, &["create", "--subnet", "10.66.0.0/30", "tiny"]);
    let e = t.husk_err(None, &["create", "--subnet", "10.66.0.0/16", "x"]);
    assert!(
        e.contains("network x") && e.contains("overlaps network tiny"),
        "{e}"
    );
    let e = t.husk_err(
        None,
        &[
            "create",
            "--subnet",
            "10.67.0.0/24",
            "--gateway",
            "10.68.0.1",
            "x",
        ],
    );
    assert!(e.contains("gateway 10.68.0.1"), "{e}");
    let e = t.husk_err(None, &["create", "tiny"]);
    assert!(e.contains("network tiny already exists"), "{e}");
    let e = t.husk_err(None, &["create", "bad/name"]);
    assert!(e.contains("bad/name"), "{e}");
    assert_eq!(t.husk_ok(None, &["ls", "-q"]).trim(), "tiny");
    // a name is a path component: nothing outside the dirs is looked up
    for args in [
        &["detach", "../../x", "abc"][..],
        &["inspect", "../cni/tiny"][..],
        &["check", ".x", "abc"][..],
    ] {
        let e = t.husk_err(None, args);
        assert!(e.contains("network name"), "{args:?}: {e}");
    }

    let c1 = container("netbad1", &["/probe", "pause"], false);
    let c2 = container("netbad2", &["/probe", "pause"], false);
    // not a container / not running
    let e = t.husk_err(Some(&c1.root), &["attach", "tiny", "nosuch"]);
    assert!(e.contains("nosuch") && e.contains("does not exist"), "{e}");
    // bad port
    let e = t.husk_err(
        Some(&c1.root),
        &["attach", "-p", "99999:80", "tiny", &c1.id],
    );
    assert!(e.contains("99999"), "{e}");
    // exhausted range: a /30 has one address besides the gateway
    let ip1 = attached_ip(&t.husk_ok(Some(&c1.root), &["attach", "tiny", &c1.id]));
    let e = t.husk_err(Some(&c2.root), &["attach", "tiny", &c2.id]);
    assert!(
        e.contains("network tiny") && e.contains("no IP addresses available"),
        "{e}"
    );
    t.husk_ok(Some(&c1.root), &["detach", "tiny", &c1.id]);
    t.assert_clean(
        "after exhausted range",
        &[&c1.id, &c2.id],
        std::slice::from_ref(&ip1),
        true,
    );

    // missing plugin binary: the path has no firewall plugin (husk's own list goes through its
    // plugins only when asked to: the native driver needs none)
    t.driver = Some("plugins");
    std::fs::create_dir_all(t.dir.join("partial")).unwrap();
    for p in ["bridge", "host-local", "portmap", "loopback"] {
        std::os::unix::fs::symlink(format!("/usr/lib/cni/{p}"), t.dir.join("partial").join(p))
            .unwrap();
    }
    t.cni_path = t.dir.join("partial").display().to_string();
    let e = t.husk_err(Some(&c1.root), &["attach", "tiny", &c1.id]);
    assert!(
        e.contains("network tiny") && e.contains("plugin firewall not found"),
        "{e}"
    );
    t.assert_clean(
        "after missing plugin",
        &[&c1.id],
        std::slice::from_ref(&ip1),
        true,
    );

    // a plugin that fails ADD after bridge + host-local ran: they are undone
    t.fake_plugin(
        "failer",
        r#"[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion":"1.0.0","code":11,"msg":"failer says no"}'; exit 1"#,
    );
    t.fake_plugin(
        "hanger",
        r#"[ "$CNI_COMMAND" = ADD ] || exit 0
exec sleep 60"#,
    );
    let ipam = t.dir.join("run/ipam").display().to_string();
    for (name, ty, sub) in [
        ("failnet", "failer", "10.55.1.0/24"),
        ("hangnet", "hanger", "10.55.2.0/24"),
    ] {
        let conf = serde_json::json!({"cniVersion":"1.0.0","name":name,"plugins":[
            {"type":"bridge","bridge":format!("husk-{ty}"),"isGateway":true,
             "ipam":{"type":"host-local","subnet":sub,"dataDir":ipam}},
            {"type":ty}]});
        std::fs::write(
            t.dir.join("cni").join(format!("{name}.conflist")),
            conf.to_string(),
        )
        .unwrap();
    }
    let e = t.husk_err(Some(&c1.root), &["attach", "failnet", &c1.id]);
    assert!(
        e.contains("network failnet") && e.contains("plugin failer ADD failed: failer says no"),
        "{e}"
    );
    t.assert_clean("after failing plugin", &[&c1.id], &[], true);
    t.timeout = Some("1".into());
    let started = Instant::now();
    let e = t.husk_err(Some(&c1.root), &["attach", "hangnet", &c1.id]);
    assert!(
        e.contains("network hangnet") && e.contains("plugin hanger ADD timed out after 1s"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    t.assert_clean("after hanging plugin", &[&c1.id], &[], true);
    t.timeout = None;
    // husk does not remove a conflist it does not own
    let e = t.husk_err(None, &["rm", "failnet"]);
    assert!(e.contains("husk does not manage"), "{e}");

    // a malformed conflist is named when used
    std::fs::write(t.dir.join("cni/broken.conflist"), "{\"name\": ").unwrap();
    let e = t.husk_err(Some(&c1.root), &["attach", "broken", &c1.id]);
    assert!(
        e.contains("malformed conflist") && e.contains("broken.conflist"),
        "{e}"
    );

    // a stopped container
    let o = c2.kill("KILL");
    assert!(o.status.success());
    assert!(c2.wait_status("stopped", Duration::from_secs(5)));
    let e = t.husk_err(Some(&c2.root), &["attach", "tiny", &c2.id]);
    assert!(e.contains(&c2.id) && e.contains("not running"), "{e}");

    drop(c1);
    drop(c2);
    t.husk_ok(None, &["rm", "tiny"]);
    // the fake networks' bridges were made by the plugins, not husk: remove them here
    for b in ["husk-failer", "husk-hanger"] {
        let _ = t.ip(&["link", "del", b]);
    }
    t.assert_clean("at the end", &[], &[ip1], false);
}

#[test]
fn killed_mid_attach_is_released_by_gc() {
    if !require_root("killed_mid_attach_is_released_by_gc") {
        return;
    }
    let mut t = TestNet::new("kill");
    let pidfile = t.dir.join("hanger.pid");
    t.fake_plugin(
        "hanger",
        &format!(
            "[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho $$ > {}\nexec sleep 60",
            pidfile.display()
        ),
    );
    let ipam = t.dir.join("run/ipam").display().to_string();
    let conf = serde_json::json!({"cniVersion":"1.0.0","name":"slow","plugins":[
        {"type":"bridge","bridge":"husk-slow","isGateway":true,
         "ipam":{"type":"host-local","subnet":"10.56.0.0/24","dataDir":ipam}},
        {"type":"portmap","capabilities":{"portMappings":true}},
        {"type":"hanger"}]});
    std::fs::write(t.dir.join("cni/slow.conflist"), conf.to_string()).unwrap();
    let c = container("netkill", &["/probe", "pause"], false);

    // attach in the background; once the last plugin hangs, bridge + portmap have run
    let mut cmd = Command::new(runtime());
    cmd.arg("--root")
        .arg(&c.root)
        .args(["network", "attach", "-p", "18090:80", "slow", &c.id])
        .env("HUSK_NETWORK_DIR", t.dir.join("conf"))
        .env("HUSK_CNI_CONFIG_DIR", t.dir.join("cni"))
        .env("HUSK_NETWORK_RUN_DIR", t.dir.join("run"))
        .env("CNI_PATH", &t.cni_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // join the test namespace in the child only (pre_exec runs between fork and exec)
    let ns = std::fs::File::open(format!("/run/netns/{}", t.ns)).unwrap();
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let nsfd = ns.as_raw_fd();
    // SAFETY: setns is async-signal-safe; the fd stays open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut husk = Helper(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let hanger = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break p;
        }
        assert!(Instant::now() < deadline, "the hanging plugin never ran");
        std::thread::sleep(Duration::from_millis(20));
    };
    // kill -9 husk, then the plugin it left (by pid)
    husk.0.kill().unwrap();
    husk.0.wait().unwrap();
    // SAFETY: plain kill(2) of the plugin process this test started through husk.
    unsafe { libc::kill(hanger, libc::SIGKILL) };
    let l = t.leaks(&[&c.id], &[], true);
    assert!(
        l.iter().any(|x| x.starts_with("attachments"))
            && l.iter().any(|x| x.starts_with("link veth")),
        "the killed attach should have left its record and veth: {l:#?}"
    );
    let out = t.husk_ok(None, &["gc"]);
    assert!(out.contains(&c.id), "{out}");
    t.assert_clean("after gc of a killed attach", &[&c.id], &[], true);
    // the container itself is untouched and can be attached again
    assert_eq!(c.status().as_deref(), Some("running"));
    let _ = t.ip(&["link", "del", "husk-slow"]);
    drop(c);
    t.assert_clean("at the end", &[], &[], false);
}

#[test]
fn subnets_ports_default_network_and_user_conflists() {
    if !require_root("subnets_ports_default_network_and_user_conflists") {
        return;
    }
    let t = TestNet::new("sub");
    // a route of the namespace covers 10.89.0.0/24: the automatic choice skips it, an explicit
    // --subnet over it is refused naming both
    assert!(t
        .ip(&["route", "add", "10.89.0.0/24", "dev", "lo"])
        .status
        .success());
    t.husk_ok(None, &["create", "auto"]);
    let v: Value = serde_json::from_str(&t.husk_ok(None, &["inspect", "auto"])).unwrap();
    assert_eq!(v["subnet"], "10.89.1.0/24", "{v}");
    let e = t.husk_err(None, &["create", "--subnet", "10.89.0.0/16", "x"]);
    assert!(e.contains("network x") && e.contains("10.89.0.0/16"), "{e}");
    let e = t.husk_err(None, &["create", "--subnet", "10.89.0.128/25", "x"]);
    assert!(
        e.contains("overlaps the route to 10.89.0.0/24 on lo"),
        "{e}"
    );
    assert!(t
        .ip(&["route", "del", "10.89.0.0/24", "dev", "lo"])
        .status
        .success());

    let c = container("netsub", &["/probe", "pause"], false);
    // a host port a process of the namespace already listens on is refused, naming the port
    let mut l = t.in_ns("busybox");
    l.args(["nc", "-l", "-p", "18095"]);
    let listener = Helper(l.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ss = Command::new("ip")
            .args(["netns", "exec", &t.ns, "ss", "-ltn"])
            .output()
            .unwrap();
        if text(&ss.stdout).contains(":18095") {
            break;
        }
        assert!(Instant::now() < deadline, "nc did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = t.husk_err(Some(&c.root), &["attach", "-p", "18095:80", "auto", &c.id]);
    assert!(
        e.contains("network auto") && e.contains("18095") && e.contains("in use"),
        "{e}"
    );
    drop(listener);
    t.assert_clean("after a port in use", &[&c.id], &[], true);

    // the default network exists on first use
    let out = t.husk_ok(Some(&c.root), &["attach", "husk", &c.id]);
    assert!(attached_ip(&out).starts_with("10.88."), "{out}");
    // a conflist the user dropped into the CNI dir is used by name, through its plugins
    let ipam = t.dir.join("run/ipam").display().to_string();
    let conf = serde_json::json!({"cniVersion":"0.4.0","name":"mine","plugins":[
        {"type":"bridge","bridge":"usr-br0","isGateway":true,
         "ipam":{"type":"host-local","subnet":"10.57.0.0/24","dataDir":ipam}}]});
    std::fs::write(t.dir.join("cni/10-mine.conflist"), conf.to_string()).unwrap();
    let out = t.husk_ok(Some(&c.root), &["attach", "mine", &c.id]);
    assert!(out.starts_with("eth1 10.57.0."), "{out}");
    let ls = t.husk_ok(None, &["ls", "-q"]);
    assert_eq!(
        ls.split_whitespace().collect::<Vec<_>>(),
        ["auto", "husk", "mine"]
    );
    let o = exec(
        &c,
        "ping -c 1 -W 3 10.57.0.1 >/dev/null 2>&1; ip -o -4 addr show eth1",
    );
    assert!(text(&o.stdout).contains("10.57.0."), "{}", text(&o.stdout));
    t.husk_ok(Some(&c.root), &["detach", "mine", &c.id]);
    t.husk_ok(Some(&c.root), &["detach", "husk", &c.id]);
    let _ = t.ip(&["link", "del", "usr-br0"]);
    t.assert_clean("after detach", &[&c.id], &[], true);
    drop(c);
    t.husk_ok(None, &["prune"]);
    assert_eq!(t.husk_ok(None, &["ls", "-q"]).trim(), "mine");
    t.assert_clean("at the end", &[], &[], false);
}

#[test]
fn concurrent_attaches_get_distinct_addresses() {
    if !require_root("concurrent_attaches_get_distinct_addresses") {
        return;
    }
    const N: usize = 6;
    let t = TestNet::new("conc");
    t.husk_ok(None, &["create", "many"]);
    let cs: Vec<Ctr> = (0..N)
        .map(|_| container("netconc", &["/probe", "pause"], false))
        .collect();
    let outs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let t = &t;
                s.spawn(move || {
                    let p = format!("{}:80", 18100 + i);
                    t.husk_ok(Some(&c.root), &["attach", "-p", &p, "many", &c.id])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = outs.iter().map(|o| attached_ip(o)).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), N, "{outs:?}");
    // no port rule was lost to the concurrency: each published port has its DNAT rule
    let rules = t.firewall();
    for i in 0..N {
        assert!(rules.contains(&format!("dport {}", 18100 + i)), "{rules}");
    }
    std::thread::scope(|s| {
        for c in &cs {
            let t = &t;
            s.spawn(move || t.husk_ok(Some(&c.root), &["detach", "many", &c.id]));
        }
    });
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    t.assert_clean("after concurrent detach", &ids, &ips, true);
    drop(cs);
    t.husk_ok(None, &["rm", "many"]);
    t.assert_clean("at the end", &[], &ips, false);
}

#[test]
fn same_id_again_releases_the_old_attachment() {
    if !require_root("same_id_again_releases_the_old_attachment") {
        return;
    }
    let t = TestNet::new("again");
    t.husk_ok(None, &["create", "n"]);
    let mut c = container("netagain", &["/probe", "pause"], false);
    let ip1 = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "-p", "18200:80", "n", &c.id]));
    // deleted without a detach, then made again under the same id
    assert!(c.delete(true).status.success());
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(c.wait_status("running", Duration::from_secs(5)));
    let out = t.husk_ok(Some(&c.root), &["attach", "-p", "18200:80", "n", &c.id]);
    let ip2 = attached_ip(&out);
    let links = text(&t.ip(&["-o", "link", "show", "type", "veth"]).stdout);
    assert_eq!(
        links.lines().count(),
        1,
        "the old veth should be gone: {links}"
    );
    let v: Value = serde_json::from_str(&t.husk_ok(None, &["inspect", "n"])).unwrap();
    assert_eq!(v["attachments"].as_array().unwrap().len(), 1, "{v}");
    t.husk_ok(Some(&c.root), &["detach", "n", &c.id]);
    t.assert_clean("after detach", &[&c.id], &[ip1.clone(), ip2.clone()], true);
    drop(c);
    t.husk_ok(None, &["rm", "n"]);
    t.assert_clean("at the end", &[], &[ip1, ip2], false);
}

#[test]
fn pin_file_without_its_mount_does_not_block_gc() {
    if !require_root("pin_file_without_its_mount_does_not_block_gc") {
        return;
    }
    let t = TestNet::new("pin");
    t.husk_ok(None, &["create", "n"]);
    let c = container("netpin", &["/probe", "pause"], false);
    let ip = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "n", &c.id]));
    let rec_path = t.dir.join("run/attachments").join(&c.id).join("n.json");
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&rec_path).unwrap()).unwrap();
    t.husk_ok(Some(&c.root), &["detach", "n", &c.id]);
    t.assert_clean("after detach", &[&c.id], std::slice::from_ref(&ip), true);
    // what a husk killed after writing the record and creating the pin file, before mounting
    // on it, leaves: a record still `adding` and an empty regular file as the pin
    rec["phase"] = "adding".into();
    rec.as_object_mut().unwrap().remove("result");
    std::fs::create_dir_all(rec_path.parent().unwrap()).unwrap();
    std::fs::write(&rec_path, rec.to_string()).unwrap();
    let pin = t.dir.join("run/netns").join(&c.id);
    std::fs::write(&pin, "").unwrap();
    let out = t.husk_ok(None, &["gc"]);
    assert!(out.contains(&c.id), "{out}");
    t.assert_clean("after gc", &[&c.id], std::slice::from_ref(&ip), true);
    drop(c);
    t.husk_ok(None, &["rm", "n"]);
    t.assert_clean("at the end", &[], &[ip], false);
}

#[test]
fn delete_releases_attachments_and_other_namespaces_are_refused() {
    if !require_root("delete_releases_attachments_and_other_namespaces_are_refused") {
        return;
    }
    let t = TestNet::new("del");
    // a second namespace sharing the dirs: the wrong host side for t's attachments
    let mut other = TestNet::new("delo");
    let odir = other.dir.clone();
    std::fs::remove_dir_all(&odir).unwrap(); // unused: nothing is left there on a failure
    other.dir = t.dir.clone();
    t.husk_ok(None, &["create", "n"]);
    let c = container("netdel", &["/probe", "pause"], false);
    let ip = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "-p", "18300:80", "n", &c.id]));
    let e = other.husk_err(Some(&c.root), &["detach", "n", &c.id]);
    assert!(e.contains("another network namespace"), "{e}");
    other.husk_ok(None, &["gc"]);
    assert!(t
        .leaks(&[], &[], true)
        .iter()
        .any(|l| l.starts_with("attachments")));
    // no plugin ran in the other namespace
    assert!(
        other.iptables_rules().is_empty(),
        "{:?}",
        other.iptables_rules()
    );
    assert!(other.nft_tables().is_empty(), "{:?}", other.nft_tables());
    let l: Vec<String> = other
        .leaks(&[], &[], false)
        .into_iter()
        .filter(|x| {
            ["link", "address", "route"]
                .iter()
                .any(|k| x.starts_with(k))
        })
        .collect();
    assert!(l.is_empty(), "{l:?}");
    other.dir = odir;
    drop(other);

    // husk delete --force (in the namespace the attach ran in) releases the attachment
    t.delete_force(&c);
    t.assert_clean(
        "after delete --force",
        &[&c.id],
        std::slice::from_ref(&ip),
        true,
    );
    drop(c);
    t.husk_ok(None, &["rm", "n"]);
    t.assert_clean("at the end", &[], &[ip], false);
}

/// The record of (container, network).
fn record(t: &TestNet, id: &str, net: &str) -> Value {
    let p = t
        .dir
        .join("run/attachments")
        .join(id)
        .join(format!("{net}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// The native driver's table of (container, network, eth0).
fn native_table(id: &str, net: &str) -> String {
    husk::network::native::Target {
        network: net,
        container: id,
        ifname: "eth0",
        netns: Path::new("/"),
        ports: &[],
        cni_version: "1.0.0",
    }
    .table()
}

/// Table `FAMILY NAME` of the namespace as `nft -j` lists it: its chains and rules with the
/// table name and the handles left out, so two tables can be compared.
fn nft_table_json_of(t: &TestNet, family: &str, name: &str) -> Vec<Value> {
    let mut c = Command::new("ip");
    c.args([
        "netns", "exec", &t.ns, "nft", "-j", "list", "table", family, name,
    ]);
    let o = run_timeout(&mut c, CMD_TIMEOUT);
    assert!(
        o.status.success(),
        "nft -j list table {family} {name}: {}",
        text(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let (kind, body) = e.as_object()?.iter().next()?;
            if kind != "chain" && kind != "rule" {
                return None;
            }
            let mut b = body.clone();
            let o = b.as_object_mut()?;
            o.remove("table");
            o.remove("handle");
            Some(serde_json::json!({ kind.as_str(): b }))
        })
        .collect()
}

/// The kernel's ruleset of the native table `table` must be what nft itself makes of the rules
/// the driver documents (`nft.rs`), written as nft text into a scratch table of the namespace.
fn assert_native_rules(t: &TestNet, table: &str, ip: &str, subnet: &str, ports: &[(u16, u16)]) {
    let o = ORACLE;
    let mut text_rules = format!("add table ip {o}\n");
    if !ports.is_empty() {
        for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
            text_rules.push_str(&format!(
                "add chain ip {o} {chain} {{ type nat hook {hook} priority -100; policy accept; }}\n"
            ));
            for (hp, cp) in ports {
                text_rules.push_str(&format!(
                    "add rule ip {o} {chain} fib daddr type local tcp dport {hp} dnat to {ip}:{cp}\n"
                ));
            }
        }
    }
    text_rules.push_str(&format!(
        "add chain ip {o} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
    ));
    if !ports.is_empty() {
        text_rules.push_str(&format!(
            "add rule ip {o} postrouting ip saddr {ip} ip daddr {ip} masquerade\n\
             add rule ip {o} postrouting ip saddr 127.0.0.0/8 ip daddr {ip} masquerade\n"
        ));
    }
    text_rules.push_str(&format!(
        "add rule ip {o} postrouting ip saddr {ip} ip daddr != {subnet} ip daddr != 224.0.0.0/4 masquerade\n"
    ));
    assert_table_is_nft_of(t, "ip", table, &text_rules);
}

/// The scratch table the rules of a test are written into as nft text.
const ORACLE: &str = "husk-oracle";

/// Table `FAMILY TABLE` of the namespace must be what nft itself makes of `rules`: nft text
/// making the scratch table `FAMILY ORACLE`, loaded, listed with `nft -j` and deleted again.
fn assert_table_is_nft_of(t: &TestNet, family: &str, table: &str, rules: &str) {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &t.ns, "nft", "-f", "-"]);
    let out = run_with_stdin(&mut c, rules.as_bytes());
    assert!(
        out.status.success(),
        "nft -f: {}\n{rules}",
        text(&out.stderr)
    );
    let want = nft_table_json_of(t, family, ORACLE);
    let mut c = Command::new("ip");
    c.args([
        "netns", "exec", &t.ns, "nft", "delete", "table", family, ORACLE,
    ]);
    assert!(run_timeout(&mut c, CMD_TIMEOUT).status.success());
    let got = nft_table_json_of(t, family, table);
    assert_eq!(
        serde_json::to_string_pretty(&got).unwrap(),
        serde_json::to_string_pretty(&want).unwrap(),
        "table {family} {table} differs from nft's own rules"
    );
}

/// Run `c` with `input` on its stdin, to its end (bounded by CMD_TIMEOUT).
fn run_with_stdin(c: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let deadline = Instant::now() + CMD_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn native_default_network_publishes_pings_and_shares_allocations_with_the_plugins() {
    if !require_root(
        "native_default_network_publishes_pings_and_shares_allocations_with_the_plugins",
    ) {
        return;
    }
    let mut t = TestNet::new("nat");
    let web = container("natweb", &["/bin/httpd", "-f", "-p", "80", "-h", "/"], true);
    let cli = container("natcli", &["/probe", "pause"], true);
    let out = t.husk_ok(
        Some(&web.root),
        &["attach", "-p", "18400:80", "husk", &web.id],
    );
    let web_ip = attached_ip(&out);
    assert!(web_ip.starts_with("10.88."), "{out}");
    let rec = record(&t, &web.id, "husk");
    assert_eq!(rec["driver"], "native", "{rec}");
    // the result has the bridge plugin's shape
    let r = &rec["result"];
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3, "{r}");
    assert_eq!(ifs[0]["name"], "husk0", "{r}");
    assert!(ifs[1]["name"].as_str().unwrap().starts_with("veth"), "{r}");
    assert_eq!(ifs[2]["name"], "eth0", "{r}");
    assert_eq!(
        ifs[2]["sandbox"].as_str().unwrap(),
        t.dir.join("run/netns").join(&web.id).to_str().unwrap()
    );
    for i in ifs {
        assert_eq!(i["mac"].as_str().unwrap().len(), 17, "{r}");
    }
    assert_eq!(r["ips"][0]["interface"], 2, "{r}");
    assert_eq!(r["ips"][0]["address"], format!("{web_ip}/16"), "{r}");
    assert_eq!(r["ips"][0]["gateway"], "10.88.0.1", "{r}");
    assert_eq!(
        r["routes"],
        serde_json::json!([{"dst": "0.0.0.0/0"}]),
        "{r}"
    );
    assert_eq!(r["dns"], serde_json::json!({}), "{r}");
    // the allocation is host-local's file
    let alloc = t.dir.join("run/ipam/husk").join(&web_ip);
    assert_eq!(
        std::fs::read_to_string(&alloc).unwrap(),
        format!("{}\r\neth0", web.id)
    );
    let cli_ip = attached_ip(&t.husk_ok(Some(&cli.root), &["attach", "husk", &cli.id]));
    assert_ne!(web_ip, cli_ip);
    // the tables written over netlink hold what nft makes of the documented rules
    assert_native_rules(
        &t,
        &native_table(&web.id, "husk"),
        &web_ip,
        "10.88.0.0/16",
        &[(18400, 80)],
    );
    assert_native_rules(
        &t,
        &native_table(&cli.id, "husk"),
        &cli_ip,
        "10.88.0.0/16",
        &[],
    );

    // the published port from the namespace's loopback and from the bridge's (host-side)
    // address; the container's lo is up; the container reaches its own port (hairpin)
    for url in [
        "http://127.0.0.1:18400/etc/hostname",
        "http://10.88.0.1:18400/etc/hostname",
    ] {
        let o = fetch(&t, url);
        assert_eq!(
            text(&o.stdout).trim(),
            "testroot",
            "{url}: {}",
            text(&o.stderr)
        );
    }
    let o = exec(&web, "wget -q -O - http://127.0.0.1/etc/hostname");
    assert_eq!(text(&o.stdout).trim(), "testroot", "{}", text(&o.stderr));
    let o = exec(&web, "wget -q -O - http://10.88.0.1:18400/etc/hostname");
    assert_eq!(
        text(&o.stdout).trim(),
        "testroot",
        "hairpin: {}",
        text(&o.stderr)
    );
    // the two containers ping each other; the default route goes through the gateway
    for (c, ip) in [(&cli, &web_ip), (&web, &cli_ip)] {
        let o = exec(c, &format!("ping -c 1 -W 3 {ip}"));
        assert!(
            o.status.success(),
            "ping {ip}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    let o = exec(&cli, "ip route");
    assert!(
        text(&o.stdout).contains("default via 10.88.0.1 dev eth0"),
        "{}",
        text(&o.stdout)
    );
    t.husk_ok(Some(&cli.root), &["check", "husk", &cli.id]);
    t.husk_ok(Some(&web.root), &["check", "husk", &web.id]);

    // detach removes exactly what attach made: only the bridge stays
    t.husk_ok(Some(&web.root), &["detach", "husk", &web.id]);
    assert!(!fetch(&t, "http://127.0.0.1:18400/etc/hostname")
        .status
        .success());
    t.husk_ok(Some(&cli.root), &["detach", "husk", &cli.id]);
    let ips = [web_ip.clone(), cli_ip.clone()];
    t.assert_clean("after native detach", &[&web.id, &cli.id], &ips, true);
    let links = text(&t.ip(&["-o", "link", "show"]).stdout);
    assert_eq!(links.lines().count(), 2, "lo and husk0 only: {links}");

    // native and the plugin chain on one network share host-local's files: with the last
    // reserved address forgotten, each allocator starts from the bottom and must skip the
    // other's allocations
    t.husk_ok(None, &["create", "--subnet", "10.66.0.0/29", "small"]);
    let last = t.dir.join("run/ipam/small/last_reserved_ip.0");
    let c3 = container("natc3", &["/probe", "pause"], false);
    let a = attached_ip(&t.husk_ok(Some(&web.root), &["attach", "small", &web.id]));
    assert_eq!(a, "10.66.0.2");
    assert_eq!(record(&t, &web.id, "small")["driver"], "native");
    std::fs::remove_file(&last).unwrap();
    t.driver = Some("plugins");
    let b = attached_ip(&t.husk_ok(Some(&cli.root), &["attach", "small", &cli.id]));
    assert_eq!(
        b, "10.66.0.3",
        "the plugins must skip the native allocation"
    );
    assert_eq!(record(&t, &cli.id, "small")["driver"], "plugins");
    std::fs::remove_file(&last).unwrap();
    t.driver = None;
    let c = attached_ip(&t.husk_ok(Some(&c3.root), &["attach", "small", &c3.id]));
    assert_eq!(c, "10.66.0.4", "native must skip the plugins' allocation");
    // both kinds of attachment on one bridge reach each other
    let o = exec(&web, &format!("ping -c 1 -W 3 {b}"));
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    // each record is undone by what made it, whatever the driver setting is now
    t.driver = Some("plugins");
    t.husk_ok(Some(&web.root), &["detach", "small", &web.id]);
    t.driver = None;
    t.husk_ok(Some(&cli.root), &["detach", "small", &cli.id]);
    t.husk_ok(Some(&c3.root), &["detach", "small", &c3.id]);
    let ips = [a, b, c];
    t.assert_clean(
        "after mixed detach",
        &[&web.id, &cli.id, &c3.id],
        &ips,
        true,
    );
    drop((web, cli, c3));
    t.husk_ok(None, &["prune"]);
    t.assert_clean("at the end", &[], &ips, false);
}

#[test]
fn native_attach_killed_at_each_step_is_released_by_gc() {
    if !require_root("native_attach_killed_at_each_step_is_released_by_gc") {
        return;
    }
    let t = TestNet::new("natkill");
    t.husk_ok(None, &["create", "n"]);
    let c = container("natkill", &["/probe", "pause"], false);
    let attach = ["attach", "-p", "18410:80", "n", &c.id];
    // the attach's steps (fault::step: the allocation, the veth, the rules, the container
    // side; the rules are written on a thread of their own, so their place among the others
    // varies): counted from one clean run
    let log = t.dir.join("steps.log");
    let logs = log.to_str().unwrap();
    let o = t.husk_env(Some(&c.root), &attach, &[("HUSK_FAULT_LOG", logs)]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let ip = attached_ip(&text(&o.stdout));
    t.husk_ok(Some(&c.root), &["detach", "n", &c.id]);
    t.assert_clean(
        "after a clean attach and detach",
        &[&c.id],
        std::slice::from_ref(&ip),
        true,
    );
    let steps = std::fs::read_to_string(&log).unwrap_or_default();
    let n = steps.lines().count();
    if n == 0 {
        skip(
            "native_attach_killed_at_each_step_is_released_by_gc",
            "the husk under test has no fault steps (a release build)",
        );
        return;
    }
    assert_eq!(n, 4, "{steps}");
    for k in 1..=n {
        let step = k.to_string();
        let o = t.husk_env(Some(&c.root), &attach, &[("HUSK_FAULT_STEP", &step)]);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGKILL),
            "step {k}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        let l = t.leaks(&[&c.id], &[], true);
        for what in ["attachments", "host-local allocation", "netns"] {
            assert!(
                l.iter().any(|x| x.starts_with(what)),
                "step {k}: the killed attach should have left its {what}: {l:#?}"
            );
        }
        assert_eq!(record(&t, &c.id, "n")["phase"], "adding");
        let out = t.husk_ok(None, &["gc"]);
        assert!(out.contains(&c.id), "step {k}: {out}");
        t.assert_clean(
            &format!("after gc of an attach killed at step {k}"),
            &[&c.id],
            &[],
            true,
        );
    }
    // the container is untouched and attaches again; the port answers
    assert_eq!(c.status().as_deref(), Some("running"));
    let ip = attached_ip(&t.husk_ok(Some(&c.root), &attach));
    t.husk_ok(Some(&c.root), &["check", "n", &c.id]);
    t.husk_ok(Some(&c.root), &["detach", "n", &c.id]);
    t.assert_clean(
        "after attach and detach",
        &[&c.id],
        std::slice::from_ref(&ip),
        true,
    );
    drop(c);
    t.husk_ok(None, &["rm", "n"]);
    t.assert_clean("at the end", &[], &[ip], false);
}

by_each_driver!(
    /// An attach SIGKILLed once the `[::1]` proxy of its port runs, before the proxy is recorded:
    /// gc releases the record, the proxy ends by itself, the port is free to attach again.
    attach_killed_after_starting_a_proxy_is_released_by_gc,
    /// The same through the CNI plugins, killed also once the table that keeps `[::1]` from
    /// portmap is made: gc removes it.
    attach_killed_after_starting_a_proxy_through_the_plugins_is_released_by_gc,
    proxy_attach_killed
);

fn proxy_attach_killed(driver: Option<&'static str>) {
    let name = "attach_killed_after_starting_a_proxy_is_released_by_gc";
    let mut t = TestNet::new("pxkill");
    t.driver = driver;
    t.enable_ipv6();
    t.husk_ok(None, &["create", "--ipv6", "d"]);
    let c = container("pxkill", &["/probe", "pause"], false);
    let attach = ["attach", "-p", "18420:80", "d", &c.id];
    let log = t.dir.join("steps.log");
    let logs = log.to_str().unwrap();
    let o = t.husk_env(Some(&c.root), &attach, &[("HUSK_FAULT_LOG", logs)]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    if driver.is_some() {
        // the guard: its table while attached
        let table = native_table(&c.id, "d");
        assert!(
            t.nft_tables().contains(&format!("ip6 {table}")),
            "{:?}",
            t.nft_tables()
        );
    }
    t.husk_ok(Some(&c.root), &["detach", "d", &c.id]);
    let steps = std::fs::read_to_string(&log).unwrap_or_default();
    if steps.is_empty() {
        skip(
            name,
            "the husk under test has no fault steps (a release build)",
        );
        return;
    }
    // the steps after which a proxy runs unrecorded: its start, and through the plugins the
    // guard's table made after it
    let want = if driver.is_some() {
        vec!["proxy started", "[::1] guard made"]
    } else {
        vec!["proxy started"]
    };
    let at: Vec<(usize, &str)> = steps
        .lines()
        .enumerate()
        .filter(|(_, l)| want.iter().any(|w| l.contains(w)))
        .map(|(i, l)| (i + 1, l))
        .collect();
    assert_eq!(at.len(), want.len(), "{steps}");
    assert_eq!(at.last().unwrap().0, steps.lines().count(), "{steps}");
    for (n, step) in at {
        let o = t.husk_env(
            Some(&c.root),
            &attach,
            &[("HUSK_FAULT_STEP", &n.to_string())],
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGKILL),
            "{step}: {}",
            text(&o.stderr)
        );
        let l = t.leaks(&[&c.id], &[], true);
        assert!(
            l.iter().any(|x| x.starts_with("process ")),
            "{step}: {l:#?}"
        );
        if step.contains("guard") {
            assert!(
                l.iter().any(|x| x.starts_with("nftables table ip6 husk-")),
                "{step}: {l:#?}"
            );
        }
        assert!(record(&t, &c.id, "d")["proxies"].is_null());
        t.husk_ok(None, &["gc"]);
        // the proxy looks for its record twice a second
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t.leaks(&[&c.id], &[], true).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        t.assert_clean(
            &format!("after gc of the attach killed at {step}"),
            &[&c.id],
            &[],
            true,
        );
    }
    // [::1]:18420 is free again
    t.husk_ok(Some(&c.root), &attach);
    t.husk_ok(Some(&c.root), &["detach", "d", &c.id]);
    t.assert_clean("after attach and detach", &[&c.id], &[], true);
    drop(c);
    t.husk_ok(None, &["rm", "d"]);
    t.assert_clean("at the end", &[], &[], false);
}

by_each_driver!(
    /// A dual-stack attachment's `[::1]` proxy is ended, with everything else, by `husk delete
    /// --force` of its container and, for a container SIGKILLed, by `network prune`.
    proxies_end_with_delete_and_prune,
    /// The same through the CNI plugins (the proxy and the table keeping `[::1]` from portmap).
    proxies_end_with_delete_and_prune_through_the_plugins,
    proxies_released
);

fn proxies_released(driver: Option<&'static str>) {
    let mut t = TestNet::new("pxrel");
    t.driver = driver;
    t.enable_ipv6();
    t.husk_ok(None, &["create", "--ipv6", "d"]);
    // [::1]:PORT answers (through the plugins the container's address may be tentative a moment)
    let answers = |port: u16| {
        let url = format!("http://[::1]:{port}/etc/hostname");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = fetch(&t, &url);
            if o.status.success() && text(&o.stdout).trim() == "testroot" {
                return;
            }
            assert!(Instant::now() < deadline, "{url}: {}", text(&o.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let proxy_pid = |id: &str| -> i32 {
        let p = record(&t, id, "d")["proxies"].clone();
        assert_eq!(p.as_array().map(Vec::len), Some(1), "{p}");
        p[0]["pid"].as_i64().unwrap() as i32
    };
    // (an ended proxy may stay a zombie a while: its parent, the attach, is gone)
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| Some(!s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };

    let a = container("pxdel", &["/bin/httpd", "-f", "-p", "80", "-h", "/"], false);
    let out = t.husk_ok(Some(&a.root), &["attach", "-p", "18433:80", "d", &a.id]);
    let a_ips: Vec<String> = attached_ips(&out);
    answers(18433);
    let pid = proxy_pid(&a.id);
    assert!(alive(pid));
    // husk delete --force (in the namespace the attach ran in)
    t.delete_force(&a);
    assert!(!alive(pid), "proxy {pid} outlived delete --force");
    t.assert_clean("after delete --force", &[&a.id], &a_ips, true);
    drop(a);

    // a container SIGKILLed: its attachment (pinned namespace, proxy) stays until prune
    let b = container(
        "pxprune",
        &["/bin/httpd", "-f", "-p", "80", "-h", "/"],
        false,
    );
    let out = t.husk_ok(Some(&b.root), &["attach", "-p", "18434:80", "d", &b.id]);
    let b_ips: Vec<String> = attached_ips(&out);
    answers(18434);
    let pid = proxy_pid(&b.id);
    let init = b.state().unwrap()["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::SIGKILL).unwrap();
    assert!(b.wait_status("stopped", Duration::from_secs(5)));
    assert!(alive(pid));
    assert_eq!(t.husk_ok(None, &["prune"]).trim(), "d");
    assert!(!alive(pid), "proxy {pid} outlived network prune");
    t.assert_clean("after prune", &[&b.id], &b_ips, false);
    drop(b);
}

/// The number in `var`, or `default`.
fn count_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The network campaign at a size the suite affords (`make soak`: 1000 cycles, 100 kills):
/// attach + detach of a running container with a published port on a husk network (the native
/// driver), over and over, then `network attach` SIGKILLed at seeded random moments, each
/// followed by what an engine runs (`network gc`, then a detach in case the attach had
/// finished): the test's namespace must hold no link, address, route, rule, allocation, record
/// or pinned namespace of the container after each round.
#[test]
fn attach_detach_cycles_and_kills_mid_attach_leave_nothing() {
    if !require_root("attach_detach_cycles_and_kills_mid_attach_leave_nothing") {
        return;
    }
    let cycles = count_from_env("HUSK_NET_CYCLES", 200);
    let kills = count_from_env("HUSK_NET_KILLS", 50);
    let seed = seed_from_env("HUSK_NET_SEED");
    eprintln!(
        "network campaign: {cycles} cycles, {kills} kills, seed {seed} (HUSK_NET_SEED={seed} replays)"
    );
    let mut rng = Rng(seed);
    let t = TestNet::new("camp");
    t.husk_ok(None, &["create", "n"]);
    let c = container("camp", &["/probe", "pause"], false);
    let mut ips: Vec<String> = Vec::new();
    for i in 0..cycles {
        let ip = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "-p", "18520:80", "n", &c.id]));
        t.husk_ok(Some(&c.root), &["detach", "n", &c.id]);
        if !ips.contains(&ip) {
            ips.push(ip);
        }
        if i % 20 == 19 || i + 1 == cycles {
            t.assert_clean(&format!("after cycle {i}"), &[&c.id], &ips, true);
        }
    }
    let (mut finished, mut released) = (0, 0);
    for k in 0..kills {
        // most kills inside the attach (10-20 ms here), some before or after it
        let delay = Duration::from_micros(rng.below(30_000));
        let mut cmd = t.husk_command(Some(&c.root), &["attach", "-p", "18520:80", "n", &c.id]);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut husk = Helper(cmd.spawn().unwrap());
        std::thread::sleep(delay);
        // nsenter execs husk, so its pid is husk's
        let _ = husk.0.kill();
        let st = husk.0.wait().unwrap();
        if st.success() {
            finished += 1;
        }
        let gc = t.husk(None, &["gc"]);
        assert!(
            gc.status.success(),
            "kill {k} after {delay:?}: gc failed: {}",
            text(&gc.stderr)
        );
        if text(&gc.stdout).contains(&c.id) {
            released += 1;
        }
        // an attach that got to the end is an attachment like any other: detach it (an error
        // when there is none is expected)
        let _ = t.husk(Some(&c.root), &["detach", "n", &c.id]);
        let l = t.leaks(&[&c.id], &ips, true);
        assert!(
            l.is_empty(),
            "kill {k} of attach after {delay:?} (seed {seed}): left behind: {l:#?}"
        );
    }
    eprintln!(
        "network campaign: of {kills} killed attaches {finished} had finished, gc released \
         {released} killed half way"
    );
    assert!(
        kills < 20 || released > 0,
        "no kill landed inside an attach: the campaign tested nothing (seed {seed})"
    );
    // the container is untouched and attaches again
    assert_eq!(c.status().as_deref(), Some("running"));
    let ip = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "-p", "18520:80", "n", &c.id]));
    t.husk_ok(Some(&c.root), &["detach", "n", &c.id]);
    ips.push(ip);
    drop(c);
    t.husk_ok(None, &["rm", "n"]);
    t.assert_clean("at the end", &[], &ips, false);
}

/// A container on two networks that both give a default route (neither `--internal`): the
/// second attach keeps the first network's default route, as Docker gives one gateway, and
/// reaches the second network's subnet through its own interface.
#[test]
fn second_network_with_a_gateway_keeps_the_first_default_route() {
    if !require_root("second_network_with_a_gateway_keeps_the_first_default_route") {
        return;
    }
    let t = TestNet::new("gw2");
    t.husk_ok(None, &["create", "--subnet", "10.77.21.0/24", "g1"]);
    t.husk_ok(None, &["create", "--subnet", "10.77.22.0/24", "g2"]);
    let c = container("netgw2", &["/probe", "pause"], false);
    let ip1 = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "g1", &c.id]));
    let ip2 = attached_ip(&t.husk_ok(Some(&c.root), &["attach", "g2", &c.id]));
    // /proc/net/route: Iface Destination Gateway ... (hex, little-endian)
    let o = exec(&c, "cat /proc/net/route");
    let routes = text(&o.stdout);
    let default: Vec<&str> = routes
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .collect();
    assert_eq!(default.len(), 1, "one default route: {routes}");
    // 10.77.21.1 as /proc/net/route writes it
    assert!(
        default[0].starts_with("eth0") && default[0].contains("01154D0A"),
        "the default route is g1's: {routes}"
    );
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("eth1") && l.contains("00164D0A")),
        "g2's subnet through eth1: {routes}"
    );
    t.husk_ok(Some(&c.root), &["detach", "g2", &c.id]);
    t.husk_ok(Some(&c.root), &["detach", "g1", &c.id]);
    t.assert_clean(
        "after both detaches",
        &[&c.id],
        &[ip1.clone(), ip2.clone()],
        true,
    );
    drop(c);
    t.husk_ok(None, &["rm", "g1"]);
    t.husk_ok(None, &["rm", "g2"]);
    t.assert_clean("at the end", &[], &[ip1, ip2], false);
}

/// A dual-stack network of the native driver (`network create --ipv6 --subnet V6 --subnet
/// V4`): each container gets an IPv6 address of the subnet beside its IPv4 one, the IPv6
/// default route via the gateway on the bridge, reaches the other container over IPv6 and is
/// reached from the namespace; its outbound IPv6 traffic is masqueraded by a table of family
/// ip6 beside the ip one. Detach leaves neither table, address nor allocation; bad flags are
/// refused by name with no network made.
#[test]
fn native_dual_stack_network() {
    if !require_root("native_dual_stack_network") {
        return;
    }
    let t = TestNet::new("v6");
    for (args, want) in [
        (
            &["create", "--subnet", "fd00:89:9::/64", "n6"][..],
            "add --ipv6",
        ),
        (
            &["create", "--ipv6", "--subnet", "fd00:89:9::1/64", "n6"][..],
            "host bits are set",
        ),
        (
            &["create", "--ipv6", "--subnet", "fd00:89:9::/127", "n6"][..],
            "prefix",
        ),
        (
            &[
                "create",
                "--ipv6",
                "--subnet",
                "fd00:89:9::/64",
                "--subnet",
                "fd00:89:8::/64",
                "n6",
            ][..],
            "at most one subnet of each family",
        ),
    ] {
        let e = t.husk_err(None, args);
        assert!(e.contains(want) && e.contains("n6"), "{args:?}: {e}");
        assert!(
            !t.dir.join("conf/n6.conflist").exists(),
            "{args:?}: a network was made"
        );
    }
    t.husk_ok(
        None,
        &[
            "create",
            "--ipv6",
            "--subnet",
            "fd00:89:1::/64",
            "--subnet",
            "10.77.31.0/24",
            "d6",
        ],
    );
    let inspect: Value = serde_json::from_str(&t.husk_ok(None, &["inspect", "d6"])).unwrap();
    assert_eq!(inspect["subnet"], "10.77.31.0/24", "{inspect}");
    assert_eq!(inspect["subnet6"], "fd00:89:1::/64", "{inspect}");
    assert_eq!(inspect["gateway6"], "fd00:89:1::1", "{inspect}");
    // another dual-stack network may not overlap it
    let e = t.husk_err(
        None,
        &[
            "create",
            "--ipv6",
            "--subnet",
            "fd00:89:1:0:8000::/66",
            "d7",
        ],
    );
    assert!(e.contains("overlaps network d6"), "{e}");
    let a = container("v6a", &["/probe", "pause"], true);
    let b = container("v6b", &["/probe", "pause"], true);
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for c in [&a, &b] {
        let out = t.husk_ok(Some(&c.root), &["attach", "d6", &c.id]);
        // "eth0 10.77.31.2/24,fd00:89:1::2/64"
        let ips: Vec<&str> = out
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("attach output {out:?}"))
            .split(',')
            .collect();
        assert_eq!(ips.len(), 2, "two addresses: {out}");
        assert!(
            ips[0].starts_with("10.77.31.") && ips[0].ends_with("/24"),
            "{out}"
        );
        assert!(
            ips[1].starts_with("fd00:89:1::") && ips[1].ends_with("/64"),
            "{out}"
        );
        v4.push(ips[0].split('/').next().unwrap().to_string());
        v6.push(ips[1].split('/').next().unwrap().to_string());
    }
    assert_ne!(v6[0], v6[1]);
    let addrs = text(&exec(&a, "ip -6 -o addr show dev eth0").stdout);
    // usable at once: not tentative (no duplicate address detection to wait for)
    assert!(
        addrs
            .lines()
            .any(|l| l.contains(&format!(" {}/64 ", v6[0])) && !l.contains("tentative")),
        "a's eth0: {addrs}"
    );
    let routes = text(&exec(&a, "ip -6 route").stdout);
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("default via fd00:89:1::1 dev eth0")),
        "a's IPv6 routes: {routes}"
    );
    // a to b over IPv6, and the namespace (the bridge's side) to a
    let o = exec(&a, &format!("ping -c1 -W2 {}", v6[1]));
    assert!(
        o.status.success(),
        "a cannot ping b at {}: {}{}",
        v6[1],
        text(&o.stdout),
        text(&o.stderr)
    );
    let mut c = t.in_ns("busybox");
    c.args(["ping", "-c1", "-W2", &v6[0]]);
    let o = run_timeout(&mut c, CMD_TIMEOUT);
    assert!(
        o.status.success(),
        "the namespace cannot ping a at {}",
        v6[0]
    );
    // the masquerade of a's IPv6 traffic, in a table of family ip6 of the attachment's name
    let table = native_table(&a.id, "d6");
    let tables = t.nft_tables();
    assert!(
        tables.contains(&format!("ip {table}")) && tables.contains(&format!("ip6 {table}")),
        "{tables:?}"
    );
    let mut c = Command::new("ip");
    c.args([
        "netns", "exec", &t.ns, "nft", "list", "table", "ip6", &table,
    ]);
    let rules = text(&run_timeout(&mut c, CMD_TIMEOUT).stdout);
    assert!(
        rules.contains(&format!(
            "ip6 saddr {} ip6 daddr != fd00:89:1::/64 ip6 daddr != ff00::/8 masquerade",
            v6[0]
        )),
        "{rules}"
    );
    t.husk_ok(Some(&a.root), &["detach", "d6", &a.id]);
    t.husk_ok(Some(&b.root), &["detach", "d6", &b.id]);
    let host6 = text(&t.ip(&["-o", "-6", "addr", "show"]).stdout);
    for ip in &v6 {
        assert!(!host6.contains(&format!(" {ip}/")), "{ip} left: {host6}");
    }
    let mut ips = v4.clone();
    ips.extend(v6.iter().cloned());
    t.assert_clean("after the detaches", &[&a.id, &b.id], &ips, true);
    drop((a, b));
    t.husk_ok(None, &["rm", "d6"]);
    t.assert_clean("at the end", &[], &ips, false);
}

by_each_driver!(
    /// The host's side of a dual-stack network's published ports (`network create --ipv6` with the
    /// IPv6 subnet chosen, a /64 of fd00::/8): a port without a host address answers on the
    /// bridge's IPv6 address as on 127.0.0.1, `[GW6]:P:80` on IPv6 alone, `127.0.0.1:P:80` on IPv4
    /// alone, a udp port over IPv6 too; the ip6 table is what nft makes of the same rules as text.
    /// An IPv6 host address on an IPv4-only network, and an IPv6 subnet over a route of the
    /// namespace, are refused by name. After detach and rm nothing of either family is left.
    dual_stack_published_ports_and_automatic_subnet,
    /// The same through the CNI plugins: portmap's ip6tables rules.
    dual_stack_published_ports_through_the_plugins,
    dual_stack_ports
);

fn dual_stack_ports(driver: Option<&'static str>) {
    let mut t = TestNet::new("v6p");
    t.driver = driver;
    t.enable_ipv6();
    let native = driver.is_none();
    // an IPv6 subnet over a route of the namespace is refused, naming the route
    let o = t.ip(&["-6", "route", "add", "unreachable", "fd00:77::/48"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let e = t.husk_err(
        None,
        &["create", "--ipv6", "--subnet", "fd00:77:0:1::/64", "r6"],
    );
    assert!(
        e.contains("network r6") && e.contains("overlaps the route to fd00:77::/48 on lo"),
        "{e}"
    );
    assert!(!t.dir.join("conf/r6.conflist").exists());
    let o = t.ip(&["-6", "route", "del", "unreachable", "fd00:77::/48"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // --ipv6 alone: a unique local /64 of its own, shown by inspect, none shared
    t.husk_ok(
        None,
        &["create", "--ipv6", "--subnet", "10.77.41.0/24", "d6"],
    );
    t.husk_ok(None, &["create", "--ipv6", "d7"]);
    t.husk_ok(None, &["create", "n4"]);
    let inspect =
        |n: &str| -> Value { serde_json::from_str(&t.husk_ok(None, &["inspect", n])).unwrap() };
    let v = inspect("d6");
    assert_eq!(v["subnet"], "10.77.41.0/24", "{v}");
    let subnet6 = v["subnet6"].as_str().unwrap().to_string();
    assert!(
        subnet6.starts_with("fd") && subnet6.ends_with("::/64"),
        "{v}"
    );
    let gw6 = v["gateway6"].as_str().unwrap().to_string();
    assert_eq!(gw6, subnet6.replace("::/64", "::1"), "{v}");
    let other6 = inspect("d7")["subnet6"].as_str().unwrap().to_string();
    assert!(
        other6.starts_with("fd") && other6 != subnet6,
        "{other6} {subnet6}"
    );
    assert!(inspect("n4")["subnet6"].is_null());
    assert_ls_lists_every_subnet(&t, &subnet6, &gw6);
    t.husk_ok(None, &["rm", "d7"]);

    let web = container("v6web", &["/bin/httpd", "-f", "-p", "80", "-h", "/"], false);
    // an IPv6 host address on an IPv4-only network: refused by name, nothing made
    let e = t.husk_err(
        Some(&web.root),
        &["attach", "-p", "[::1]:18092:80", "n4", &web.id],
    );
    assert!(
        e.contains("network n4")
            && e.contains("[::1]:18092->80/tcp")
            && e.contains("no IPv6 subnet"),
        "{e}"
    );
    t.assert_clean("after the refused attach", &[&web.id], &[], true);
    // a first container makes the bridge, and so the gateway's address the ports below name
    let first = container("v6first", &["/probe", "pause"], false);
    let first_out = t.husk_ok(Some(&first.root), &["attach", "d6", &first.id]);
    // through the plugins the bridge's address is tentative a moment (duplicate address
    // detection): a port may name it once it is usable
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = text(&t.ip(&["-o", "-6", "addr", "show"]).stdout);
        let ready = a
            .lines()
            .any(|l| l.contains(&format!(" {gw6}/")) && !l.contains("tentative"));
        if ready || Instant::now() > deadline {
            assert!(ready, "{gw6} not usable: {a}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ips: Vec<String> = attached_ips(&first_out);

    let out = t.husk_ok(
        Some(&web.root),
        &[
            "attach",
            "-p",
            "18091:80",
            "-p",
            &format!("[{gw6}]:18092:80"),
            "-p",
            "127.0.0.1:18093:80",
            "-p",
            "[::1]:18094:80",
            "-p",
            "15354:5353/udp",
            "d6",
            &web.id,
        ],
    );
    assert!(out.contains(&format!("[{gw6}]:18092->80/tcp")), "{out}");
    let web_ips: Vec<String> = attached_ips(&out);
    assert_eq!(web_ips.len(), 2, "{out}");
    let ip6 = web_ips[1].clone();
    ips.extend(web_ips);
    assert!(ip6.starts_with(subnet6.trim_end_matches("::/64")), "{out}");
    // the same port for another container is refused on either family
    let cli = container("v6cli", &["/probe", "pause"], false);
    for p in ["[::]:18092:81", "18091:81"] {
        let e = t.husk_err(Some(&cli.root), &["attach", "-p", p, "d6", &cli.id]);
        assert!(e.contains(&web.id), "{p}: {e}");
    }
    drop(cli);

    let get = |url: &str| -> String {
        let o = fetch(&t, url);
        format!(
            "{}{}",
            text(&o.stdout).trim(),
            if o.status.success() { "" } else { " (failed)" }
        )
    };
    // the container over IPv6 first (its address may be tentative a moment through the plugins)
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&format!("http://[{ip6}]:80/etc/hostname")) != "testroot" && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&format!("http://[{ip6}]:80/etc/hostname")), "testroot");
    // IPv4 as before, IPv6 on the bridge's address
    assert_eq!(get("http://127.0.0.1:18091/etc/hostname"), "testroot");
    assert_eq!(
        get(&format!("http://[{gw6}]:18091/etc/hostname")),
        "testroot",
        "{}",
        t.firewall()
    );
    assert_eq!(
        get(&format!("http://[{gw6}]:18092/etc/hostname")),
        "testroot"
    );
    assert_eq!(get("http://127.0.0.1:18093/etc/hostname"), "testroot");
    // each family's host address publishes on that family alone
    assert!(get("http://127.0.0.1:18092/etc/hostname").ends_with("(failed)"));
    assert!(get(&format!("http://[{gw6}]:18093/etc/hostname")).ends_with("(failed)"));
    // the IPv6 loopback, through the attachment's proxies (through the plugins too: a table of
    // husk's keeps portmap's DNAT off ::1)
    assert_eq!(get("http://[::1]:18091/etc/hostname"), "testroot");
    assert_eq!(get("http://[::1]:18094/etc/hostname"), "testroot");
    assert!(get("http://127.0.0.1:18094/etc/hostname").ends_with("(failed)"));
    assert!(get("http://[::1]:18093/etc/hostname").ends_with("(failed)"));
    let proxies = record(&t, &web.id, "d6")["proxies"].clone();
    assert_eq!(
        proxies.as_array().map(Vec::len),
        Some(3),
        "18091, 18094 and 15354/udp: {proxies}"
    );
    if native {
        // CHECK passes with the proxies (through the plugins Debian's portmap 1.1.1 fails
        // CHECK of an IPv4 mapping, containernetworking/plugins#819)
        t.husk_ok(Some(&web.root), &["check", "d6", &web.id]);
    } else {
        assert_guard_rules(
            &t,
            &native_table(&web.id, "d6"),
            &[(6, 18091), (6, 18094), (17, 15354)],
        );
    }
    let pid = proxies[1]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    if native {
        // CHECK names the proxy that is gone
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut o = t.husk(Some(&web.root), &["check", "d6", &web.id]);
        while o.status.success() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            o = t.husk(Some(&web.root), &["check", "d6", &web.id]);
        }
        let e = text(&o.stderr);
        assert!(
            e.contains("[::1]:18094/tcp") && e.contains("is gone") && e.contains(&web.id),
            "{e}"
        );
    }
    assert!(get("http://[::1]:18094/etc/hostname").ends_with("(failed)"));
    // udp over IPv6
    let o = web.rt(&["exec", "-d", &web.id, "/probe", "udp-echo", "5353"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        udp_roundtrip_to(&t.ns, gw6.parse().unwrap(), 15354).unwrap(),
        "echo:ping"
    );
    assert_eq!(udp_roundtrip(&t.ns, 15354).unwrap(), "echo:ping");
    assert_eq!(
        udp_roundtrip_to(&t.ns, "::1".parse().unwrap(), 15354).unwrap(),
        "echo:ping"
    );

    if native {
        let table = native_table(&web.id, "d6");
        assert_native_rules6(&t, &table, &ip6, &gw6, &subnet6);
    } else {
        // portmap's DNAT over IPv6, in ip6tables
        let rules = t.iptables_rules().join("\n");
        assert!(
            rules.contains(&format!("--to-destination [{ip6}]:80")),
            "{rules}"
        );
    }

    t.husk_ok(Some(&web.root), &["detach", "d6", &web.id]);
    assert!(get(&format!("http://[{gw6}]:18091/etc/hostname")).ends_with("(failed)"));
    assert!(get("http://[::1]:18091/etc/hostname").ends_with("(failed)"));
    t.husk_ok(Some(&first.root), &["detach", "d6", &first.id]);
    t.assert_clean("after detach", &[&web.id, &first.id], &ips, true);
    t.husk_ok(None, &["rm", "d6", "n4"]);
    t.assert_clean("after rm", &[&web.id, &first.id], &ips, false);
}

/// The `[::1]` guard of an attachment through the plugins, table `ip6 TABLE`, must be what nft
/// makes of its rules as text: a nat output chain before portmap's, one identity DNAT per
/// proxied (protocol number, port).
fn assert_guard_rules(t: &TestNet, table: &str, ports: &[(u8, u16)]) {
    let o = ORACLE;
    let mut r = format!(
        "add table ip6 {o}\n\
         add chain ip6 {o} output {{ type nat hook output priority -110; policy accept; }}\n"
    );
    for (proto, port) in ports {
        let p = if *proto == 6 { "tcp" } else { "udp" };
        r.push_str(&format!(
            "add rule ip6 {o} output ip6 daddr ::1 {p} dport {port} dnat to [::1]:{port}\n"
        ));
    }
    assert_table_is_nft_of(t, "ip6", table, &r);
    // the only table of husk's through the plugins: no ip one
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &t.ns, "nft", "list", "table", "ip", table]);
    assert!(!run_timeout(&mut c, CMD_TIMEOUT).status.success());
}

/// [`assert_native_rules`] for the ip6 table of the dual-stack attachment of
/// [`dual_stack_ports`]: its ports over IPv6 and masquerades, as nft makes them of text.
fn assert_native_rules6(t: &TestNet, table: &str, ip6: &str, gw6: &str, subnet6: &str) {
    let o = ORACLE;
    let mut r = format!("add table ip6 {o}\n");
    for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        r.push_str(&format!(
            "add chain ip6 {o} {chain} {{ type nat hook {hook} priority -100; policy accept; }}\n\
             add rule ip6 {o} {chain} fib daddr type local ip6 daddr != ::1 tcp dport 18091 dnat to [{ip6}]:80\n\
             add rule ip6 {o} {chain} fib daddr type local ip6 daddr {gw6} tcp dport 18092 dnat to [{ip6}]:80\n\
             add rule ip6 {o} {chain} fib daddr type local ip6 daddr != ::1 udp dport 15354 dnat to [{ip6}]:5353\n"
        ));
    }
    r.push_str(&format!(
        "add chain ip6 {o} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add rule ip6 {o} postrouting ip6 saddr {ip6} ip6 daddr {ip6} masquerade\n\
         add rule ip6 {o} postrouting ip6 saddr {ip6} ip6 daddr != {subnet6} ip6 daddr != ff00::/8 masquerade\n"
    ));
    assert_table_is_nft_of(t, "ip6", table, &r);
}

/// `network ls` of [`dual_stack_ports`]'s networks: the dual-stack `d6`'s row lists both its
/// subnets and both gateways, `n4`'s its one, a user's conflist every range of every range set
/// in its order (an IPv6 one first, two IPv4 ones in one set, a gateway given and one not);
/// `--format json` the same, as `subnets`; `-q` and the JSON name the same networks; a bad
/// `--format` is refused by name.
fn assert_ls_lists_every_subnet(t: &TestNet, subnet6: &str, gw6: &str) {
    let mine = t.dir.join("cni/mine6.conflist");
    let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "mine6", "plugins": [
        {"type": "bridge", "bridge": "mine6br", "ipam": {"type": "host-local", "ranges": [
            [{"subnet": "fd00:aa:1::/64"}],
            [{"subnet": "10.99.1.0/24"}, {"subnet": "10.99.2.0/24", "gateway": "10.99.2.254"}],
        ]}},
    ]});
    std::fs::write(&mine, conf.to_string()).unwrap();
    let ls = t.husk_ok(None, &["ls"]);
    let mut lines = ls.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["NAME", "SUBNETS", "GATEWAYS", "BRIDGE", "SOURCE"],
        "{ls}"
    );
    let row = |name: &str| -> Vec<String> {
        ls.lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|c| c[0] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {ls}"))
    };
    let d6 = row("d6");
    assert_eq!(d6[1], format!("10.77.41.0/24,{subnet6}"), "{ls}");
    assert_eq!(d6[2], format!("10.77.41.1,{gw6}"), "{ls}");
    let n4 = row("n4");
    assert!(!n4[1].contains(',') && n4[1].ends_with("/24"), "{ls}");
    let m = row("mine6");
    assert_eq!(m[1], "fd00:aa:1::/64,10.99.1.0/24,10.99.2.0/24", "{ls}");
    assert_eq!(m[2], "fd00:aa:1::1,10.99.1.1,10.99.2.254", "{ls}");
    // the columns line up: each cell starts where its header does
    let at = |l: &str, word: &str| l.find(word).unwrap();
    let d6_line = ls.lines().find(|l| l.starts_with("d6 ")).unwrap();
    let header = ls.lines().next().unwrap();
    assert_eq!(at(d6_line, "10.77.41.1,"), at(header, "GATEWAYS"), "{ls}");

    let j: Value = serde_json::from_str(&t.husk_ok(None, &["ls", "--format", "json"])).unwrap();
    let arr = j.as_array().unwrap();
    let names: Vec<&str> = arr.iter().map(|n| n["name"].as_str().unwrap()).collect();
    let quiet = t.husk_ok(None, &["ls", "-q"]);
    assert_eq!(names, quiet.lines().collect::<Vec<_>>(), "{j}");
    let d6 = arr.iter().find(|n| n["name"] == "d6").unwrap();
    assert_eq!(
        d6["subnets"],
        serde_json::json!([
            {"subnet": "10.77.41.0/24", "gateway": "10.77.41.1"},
            {"subnet": subnet6, "gateway": gw6},
        ]),
        "{j}"
    );
    assert_eq!(d6["ipv6"], true, "{j}");
    let n4 = arr.iter().find(|n| n["name"] == "n4").unwrap();
    assert_eq!(n4["subnets"].as_array().map(Vec::len), Some(1), "{j}");
    assert_eq!(n4["ipv6"], false, "{j}");
    // inspect lists them the same way
    let i: Value = serde_json::from_str(&t.husk_ok(None, &["inspect", "d6"])).unwrap();
    assert_eq!(i["subnets"], d6["subnets"], "{i}");
    let m = arr.iter().find(|n| n["name"] == "mine6").unwrap();
    assert_eq!(m["subnets"].as_array().map(Vec::len), Some(3), "{j}");
    assert_eq!(m["subnets"][2]["gateway"], "10.99.2.254", "{j}");
    assert_eq!(m["ipv6"], true, "{j}");
    assert_eq!(m["managedByHusk"], false, "{j}");
    assert_eq!(t.husk_ok(None, &["ls", "-q", "--format", "json"]), quiet);
    for args in [
        &["ls", "--format", "yaml"][..],
        &["ls", "-q", "--format", "yaml"],
    ] {
        let e = t.husk_err(None, args);
        assert!(
            e.contains("--format") && e.contains("yaml") && e.contains("table or json"),
            "{args:?}: {e}"
        );
    }
    std::fs::remove_file(&mine).unwrap();
}
