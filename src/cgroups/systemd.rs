//! The systemd cgroup driver (`--systemd-cgroup`), after runc's libcontainer/cgroups/systemd.
//!
//! The container's cgroup is a transient scope unit `<prefix>-<name>.scope` in a slice, started
//! with `StartTransientUnit` once the init process exists (`PIDs=[pid]`), with `Delegate=true` and
//! the resources systemd can express as unit properties. Everything else (and the same values
//! again, as runc does) is written through the cgroupfs managers on the scope's path, which also
//! serve pids/freeze/kill/stats. `destroy` stops the unit; `update` sets unit properties at
//! runtime and then writes cgroupfs.
//!
//! Rootless (`--rootless`, e.g. run by a user or by root of rootless podman's user namespace),
//! as runc's rootless systemd driver: the unit goes to the USER's systemd instance, reached over
//! the user's session bus ([`Conn::connect_user`]); the default slice is `user.slice` of that
//! manager, and the cgroup path is the manager's own `ControlGroup` (e.g.
//! `/user.slice/user-1000.slice/user@1000.service`) joined with the slice and unit. Only cgroup
//! v2 (a v1/hybrid host is refused, as runc does), and only the controllers the user's manager
//! has delegated (cgroup.controllers of its cgroup; a limit on another one is refused by field
//! name before anything starts). Device rules are not applied (an unprivileged process cannot
//! load the BPF program; runc tries and ignores the error when rootless). The state records the
//! driver "systemd-user" so that later commands talk to the user manager too.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::dbus::{self, prop, props, Conn, Value};
use super::stats::Stats;
use super::translate as tr;
use super::util;
use super::{v1, v2, CgroupState, Manager};

/// How long to wait for a start/stop job (runc: 30 s); generous for slow machines.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_SLICE: &str = "system.slice";
/// The default slice in the user's systemd instance (rootless), as runc.
pub const DEFAULT_USER_SLICE: &str = "user.slice";
pub const DEFAULT_PREFIX: &str = "husk";
const ANNOTATION_PREFIX: &str = "org.systemd.property.";

/// runc's `ExpandSlice`: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", "-.slice" -> "/".
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad =
        || anyhow!("invalid slice name {slice:?}: expected NAME.slice, dash-separated, no '/'");
    let name = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') {
        return Err(bad());
    }
    if name == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for comp in name.split('-') {
        if comp.is_empty() {
            return Err(bad());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(comp);
        path.push_str(".slice");
        prefix.push_str(comp);
        prefix.push('-');
    }
    Ok(path)
}

/// Where the container's cgroup goes: the parent slice, the unit name, and the cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub slice: String,
    pub unit: String,
    pub path: String,
}

/// runc's specconv + `getUnitName`: cgroupsPath "slice:prefix:name" (absent or empty ->
/// "system.slice:husk:<id>"; an empty slice means system.slice); a name ending in ".slice" is a
/// slice unit itself, otherwise the unit is the scope "prefix-name.scope".
pub fn placement(cgroups_path: Option<&str>, id: &str) -> Result<Placement> {
    placement_in(cgroups_path, id, DEFAULT_SLICE)
}

/// [`placement`] with another default slice (`user.slice` in the user's manager). The path is
/// relative to the manager's cgroup.
pub fn placement_in(
    cgroups_path: Option<&str>,
    id: &str,
    default_slice: &str,
) -> Result<Placement> {
    let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => (
            default_slice.to_string(),
            DEFAULT_PREFIX.to_string(),
            id.to_string(),
        ),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            if parts.len() != 3 {
                bail!(
                    "linux.cgroupsPath {p:?}: expected the form \"slice:prefix:name\" for \
                     systemd cgroups"
                );
            }
            let slice = if parts[0].is_empty() {
                default_slice
            } else {
                parts[0]
            };
            (
                slice.to_string(),
                parts[1].to_string(),
                parts[2].to_string(),
            )
        }
    };
    if name.is_empty() {
        bail!("linux.cgroupsPath: empty unit name (and no container id)");
    }
    if name.contains('/') || prefix.contains('/') {
        bail!("linux.cgroupsPath: prefix and name must not contain '/'");
    }
    let slice_path = expand_slice(&slice).context("linux.cgroupsPath")?;
    let (unit, path) = if name.ends_with(".slice") {
        // a slice unit is placed by its own name
        (
            name.clone(),
            expand_slice(&name).context("linux.cgroupsPath")?,
        )
    } else {
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        let p = if slice_path == "/" {
            format!("/{unit}")
        } else {
            format!("{slice_path}/{unit}")
        };
        (unit, p)
    };
    Ok(Placement { slice, unit, path })
}

/// runc's `RangeToBits`: a cpuset list ("0-3,8") as systemd's AllowedCPUs byte array (byte i
/// holds CPUs 8i..8i+7, least significant bit first).
pub fn range_to_bits(list: &str, field: &str) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let num = |s: &str| -> Result<usize> {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n < 1 << 16)
                .ok_or_else(|| anyhow!("{field}: invalid CPU/node number {s:?} in {list:?}"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            bail!("{field}: invalid range {part:?} in {list:?}");
        }
        for i in a..=b {
            if out.len() <= i / 8 {
                out.resize(i / 8 + 1, 0);
            }
            out[i / 8] |= 1 << (i % 8);
        }
    }
    if out.is_empty() {
        bail!("{field}: empty set {list:?}");
    }
    Ok(out)
}

fn bytes(v: Vec<u8>) -> Value {
    Value::Array("y".into(), v.into_iter().map(Value::Byte).collect())
}

fn limit_u64(v: i64) -> u64 {
    if v < 0 {
        u64::MAX
    } else {
        v as u64
    }
}

/// The unit properties for `resources` (runc `genV1ResourcesProperties` /
/// `genV2ResourcesProperties`). Only what is set; values systemd cannot express are left to the
/// cgroupfs writes.
pub fn resource_props(r: &LinuxResources, unified: bool) -> Result<Vec<Value>> {
    let mut p = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|&l| l != 0) {
            p.push(prop("MemoryMax", Value::U64(limit_u64(l))));
        }
        if let Some(l) = m.reservation().filter(|&l| l != 0) {
            if unified {
                p.push(prop("MemoryLow", Value::U64(limit_u64(l))));
            }
        }
        if unified {
            if let Some(s) =
                tr::swap_to_v2(m.swap(), m.limit()).context("linux.resources.memory.swap")?
            {
                p.push(prop("MemorySwapMax", Value::U64(limit_u64(s))));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|&s| s != 0) {
            if unified {
                p.push(prop("CPUWeight", Value::U64(tr::shares_to_weight(s))));
            } else {
                p.push(prop("CPUShares", Value::U64(s)));
            }
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            // runc addCpuQuota: period defaults to 100ms; quota per second rounded up to 10 ms
            let period = if period == 0 { 100_000 } else { period };
            p.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
            if quota != 0 {
                let mut per_sec = u64::MAX;
                if quota > 0 {
                    per_sec = (quota as u64) * 1_000_000 / period;
                    if per_sec % 10_000 != 0 {
                        per_sec = (per_sec / 10_000 + 1) * 10_000;
                    }
                }
                p.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
            }
        }
        if unified {
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                let b = range_to_bits(cpus, "linux.resources.cpu.cpus")?;
                p.push(prop("AllowedCPUs", bytes(b)));
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                let b = range_to_bits(mems, "linux.resources.cpu.mems")?;
                p.push(prop("AllowedMemoryNodes", bytes(b)));
            }
        }
    }
    if let Some(pl) = r.pids() {
        let l = pl.limit();
        if l > 0 || l == -1 {
            p.push(prop("TasksMax", Value::U64(limit_u64(l))));
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|&w| w != 0) {
            if unified {
                p.push(prop(
                    "IOWeight",
                    Value::U64(tr::blkio_weight_to_io_weight(w)),
                ));
            } else {
                p.push(prop("BlockIOWeight", Value::U64(u64::from(w))));
            }
        }
    }
    Ok(p)
}

fn allow_entries(v: Vec<(String, String)>) -> Value {
    Value::Array(
        "(ss)".into(),
        v.into_iter()
            .map(|(a, b)| Value::Struct(vec![Value::Str(a), Value::Str(b)]))
            .collect(),
    )
}

/// The major number of a device name in /proc/devices' `kind` section ("Character devices:"
/// or "Block devices:"), for systemd's "char-NAME" form.
fn proc_devices_name(text: &str, block: bool, major: u32) -> Option<String> {
    let header = if block {
        "Block devices:"
    } else {
        "Character devices:"
    };
    let mut inside = false;
    for l in text.lines() {
        if l.ends_with("devices:") {
            inside = l.trim() == header;
            continue;
        }
        if !inside {
            continue;
        }
        let mut it = l.split_whitespace();
        if let (Some(n), Some(name)) = (it.next(), it.next()) {
            if n.parse::<u32>().ok() == Some(major) {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// DevicePolicy/DeviceAllow for the device rules (runc `generateDeviceProperties`): an empty
/// DeviceAllow first (clears an existing unit's list), DevicePolicy=strict, then one entry per
/// allowed device: "/dev/char/M:m", "char-*" for any major, "char-NAME" (from /proc/devices)
/// for any minor; a `*:n` rule has no systemd form and is left to the cgroupfs side, as in runc.
/// A default-allow policy is DevicePolicy=auto; its deny exceptions, which
/// systemd cannot express, stay with the cgroupfs side (which always applies all rules).
pub fn device_props(rules: &[super::devices::Rule], proc_devices: &str) -> Result<Vec<Value>> {
    let p = super::devices::Policy::build(rules)?;
    if p.default_allow {
        return Ok(vec![
            prop("DevicePolicy", Value::str("auto")),
            prop("DeviceAllow", allow_entries(vec![])),
        ]);
    }
    let mut list = Vec::new();
    for r in &p.exceptions {
        let kind = match r.kind {
            'c' => "char",
            'b' => "block",
            _ => continue,
        };
        let acc = super::devices::access_str(r.access);
        let entry = match (r.major, r.minor) {
            (None, None) => format!("{kind}-*"),
            // "c *:5": systemd has no such pattern ("char-*" would allow every minor); runc
            // leaves the rule out too, the cgroupfs side applies it
            (None, Some(_)) => continue,
            (Some(maj), None) => match proc_devices_name(proc_devices, kind == "block", maj) {
                Some(name) => format!("{kind}-{name}"),
                None => continue, // no such driver: nothing to allow
            },
            (Some(maj), Some(min)) => format!("/dev/{kind}/{maj}:{min}"),
        };
        list.push((entry, acc));
    }
    Ok(vec![
        prop("DeviceAllow", allow_entries(vec![])),
        prop("DevicePolicy", Value::str("strict")),
        prop("DeviceAllow", allow_entries(list)),
    ])
}

fn host_device_props(rules: &[super::devices::Rule]) -> Result<Vec<Value>> {
    let pd = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    device_props(rules, &pd)
}

/// A GVariant-text value as godbus `ParseVariant` reads it (the subset runc users write):
/// `true`/`false`, `'str'`/`"str"`, integers (int32 unless typed: `uint64 5`, `@t 5`, ...),
/// floats (double is not sent; only for *Sec conversion).
fn parse_variant(s: &str) -> Result<Value> {
    let s = s.trim();
    match s {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if s.len() >= 2
        && ((s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"')))
    {
        return Ok(Value::Str(s[1..s.len() - 1].to_string()));
    }
    let (ty, num) = match s.split_once(char::is_whitespace) {
        Some((t, n)) => (t, n.trim()),
        None => ("", s),
    };
    let ty = match ty {
        "" => "i",
        "@y" | "byte" => "y",
        "@b" | "boolean" => "b",
        "@i" | "int32" => "i",
        "@u" | "uint32" => "u",
        "@x" | "int64" => "x",
        "@t" | "uint64" => "t",
        "@s" | "string" => "s",
        t => bail!("unsupported type {t:?}"),
    };
    if ty == "s" || ty == "b" {
        return parse_variant(num).and_then(|v| {
            if v.signature() == ty {
                Ok(v)
            } else {
                bail!("{num:?} is not a {ty}")
            }
        });
    }
    let bad = || anyhow!("{num:?} is not a number of type {ty}");
    Ok(match ty {
        "y" => Value::Byte(num.parse().map_err(|_| bad())?),
        "i" => Value::I32(num.parse().map_err(|_| bad())?),
        "u" => Value::U32(num.parse().map_err(|_| bad())?),
        "x" => Value::I64(num.parse().map_err(|_| bad())?),
        _ => Value::U64(num.parse().map_err(|_| bad())?),
    })
}

/// `org.systemd.property.NAME` annotations as unit properties (runc `initSystemdProps`): NAME is
/// ASCII letters only, at least 3; a NAME ending in "Sec" after a lowercase letter (e.g.
/// TimeoutStopSec) becomes NAMEUSec with the value in microseconds.
pub fn annotation_props(annotations: &HashMap<String, String>) -> Result<Vec<Value>> {
    let mut keys: Vec<&String> = annotations.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let Some(name) = k.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        let v = &annotations[k];
        if name.len() < 3 || !name.bytes().all(|c| c.is_ascii_alphabetic()) {
            bail!("annotation {k}: property name must be at least 3 ASCII letters");
        }
        let mut value =
            parse_variant(v).map_err(|e| anyhow!("annotation {k}={v}: value parse error: {e}"))?;
        let mut name = name.to_string();
        if let Some(trim) = name.strip_suffix("Sec") {
            if trim.ends_with(|c: char| c.is_ascii_lowercase()) {
                let secs: u64 = match value {
                    Value::Byte(x) => x.into(),
                    Value::I32(x) if x >= 0 => x as u64,
                    Value::U32(x) => x.into(),
                    Value::I64(x) if x >= 0 => x as u64,
                    Value::U64(x) => x,
                    _ => bail!("annotation {k}={v}: expected a non-negative number of seconds"),
                };
                value = Value::U64(secs.saturating_mul(1_000_000));
                name = format!("{trim}USec");
            }
        }
        out.push(prop(&name, value));
    }
    Ok(out)
}

/// The driver recorded in state.json for a unit of the user's systemd instance.
pub const USER_DRIVER: &str = "systemd-user";

pub struct SystemdManager {
    place: Placement,
    unified: bool,
    /// The user's systemd instance (rootless): the manager's own cgroup, under which the
    /// unit's path lies. None: the system manager.
    user_root: Option<String>,
    fs: Box<dyn Manager>,
    extra_props: Vec<Value>,
    /// Resources and devices from `apply_limits`, applied once the unit exists.
    pending: RefCell<Option<(LinuxResources, Vec<LinuxDevice>)>>,
    /// The owner from `delegate`, given to the cgroup once the unit exists (v2 only).
    pending_owner: RefCell<Option<(Option<u32>, Option<u32>)>>,
    conn: RefCell<Option<Conn>>,
    started: RefCell<bool>,
}

/// `path` (relative to a manager's cgroup) below that cgroup `root`.
fn below(root: &str, path: &str) -> String {
    match (root.trim_end_matches('/'), path) {
        ("", p) => p.to_string(),
        (r, "/") => r.to_string(),
        (r, p) => format!("{r}{p}"),
    }
}

/// The cgroup v2 controllers `r` needs, each with the field that needs it.
pub fn needed_controllers(r: &LinuxResources) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut need = |field: &str, c: &str| out.push((field.to_string(), c.to_string()));
    if r.memory()
        .as_ref()
        .is_some_and(|m| *m != Default::default())
    {
        need("linux.resources.memory", "memory");
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
        {
            need("linux.resources.cpu", "cpu");
        }
        if c.cpus().as_deref().is_some_and(|s| !s.is_empty()) {
            need("linux.resources.cpu.cpus", "cpuset");
        }
        if c.mems().as_deref().is_some_and(|s| !s.is_empty()) {
            need("linux.resources.cpu.mems", "cpuset");
        }
    }
    if r.pids().is_some() {
        need("linux.resources.pids", "pids");
    }
    if r.block_io()
        .as_ref()
        .is_some_and(|b| *b != Default::default())
    {
        need("linux.resources.blockIO", "io");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        need("linux.resources.hugepageLimits", "hugetlb");
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        need("linux.resources.rdma", "rdma");
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for k in keys {
            if let Some((c, _)) = k.split_once('.').filter(|(c, _)| *c != "cgroup") {
                need(&format!("linux.resources.unified[{k:?}]"), c);
            }
        }
    }
    out
}

/// The first limit in `r` whose controller is not in `available` (cgroup.controllers text).
pub fn check_delegated(r: &LinuxResources, available: &str, whose: &str) -> Result<()> {
    let have: Vec<&str> = available.split_whitespace().collect();
    for (field, c) in needed_controllers(r) {
        if !have.contains(&c.as_str()) {
            bail!(
                "{field}: the {c} controller is not delegated to {whose} (it has: {}), so a \
                 rootless container cannot have this limit",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(" ")
                }
            );
        }
    }
    Ok(())
}

use super::without_devices;

fn fs_manager(path: &str, unified: bool) -> Result<Box<dyn Manager>> {
    Ok(if unified {
        Box::new(v2::V2Manager::new(path)?)
    } else {
        Box::new(v1::V1Manager::new(path, &BTreeMap::new())?)
    })
}

impl SystemdManager {
    /// `user`: rootless, the unit goes to the user's systemd instance (see the module comment).
    pub fn new(
        cgroups_path: Option<&str>,
        id: &str,
        annotations: &HashMap<String, String>,
        user: bool,
    ) -> Result<SystemdManager> {
        let unified = util::detect_mode()? == util::Mode::Unified;
        let extra_props = annotation_props(annotations)?;
        if !user {
            let place = placement(cgroups_path, id)?;
            return Ok(SystemdManager {
                fs: fs_manager(&place.path, unified)?,
                place,
                unified,
                user_root: None,
                extra_props,
                pending: RefCell::new(None),
                pending_owner: RefCell::new(None),
                conn: RefCell::new(None),
                started: RefCell::new(true),
            });
        }
        if !unified {
            bail!(
                "rootless --systemd-cgroup needs cgroup v2 (the unified hierarchy), and this host \
                 has the v1/hybrid layout: use the cgroupfs driver (no --systemd-cgroup)"
            );
        }
        let mut place = placement_in(cgroups_path, id, DEFAULT_USER_SLICE)?;
        let mut conn = Conn::connect_user()?;
        let root = match conn.manager_property("ControlGroup") {
            Ok(Value::Str(r)) if r.starts_with('/') => r,
            Ok(v) => bail!("the user's systemd instance reported ControlGroup {v:?}"),
            Err(e) => return Err(e.context("asking the user's systemd instance for its cgroup")),
        };
        place.path = below(&root, &place.path);
        Ok(SystemdManager {
            fs: fs_manager(&place.path, unified)?,
            place,
            unified,
            user_root: Some(root),
            extra_props,
            pending: RefCell::new(None),
            pending_owner: RefCell::new(None),
            conn: RefCell::new(Some(conn)),
            started: RefCell::new(true),
        })
    }

    /// From state.json: the unit name is the last path component. `user`: a unit of the user's
    /// systemd instance (driver "systemd-user").
    pub fn from_state(path: &str, user: bool) -> Result<SystemdManager> {
        let unit = path.rsplit('/').next().unwrap_or_default().to_string();
        if !(unit.ends_with(".scope") || unit.ends_with(".slice")) {
            bail!("systemd cgroup path {path:?} in the container state does not end in a unit");
        }
        let unified = util::detect_mode()? == util::Mode::Unified;
        Ok(SystemdManager {
            fs: fs_manager(path, unified)?,
            place: Placement {
                slice: String::new(),
                unit,
                path: path.to_string(),
            },
            unified,
            // the path is complete already; the root only marks the user's manager
            user_root: user.then(String::new),
            extra_props: Vec::new(),
            pending: RefCell::new(None),
            pending_owner: RefCell::new(None),
            conn: RefCell::new(None),
            started: RefCell::new(true),
        })
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut c = self.conn.borrow_mut();
        if c.is_none() {
            *c = Some(if self.user_root.is_some() {
                Conn::connect_user()?
            } else {
                Conn::connect_systemd()?
            });
        }
        f(c.as_mut().expect("just connected"))
    }

    /// StartTransientUnit(unit, "replace", props, []) and wait for its job.
    fn start_unit(&self, pid: Option<i32>) -> Result<()> {
        let p = &self.place;
        let is_slice = p.unit.ends_with(".slice");
        let mut v = vec![prop(
            "Description",
            Value::Str(format!("husk container {}", p.unit)),
        )];
        if is_slice {
            v.push(prop("Wants", Value::str(&p.slice)));
        } else {
            v.push(prop("Slice", Value::str(&p.slice)));
            v.push(prop("Delegate", Value::Bool(true)));
            if let Some(pid) = pid {
                v.push(prop(
                    "PIDs",
                    Value::Array("u".into(), vec![Value::U32(pid as u32)]),
                ));
            }
        }
        for a in ["MemoryAccounting", "CPUAccounting", "TasksAccounting"] {
            v.push(prop(a, Value::Bool(true)));
        }
        v.push(prop(
            if self.unified {
                "IOAccounting"
            } else {
                "BlockIOAccounting"
            },
            Value::Bool(true),
        ));
        v.push(prop("DefaultDependencies", Value::Bool(false)));
        if let Some((r, d)) = self.pending.borrow().as_ref() {
            v.extend(resource_props(r, self.unified)?);
            if self.user_root.is_none() {
                v.extend(host_device_props(&super::device_rules(r, d)?)?);
            }
        }
        v.extend(self.extra_props.iter().cloned());
        let unit = p.unit.clone();
        let res = self.with_conn(|c| {
            let reply = c.manager(
                "StartTransientUnit",
                &[
                    Value::str(&unit),
                    Value::str("replace"),
                    props(v),
                    Value::Array("(sa(sv))".into(), vec![]),
                ],
            )?;
            let job = reply
                .first()
                .and_then(|j| j.as_str())
                .ok_or_else(|| anyhow!("StartTransientUnit returned no job"))?
                .to_string();
            let r = c.wait_job(&job, JOB_TIMEOUT, &|| false)?;
            if r != "done" {
                bail!("systemd job to start {unit} finished with result {r:?}");
            }
            Ok(())
        });
        match res {
            Err(e)
                if e.downcast_ref::<dbus::CallError>()
                    .is_some_and(|c| c.name == "org.freedesktop.systemd1.UnitExists") =>
            {
                bail!("systemd unit {unit} already exists (another container with this name?)")
            }
            r => r.with_context(|| format!("starting systemd unit {unit}")),
        }
    }

    /// The cgroupfs side of the resources: everything for the system manager; without device
    /// rules for the user's.
    fn fs_apply(&self, r: &LinuxResources, devs: &[LinuxDevice]) -> Result<()> {
        if self.user_root.is_some() {
            self.fs.update(&without_devices(r))
        } else {
            self.fs.apply_limits(r, devs)
        }
    }

    /// The user's manager: every limit's controller must be delegated to it.
    fn check_user_delegation(&self, r: &LinuxResources) -> Result<()> {
        let Some(root) = self.user_root.as_deref() else {
            return Ok(());
        };
        // from the state the root is not kept: the unit's own cgroup tells what it can have
        let dir = if root.is_empty() {
            &self.place.path
        } else {
            root
        };
        let p = util::join_under(std::path::Path::new(util::CGROUP_ROOT), dir);
        let available = std::fs::read_to_string(p.join("cgroup.controllers"))
            .with_context(|| format!("reading {}/cgroup.controllers", p.display()))?;
        check_delegated(
            r,
            &available,
            &format!("the user's systemd instance at {dir}"),
        )
    }

    /// The unit's cgroup directory is gone (systemd removes it when the scope stops).
    fn cgroup_gone(&self) -> bool {
        let p = &self.place.path;
        let dir = if self.unified {
            util::join_under(std::path::Path::new(util::CGROUP_ROOT), p)
        } else {
            util::join_under(std::path::Path::new("/sys/fs/cgroup/systemd"), p)
        };
        !dir.exists()
    }

    /// StopUnit and wait for its job, or for the cgroup to disappear (systemd stops an emptied
    /// scope by itself; its StopUnit reply or JobRemoved can then be long in coming). Like runc,
    /// a stop that does not finish in time is a warning, not an error: the cgroupfs removal
    /// that follows reports what is really left.
    fn stop_unit(&self) -> Result<()> {
        let unit = self.place.unit.clone();
        let gone = || self.cgroup_gone();
        let res = self.with_conn(|c| {
            let reply = c.call_until(
                Some(dbus::SYSTEMD_DEST),
                dbus::SYSTEMD_PATH,
                dbus::MANAGER_IFACE,
                "StopUnit",
                &[Value::str(&unit), Value::str("replace")],
                &gone,
            )?;
            if let Some(job) = reply
                .as_ref()
                .and_then(|r| r.first())
                .and_then(|j| j.as_str())
            {
                let job = job.to_string();
                c.wait_job(&job, JOB_TIMEOUT, &gone)?;
            }
            // a scope whose stop did not go cleanly (e.g. its processes were killed first, on a
            // failed create) stays loaded as "failed"; runc's stopUnit resets it as well
            let _ = c.call(
                Some(dbus::SYSTEMD_DEST),
                dbus::SYSTEMD_PATH,
                dbus::MANAGER_IFACE,
                "ResetFailedUnit",
                &[Value::str(&unit)],
            );
            Ok(())
        });
        match res {
            Err(e)
                if e.downcast_ref::<dbus::CallError>()
                    .is_some_and(|c| c.name == "org.freedesktop.systemd1.NoSuchUnit") =>
            {
                Ok(())
            }
            Err(e) => {
                crate::logging::warn(&format!("stopping systemd unit {unit}: {e:#}"));
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

impl Manager for SystemdManager {
    fn create(&self) -> Result<()> {
        // Connect now so that a host without systemd fails before anything is forked; the
        // unit itself needs the pid (PIDs=[pid]) and is started by place_init.
        *self.started.borrow_mut() = false;
        self.with_conn(|_| Ok(()))
    }

    fn apply_limits(&self, resources: &LinuxResources, devs: &[LinuxDevice]) -> Result<()> {
        // validate now (errors before the fork), apply once the unit exists
        resource_props(resources, self.unified)?;
        self.check_user_delegation(resources)?;
        *self.pending.borrow_mut() = Some((resources.clone(), devs.to_vec()));
        if *self.started.borrow() {
            self.fs_apply(resources, devs)?;
        }
        Ok(())
    }

    fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.check_user_delegation(resources)?;
        let mut v = resource_props(resources, self.unified)?;
        if resources.devices().is_some() && self.user_root.is_none() {
            v.extend(host_device_props(&super::device_rules(resources, &[])?)?);
        }
        if !v.is_empty() {
            let unit = self.place.unit.clone();
            let res = self.with_conn(|c| {
                c.manager(
                    "SetUnitProperties",
                    &[Value::str(&unit), Value::Bool(true), props(v)],
                )
            });
            match res {
                // systemd refused: that is the caller's error
                Err(e) if e.downcast_ref::<dbus::CallError>().is_some() => {
                    return Err(e.context(format!("setting properties of systemd unit {unit}")))
                }
                // no reply in time (seen once in the hybrid guest, where systemd had applied
                // the values): the cgroupfs writes below set them anyway
                Err(e) => crate::logging::warn(&format!(
                    "setting properties of systemd unit {unit}: {e:#}; writing cgroupfs directly"
                )),
                Ok(_) => {}
            }
        }
        if self.user_root.is_some() {
            return self.fs.update(&without_devices(resources));
        }
        self.fs.update(resources)
    }

    fn place(&self, pid: i32) -> Result<()> {
        // exec into a running container: plain cgroupfs join, as runc
        self.fs.place(pid)
    }

    fn place_init(&self, pid: i32) -> Result<()> {
        if *self.started.borrow() {
            return self.fs.place(pid);
        }
        let is_slice = self.place.unit.ends_with(".slice");
        self.start_unit(if is_slice { None } else { Some(pid) })?;
        *self.started.borrow_mut() = true;
        let res = (|| -> Result<()> {
            // v1: systemd only creates the scope in hierarchies it manages; join the rest
            self.fs.create()?;
            if is_slice || !self.unified {
                self.fs.place(pid)?;
            }
            if let Some((r, d)) = self.pending.borrow().as_ref() {
                self.fs_apply(r, d)?;
            }
            if let Some((uid, gid)) = *self.pending_owner.borrow() {
                self.fs.delegate(uid, gid)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = self.destroy();
            return Err(e);
        }
        Ok(())
    }

    fn delegate(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        // as runc's systemd v2 manager (OwnerUID): chown what systemd created; never on v1
        if !self.unified {
            return Ok(());
        }
        if *self.started.borrow() {
            return self.fs.delegate(uid, gid);
        }
        *self.pending_owner.borrow_mut() = Some((uid, gid));
        Ok(())
    }

    fn clone_into_fd(&self) -> Option<std::os::fd::RawFd> {
        // exec into a running container can clone straight into the scope; a new container's
        // init must exist first (PIDs=[pid] starts the unit)
        if *self.started.borrow() {
            self.fs.clone_into_fd()
        } else {
            None
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.fs.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.fs.freeze(frozen)
    }

    fn is_frozen(&self) -> Result<bool> {
        self.fs.is_frozen()
    }

    fn freezer_state(&self) -> Result<super::FreezerState> {
        self.fs.freezer_state()
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        self.fs.kill_all(signal)
    }

    fn destroy(&self) -> Result<()> {
        if *self.started.borrow() {
            self.stop_unit()?;
        }
        // directories systemd does not own (v1 hierarchies it does not manage)
        self.fs.destroy()
    }

    fn stats(&self) -> Result<Stats> {
        self.fs.stats()
    }

    fn oom_kill_count(&self) -> Result<u64> {
        self.fs.oom_kill_count()
    }

    fn state(&self) -> CgroupState {
        CgroupState {
            driver: if self.user_root.is_some() {
                USER_DRIVER
            } else {
                "systemd"
            }
            .into(),
            path: self.place.path.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    #[test]
    fn slices() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.scope",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placements() {
        let p = placement(None, "ctr").unwrap();
        assert_eq!(p.slice, "system.slice");
        assert_eq!(p.unit, "husk-ctr.scope");
        assert_eq!(p.path, "/system.slice/husk-ctr.scope");
        assert_eq!(placement(Some(""), "ctr").unwrap(), p);
        let p = placement(Some("machine-x.slice:docker:abc"), "ctr").unwrap();
        assert_eq!(p.unit, "docker-abc.scope");
        assert_eq!(p.path, "/machine.slice/machine-x.slice/docker-abc.scope");
        let p = placement(Some(":husk:abc"), "ctr").unwrap();
        assert_eq!(p.path, "/system.slice/husk-abc.scope");
        let p = placement(Some("system.slice:p:my-pod.slice"), "ctr").unwrap();
        assert_eq!(p.unit, "my-pod.slice");
        assert_eq!(p.path, "/my.slice/my-pod.slice");
        let p = placement(Some("-.slice:p:n"), "ctr").unwrap();
        assert_eq!(p.path, "/p-n.scope");
        assert!(placement(Some("/a/b"), "x").is_err());
        assert!(placement(Some("a:b"), "x").is_err());
        assert!(placement(Some("bad:p:n"), "x").is_err());
    }

    #[test]
    fn user_manager_paths() {
        let p = placement_in(None, "ctr", DEFAULT_USER_SLICE).unwrap();
        assert_eq!(p.slice, "user.slice");
        assert_eq!(p.path, "/user.slice/husk-ctr.scope");
        let root = "/user.slice/user-1000.slice/user@1000.service";
        assert_eq!(
            below(root, &p.path),
            "/user.slice/user-1000.slice/user@1000.service/user.slice/husk-ctr.scope"
        );
        // rootless podman's cgroupsPath
        let p = placement_in(Some("user.slice:libpod:abc"), "x", DEFAULT_USER_SLICE).unwrap();
        assert_eq!(p.unit, "libpod-abc.scope");
        assert_eq!(
            below(root, &p.path),
            format!("{root}/user.slice/libpod-abc.scope")
        );
        let p = placement_in(Some(":p:n"), "x", DEFAULT_USER_SLICE).unwrap();
        assert_eq!(p.path, "/user.slice/p-n.scope");
        assert_eq!(below("/", "/a.scope"), "/a.scope");
        assert_eq!(below(root, "/"), root);
    }

    #[test]
    fn delegated_controllers() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1 << 26)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .build()
            .unwrap();
        assert!(check_delegated(&r, "cpu memory pids\n", "u").is_ok());
        let e = check_delegated(&r, "cpu pids\n", "u")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.resources.memory:") && e.contains("memory"),
            "{e}"
        );
        let cpus = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("0").build().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            needed_controllers(&cpus),
            [("linux.resources.cpu.cpus".to_string(), "cpuset".to_string())]
        );
        let e = check_delegated(&cpus, "", "u").unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.cpu.cpus") && e.contains("none"),
            "{e}"
        );
        // nothing asked: nothing needed (device rules are not a controller on v2)
        assert!(needed_controllers(&LinuxResources::default()).is_empty());
        let u: LinuxResources =
            serde_json::from_str(r#"{"unified": {"io.weight": "100", "cgroup.max.depth": "3"}}"#)
                .unwrap();
        assert_eq!(needed_controllers(&u).len(), 1);
        assert!(check_delegated(&u, "memory", "u")
            .unwrap_err()
            .to_string()
            .contains("io.weight"));
    }

    #[test]
    fn cpu_bits() {
        assert_eq!(range_to_bits("0", "f").unwrap(), [1]);
        assert_eq!(range_to_bits("0-3,8", "f").unwrap(), [0x0f, 0x01]);
        assert_eq!(range_to_bits("1,3-4", "f").unwrap(), [0b11010]);
        assert!(range_to_bits("3-1", "f").is_err());
        assert!(range_to_bits("x", "f").is_err());
    }

    fn get(p: &[Value], name: &str) -> Option<Value> {
        p.iter().find_map(|v| match v {
            Value::Struct(f) if f[0] == Value::str(name) => match &f[1] {
                Value::Variant(x) => Some((**x).clone()),
                _ => None,
            },
            _ => None,
        })
    }

    #[test]
    fn resources() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(128 << 20)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .cpus("0-1")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let p = resource_props(&r, true).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(Value::U64(64 << 20)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(Value::U64(64 << 20)));
        assert_eq!(get(&p, "TasksMax"), Some(Value::U64(20)));
        assert_eq!(get(&p, "CPUWeight"), Some(Value::U64(100)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(
            get(&p, "AllowedCPUs"),
            Some(Value::Array("y".into(), vec![Value::Byte(3)]))
        );
        let p1 = resource_props(&r, false).unwrap();
        assert_eq!(get(&p1, "CPUShares"), Some(Value::U64(1024)));
        assert_eq!(get(&p1, "MemorySwapMax"), None);
        // quota rounded up to 10ms per second, -1 = infinity
        let r = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(1234i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .build()
            .unwrap();
        let p = resource_props(&r, true).unwrap();
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(20_000)));
        assert_eq!(get(&p, "TasksMax"), Some(Value::U64(u64::MAX)));
    }

    #[test]
    fn devices() {
        let pd = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(proc_devices_name(pd, false, 136).as_deref(), Some("pts"));
        assert_eq!(proc_devices_name(pd, true, 8).as_deref(), Some("sd"));
        assert_eq!(proc_devices_name(pd, true, 136), None);
        let r = LinuxResources::default();
        let p = device_props(&crate::cgroups::device_rules(&r, &[]).unwrap(), pd).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(Value::str("strict")));
        let Some(Value::Array(_, list)) = p.last().and_then(|x| match x {
            Value::Struct(f) => match &f[1] {
                Value::Variant(v) => Some((**v).clone()),
                _ => None,
            },
            _ => None,
        }) else {
            panic!("no DeviceAllow list: {p:?}")
        };
        let pairs: Vec<(String, String)> = list
            .iter()
            .map(|e| match e {
                Value::Struct(f) => (
                    f[0].as_str().unwrap().to_string(),
                    f[1].as_str().unwrap().to_string(),
                ),
                _ => panic!(),
            })
            .collect();
        let has = |a: &str, b: &str| pairs.iter().any(|(x, y)| x == a && y == b);
        assert!(has("/dev/char/1:3", "rwm"), "{pairs:?}"); // null
        assert!(has("char-*", "m"), "{pairs:?}"); // mknod of any char device
        assert!(has("block-*", "m"), "{pairs:?}");
        assert!(has("char-pts", "rwm"), "{pairs:?}"); // c 136:* rwm
                                                      // allow-all
        let all = [crate::cgroups::devices::Rule {
            allow: true,
            kind: 'a',
            major: None,
            minor: None,
            access: 7,
        }];
        let p = device_props(&all, pd).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(Value::str("auto")));
        // "c *:5 rwm" is not widened to every char device
        let star_minor = [crate::cgroups::devices::Rule {
            allow: true,
            kind: 'c',
            major: None,
            minor: Some(5),
            access: 7,
        }];
        let p = device_props(&star_minor, pd).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(Value::str("strict")));
        assert!(
            !format!("{p:?}").contains("char-*"),
            "a *:5 rule became char-*: {p:?}"
        );
    }

    #[test]
    fn annotations() {
        let mut a = HashMap::new();
        a.insert(
            "org.systemd.property.TimeoutStopSec".into(),
            "uint64 5".into(),
        );
        a.insert(
            "org.systemd.property.CollectMode".into(),
            "'inactive-or-failed'".into(),
        );
        a.insert("org.systemd.property.IgnoreOnIsolate".into(), "true".into());
        a.insert(
            "org.systemd.property.CPUQuotaPeriodUSec".into(),
            "@t 50000".into(),
        );
        a.insert("org.systemd.property.RuntimeMaxSec".into(), "7".into());
        a.insert("other".into(), "x".into());
        let p = annotation_props(&a).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(get(&p, "TimeoutStopUSec"), Some(Value::U64(5_000_000)));
        assert_eq!(get(&p, "RuntimeMaxUSec"), Some(Value::U64(7_000_000)));
        assert_eq!(
            get(&p, "CollectMode"),
            Some(Value::str("inactive-or-failed"))
        );
        assert_eq!(get(&p, "IgnoreOnIsolate"), Some(Value::Bool(true)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(Value::U64(50_000)));
        for (k, v) in [
            ("org.systemd.property.A1b", "1"),
            ("org.systemd.property.Ab", "1"),
            ("org.systemd.property.Foo", "[1"),
            ("org.systemd.property.TimeoutStopSec", "'x'"),
        ] {
            let a: HashMap<String, String> = [(k.to_string(), v.to_string())].into();
            assert!(annotation_props(&a).is_err(), "{k}={v}");
        }
    }
}
