//! pause, resume, ps, events, update, features: the operations that act on a container's cgroup.

use super::lifecycle::{status_of, Global};
use super::UpdateOptions;
use crate::state::Status;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use std::fmt::Write;
use std::time::{Duration, Instant};

pub fn pause(g: &Global, id: &str) -> Result<()> {
    let _l = g.store.lock(id)?;
    let mut st = g.store.load(id)?;
    match status_of(g, &st) {
        Status::Running | Status::Created => {}
        Status::Paused => bail!("container {id} is already paused"),
        _ => bail!("container not running"),
    }
    crate::fault::step("pause: checked");
    crate::cgroups::from_state(&st.cgroup)?.freeze(true)?;
    crate::fault::step("pause: frozen");
    st.paused = true;
    g.store.save(&st)
}

pub fn resume(g: &Global, id: &str) -> Result<()> {
    let _l = g.store.lock(id)?;
    let mut st = g.store.load(id)?;
    if status_of(g, &st) != Status::Paused {
        bail!("container not paused");
    }
    crate::fault::step("resume: checked");
    crate::cgroups::from_state(&st.cgroup)?.freeze(false)?;
    crate::fault::step("resume: thawed");
    st.paused = false;
    g.store.save(&st)
}

pub fn ps(g: &Global, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let st = g.store.load(id)?;
    let pids = if status_of(g, &st) == Status::Stopped {
        Vec::new()
    } else {
        crate::cgroups::from_state(&st.cgroup)?.pids()?
    };
    let mut out = String::new();
    match format {
        "json" => writeln!(out, "{}", serde_json::to_string(&pids)?)?,
        "table" => {
            // Like runc: run ps(1) on the host and keep the header and the container's lines.
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let o = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            if !o.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&o.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            writeln!(out, "{header}")?;
            for l in lines {
                let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    writeln!(out, "{l}")?;
                }
            }
        }
        other => bail!("--format: invalid format {other:?} (expected table or json)"),
    }
    crate::output::stdout(out.as_bytes())?;
    Ok(())
}

/// One stats event, keys in runc's order (`type`, `id`, `data`, and `data`'s in the order of
/// runc's `types.Stats`): serialized from the structs, not through a `serde_json::Value`, whose
/// map sorts the keys.
fn stats_event(id: &str, st: &crate::state::ContainerState) -> Result<String> {
    let cg = crate::cgroups::from_state(&st.cgroup)?;
    let ev = crate::cgroups::stats::Event::stats(id, cg.stats()?);
    Ok(serde_json::to_string(&ev)?)
}

/// Parse a Go-style duration as runc's `--interval` takes it: "5s", "100ms", "1m", "1.5s".
pub fn parse_duration(s: &str) -> Result<Duration> {
    let units = [
        ("ms", 0.001),
        ("us", 0.000_001),
        ("ns", 1e-9),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    for (u, mult) in units {
        if let Some(n) = s.strip_suffix(u) {
            if let Ok(v) = n.parse::<f64>() {
                if v > 0.0 {
                    return Ok(Duration::from_secs_f64(v * mult));
                }
            }
        }
    }
    bail!("--interval: invalid duration {s:?} (e.g. 5s, 500ms)")
}

pub fn events(g: &Global, id: &str, stats: bool, interval: &str) -> Result<()> {
    let st = g.store.load(id)?;
    if status_of(g, &st) == Status::Stopped {
        bail!("container with id {id} is not running");
    }
    let out = crate::output::line;
    if stats {
        out(&stats_event(id, &st)?)?;
        return Ok(());
    }
    let every = parse_duration(interval)?;
    let cg = crate::cgroups::from_state(&st.cgroup)?;
    let mut ooms = cg.oom_kill_count().unwrap_or(0);
    let mut next_stats = Instant::now() + every;
    loop {
        std::thread::sleep(Duration::from_millis(100).min(every));
        if status_of(g, &st) == Status::Stopped {
            return Ok(());
        }
        let now_ooms = cg.oom_kill_count().unwrap_or(ooms);
        if now_ooms > ooms {
            ooms = now_ooms;
            out(&serde_json::to_string(&crate::cgroups::stats::Event::oom(
                id,
            ))?)?;
        }
        if Instant::now() >= next_stats {
            next_stats += every;
            if let Ok(e) = stats_event(id, &st) {
                out(&e)?;
            }
        }
    }
}

/// Sizes as runc's update flags take them: bytes, or with k/m/g/t (optionally followed by b).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}"))?;
    if v < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((v * mult as f64) as i64)
}

fn resources_from(f: &UpdateOptions) -> Result<LinuxResources> {
    let mut v = match f.resources.as_deref() {
        Some("-") => {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut s)?;
            serde_json::from_slice::<serde_json::Value>(&s)
                .context("--resources: stdin is not JSON")?
        }
        Some(path) => {
            let s = std::fs::read(path).with_context(|| format!("--resources {path}"))?;
            serde_json::from_slice(&s).with_context(|| format!("--resources {path}: not JSON"))?
        }
        None => serde_json::json!({}),
    };
    let obj = v
        .as_object_mut()
        .context("--resources: expected a JSON object")?;
    let mut set = |section: &str, key: &str, val: serde_json::Value| {
        let s = obj.entry(section).or_insert_with(|| serde_json::json!({}));
        s[key] = val;
    };
    for (flag, key, val) in [
        ("memory", "limit", &f.memory),
        ("memory", "reservation", &f.memory_reservation),
        ("memory", "swap", &f.memory_swap),
        ("memory", "kernel", &f.kernel_memory),
        ("memory", "kernelTCP", &f.kernel_memory_tcp),
    ] {
        if let Some(s) = val {
            set(flag, key, parse_size(s)?.into());
        }
    }
    if let Some(x) = f.cpu_shares {
        set("cpu", "shares", x.into());
    }
    if let Some(x) = f.cpu_period {
        set("cpu", "period", x.into());
    }
    if let Some(x) = f.cpu_quota {
        set("cpu", "quota", x.into());
    }
    if let Some(x) = f.cpu_burst {
        set("cpu", "burst", x.into());
    }
    if let Some(x) = f.cpu_rt_period {
        set("cpu", "realtimePeriod", x.into());
    }
    if let Some(x) = f.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", x.into());
    }
    if let Some(x) = f.cpu_idle {
        set("cpu", "idle", x.into());
    }
    if let Some(x) = &f.cpuset_cpus {
        set("cpu", "cpus", x.clone().into());
    }
    if let Some(x) = &f.cpuset_mems {
        set("cpu", "mems", x.clone().into());
    }
    if let Some(x) = f.pids_limit {
        set("pids", "limit", x.into());
    }
    if let Some(x) = f.blkio_weight {
        set("blockIO", "weight", x.into());
    }
    serde_path_to_error::deserialize(v)
        .map_err(|e| anyhow::anyhow!("--resources: {}: {}", e.path(), e.inner()))
}

pub fn update(g: &Global, id: &str, f: &UpdateOptions) -> Result<()> {
    let _l = g.store.lock(id)?;
    let st = g.store.load(id)?;
    if status_of(g, &st) == Status::Stopped {
        bail!("container not running");
    }
    let r = resources_from(f)?;
    crate::fault::step("update: checked");
    crate::cgroups::from_state(&st.cgroup)?.update(&r)?;
    crate::fault::step("update: applied");
    Ok(())
}

/// `features`: only what this build really does.
pub fn features(criu: &str) -> Result<()> {
    let mut supported_flags = vec![
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ];
    // Linux 5.19 (used with SCMP_ACT_NOTIFY rules)
    if crate::security::seccomp_kernel_has_wait_killable_recv() {
        supported_flags.push("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    }
    let f = serde_json::json!({
        "ociVersionMin": "1.0.0",
        // runtime-spec 1.3: linux.netDevices and linux.memoryPolicy
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": known_capabilities(),
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                            "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                              "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE",
                          "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390X", "SCMP_ARCH_X32",
                          "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                               "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": supported_flags
            },
            // runtime-spec features-linux.md: whether the runtime supports them, "irrelevant to
            // the availability of AppArmor [SELinux] on the host" (runc: always true)
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE",
                          "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
                          "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES",
                          "MPOL_F_STATIC_NODES"]
            },
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true}
        },
        "annotations": {
            "org.opencontainers.runc.version": env!("CARGO_PKG_VERSION"),
            "io.github.husk.version": env!("CARGO_PKG_VERSION")
        }
    });
    let mut f = f;
    // runc's annotation for CRIU support. runc sets it unconditionally; husk sets it when the
    // criu binary (`--criu`, else `criu` in $PATH) is installed. Only a stat: `criu check`
    // would cost a subprocess (and CRIU's kernel probing) on every `features` call.
    if crate::criu::installed(criu) {
        f["annotations"]["org.opencontainers.runc.checkpoint.enabled"] = "true".into();
    }
    crate::output::line(&serde_json::to_string_pretty(&f)?)?;
    Ok(())
}

/// The mount options the rootfs code understands (checked by a unit test against the parser).
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

fn known_capabilities() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn advertised_mount_options_parse() {
        for o in super::MOUNT_OPTIONS {
            crate::rootfs::options::parse_mount_options(&[o])
                .unwrap_or_else(|e| panic!("{o}: {e}"));
        }
    }

    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("x").is_err());
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
    }

    #[test]
    fn update_flags_become_resources() {
        let f = UpdateOptions {
            memory: Some("64m".into()),
            pids_limit: Some(20),
            cpu_quota: Some(50000),
            ..Default::default()
        };
        let r = resources_from(&f).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 20);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50000));
    }
}
