//! Unit properties: what the systemd driver asks of systemd for a container's unit. The
//! resources systemd can express (runc's `genV1ResourcesProperties` /
//! `genV2ResourcesProperties`), device rules as `DevicePolicy`/`DeviceAllow`,
//! `org.systemd.property.*` annotations, and for the user's instance which cgroup v2
//! controllers the limits need. Everything else is written through cgroupfs.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxResources;

use crate::cgroups::dbus::{prop, Value};
use crate::cgroups::translate as tr;

const ANNOTATION_PREFIX: &str = "org.systemd.property.";

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
pub fn device_props(
    rules: &[crate::cgroups::devices::Rule],
    proc_devices: &str,
) -> Result<Vec<Value>> {
    let p = crate::cgroups::devices::Policy::build(rules)?;
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
        let acc = crate::cgroups::devices::access_str(r.access);
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

pub fn host_device_props(rules: &[crate::cgroups::devices::Rule]) -> Result<Vec<Value>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

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
