//! The `network` section: attach + detach of a running container to husk's default network
//! with one published port, in a network namespace of the benchmark's own (deleted at the end).
//! husk's column: `husk network attach -p 18500:80 husk ID` then `husk network detach husk ID`
//! (the native driver, whole husk processes). The other columns: the CNI plugin chain the same
//! conflist names (bridge with host-local, portmap, firewall, and loopback's ADD, as husk and
//! the engines run it for runc and crun) run directly, ADD then DEL, on a namespace of its own;
//! the same samples in each non-husk column.

use super::{ms, Bench, Row};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `ip netns add NAME`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Option<Netns> {
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| {
            let _ = Command::new("ip")
                .args(["-n", &name, "link", "set", "lo", "up"])
                .status();
            Netns(name)
        })
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn measure(b: &Bench, runs: usize, warmup: usize, notes: &mut Vec<String>) -> Vec<Row> {
    let Some(husk) = b.rts.iter().find(|r| r.name == "husk") else {
        notes.push("network: left out, husk is not among the runtimes".into());
        return Vec::new();
    };
    let plugins = Path::new("/usr/lib/cni");
    if !["bridge", "host-local", "portmap", "firewall", "loopback"]
        .iter()
        .all(|p| plugins.join(p).is_file())
    {
        notes.push("network: left out, the CNI plugins are not in /usr/lib/cni".into());
        return Vec::new();
    }
    let pid = std::process::id();
    let (Some(host), Some(sandbox)) = (
        Netns::new(format!("husk-bench-net-{pid}")),
        Netns::new(format!("husk-bench-ctr-{pid}")),
    ) else {
        notes.push("network: left out, `ip netns add` failed".into());
        return Vec::new();
    };
    eprintln!("bench: network attach + detach x{runs}");
    let dirs = b.base.join("network");
    for d in ["conf", "cni", "run"] {
        std::fs::create_dir_all(dirs.join(d)).unwrap();
    }
    let id = b.id(husk);
    let bundle = b.bundle(husk, &id, &["/bin/sleep", "1000"], None);
    let ok = husk
        .cmd()
        .args(["run", "--detach", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "husk: run --detach failed");
    let ns = std::fs::File::open(host.path()).unwrap();
    let nsfd = ns.as_raw_fd();
    let husk_net = |args: &[&str]| -> bool {
        let mut c = husk.cmd();
        c.arg("network")
            .args(args)
            .env("HUSK_NETWORK_DIR", dirs.join("conf"))
            .env("HUSK_CNI_CONFIG_DIR", dirs.join("cni"))
            .env("HUSK_NETWORK_RUN_DIR", dirs.join("run"))
            .env_remove("HUSK_NETWORK_DRIVER");
        // SAFETY: setns is async-signal-safe; the fd stays open while the closure lives.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.status().is_ok_and(|s| s.success())
    };
    let native_once = || -> Option<f64> {
        let t = Instant::now();
        let a = husk_net(&["attach", "-p", "18500:80", "husk", &id]);
        let d = husk_net(&["detach", "husk", &id]);
        (a && d).then(|| ms(t.elapsed()))
    };
    // the first attach writes the default network's conflist; the chain runs that same list
    let first = native_once();
    let list_path = dirs.join("conf/husk.conflist");
    let list: serde_json::Value = match std::fs::read(&list_path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
    {
        Some(l) if first.is_some() => l,
        _ => {
            notes.push("network: left out, husk's native attach failed".into());
            let _ = husk.cmd().args(["delete", "--force", &id]).status();
            return Vec::new();
        }
    };
    // the plugins run from a thread in the benchmark's namespace: processes it starts are there
    let sandbox_path = std::path::PathBuf::from(sandbox.path());
    let host_path = host.path();
    let chain: Vec<Option<f64>> = std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&host_path).unwrap();
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let path = vec![plugins.to_path_buf()];
            let env = husk::network::cni::Env {
                network: "husk",
                container_id: "husk-bench-chain",
                netns: &sandbox_path,
                ifname: "eth0",
                args: "IgnoreUnknown=1",
                path: &path,
                timeout: Duration::from_secs(60),
            };
            let rc = serde_json::json!({"portMappings": [
                {"hostPort": 18501, "containerPort": 80, "protocol": "tcp"}]});
            let lo = serde_json::json!({"cniVersion": "1.0.0", "name": "husk-loopback",
                                        "type": "loopback"});
            let mut out = Vec::new();
            for _ in 0..warmup + runs {
                let t = Instant::now();
                let lo_env = husk::network::cni::Env {
                    ifname: "lo",
                    ..env.clone()
                };
                let added = husk::network::cni::exec("ADD", "loopback", &lo, &lo_env)
                    .and_then(|_| husk::network::cni::add_list(&list, &rc, &env));
                let r = added.as_ref().ok().cloned();
                let del = husk::network::cni::del_list(&list, &rc, r.as_ref(), &env);
                out.push((added.is_ok() && del.is_ok()).then(|| ms(t.elapsed())));
            }
            out.split_off(warmup)
        })
        .join()
        .unwrap()
    });
    let mut native = Vec::new();
    for _ in 0..warmup {
        native_once();
    }
    for _ in 0..runs {
        native.extend(native_once());
    }
    let _ = husk.cmd().args(["delete", "--force", &id]).status();
    let _ = std::fs::remove_dir_all(husk.work.join("bundles").join(&id));
    let failed = chain.iter().filter(|c| c.is_none()).count();
    if failed > 0 {
        notes.push(format!(
            "network: {failed} of {runs} plugin-chain rounds failed and are not counted"
        ));
    }
    let chain: Vec<f64> = chain.into_iter().flatten().collect();
    let mut vals = vec![("husk".to_string(), native)];
    for rt in b.rts.iter().filter(|r| r.name != "husk") {
        vals.push((rt.name.clone(), chain.clone()));
    }
    drop((host, sandbox));
    vec![Row {
        what: "network attach + detach, default bridge, one published port".into(),
        unit: "ms",
        vals,
        note: "husk: `husk network attach -p` + `detach` (native: rtnetlink, host-local's files, \
               one nf_tables batch over netlink each; the kernel's RCU waits after the veth has \
               left both namespaces and after the nf_tables commits, and the freeing of the \
               blocks of replaced or removed state files, are left to grandchildren, apart from \
               husk), whole processes; other columns: the CNI plugin chain of \
               the same conflist (bridge + host-local, portmap, firewall, loopback ADD), run \
               directly, ADD then DEL, as the engines run it for runc and crun (the same samples \
               in each)"
            .into(),
    }]
}
