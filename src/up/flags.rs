//! docker run's container-configuration flags for `husk up`: volumes and mounts, resources,
//! capabilities and security options, names (DNS, hosts), labels and devices, each mapped onto
//! the bundle's `config.json` as Docker's daemon does (moby's `daemon/oci_linux.go`,
//! `oci/caps`, `volume/mounts`).
//!
//! Three steps, so that bad input is refused before anything is made:
//! [`parse`] reads the flag values alone (pure; every error names the flag and the value);
//! [`resolve`] looks at the host (bind sources, device nodes, the seccomp file, the CPU count,
//! swap accounting) and creates nothing; [`apply`] edits the spec from the two (pure). Only
//! [`create_volumes`] and [`write_names`] write, once everything has been checked.

use super::seccomp;
use crate::network::dns::{self, DnsOptions};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The flags as given on the command line (`husk up`'s share of docker run's).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConfigFlags {
    /// Bind mount or volume: HOST-PATH:CTR[:OPTS], NAME:CTR[:OPTS] or CTR (anonymous volume);
    /// OPTS: ro, rw, z, Z, nocopy, [r]shared, [r]slave, [r]private; repeatable.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…]
    /// [,tmpfs-size=…][,tmpfs-mode=…]; repeatable.
    #[arg(long)]
    pub mount: Vec<String>,
    /// A tmpfs at CTR[:OPTIONS] (mount options, e.g. size=64m,mode=1777); repeatable.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Memory limit: a number with an optional unit b, k, m or g.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap) [default: twice --memory].
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (CFS quota over a 100 ms period), e.g. 1.5.
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true)]
    pub cpu_shares: Option<String>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile=1024:2048); repeatable.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a capability (NET_ADMIN, CAP_SYS_TIME, ALL); repeatable.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability (ALL for every one); repeatable.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp, every host device, writable /sys, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=FILE|unconfined, no-new-privileges[:true|false], apparmor=PROFILE|unconfined,
    /// label=disable, systempaths=unconfined; repeatable.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// A nameserver for the container's /etc/resolv.conf; repeatable.
    #[arg(long)]
    pub dns: Vec<String>,
    /// A search domain for /etc/resolv.conf ("." for none); repeatable.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A resolver option for /etc/resolv.conf (ndots:2); repeatable.
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry NAME:IP; repeatable.
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// KEY=VALUE stored in the config's annotations; repeatable.
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// A host device: HOST[:CTR[:PERMISSIONS]] (permissions of r, w, m), or a CDI device
    /// VENDOR/CLASS=NAME (=all: each of the class); repeatable.
    #[arg(long)]
    pub device: Vec<String>,
    #[command(flatten)]
    pub cdi: super::cdi::CdiFlags,
}

/// Docker's default capabilities (moby's `caps.DefaultCapabilities`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability by its number (linux/capability.h).
const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Where a mount comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path (absolute).
    Bind(PathBuf),
    /// A named volume: `STORE/volumes/NAME/_data`.
    Volume(String),
    /// A volume of its own, removed with the container under `--rm`.
    Anonymous,
    /// A tmpfs with these mount options (merged, defaults first).
    Tmpfs(Vec<String>),
}

/// One `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountReq {
    /// The flag and its value, for errors (`-v "/a:/b"`).
    pub flag: String,
    pub source: Source,
    pub target: String,
    pub readonly: bool,
    /// `rprivate`, `rshared`, … for binds and volumes.
    pub propagation: Option<String>,
    /// `bind` instead of `rbind`.
    pub nonrecursive: bool,
    /// A volume not to fill with the image's files (`nocopy`, `volume-nocopy`).
    pub nocopy: bool,
}

/// `--device HOST[:CTR[:PERMS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReq {
    pub host: PathBuf,
    pub container: String,
    pub permissions: String,
}

/// `--security-opt seccomp=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    Unconfined,
    File(PathBuf),
}

/// The flags, parsed.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub mounts: Vec<MountReq>,
    pub memory: Option<i64>,
    /// Memory plus swap; -1 for unlimited.
    pub memory_swap: Option<i64>,
    /// CPUs in billionths (docker's NanoCPUs).
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    /// -1 for unlimited.
    pub pids_limit: Option<i64>,
    /// (`RLIMIT_NOFILE`, soft, hard).
    pub ulimits: Vec<(String, u64, u64)>,
    /// Normalised names (`CAP_X` or `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub seccomp: Option<Seccomp>,
    pub no_new_privileges: Option<bool>,
    pub apparmor: Option<String>,
    pub label_disable: bool,
    pub systempaths_unconfined: bool,
    pub dns: DnsOptions,
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub labels: Vec<(String, String)>,
    pub devices: Vec<DeviceReq>,
    pub cdi: super::cdi::Request,
}

/// docker's `units.RAMInBytes`: a decimal number, an optional unit of k, m, g, t or p (powers
/// of 1024, case-insensitive, optionally followed by `i` and/or `b`), or `b` for bytes.
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "{flag} {s:?}: expected a size such as 512m or 1g (a number with an optional unit \
             b, k, m, g, t or p)"
        )
    };
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    // "ib" without a prefix ("5ib") is no unit docker knows either
    if unit.is_empty() && t.to_ascii_lowercase().ends_with("ib") {
        return Err(bad());
    }
    let v = n * mult;
    if !v.is_finite() || v >= i64::MAX as f64 {
        bail!("{flag} {s:?}: too large");
    }
    Ok(v as i64)
}

/// `--cpus`: a positive decimal, in billionths of a CPU.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let n: f64 = s
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .with_context(|| format!("--cpus {s:?}: expected a number of CPUs such as 1.5"))?;
    if n <= 0.0 {
        bail!("--cpus {s:?}: the number of CPUs must be greater than zero");
    }
    let nano = (n * 1e9).round();
    if nano < 1e7 {
        bail!("--cpus {s:?}: the smallest number of CPUs is 0.01");
    }
    if nano > i64::MAX as f64 {
        bail!("--cpus {s:?}: too large");
    }
    Ok(nano as i64)
}

/// A capability name as docker accepts it (any case, with or without `CAP_`, or `ALL`).
pub fn normalize_cap(flag: &str, s: &str) -> Result<String> {
    let u = s.trim().to_ascii_uppercase();
    if u == "ALL" {
        return Ok(u);
    }
    let full = if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    };
    if !ALL_CAPS.contains(&full.as_str()) {
        bail!("{flag} {s:?}: unknown capability (expected a name such as NET_ADMIN, or ALL)");
    }
    Ok(full)
}

/// moby's `caps.TweakCapabilities`: `--privileged` is every capability; `--cap-add ALL` is
/// every one but those dropped; `--cap-drop ALL` leaves only those added; otherwise the base
/// set without the dropped ones, plus the added ones.
pub fn tweak_caps(
    base: &[&str],
    add: &[String],
    drop: &[String],
    privileged: bool,
    all: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |c: &str| {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    };
    let all_word = |l: &[String]| l.iter().any(|c| c == "ALL");
    if privileged {
        all.iter().for_each(|c| push(c));
    } else if all_word(add) {
        all.iter()
            .filter(|c| !drop.contains(c))
            .for_each(|c| push(c));
    } else if all_word(drop) {
        add.iter().for_each(|c| push(c));
    } else {
        base.iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .for_each(|c| push(c));
        add.iter().for_each(|c| push(c));
    }
    out
}

const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]` (-1: unlimited) as (`RLIMIT_NAME`, soft, hard).
pub fn parse_ulimit(s: &str) -> Result<(String, u64, u64)> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("--ulimit {s:?}: expected NAME=SOFT[:HARD]"))?;
    if !ULIMITS.contains(&name) {
        bail!(
            "--ulimit {s:?}: unknown limit {name:?} (expected one of {})",
            ULIMITS.join(", ")
        );
    }
    let num = |v: &str| -> Result<u64> {
        if v == "-1" {
            return Ok(u64::MAX);
        }
        v.parse::<u64>()
            .with_context(|| format!("--ulimit {s:?}: {v:?} is not a number (or -1)"))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let v = num(vals)?;
            (v, v)
        }
    };
    if soft > hard {
        bail!("--ulimit {s:?}: the soft limit is greater than the hard limit");
    }
    Ok((format!("RLIMIT_{}", name.to_ascii_uppercase()), soft, hard))
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// docker's local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub(crate) fn valid_volume_name(n: &str) -> bool {
    n.len() >= 2
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn check_target(flag: &str, t: &str) -> Result<()> {
    if !t.starts_with('/') {
        bail!("{flag}: the container path {t:?} must be absolute");
    }
    if Path::new(t).components().count() == 1 {
        bail!("{flag}: the container path cannot be /");
    }
    if t.split('/').any(|c| c == "..") {
        bail!("{flag}: the container path {t:?} must not contain ..");
    }
    Ok(())
}

/// `-v SRC:DST[:OPTS]`, `-v NAME:DST[:OPTS]` or `-v DST`.
pub fn parse_volume(s: &str) -> Result<MountReq> {
    let flag = format!("-v {s:?}");
    let parts: Vec<&str> = s.split(':').collect();
    let (src, target, opts) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] => (Some(*s), *t, ""),
        [s, t, o] => (Some(*s), *t, *o),
        _ => bail!("{flag}: expected HOST-PATH:CONTAINER-PATH[:OPTIONS] or NAME:CONTAINER-PATH"),
    };
    check_target(&flag, target)?;
    let source = match src {
        None => Source::Anonymous,
        Some(p) if p.starts_with('/') => Source::Bind(PathBuf::from(p)),
        Some(n) if valid_volume_name(n) => Source::Volume(n.to_string()),
        Some(n) => bail!(
            "{flag}: {n:?} is neither an absolute host path nor a volume name \
             ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
        ),
    };
    let mut m = MountReq {
        flag: flag.clone(),
        source,
        target: target.to_string(),
        readonly: false,
        propagation: None,
        nonrecursive: false,
        nocopy: false,
    };
    let mut rw_seen = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "rw" => {
                if rw_seen {
                    bail!("{flag}: give ro or rw once");
                }
                rw_seen = true;
                m.readonly = o == "ro";
            }
            // SELinux relabelling (husk applies no SELinux labels) and macOS consistency
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" if !matches!(m.source, Source::Bind(_)) => m.nocopy = true,
            p if PROPAGATIONS.contains(&p) => {
                if m.propagation.is_some() {
                    bail!("{flag}: give one propagation mode");
                }
                m.propagation = Some(p.to_string());
            }
            _ => bail!(
                "{flag}: unknown option {o:?} (expected ro, rw, z, Z, nocopy, [r]shared, \
                 [r]slave or [r]private)"
            ),
        }
    }
    Ok(m)
}

fn bool_value(flag: &str, key: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => bail!("{flag}: {key}={v:?} is not true or false"),
    }
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…,…` (docker's CSV form).
pub fn parse_mount(s: &str) -> Result<MountReq> {
    let flag = format!("--mount {s:?}");
    let mut kind = None;
    let mut source = None;
    let mut target = None;
    let mut readonly = false;
    let mut propagation = None;
    let mut nonrecursive = false;
    let mut nocopy = false;
    let mut tmpfs = Vec::new();
    for field in s.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let val = || v.with_context(|| format!("{flag}: {k} needs a value ({k}=…)"));
        match k.as_str() {
            "type" => kind = Some(val()?.to_string()),
            "source" | "src" => source = Some(val()?.to_string()),
            "target" | "destination" | "dst" => target = Some(val()?.to_string()),
            "readonly" | "ro" => readonly = bool_value(&flag, &k, v)?,
            "bind-propagation" => {
                let p = val()?;
                if !PROPAGATIONS.contains(&p) {
                    bail!("{flag}: bind-propagation={p:?} is not one of {PROPAGATIONS:?}");
                }
                propagation = Some(p.to_string());
            }
            "bind-nonrecursive" => nonrecursive = bool_value(&flag, &k, v)?,
            "volume-nocopy" => nocopy = bool_value(&flag, &k, v)?,
            "consistency" => {}
            "tmpfs-size" => {
                tmpfs.push(format!("size={}", parse_size(&flag, val()?)?));
            }
            "tmpfs-mode" => {
                let m = val()?;
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .with_context(|| format!("{flag}: tmpfs-mode={m:?} is not an octal mode"))?;
                tmpfs.push(format!("mode={m}"));
            }
            _ => bail!(
                "{flag}: unknown field {k:?} (expected type, source, target, readonly, \
                 bind-propagation, bind-nonrecursive, volume-nocopy, tmpfs-size, tmpfs-mode)"
            ),
        }
    }
    let target = target.with_context(|| format!("{flag}: target=… is missing"))?;
    check_target(&flag, &target)?;
    let kind = kind.unwrap_or_else(|| "volume".to_string());
    let is = |t: &str| kind == t;
    if !tmpfs.is_empty() && !is("tmpfs") {
        bail!("{flag}: tmpfs-size and tmpfs-mode are for type=tmpfs");
    }
    if (propagation.is_some() || nonrecursive) && !is("bind") {
        bail!("{flag}: bind-propagation and bind-nonrecursive are for type=bind");
    }
    if nocopy && !is("volume") {
        bail!("{flag}: volume-nocopy is for type=volume");
    }
    let source = match kind.as_str() {
        "bind" => {
            let p = source.with_context(|| format!("{flag}: type=bind needs source=…"))?;
            if !p.starts_with('/') {
                bail!("{flag}: the bind source {p:?} must be an absolute host path");
            }
            Source::Bind(PathBuf::from(p))
        }
        "volume" => match source {
            None => Source::Anonymous,
            Some(n) if valid_volume_name(&n) => Source::Volume(n),
            Some(n) => bail!("{flag}: {n:?} is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"),
        },
        "tmpfs" => {
            if source.is_some() {
                bail!("{flag}: type=tmpfs takes no source");
            }
            let mut o = vec!["noexec".to_string(), "nosuid".into(), "nodev".into()];
            if readonly {
                o.push("ro".into());
            }
            o.extend(tmpfs);
            Source::Tmpfs(merge_tmpfs_options(&flag, &o)?)
        }
        t => bail!("{flag}: type={t:?} is not bind, volume or tmpfs"),
    };
    Ok(MountReq {
        flag,
        source,
        target,
        readonly,
        propagation,
        nonrecursive,
        nocopy,
    })
}

/// Mount flags a tmpfs option list may hold, each with its opposite.
const TMPFS_FLAGS: [(&str, &str); 10] = [
    ("ro", "rw"),
    ("exec", "noexec"),
    ("suid", "nosuid"),
    ("dev", "nodev"),
    ("sync", "async"),
    ("atime", "noatime"),
    ("diratime", "nodiratime"),
    ("relatime", "norelatime"),
    ("strictatime", "nostrictatime"),
    ("dirsync", "dirsync"),
];
const TMPFS_DATA: [&str; 7] = [
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// moby's `mount.MergeTmpfsOptions`: each option checked; a later flag replaces its opposite
/// and a later `key=` replaces the earlier one.
pub fn merge_tmpfs_options(flag: &str, opts: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for o in opts {
        if let Some((k, v)) = o.split_once('=') {
            if !TMPFS_DATA.contains(&k) || v.is_empty() {
                bail!(
                    "{flag}: unknown tmpfs option {o:?} (expected mount flags such as noexec, or \
                     {}=VALUE)",
                    TMPFS_DATA.join("=, ")
                );
            }
            out.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k));
        } else {
            let Some((a, b)) = TMPFS_FLAGS.iter().find(|(a, b)| a == o || b == o) else {
                bail!("{flag}: unknown tmpfs option {o:?}");
            };
            out.retain(|e| e != a && e != b);
        }
        out.push(o.clone());
    }
    Ok(out)
}

/// `--tmpfs CTR[:OPTIONS]`.
pub fn parse_tmpfs(s: &str) -> Result<MountReq> {
    let flag = format!("--tmpfs {s:?}");
    let (target, opts) = s.split_once(':').unwrap_or((s, ""));
    check_target(&flag, target)?;
    let mut o = vec!["noexec".to_string(), "nosuid".into(), "nodev".into()];
    o.extend(opts.split(',').filter(|x| !x.is_empty()).map(String::from));
    let merged = merge_tmpfs_options(&flag, &o)?;
    Ok(MountReq {
        flag,
        readonly: merged.iter().any(|o| o == "ro"),
        source: Source::Tmpfs(merged),
        target: target.to_string(),
        propagation: None,
        nonrecursive: false,
        nocopy: false,
    })
}

/// `--device HOST[:CTR[:PERMS]]` (or `HOST:PERMS`), as docker's `parseDevice`.
pub fn parse_device(s: &str) -> Result<DeviceReq> {
    let flag = format!("--device {s:?}");
    let perms_ok = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = s.split(':').collect();
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => bail!("{flag}: expected HOST[:CONTAINER[:PERMISSIONS]]"),
    };
    if !host.starts_with('/') {
        bail!("{flag}: the host device {host:?} must be an absolute path");
    }
    if !ctr.starts_with('/') {
        bail!("{flag}: the container path {ctr:?} must be absolute");
    }
    if !perms_ok(perms) {
        bail!("{flag}: permissions {perms:?} must be made of r, w and m");
    }
    Ok(DeviceReq {
        host: PathBuf::from(host),
        container: ctr.to_string(),
        permissions: perms.to_string(),
    })
}

/// One `--security-opt`, into `c`.
fn parse_security_opt(s: &str, c: &mut Config) -> Result<()> {
    let flag = format!("--security-opt {s:?}");
    // KEY=VALUE; docker still reads the old KEY:VALUE
    let (k, v) = match s.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => match s.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        },
    };
    match (k, v) {
        ("no-new-privileges", v) => c.no_new_privileges = Some(bool_value(&flag, k, v)?),
        ("seccomp", Some("unconfined")) => c.seccomp = Some(Seccomp::Unconfined),
        ("seccomp", Some(f)) if !f.is_empty() => c.seccomp = Some(Seccomp::File(f.into())),
        ("apparmor", Some(p)) if !p.is_empty() => c.apparmor = Some(p.to_string()),
        ("label", Some("disable")) => c.label_disable = true,
        ("label", Some(_)) => {
            bail!("{flag}: husk applies no SELinux labels; only label=disable is accepted")
        }
        ("systempaths", Some("unconfined")) => c.systempaths_unconfined = true,
        _ => bail!(
            "{flag}: expected seccomp=FILE|unconfined, no-new-privileges[=true|false], \
             apparmor=PROFILE|unconfined, label=disable or systempaths=unconfined"
        ),
    }
    Ok(())
}

/// Read every flag's value; nothing on the host is looked at.
pub fn parse(f: &ConfigFlags) -> Result<Config> {
    let mut c = Config::default();
    for v in &f.volume {
        c.mounts.push(parse_volume(v)?);
    }
    for m in &f.mount {
        c.mounts.push(parse_mount(m)?);
    }
    for t in &f.tmpfs {
        c.mounts.push(parse_tmpfs(t)?);
    }
    for (i, m) in c.mounts.iter().enumerate() {
        if let Some(o) = c.mounts[..i].iter().find(|o| o.target == m.target) {
            bail!("{} and {}: both mount {}", o.flag, m.flag, m.target);
        }
    }
    if let Some(m) = &f.memory {
        let v = parse_size("-m", m)?;
        if v < 6 * 1024 * 1024 {
            bail!("-m {m:?}: the smallest memory limit is 6m");
        }
        c.memory = Some(v);
    }
    if let Some(s) = &f.memory_swap {
        let v = if s.trim() == "-1" {
            -1
        } else {
            parse_size("--memory-swap", s)?
        };
        let Some(mem) = c.memory else {
            bail!("--memory-swap {s:?}: needs -m/--memory as well");
        };
        if v != -1 && v < mem {
            bail!("--memory-swap {s:?}: must be at least -m ({mem} bytes), or -1 for unlimited");
        }
        c.memory_swap = Some(v);
    }
    if let Some(s) = &f.cpus {
        c.nano_cpus = Some(parse_cpus(s)?);
    }
    if let Some(s) = &f.cpu_shares {
        let v: u64 = s
            .trim()
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .with_context(|| format!("--cpu-shares {s:?}: expected a positive integer"))?;
        c.cpu_shares = Some(v);
    }
    if let Some(s) = &f.cpuset_cpus {
        crate::process::affinity::parse_cpu_list("--cpuset-cpus", s)?;
        c.cpuset_cpus = Some(s.clone());
    }
    if let Some(s) = &f.pids_limit {
        let v: i64 = s
            .trim()
            .parse()
            .with_context(|| format!("--pids-limit {s:?}: expected an integer (0 or -1: none)"))?;
        // docker: zero and below mean no limit
        c.pids_limit = Some(if v <= 0 { -1 } else { v });
    }
    for u in &f.ulimit {
        let l = parse_ulimit(u)?;
        c.ulimits.retain(|o| o.0 != l.0);
        c.ulimits.push(l);
    }
    for a in &f.cap_add {
        c.cap_add.push(normalize_cap("--cap-add", a)?);
    }
    for d in &f.cap_drop {
        c.cap_drop.push(normalize_cap("--cap-drop", d)?);
    }
    c.privileged = f.privileged;
    for s in &f.security_opt {
        parse_security_opt(s, &mut c)?;
    }
    c.dns = DnsOptions {
        servers: f.dns.clone(),
        search: f.dns_search.clone(),
        options: f.dns_option.clone(),
    };
    // the same checks the file is written with
    dns::resolv_conf("", &c.dns, true)?;
    for h in &f.add_host {
        c.extra_hosts.push(dns::parse_add_host(h)?);
    }
    for l in &f.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() || k.contains(char::is_whitespace) {
            bail!("--label {l:?}: expected KEY=VALUE with a key without spaces");
        }
        c.labels.retain(|(o, _)| o != k);
        c.labels.push((k.to_string(), v.to_string()));
    }
    c.cdi = super::cdi::parse(&f.device, &f.cdi)?;
    for d in f.device.iter().filter(|d| !super::cdi::is_name(d)) {
        c.devices.push(parse_device(d)?);
    }
    Ok(c)
}

/// A mount with its host side found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    pub target: String,
    /// `bind` (with its host path: a bind source or a volume's `_data`) or `tmpfs`.
    pub bind: Option<PathBuf>,
    pub tmpfs: Vec<String>,
    pub readonly: bool,
    pub propagation: Option<String>,
    pub nonrecursive: bool,
    /// A volume that gets the image's files at `target` while it is empty (Docker's copy-up).
    pub copy_up: bool,
}

/// What the host said about the flags.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub mounts: Vec<ResolvedMount>,
    /// Volume directories to create (`_data`), and which of them to remove with `--rm`.
    pub volumes: Vec<(PathBuf, bool)>,
    /// `linux.devices` entries and their cgroup rules for `--device`.
    pub devices: Vec<(Value, Value)>,
    /// Every device node of the host's /dev, for `--privileged`.
    pub host_devices: Vec<Value>,
    /// The edits of `--device VENDOR/CLASS=NAME` (`cdi.rs`).
    pub cdi: super::cdi::Edits,
    /// The container's seccomp profile as `linux.seccomp`: that of `--security-opt
    /// seccomp=FILE`, else Docker's default; none with `--privileged` or `seccomp=unconfined`.
    pub seccomp: Option<Value>,
    /// `process.apparmorProfile`: that of `--security-opt apparmor=NAME`, else husk's default
    /// profile where AppArmor is enabled; none with `--privileged` or `apparmor=unconfined`.
    pub apparmor: Option<String>,
    /// The capabilities husk can give (for ALL and `--privileged`).
    pub all_caps: Vec<String>,
    /// False when the kernel does not account swap (cgroup v1 without memory.memsw).
    pub swap_accounting: bool,
}

/// A device node at `p` as a `linux.devices` entry at `ctr` (None: not a device).
fn device_entry(p: &Path, ctr: &str) -> std::io::Result<Option<Value>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::symlink_metadata(p)?;
    let ty = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    Ok(Some(json!({
        "path": ctr, "type": ty,
        "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
        "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
    })))
}

/// Device nodes under `dir` (recursively, symlinks not followed), skipping what runc's
/// `HostDevices` skips.
fn devices_under(dir: &Path, ctr: &str, out: &mut Vec<Value>) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let c = format!("{}/{name}", ctr.trim_end_matches('/'));
        let ft = e.file_type()?;
        if ft.is_dir() {
            if ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]
                .contains(&name.as_str())
            {
                continue;
            }
            devices_under(&p, &c, out)?;
            continue;
        }
        if p == Path::new("/dev/console") {
            continue;
        }
        if let Some(d) = device_entry(&p, &c)? {
            out.push(d);
        }
    }
    Ok(())
}

/// The capabilities husk itself can hand on: the kernel's (`cap_last_cap`) within husk's own
/// bounding set (a container cannot be given more; under a restricted parent `--privileged`
/// would otherwise fail at capset).
fn available_caps() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| bounding & (1 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// The host's side of the flags: bind sources that exist, device nodes, the seccomp file,
/// the CPU count. Creates nothing. Volumes are `volumes/NAME/_data` under `store`.
pub fn resolve(c: &Config, store: &Path) -> Result<HostFacts> {
    let mut h = HostFacts {
        all_caps: available_caps(),
        swap_accounting: swap_accounting(),
        ..Default::default()
    };
    for m in &c.mounts {
        let (bind, tmpfs) = match &m.source {
            Source::Bind(p) => {
                let real = std::fs::canonicalize(p).with_context(|| {
                    format!("{}: the host path {} does not exist", m.flag, p.display())
                })?;
                (Some(real), Vec::new())
            }
            Source::Volume(n) => {
                let d = store.join("volumes").join(n).join("_data");
                h.volumes.push((d.clone(), false));
                (Some(d), Vec::new())
            }
            Source::Anonymous => {
                let d = store.join("volumes").join(random_name()?).join("_data");
                h.volumes.push((d.clone(), true));
                (Some(d), Vec::new())
            }
            Source::Tmpfs(o) => (None, o.clone()),
        };
        h.mounts.push(ResolvedMount {
            target: m.target.clone(),
            bind,
            tmpfs,
            readonly: m.readonly,
            propagation: m.propagation.clone(),
            nonrecursive: m.nonrecursive,
            copy_up: matches!(m.source, Source::Volume(_) | Source::Anonymous) && !m.nocopy,
        });
    }
    if c.memory_swap.is_some() && !h.swap_accounting {
        // as docker: a warning, and the limit left out
        crate::logging::warn(
            "--memory-swap: this kernel does not account swap (no memory.memsw); only the \
             memory limit is set",
        );
    }
    if let Some(n) = c.nano_cpus {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if n > cpus * 1_000_000_000 {
            bail!(
                "--cpus {}: this host has {cpus} CPU(s); the range is 0.01 to {cpus}",
                n as f64 / 1e9
            );
        }
    }
    for d in &c.devices {
        let flag = format!("--device {}", d.host.display());
        let md = std::fs::symlink_metadata(&d.host)
            .with_context(|| format!("{flag}: no such device on the host"))?;
        let mut nodes = Vec::new();
        if md.is_dir() {
            devices_under(&d.host, &d.container, &mut nodes)
                .with_context(|| format!("{flag}: read the directory"))?;
        } else {
            let real = std::fs::canonicalize(&d.host)
                .with_context(|| format!("{flag}: resolve {}", d.host.display()))?;
            match device_entry(&real, &d.container)? {
                Some(n) => nodes.push(n),
                None => bail!("{flag}: not a character or block device"),
            }
        }
        for n in nodes {
            let rule = json!({"allow": true, "type": n["type"], "major": n["major"],
                              "minor": n["minor"], "access": d.permissions});
            h.devices.push((n, rule));
        }
    }
    h.cdi = super::cdi::resolve(&c.cdi)?;
    if c.privileged {
        devices_under(Path::new("/dev"), "/dev", &mut h.host_devices)
            .context("--privileged: read the host's /dev")?;
    }
    // moby's WithSeccomp: none for --privileged or seccomp=unconfined, else the file given or
    // Docker's default profile, rendered for the container's capabilities
    let caps = tweak_caps(
        &DEFAULT_CAPS,
        &c.cap_add,
        &c.cap_drop,
        c.privileged,
        &h.all_caps,
    );
    match (&c.seccomp, c.privileged) {
        (_, true) | (Some(Seccomp::Unconfined), _) => {}
        (Some(Seccomp::File(f)), false) => {
            let text = std::fs::read_to_string(f).with_context(|| {
                format!("--security-opt seccomp={}: cannot read it", f.display())
            })?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("--security-opt seccomp={}: not JSON", f.display()))?;
            let native = seccomp::native_arch();
            h.seccomp = Some(
                seccomp::render(&v, &caps, native, &seccomp::kernel_release())
                    .with_context(|| format!("--security-opt seccomp={}", f.display()))?,
            );
        }
        (None, false) if !seccomp::kernel_has_seccomp() => {
            // as Docker: a warning, and no filter
            crate::logging::warn(
                "this kernel has no seccomp: the container runs without Docker's default \
                 seccomp profile",
            );
        }
        (None, false) => h.seccomp = Some(seccomp::default_profile(&caps)?),
    }
    // moby's WithApparmor: the profile named, else none for --privileged, else the default
    // one where AppArmor is enabled (loaded by up() before anything is made)
    h.apparmor = super::apparmor::choose(
        c.apparmor.as_deref(),
        c.privileged,
        super::apparmor::host_enabled,
    );
    Ok(h)
}

fn random_name() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom for a volume name")?;
    Ok(crate::registry::reference::hex(&b))
}

/// Whether swap limits can be set: cgroup v2, or v1 with `memory.memsw.limit_in_bytes`.
fn swap_accounting() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    !v1.exists() || v1.join("memory.memsw.limit_in_bytes").exists()
}

fn remove(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
}

/// Mount depth as docker sorts user mounts (parents before children).
fn depth(p: &str) -> usize {
    Path::new(p).components().count()
}

/// The runtime defaults of the image's spec (runc's `spec`) made Docker's (moby's
/// `oci.DefaultLinuxSpec` and `createSpec`): `/proc` nosuid, noexec, nodev; the default mounts
/// in Docker's order (`/dev/mqueue` and `/dev/shm` after the cgroup mount); no rlimits of its own
/// (the process keeps husk's, as a container of dockerd keeps containerd's); and in a network
/// namespace of its own, ports below 1024 and ping sockets open to every user
/// (`net.ipv4.ip_unprivileged_port_start=0`, `net.ipv4.ping_group_range=0 2147483647`) where the
/// kernel has them; the ping range (every gid) only outside a user namespace, as moby, since
/// gids a user namespace does not map cannot be written there.
pub fn docker_defaults(spec: &mut Value, private_network: bool) {
    let userns = crate::rootless::in_user_namespace()
        || !nix::unistd::geteuid().is_root()
        || spec["linux"]["namespaces"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["type"] == "user"));
    let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    for m in &mut mounts {
        if m["destination"] == "/proc" && m["type"] == "proc" {
            m["options"] = json!(["nosuid", "noexec", "nodev"]);
        }
    }
    for last in ["/dev/mqueue", "/dev/shm"] {
        if let Some(i) = mounts.iter().position(|m| m["destination"] == last) {
            let m = mounts.remove(i);
            mounts.push(m);
        }
    }
    spec["mounts"] = Value::Array(mounts);
    remove(&mut spec["process"], "rlimits");
    if private_network {
        if !spec["linux"]["sysctl"].is_object() {
            spec["linux"]["sysctl"] = json!({});
        }
        for (k, v) in [
            ("net.ipv4.ping_group_range", "0 2147483647"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
        ] {
            let exists = Path::new("/proc/sys").join(k.replace('.', "/")).exists();
            let ping = k == "net.ipv4.ping_group_range";
            if exists && !(ping && userns) && spec["linux"]["sysctl"].get(k).is_none() {
                spec["linux"]["sysctl"][k] = json!(v);
            }
        }
    }
}

/// Edit the spec as docker run's flags ask (Docker's defaults first: its 14 capabilities, no
/// `noNewPrivileges`). `names` are the bind mounts of the container's /etc/resolv.conf,
/// /etc/hosts and /etc/hostname (destination, host file).
pub fn apply(spec: &mut Value, c: &Config, h: &HostFacts, names: &[(String, PathBuf)]) {
    // capabilities, as moby's WithCapabilities (no inheritable or ambient set)
    let caps = tweak_caps(
        &DEFAULT_CAPS,
        &c.cap_add,
        &c.cap_drop,
        c.privileged,
        &h.all_caps,
    );
    spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    spec["process"]["noNewPrivileges"] = json!(c.no_new_privileges.unwrap_or(false));
    // rlimits: a flag replaces the spec's entry of its type
    if !c.ulimits.is_empty() {
        let mut rl: Vec<Value> = spec["process"]["rlimits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (ty, soft, hard) in &c.ulimits {
            rl.retain(|r| r["type"] != *ty);
            rl.push(json!({"type": ty, "soft": soft, "hard": hard}));
        }
        spec["process"]["rlimits"] = Value::Array(rl);
    }
    // resources (moby's getMemoryResources, getCPUResources, getPidsLimit)
    if !spec["linux"]["resources"].is_object() {
        spec["linux"]["resources"] = json!({});
    }
    let res = &mut spec["linux"]["resources"];
    if let Some(m) = c.memory {
        res["memory"]["limit"] = json!(m);
        match c.memory_swap {
            Some(s) if h.swap_accounting => res["memory"]["swap"] = json!(s),
            None if h.swap_accounting => res["memory"]["swap"] = json!(m * 2),
            _ => {}
        }
    }
    if let Some(n) = c.nano_cpus {
        let period: u64 = 100_000;
        res["cpu"]["period"] = json!(period);
        res["cpu"]["quota"] = json!((n as i128 * period as i128 / 1_000_000_000) as i64);
    }
    if let Some(s) = c.cpu_shares {
        res["cpu"]["shares"] = json!(s);
    }
    if let Some(s) = &c.cpuset_cpus {
        res["cpu"]["cpus"] = json!(s);
    }
    if let Some(p) = c.pids_limit {
        res["pids"] = json!({"limit": p});
    }
    // devices
    let (mut devs, mut rules) = super::cdi::device_lists(spec);
    if c.privileged {
        for d in &h.host_devices {
            super::cdi::add_device(&mut devs, d.clone());
        }
        for (d, _) in &h.devices {
            super::cdi::add_device(&mut devs, d.clone());
        }
        rules = vec![json!({"allow": true, "access": "rwm"})];
    } else {
        for (d, r) in &h.devices {
            super::cdi::add_device(&mut devs, d.clone());
            rules.push(r.clone());
        }
    }
    if !devs.is_empty() {
        spec["linux"]["devices"] = Value::Array(devs);
    }
    spec["linux"]["resources"]["devices"] = Value::Array(rules);
    // security options; --privileged: no seccomp, no AppArmor profile of docker's
    let linux = &mut spec["linux"];
    match &h.seccomp {
        Some(s) if !c.privileged && c.seccomp != Some(Seccomp::Unconfined) => {
            linux["seccomp"] = s.clone()
        }
        _ => remove(linux, "seccomp"),
    }
    match &h.apparmor {
        Some(p) => spec["process"]["apparmorProfile"] = json!(p),
        None => remove(&mut spec["process"], "apparmorProfile"),
    }
    if c.label_disable {
        remove(&mut spec["process"], "selinuxLabel");
        remove(&mut spec["linux"], "mountLabel");
    }
    if c.privileged || c.systempaths_unconfined {
        remove(&mut spec["linux"], "maskedPaths");
        remove(&mut spec["linux"], "readonlyPaths");
    }
    // mounts: the user's replace defaults at the same place, sorted parents first
    let mut user: Vec<Value> = Vec::new();
    for m in &h.mounts {
        let v = match &m.bind {
            Some(src) => {
                let mut o = vec![if m.nonrecursive { "bind" } else { "rbind" }.to_string()];
                if m.readonly {
                    o.push("ro".into());
                }
                o.push(m.propagation.clone().unwrap_or_else(|| "rprivate".into()));
                json!({"destination": m.target, "type": "bind", "source": src, "options": o})
            }
            None => json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs",
                           "options": m.tmpfs}),
        };
        user.push(v);
    }
    for (dest, src) in names {
        if !h.mounts.iter().any(|m| m.target == *dest) {
            user.push(json!({"destination": dest, "type": "bind", "source": src,
                             "options": ["rbind", "rprivate"]}));
        }
    }
    user.sort_by_key(|m| depth(m["destination"].as_str().unwrap_or("")));
    let user_dev = user.iter().any(|m| m["destination"] == "/dev");
    let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    mounts.retain(|m| {
        let d = m["destination"].as_str().unwrap_or("");
        let replaced = user.iter().any(|u| u["destination"] == d);
        let under_user_dev = user_dev && d.starts_with("/dev/");
        !replaced && !under_user_dev
    });
    if c.privileged {
        for m in &mut mounts {
            if m["destination"] == "/sys" || m["type"] == "cgroup" {
                if let Some(o) = m.get_mut("options").and_then(Value::as_array_mut) {
                    o.retain(|o| o != "ro");
                }
            }
        }
    }
    mounts.extend(user);
    spec["mounts"] = Value::Array(mounts);
    if !c.labels.is_empty() {
        if !spec["annotations"].is_object() {
            spec["annotations"] = json!({});
        }
        for (k, v) in &c.labels {
            spec["annotations"][k] = json!(v);
        }
    }
    super::cdi::apply(spec, &h.cdi);
}

/// The file next to an anonymous volume's `_data` that marks it (`husk volume prune` takes
/// only those unless `--all`).
pub const ANONYMOUS_MARK: &str = "anonymous";

/// Create the volume directories (`_data`, 0755) that do not exist yet.
pub fn create_volumes(h: &HostFacts) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mkdir = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(d)
            .with_context(|| format!("create the volume {}", d.display()))
    };
    for (d, anonymous) in &h.volumes {
        // the mark before `_data`: a husk killed in between leaves a volume without `_data`,
        // which `husk volume prune` removes, never an anonymous one that looks named
        if let (true, Some(p)) = (anonymous, d.parent()) {
            mkdir(p)?;
            let m = p.join(ANONYMOUS_MARK);
            std::fs::write(&m, "").with_context(|| format!("write {}", m.display()))?;
        }
        mkdir(d)?;
    }
    Ok(())
}

/// The lock of `STORE/volumes`: held shared while `husk up` makes and fills its volumes (after
/// its config.json names them), exclusively by `husk volume rm` and `prune` between finding a
/// volume unused and removing it.
pub fn lock_volumes(store: &Path, exclusive: bool) -> Result<nix::fcntl::Flock<std::fs::File>> {
    crate::state::lock_dir(&store.join("volumes"), 0o777, exclusive)
}

/// A container path cleaned as Docker cleans an image's VOLUME (Go's `filepath.Clean`, rooted:
/// `.` and empty components dropped, `..` taking one back, never above `/`).
pub fn clean_container_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The image's `Volumes` (its Dockerfile `VOLUME`s), as moby's
/// `createContainerOSSpecificSettings`: each path that no `-v`, `--mount` or `--tmpfs` mounts
/// gets an anonymous volume (`STORE/volumes/ID/_data`, removed with `--rm`), filled from the
/// image by [`populate_volumes`]. A path the image has as something else than a directory
/// (resolved in `rootfs`) is refused, as Docker refuses it. Adds to `h`; creates nothing.
pub fn image_volumes(
    c: &Config,
    h: &mut HostFacts,
    store: &Path,
    paths: &[String],
    rootfs: &Path,
) -> Result<()> {
    use std::os::fd::AsFd;
    let mut root = None;
    for p in paths {
        let target = clean_container_path(p);
        if target == "/" {
            bail!("the image's VOLUME {p:?}: a volume cannot be mounted on /");
        }
        let covered = |t: &str| clean_container_path(t) == target;
        if c.mounts.iter().any(|m| covered(&m.target))
            || h.mounts.iter().any(|m| covered(&m.target))
        {
            continue;
        }
        let r = open_once(&mut root, rootfs)?;
        match crate::rootfs::resolve::resolve(r.as_fd(), Path::new(&target), true) {
            Ok(fd) => {
                let p2 = crate::rootfs::resolve::proc_fd_path(fd.as_fd());
                let md = std::fs::metadata(std::ffi::OsStr::from_bytes(p2.as_bytes()))
                    .with_context(|| format!("the image's VOLUME {p:?}: stat it in the image"))?;
                if !md.is_dir() {
                    bail!(
                        "the image's VOLUME {p:?}: the image has a file there, and a volume \
                         cannot be mounted over a file"
                    );
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("the image's VOLUME {p:?}: resolve it"))
            }
        }
        let d = store.join("volumes").join(random_name()?).join("_data");
        h.volumes.push((d.clone(), true));
        h.mounts.push(ResolvedMount {
            target,
            bind: Some(d),
            tmpfs: Vec::new(),
            readonly: false,
            propagation: None,
            nonrecursive: false,
            copy_up: true,
        });
    }
    Ok(())
}

/// `rootfs` opened on the first call with `root` empty, and kept there for the next.
fn open_once<'a>(root: &'a mut Option<std::fs::File>, rootfs: &Path) -> Result<&'a std::fs::File> {
    match root {
        Some(f) => Ok(f),
        None => Ok(root.insert(
            std::fs::File::open(rootfs).with_context(|| format!("open {}", rootfs.display()))?,
        )),
    }
}

/// Docker's copy-up: a volume whose `_data` is empty gets the files the image has at its
/// mount point (resolved inside `rootfs`, symlinks kept as links), and the directory's mode and
/// owner.
pub fn populate_volumes(h: &HostFacts, rootfs: &Path) -> Result<()> {
    use std::os::fd::AsFd;
    let mut root = None;
    for m in h.mounts.iter().filter(|m| m.copy_up) {
        let Some(data) = &m.bind else {
            continue;
        };
        let empty = std::fs::read_dir(data)
            .with_context(|| format!("read {}", data.display()))?
            .next()
            .is_none();
        if !empty {
            continue;
        }
        let r = open_once(&mut root, rootfs)?;
        let src = match crate::rootfs::resolve::resolve(r.as_fd(), Path::new(&m.target), true) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("resolve {} in the image", m.target)),
        };
        let p = crate::rootfs::resolve::proc_fd_path(src.as_fd());
        let src_path = Path::new(std::ffi::OsStr::from_bytes(p.as_bytes()));
        if !std::fs::metadata(src_path).is_ok_and(|md| md.is_dir()) {
            continue;
        }
        // (the /proc/self/fd link followed: its target's attributes)
        copy_attrs(src_path, data, true)?;
        copy_tree(src_path, data)
            .with_context(|| format!("copy the image's {} into {}", m.target, data.display()))?;
    }
    Ok(())
}

/// The mode and owner of `from` onto `to` (a symlink itself unless `follow`).
fn copy_attrs(from: &Path, to: &Path, follow: bool) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = if follow {
        std::fs::metadata(from)
    } else {
        std::fs::symlink_metadata(from)
    }
    .with_context(|| format!("stat {}", from.display()))?;
    std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid()))
        .with_context(|| format!("chown {}", to.display()))?;
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
            .with_context(|| format!("chmod {}", to.display()))?;
    }
    Ok(())
}

/// Copy the contents of directory `from` into `to`: directories, regular files and symlinks
/// with their modes and owners; other file types are left out.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for e in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_dir() {
            std::fs::create_dir(&dst).with_context(|| format!("mkdir {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).with_context(|| format!("copy {}", src.display()))?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&src)?;
            std::os::unix::fs::symlink(&t, &dst)
                .with_context(|| format!("symlink {}", dst.display()))?;
        } else {
            continue;
        }
        copy_attrs(&src, &dst, false)?;
    }
    Ok(())
}

/// The `_data` directories of the anonymous volumes (removed with `--rm`).
pub fn anonymous_volumes(h: &HostFacts) -> Vec<PathBuf> {
    h.volumes
        .iter()
        .filter(|(_, anon)| *anon)
        .map(|(d, _)| d.clone())
        .collect()
}

/// Remove the anonymous volumes (`--rm`, `data` as [`anonymous_volumes`] lists them):
/// `volumes/ID`, the parent of each `_data`.
pub fn remove_anonymous_volumes(data: &[PathBuf]) -> Result<()> {
    for d in data {
        if let Some(dir) = d.parent() {
            // (files of the caller's subordinate ids too: --userns keep-id|nomap)
            super::remove_tree(dir).with_context(|| format!("remove {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Write the container's `hosts`, `resolv.conf` and `hostname` into `dir` (the bundle) and
/// return their bind mounts. On the host's network the host's own /etc/hosts is the start of
/// `hosts` and its resolv.conf is kept whole (loopback resolvers are reachable there). `ipv6`:
/// the container's network gives it an IPv6 address, so the host's IPv6 resolvers are kept.
/// `forwarders`: the addresses of a user-mode network's DNS forwarders (pasta's
/// `--dns-forward`, slirp4netns's built-in one; an IPv4 one, and for pasta an IPv6 one too when
/// the container has IPv6), the container's only nameservers unless `--dns` names others, as
/// rootless podman's; the host's search domains and options are kept.
pub fn write_names(
    dir: &Path,
    c: &Config,
    hostname: &str,
    host_network: bool,
    ipv6: bool,
    forwarders: &[String],
) -> Result<Vec<(String, PathBuf)>> {
    let host_resolv = dns::host_resolv_conf()?;
    let no_flags = c.dns.servers.is_empty() && c.dns.search.is_empty() && c.dns.options.is_empty();
    let resolv = match forwarders {
        _ if host_network && no_flags => host_resolv,
        [_, ..] if c.dns.servers.is_empty() => {
            let o = DnsOptions {
                servers: forwarders.to_vec(),
                ..c.dns.clone()
            };
            dns::resolv_conf(&host_resolv, &o, ipv6)?
        }
        _ => dns::resolv_conf(&host_resolv, &c.dns, ipv6)?,
    };
    let hosts = if host_network {
        let mut h = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !h.is_empty() && !h.ends_with('\n') {
            h.push('\n');
        }
        for (n, ip) in &c.extra_hosts {
            h.push_str(&format!("{ip}\t{n}\n"));
        }
        h
    } else {
        dns::hosts(hostname, &[], &[], &c.extra_hosts)
    };
    dns::write_files(dir, hostname, &hosts, &resolv)?;
    // (in Docker's order: moby's NetworkMounts)
    Ok(["resolv.conf", "hostname", "hosts"]
        .iter()
        .map(|n| (format!("/etc/{n}"), dir.join(n)))
        .collect())
}

/// How `husk up` (and its monitor) attach the container to its network: its ports, its
/// `--network-alias`es, and the `hosts` file of its bundle (bound on its `/etc/hosts`), which
/// the attach writes in place with the container's addresses and the network's other
/// containers, and keeps so while they come and go.
pub fn attach_options(
    bundle: &Path,
    ports: &[crate::network::ports::PortMapping],
    hostname: &str,
    extra_hosts: &[(String, IpAddr)],
    aliases: &[String],
) -> crate::network::attach::AttachOptions {
    crate::network::attach::AttachOptions {
        ports: ports.to_vec(),
        ifname: None,
        aliases: aliases.to_vec(),
        hosts: Some(dns::HostsFile {
            path: bundle.join("hosts"),
            hostname: hostname.to_string(),
            extra_hosts: extra_hosts.to_vec(),
        }),
    }
}

/// Asserts that `parse` refuses each `(value, want)` of `cases` with an error that names
/// `FLAG "value"` and says `want`: the one check of the flag parsers' refusals, here and in
/// `cdi.rs`.
#[cfg(test)]
pub(super) fn assert_refused<T: std::fmt::Debug>(
    flag: &str,
    cases: &[(&str, &str)],
    parse: impl Fn(&str) -> Result<T>,
) {
    for (s, want) in cases {
        let e = format!("{:#}", parse(s).unwrap_err());
        assert!(
            e.contains(&format!("{flag} {s:?}")) && e.contains(want),
            "{s}: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    fn flags() -> ConfigFlags {
        ConfigFlags::default()
    }

    #[test]
    fn sizes_as_docker_reads_them() {
        for (s, want) in [
            ("100", 100),
            ("1b", 1),
            ("1k", 1024),
            ("1K", 1024),
            ("512m", 512 << 20),
            ("512mb", 512 << 20),
            ("512MiB", 512 << 20),
            ("1g", 1 << 30),
            ("1.5g", 3 << 29),
            ("2 g", 2 << 30),
        ] {
            assert_eq!(parse_size("-m", s).unwrap(), want, "{s}");
        }
        for s in ["12q", "", "m", "-1", "1.2.3m", ".5m", "1x", "5ib", "1e9"] {
            let e = err(parse_size("-m", s));
            assert!(e.contains(&format!("-m {s:?}")), "{s}: {e}");
        }
        assert!(err(parse_size("-m", "99999999999p")).contains("too large"));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("0.01").unwrap(), 10_000_000);
        for s in ["-1", "0", "0.0", "abc", "NaN", "inf", "0.001"] {
            let e = err(parse_cpus(s));
            assert!(e.contains(&format!("--cpus {s:?}")), "{e}");
        }
    }

    #[test]
    fn capability_names() {
        assert_eq!(
            normalize_cap("--cap-add", "net_admin").unwrap(),
            "CAP_NET_ADMIN"
        );
        assert_eq!(
            normalize_cap("--cap-add", "CAP_SYS_TIME").unwrap(),
            "CAP_SYS_TIME"
        );
        assert_eq!(normalize_cap("--cap-drop", "all").unwrap(), "ALL");
        let e = err(normalize_cap("--cap-add", "FLY"));
        assert!(e.contains("--cap-add \"FLY\": unknown capability"), "{e}");
        assert!(normalize_cap("--cap-add", "CAP_").is_err());
    }

    #[test]
    fn capabilities_tweaked_as_moby() {
        let all: Vec<String> = ALL_CAPS.iter().map(|s| s.to_string()).collect();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // nothing asked: the base
        assert_eq!(tweak_caps(&DEFAULT_CAPS, &[], &[], false, &all).len(), 14);
        // drop ALL, add one: only that one
        assert_eq!(
            tweak_caps(
                &DEFAULT_CAPS,
                &s(&["CAP_NET_RAW"]),
                &s(&["ALL"]),
                false,
                &all
            ),
            s(&["CAP_NET_RAW"])
        );
        // add ALL minus a dropped one
        let c = tweak_caps(
            &DEFAULT_CAPS,
            &s(&["ALL"]),
            &s(&["CAP_SYS_ADMIN"]),
            false,
            &all,
        );
        assert_eq!(c.len(), 40);
        assert!(!c.contains(&"CAP_SYS_ADMIN".to_string()));
        // drop one, add one, no duplicates
        let c = tweak_caps(
            &DEFAULT_CAPS,
            &s(&["CAP_SYS_ADMIN", "CAP_CHOWN"]),
            &s(&["CAP_KILL"]),
            false,
            &all,
        );
        assert_eq!(c.len(), 14);
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        // privileged: everything the kernel has, whatever else is asked
        let few = all[..38].to_vec();
        assert_eq!(
            tweak_caps(&DEFAULT_CAPS, &[], &s(&["ALL"]), true, &few),
            few
        );
    }

    #[test]
    fn available_caps_follow_the_bounding_set() {
        let bnd = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        let caps = available_caps();
        assert_eq!(caps.len() as u32, bnd.count_ones(), "{caps:?}");
        for c in &caps {
            let i = ALL_CAPS.iter().position(|a| a == c).unwrap();
            assert!(bnd & (1 << i) != 0, "{c} is not in CapBnd {bnd:x}");
        }
    }

    #[test]
    fn ulimits() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            ("RLIMIT_NOFILE".into(), 1024, 2048)
        );
        assert_eq!(
            parse_ulimit("core=-1").unwrap(),
            ("RLIMIT_CORE".into(), u64::MAX, u64::MAX)
        );
        assert_refused(
            "--ulimit",
            &[
                ("nofile", "expected NAME=SOFT[:HARD]"),
                ("files=1", "unknown limit \"files\""),
                ("nofile=a", "\"a\" is not a number"),
                ("nofile=10:5", "soft limit is greater"),
            ],
            parse_ulimit,
        );
    }

    #[test]
    fn volumes() {
        let m = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(m.source, Source::Bind("/srv/data".into()));
        assert_eq!(m.target, "/data");
        assert!(m.readonly);
        let m = parse_volume("cache:/var/cache:rw,rshared,z").unwrap();
        assert_eq!(m.source, Source::Volume("cache".into()));
        assert!(!m.readonly);
        assert_eq!(m.propagation.as_deref(), Some("rshared"));
        assert_eq!(parse_volume("/scratch").unwrap().source, Source::Anonymous);
        assert!(parse_volume("v1:/x:nocopy").unwrap().nocopy);
        assert!(parse_mount("target=/x,volume-nocopy").unwrap().nocopy);
        let e = err(parse_mount("type=bind,source=/a,target=/x,volume-nocopy"));
        assert!(e.contains("volume-nocopy is for type=volume"), "{e}");
        assert_refused(
            "-v",
            &[
                ("/a:relative", "must be absolute"),
                ("/a:/", "cannot be /"),
                ("/a:/b/../c", "must not contain .."),
                (
                    "./rel:/x",
                    "neither an absolute host path nor a volume name",
                ),
                ("x:/x", "neither"),
                ("/a:/b:ro,rw", "ro or rw once"),
                ("/a:/b:bogus", "unknown option \"bogus\""),
                ("/a:/b:nocopy", "unknown option \"nocopy\""),
                ("/a:/b:shared,slave", "one propagation"),
                ("/a:/b:c:d", "expected HOST-PATH"),
            ],
            parse_volume,
        );
    }

    #[test]
    fn mounts_csv() {
        let m = parse_mount("type=bind,source=/srv,target=/srv,readonly").unwrap();
        assert_eq!(m.source, Source::Bind("/srv".into()));
        assert!(m.readonly);
        let m = parse_mount("type=bind,src=/srv,dst=/x,ro=false,bind-propagation=rslave").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.propagation.as_deref(), Some("rslave"));
        let m = parse_mount("type=volume,source=db,target=/db").unwrap();
        assert_eq!(m.source, Source::Volume("db".into()));
        assert_eq!(
            parse_mount("target=/anon").unwrap().source,
            Source::Anonymous
        );
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            m.source,
            Source::Tmpfs(vec![
                "noexec".into(),
                "nosuid".into(),
                "nodev".into(),
                format!("size={}", 64 << 20),
                "mode=1770".into()
            ])
        );
        assert_refused(
            "--mount",
            &[
                ("type=bind,source=/a", "target=… is missing"),
                ("type=bind,target=/a", "needs source"),
                ("type=bind,source=rel,target=/a", "absolute host path"),
                ("type=nfs,target=/a", "type=\"nfs\""),
                ("type=tmpfs,source=x,target=/a", "takes no source"),
                ("type=volume,target=/a,tmpfs-size=1m", "for type=tmpfs"),
                ("type=tmpfs,target=/a,tmpfs-size=1q", "1q"),
                ("type=tmpfs,target=/a,tmpfs-mode=999", "octal"),
                (
                    "type=bind,source=/a,target=/a,readonly=maybe",
                    "not true or false",
                ),
                (
                    "type=bind,source=/a,target=/a,colour=red",
                    "unknown field \"colour\"",
                ),
                (
                    "type=volume,target=/a,bind-propagation=rshared",
                    "for type=bind",
                ),
                (
                    "type=bind,source=/a,target=/a,bind-propagation=up",
                    "bind-propagation",
                ),
                ("type=bind,source,target=/a", "source needs a value"),
            ],
            parse_mount,
        );
    }

    #[test]
    fn tmpfs_options_merge() {
        let m = parse_tmpfs("/run:exec,size=64m,mode=755,size=1m").unwrap();
        assert_eq!(m.target, "/run");
        assert_eq!(
            m.source,
            Source::Tmpfs(vec![
                "nosuid".into(),
                "nodev".into(),
                "exec".into(),
                "mode=755".into(),
                "size=1m".into()
            ])
        );
        assert!(!m.readonly);
        assert!(parse_tmpfs("/ro:ro").unwrap().readonly);
        assert_refused(
            "--tmpfs",
            &[
                ("run", "must be absolute"),
                ("/x:colour=red", "unknown tmpfs option \"colour=red\""),
                ("/x:fast", "unknown tmpfs option \"fast\""),
                ("/x:size=", "unknown tmpfs option"),
            ],
            parse_tmpfs,
        );
    }

    #[test]
    fn devices() {
        assert_eq!(
            parse_device("/dev/fuse").unwrap(),
            DeviceReq {
                host: "/dev/fuse".into(),
                container: "/dev/fuse".into(),
                permissions: "rwm".into()
            }
        );
        let d = parse_device("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/mynull", "r")
        );
        let d = parse_device("/dev/null:rw").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/null", "rw")
        );
        assert_refused(
            "--device",
            &[
                ("dev/null", "must be an absolute path"),
                ("/dev/null:rel", "must be absolute"),
                ("/dev/null:/dev/n:rwx", "permissions \"rwx\""),
                ("/a:/b:r:w", "expected HOST"),
            ],
            parse_device,
        );
    }

    #[test]
    fn security_options() {
        let mut f = flags();
        f.security_opt = vec![
            "seccomp=unconfined".into(),
            "no-new-privileges".into(),
            "apparmor=docker-default".into(),
            "label=disable".into(),
        ];
        let c = parse(&f).unwrap();
        assert_eq!(c.seccomp, Some(Seccomp::Unconfined));
        assert_eq!(c.no_new_privileges, Some(true));
        assert_eq!(c.apparmor.as_deref(), Some("docker-default"));
        assert!(c.label_disable);
        f.security_opt = vec!["no-new-privileges:false".into(), "seccomp=/p.json".into()];
        let c = parse(&f).unwrap();
        assert_eq!(c.no_new_privileges, Some(false));
        assert_eq!(c.seccomp, Some(Seccomp::File("/p.json".into())));
        assert_refused(
            "--security-opt",
            &[
                ("seccomp", "expected seccomp=FILE"),
                ("no-new-privileges=maybe", "not true or false"),
                ("label=type:svirt_t", "only label=disable"),
                ("apparmor=", "expected"),
                ("turbo=on", "expected"),
            ],
            |s| {
                let mut f = flags();
                f.security_opt = vec![s.into()];
                parse(&f)
            },
        );
    }

    #[test]
    fn parse_names_each_bad_flag() {
        type Case = (fn(&mut ConfigFlags), &'static str);
        let cases: Vec<Case> = vec![
            (|f| f.memory = Some("12q".into()), "-m \"12q\""),
            (|f| f.memory = Some("1m".into()), "smallest memory limit"),
            (|f| f.memory_swap = Some("1g".into()), "needs -m"),
            (
                |f| {
                    f.memory = Some("1g".into());
                    f.memory_swap = Some("512m".into());
                },
                "must be at least -m",
            ),
            (|f| f.cpus = Some("-1".into()), "--cpus \"-1\""),
            (|f| f.cpu_shares = Some("0".into()), "--cpu-shares \"0\""),
            (
                |f| f.cpuset_cpus = Some("0-x".into()),
                "--cpuset-cpus: invalid CPU list \"0-x\"",
            ),
            (
                |f| f.pids_limit = Some("ten".into()),
                "--pids-limit \"ten\"",
            ),
            (|f| f.cap_add = vec!["FLY".into()], "--cap-add \"FLY\""),
            (|f| f.cap_drop = vec!["".into()], "--cap-drop \"\""),
            (
                |f| f.dns = vec!["dns.example".into()],
                "--dns \"dns.example\"",
            ),
            (|f| f.dns_search = vec!["a b".into()], "--dns-search"),
            (|f| f.add_host = vec!["db".into()], "--add-host \"db\""),
            (|f| f.label = vec!["=v".into()], "--label \"=v\""),
            (
                |f| f.volume = vec!["/a:/x".into(), "v1:/x".into()],
                "both mount /x",
            ),
            (
                |f| {
                    f.volume = vec!["/a:/t".into()];
                    f.tmpfs = vec!["/t".into()];
                },
                "--tmpfs \"/t\": both mount /t",
            ),
        ];
        for (set, want) in cases {
            let mut f = flags();
            set(&mut f);
            let e = err(parse(&f));
            assert!(e.contains(want), "{f:?}: {e}");
        }
    }

    #[test]
    fn parse_values() {
        let mut f = flags();
        f.memory = Some("64m".into());
        f.memory_swap = Some("-1".into());
        f.cpus = Some("0.5".into());
        f.pids_limit = Some("0".into());
        f.ulimit = vec!["nofile=10:20".into(), "nofile=30".into()];
        f.label = vec!["a=b=c".into(), "flag".into(), "a=d".into()];
        f.add_host = vec!["db:10.0.0.3".into()];
        let c = parse(&f).unwrap();
        assert_eq!(c.memory, Some(64 << 20));
        assert_eq!(c.memory_swap, Some(-1));
        assert_eq!(c.nano_cpus, Some(500_000_000));
        assert_eq!(c.pids_limit, Some(-1));
        assert_eq!(c.ulimits, vec![("RLIMIT_NOFILE".into(), 30, 30)]);
        assert_eq!(
            c.labels,
            vec![("flag".into(), "".into()), ("a".into(), "d".into())]
        );
        assert_eq!(c.extra_hosts[0].0, "db");
    }

    fn base_spec() -> Value {
        serde_json::from_str(&crate::spec::default_spec_json(false)).unwrap()
    }

    fn facts() -> HostFacts {
        HostFacts {
            all_caps: ALL_CAPS.iter().map(|s| s.to_string()).collect(),
            swap_accounting: true,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_dockers() {
        let mut s = base_spec();
        apply(&mut s, &Config::default(), &facts(), &[]);
        let caps = &s["process"]["capabilities"];
        assert_eq!(caps["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(caps["effective"], caps["bounding"]);
        assert!(caps.get("ambient").is_none() && caps.get("inheritable").is_none());
        assert_eq!(s["process"]["noNewPrivileges"], false);
        assert_eq!(s["mounts"], base_spec()["mounts"]);
        assert_eq!(
            s["linux"]["maskedPaths"],
            base_spec()["linux"]["maskedPaths"]
        );
        assert_eq!(
            s["linux"]["resources"]["devices"],
            base_spec()["linux"]["resources"]["devices"]
        );
    }

    /// moby's default spec: /proc's options, the mount order, no rlimits, the network sysctls
    /// only in a network namespace of its own, and a --sysctl-like value already there kept.
    #[test]
    fn docker_defaults_as_moby() {
        let mut s = base_spec();
        docker_defaults(&mut s, true);
        let dests: Vec<&str> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        assert_eq!(
            s["mounts"][0]["options"],
            json!(["nosuid", "noexec", "nodev"])
        );
        assert!(s["process"].get("rlimits").is_none());
        let root = crate::up::caller_is_root();
        if root && Path::new("/proc/sys/net/ipv4/ping_group_range").exists() {
            assert_eq!(
                s["linux"]["sysctl"]["net.ipv4.ping_group_range"],
                "0 2147483647"
            );
        }
        // a user namespace of the container's own: no ping range
        let mut u = base_spec();
        u["linux"]["namespaces"] = json!([{"type": "user"}, {"type": "network"}]);
        docker_defaults(&mut u, true);
        assert!(u["linux"]["sysctl"]
            .get("net.ipv4.ping_group_range")
            .is_none());
        if Path::new("/proc/sys/net/ipv4/ip_unprivileged_port_start").exists() {
            assert_eq!(
                s["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
                "0"
            );
        }
        let mut h = base_spec();
        docker_defaults(&mut h, false);
        assert!(
            h["linux"].get("sysctl").is_none(),
            "host network: {}",
            h["linux"]
        );
        let mut k = base_spec();
        k["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "80"});
        docker_defaults(&mut k, true);
        assert_eq!(
            k["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
            "80"
        );
    }

    #[test]
    fn resources_applied() {
        let mut f = flags();
        f.memory = Some("64m".into());
        f.cpus = Some("1.5".into());
        f.cpu_shares = Some("512".into());
        f.cpuset_cpus = Some("0".into());
        f.pids_limit = Some("20".into());
        f.ulimit = vec!["nofile=100:200".into(), "nproc=50".into()];
        let c = parse(&f).unwrap();
        let mut s = base_spec();
        apply(&mut s, &c, &facts(), &[]);
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"], json!({"limit": 64 << 20, "swap": 128 << 20}));
        assert_eq!(
            r["cpu"],
            json!({"period": 100000, "quota": 150000, "shares": 512, "cpus": "0"})
        );
        assert_eq!(r["pids"]["limit"], 20);
        let rl = s["process"]["rlimits"].as_array().unwrap();
        assert_eq!(rl.len(), 2);
        assert!(rl.contains(&json!({"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200})));
        // no swap accounting: no swap limit (docker warns and drops it)
        let mut h = facts();
        h.swap_accounting = false;
        let mut s = base_spec();
        apply(&mut s, &c, &h, &[]);
        assert_eq!(
            s["linux"]["resources"]["memory"],
            json!({"limit": 64 << 20})
        );
        f.memory_swap = Some("-1".into());
        let mut s = base_spec();
        apply(&mut s, &parse(&f).unwrap(), &facts(), &[]);
        assert_eq!(s["linux"]["resources"]["memory"]["swap"], -1);
    }

    #[test]
    fn privileged_as_docker() {
        let mut f = flags();
        f.privileged = true;
        f.cap_drop = vec!["ALL".into()];
        let c = parse(&f).unwrap();
        let mut h = facts();
        h.host_devices = vec![json!({"path": "/dev/sda", "type": "b", "major": 8, "minor": 0})];
        let mut s = base_spec();
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO"});
        apply(&mut s, &c, &h, &[]);
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            41
        );
        assert!(s["linux"].get("seccomp").is_none());
        assert!(s["linux"].get("maskedPaths").is_none());
        assert!(s["linux"].get("readonlyPaths").is_none());
        assert_eq!(s["linux"]["devices"][0]["path"], "/dev/sda");
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        for m in s["mounts"].as_array().unwrap() {
            if m["destination"] == "/sys" || m["type"] == "cgroup" {
                assert!(
                    !m["options"].as_array().unwrap().contains(&json!("ro")),
                    "{m}"
                );
            }
        }
    }

    #[test]
    fn security_applied() {
        let mut f = flags();
        f.security_opt = vec![
            "no-new-privileges".into(),
            "apparmor=unconfined".into(),
            "label=disable".into(),
            "seccomp=unconfined".into(),
        ];
        f.cap_drop = vec!["ALL".into()];
        f.cap_add = vec!["chown".into()];
        let c = parse(&f).unwrap();
        let mut s = base_spec();
        s["process"]["apparmorProfile"] = json!("p");
        s["process"]["selinuxLabel"] = json!("l");
        s["linux"]["mountLabel"] = json!("l");
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO"});
        apply(&mut s, &c, &facts(), &[]);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(
            s["process"]["capabilities"]["effective"],
            json!(["CAP_CHOWN"])
        );
        for gone in [
            &s["process"]["apparmorProfile"],
            &s["process"]["selinuxLabel"],
        ] {
            assert!(gone.is_null());
        }
        assert!(s["linux"]["mountLabel"].is_null() && s["linux"]["seccomp"].is_null());
        // a profile file and an AppArmor profile are set
        f.security_opt = vec!["seccomp=/p.json".into(), "apparmor=myprof".into()];
        let mut h = facts();
        h.seccomp = Some(json!({"defaultAction": "SCMP_ACT_LOG"}));
        let c = parse(&f).unwrap();
        h.apparmor = crate::up::apparmor::choose(c.apparmor.as_deref(), false, || true);
        let mut s = base_spec();
        apply(&mut s, &c, &h, &[]);
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
        assert_eq!(s["process"]["apparmorProfile"], "myprof");
    }

    #[test]
    fn mounts_applied_in_dockers_order() {
        let h = HostFacts {
            mounts: vec![
                ResolvedMount {
                    target: "/a/b".into(),
                    bind: Some("/srv/b".into()),
                    tmpfs: vec![],
                    readonly: true,
                    propagation: None,
                    nonrecursive: false,
                    copy_up: false,
                },
                ResolvedMount {
                    target: "/a".into(),
                    bind: Some("/srv/a".into()),
                    tmpfs: vec![],
                    readonly: false,
                    propagation: Some("rshared".into()),
                    nonrecursive: true,
                    copy_up: false,
                },
                ResolvedMount {
                    target: "/dev/shm".into(),
                    bind: None,
                    tmpfs: vec!["size=1m".into()],
                    readonly: false,
                    propagation: None,
                    nonrecursive: false,
                    copy_up: false,
                },
            ],
            ..facts()
        };
        let names = vec![("/etc/hosts".to_string(), PathBuf::from("/b/hosts"))];
        let mut s = base_spec();
        apply(&mut s, &Config::default(), &h, &names);
        let m = s["mounts"].as_array().unwrap();
        let dests: Vec<&str> = m
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        // the default /dev/shm replaced; user mounts after the defaults, parents first
        assert_eq!(dests.iter().filter(|d| **d == "/dev/shm").count(), 1);
        let tail = &dests[dests.len() - 4..];
        assert_eq!(tail, ["/a", "/a/b", "/dev/shm", "/etc/hosts"]);
        let a = &m[dests.len() - 4];
        assert_eq!(a["options"], json!(["bind", "rshared"]));
        assert_eq!(
            m[dests.len() - 3]["options"],
            json!(["rbind", "ro", "rprivate"])
        );
        assert_eq!(m[dests.len() - 2]["type"], "tmpfs");
        assert_eq!(m[dests.len() - 1]["source"], "/b/hosts");
    }

    #[test]
    fn devices_and_labels_applied() {
        let mut f = flags();
        f.label = vec!["com.example.team=web".into()];
        let c = parse(&f).unwrap();
        let mut h = facts();
        let node = json!({"path": "/dev/x", "type": "c", "major": 1, "minor": 3});
        let rule = json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"});
        h.devices = vec![(node.clone(), rule.clone())];
        let mut s = base_spec();
        apply(&mut s, &c, &h, &[]);
        assert_eq!(s["linux"]["devices"], json!([node]));
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.last().unwrap(), &rule);
        assert_eq!(rules[0]["allow"], false);
        assert_eq!(s["annotations"]["com.example.team"], "web");
    }

    #[test]
    fn host_side_resolution() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path();
        let mut f = flags();
        f.volume = vec![
            format!("{}:/host", d.path().display()),
            "named:/n".into(),
            "/anon".into(),
        ];
        f.device = vec!["/dev/null:/dev/n2:r".into()];
        let h = resolve(&parse(&f).unwrap(), store).unwrap();
        assert_eq!(
            h.mounts[0].bind.as_deref(),
            Some(std::fs::canonicalize(d.path()).unwrap().as_path())
        );
        assert_eq!(h.mounts[1].bind, Some(store.join("volumes/named/_data")));
        assert_eq!(h.volumes[0], (store.join("volumes/named/_data"), false));
        assert!(h.volumes[1].1, "the anonymous volume is removed with --rm");
        assert!(!store.join("volumes").exists(), "resolve creates nothing");
        let (node, rule) = &h.devices[0];
        assert_eq!(
            (node["path"].as_str(), node["major"].as_u64()),
            (Some("/dev/n2"), Some(1))
        );
        assert_eq!(rule["access"], "r");
        create_volumes(&h).unwrap();
        assert!(store.join("volumes/named/_data").is_dir());
        assert!(!store.join("volumes/named").join(ANONYMOUS_MARK).exists());
        let anon = h.volumes[1].0.parent().unwrap();
        assert!(anon.join(ANONYMOUS_MARK).exists());
        remove_anonymous_volumes(&anonymous_volumes(&h)).unwrap();
        assert!(store.join("volumes/named/_data").is_dir());
        assert!(!h.volumes[1].0.parent().unwrap().exists());
        // a missing host path, a missing device, a file that is no device, too many CPUs
        let missing = d.path().join("no-such-dir");
        for (set, want) in [
            (
                Box::new(|f: &mut ConfigFlags| f.volume = vec![format!("{}:/x", missing.display())])
                    as Box<dyn Fn(&mut ConfigFlags)>,
                format!("{} does not exist", missing.display()),
            ),
            (
                Box::new(|f: &mut ConfigFlags| f.device = vec!["/dev/no-such-device".into()]),
                "--device /dev/no-such-device: no such device".into(),
            ),
            (
                Box::new(|f: &mut ConfigFlags| f.device = vec!["/etc/hostname".into()]),
                "not a character or block device".into(),
            ),
            (
                Box::new(|f: &mut ConfigFlags| f.cpus = Some("100000".into())),
                "--cpus 100000: this host has".into(),
            ),
        ] {
            let mut f = flags();
            set(&mut f);
            let e = err(resolve(&parse(&f).unwrap(), store));
            assert!(e.contains(&want), "{e}");
        }
    }

    /// Docker's default profile unless --privileged or seccomp=unconfined; a file replaces it;
    /// the profile follows --cap-add.
    #[test]
    fn seccomp_resolved_as_moby() {
        if !seccomp::kernel_has_seccomp() {
            return crate::testing::skip("seccomp_resolved_as_moby", "no seccomp in this kernel");
        }
        let d = tempfile::tempdir().unwrap();
        let resolved = |set: &dyn Fn(&mut ConfigFlags)| {
            let mut f = flags();
            set(&mut f);
            let c = parse(&f).unwrap();
            let h = resolve(&c, d.path()).unwrap();
            let mut s = base_spec();
            apply(&mut s, &c, &h, &[]);
            s["linux"]["seccomp"].clone()
        };
        let allows = |p: &Value, name: &str| {
            p["syscalls"].as_array().unwrap().iter().any(|r| {
                r["action"] == "SCMP_ACT_ALLOW"
                    && r["names"].as_array().unwrap().contains(&json!(name))
            })
        };
        let def = resolved(&|_| {});
        assert_eq!(def["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(allows(&def, "read") && !allows(&def, "unshare"));
        let admin = resolved(&|f| f.cap_add = vec!["SYS_ADMIN".into()]);
        assert!(allows(&admin, "unshare") && allows(&admin, "mount"));
        assert!(resolved(&|f| f.privileged = true).is_null());
        assert!(resolved(&|f| f.security_opt = vec!["seccomp=unconfined".into()]).is_null());
        let file = d.path().join("p.json");
        std::fs::write(&file, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
        let p = resolved(&|f| f.security_opt = vec![format!("seccomp={}", file.display())]);
        assert_eq!(p, json!({"defaultAction": "SCMP_ACT_LOG"}));
    }

    #[test]
    fn image_volumes_as_moby() {
        for (p, want) in [
            ("/data", "/data"),
            ("/data/", "/data"),
            ("data", "/data"),
            ("/a/./b//c/../d", "/a/b/d"),
            ("/../../x", "/x"),
            ("/", "/"),
        ] {
            assert_eq!(clean_container_path(p), want, "{p}");
        }
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("srv/data")).unwrap();
        std::fs::write(rootfs.join("file"), "").unwrap();
        let store = t.path().join("store");
        let mut f = flags();
        f.volume = vec!["named:/covered".into()];
        f.tmpfs = vec!["/tmpfs".into()];
        let c = parse(&f).unwrap();
        let mut h = resolve(&c, &store).unwrap();
        let paths: Vec<String> = ["/srv/data", "/covered/", "/tmpfs", "/new", "/srv/./data"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        image_volumes(&c, &mut h, &store, &paths, &rootfs).unwrap();
        let added: Vec<&str> = h.mounts[2..].iter().map(|m| m.target.as_str()).collect();
        assert_eq!(added, ["/srv/data", "/new"]);
        assert!(h.mounts[2..].iter().all(|m| m.copy_up && !m.readonly));
        assert_eq!(h.volumes.len(), 3);
        assert!(h.volumes[1..].iter().all(|(_, anon)| *anon));
        assert_ne!(h.volumes[1].0, h.volumes[2].0);
        assert_eq!(anonymous_volumes(&h).len(), 2);
        assert!(!store.join("volumes").exists(), "nothing is created");
        for (p, want) in [
            ("/", "VOLUME \"/\": a volume cannot be mounted on /"),
            ("/file", "VOLUME \"/file\": the image has a file there"),
        ] {
            let mut h = resolve(&c, &store).unwrap();
            let e = err(image_volumes(&c, &mut h, &store, &[p.into()], &rootfs));
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn volumes_get_the_images_files_once() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        let data = rootfs.join("srv/data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/f"), "image file").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
        // a symlink out of the image is resolved inside it
        std::os::unix::fs::symlink("/srv/data", rootfs.join("escape")).unwrap();
        let vol = |n: &str, target: &str, copy_up: bool| {
            let d = t.path().join(n);
            std::fs::create_dir(&d).unwrap();
            ResolvedMount {
                target: target.into(),
                bind: Some(d),
                tmpfs: vec![],
                readonly: false,
                propagation: None,
                nonrecursive: false,
                copy_up,
            }
        };
        let h = HostFacts {
            mounts: vec![
                vol("a", "/srv/data", true),
                vol("b", "/escape", true),
                vol("c", "/srv/data", false),
                vol("d", "/no/such/dir", true),
            ],
            ..Default::default()
        };
        std::fs::write(t.path().join("b/kept"), "").unwrap();
        populate_volumes(&h, &rootfs).unwrap();
        let a = t.path().join("a");
        assert_eq!(
            std::fs::read_to_string(a.join("sub/f")).unwrap(),
            "image file"
        );
        assert_eq!(
            std::fs::read_link(a.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(std::fs::metadata(&a).unwrap().mode() & 0o7777, 0o750);
        // a volume with files is left as it is; nocopy and missing mount points too
        let names = |d: &str| {
            let mut v: Vec<String> = std::fs::read_dir(t.path().join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("b"), ["kept"]);
        assert!(names("c").is_empty() && names("d").is_empty());
        // through the in-image symlink: the image's /srv/data
        let e = HostFacts {
            mounts: vec![vol("e", "/escape", true)],
            ..Default::default()
        };
        populate_volumes(&e, &rootfs).unwrap();
        assert_eq!(names("e"), ["link", "sub"]);
    }

    #[test]
    fn names_files() {
        let d = tempfile::tempdir().unwrap();
        let mut f = flags();
        f.dns = vec!["10.0.0.53".into()];
        f.dns_search = vec!["corp.example".into()];
        f.add_host = vec!["db:10.0.0.3".into()];
        let c = parse(&f).unwrap();
        let m = write_names(d.path(), &c, "box", false, false, &[]).unwrap();
        assert_eq!(
            m[0],
            ("/etc/resolv.conf".into(), d.path().join("resolv.conf"))
        );
        let r = std::fs::read_to_string(d.path().join("resolv.conf")).unwrap();
        assert!(
            r.starts_with("nameserver 10.0.0.53\nsearch corp.example\n"),
            "{r}"
        );
        let h = std::fs::read_to_string(d.path().join("hosts")).unwrap();
        assert!(
            h.starts_with("127.0.0.1\tlocalhost\n") && h.ends_with("10.0.0.3\tdb\n"),
            "{h}"
        );
        // in place: the inode the container has bound stays
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(d.path().join("hosts")).unwrap().ino();
        // what the attach is given, and what it writes with it
        let o = attach_options(d.path(), &[], "box", &c.extra_hosts, &["al".into()]);
        let spec = o.hosts.as_ref().unwrap();
        assert_eq!(spec.path, d.path().join("hosts"));
        assert_eq!(o.aliases, ["al"]);
        dns::rewrite_in_place(&spec.path, || {
            dns::hosts_with_peers(spec, &[], &["10.89.0.2".parse().unwrap()], &[])
        })
        .unwrap();
        let h = std::fs::read_to_string(d.path().join("hosts")).unwrap();
        assert!(
            h.contains("10.89.0.2\tbox\n") && h.ends_with("10.0.0.3\tdb\n"),
            "{h}"
        );
        assert_eq!(
            std::fs::metadata(d.path().join("hosts")).unwrap().ino(),
            ino
        );
        // a user-mode network's DNS forwarder: --dns still wins, else it is the one nameserver
        let d3 = tempfile::tempdir().unwrap();
        write_names(d3.path(), &c, "box", false, false, &["169.254.1.1".into()]).unwrap();
        let r = std::fs::read_to_string(d3.path().join("resolv.conf")).unwrap();
        assert!(r.starts_with("nameserver 10.0.0.53\n"), "{r}");
        assert!(!r.contains("169.254.1.1"), "{r}");
        let mut f2 = flags();
        f2.dns_search = vec!["corp.example".into()];
        let c2 = parse(&f2).unwrap();
        write_names(d3.path(), &c2, "box", false, false, &["10.0.2.3".into()]).unwrap();
        let r = std::fs::read_to_string(d3.path().join("resolv.conf")).unwrap();
        assert!(
            r.starts_with("nameserver 10.0.2.3\nsearch corp.example\n")
                && r.matches("nameserver").count() == 1,
            "{r}"
        );
        // both of pasta's forwarders, IPv4 first
        let both = ["169.254.1.1".to_string(), "100::53".to_string()];
        write_names(d3.path(), &c2, "box", false, false, &both).unwrap();
        let r = std::fs::read_to_string(d3.path().join("resolv.conf")).unwrap();
        assert!(
            r.starts_with("nameserver 169.254.1.1\nnameserver 100::53\nsearch corp.example\n")
                && r.matches("nameserver").count() == 2,
            "{r}"
        );
        // the host's network: the host's /etc/hosts plus the extra entries
        let d2 = tempfile::tempdir().unwrap();
        write_names(d2.path(), &c, "host", true, false, &[]).unwrap();
        let h = std::fs::read_to_string(d2.path().join("hosts")).unwrap();
        let host = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        assert!(
            h.starts_with(host.trim_end()) && h.ends_with("10.0.0.3\tdb\n"),
            "{h}"
        );
    }
}
