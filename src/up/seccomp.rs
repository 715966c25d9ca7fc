//! Seccomp for `husk up`: Docker's default profile, and Docker's profile format rendered into
//! `linux.seccomp` as moby's `setupSeccomp` (profiles/seccomp/seccomp_linux.go) renders it.
//!
//! Docker's format is the OCI one plus conditions: `archMap` (each architecture with the
//! sub-architectures a filter for it also covers) instead of `architectures`, and per rule
//! `includes`/`excludes` of `caps`, `arches` and `minKernel`. They are decided here, once, for
//! the container's capability set (its bounding set), the machine's architecture and the
//! running kernel; the runtime only sees the OCI result.
//!
//! The default profile (`data/seccomp-default.json`) is moby's `profiles/seccomp/default.json`
//! at moby commit 00f3d189e420d485e42d15fe494f96d272284e0e, the profile the seccomp oracle's
//! `tests/data/seccomp/docker-default.json` was rendered from.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// Docker's default profile, in Docker's format.
pub const DEFAULT_PROFILE: &str = include_str!("data/seccomp-default.json");

/// This machine's architecture as libseccomp names it (`amd64`, `arm64`, …): the name the
/// `arches` of `includes`/`excludes` use (moby's `goToNative`). Empty where Docker has none.
pub fn native_arch() -> &'static str {
    let le = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if le => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "s390x" => "s390x",
        "mips64" if le => "mipsel64",
        "mips64" => "mips64",
        "mips" if le => "mipsle",
        "riscv64" => "riscv64",
        _ => "",
    }
}

/// The `SCMP_ARCH_*` of a libseccomp architecture name (moby's `nativeToSeccomp`).
fn scmp_arch(native: &str) -> Option<&'static str> {
    Some(match native {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64n32" => "SCMP_ARCH_MIPS64N32",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "mips3l64n32" => "SCMP_ARCH_MIPSEL64N32",
        "mipsle" => "SCMP_ARCH_MIPSEL",
        "ppc" => "SCMP_ARCH_PPC",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390" => "SCMP_ARCH_S390",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => return None,
    })
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `a.b.c` of a kernel release ("6.1.0-13-amd64" → (6, 1, 0), "4.8" → (4, 8, 0)); None when it
/// does not start with `a.b`.
fn kernel_version(r: &str) -> Option<(u32, u32, u32)> {
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    let c = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((a, b, c))
}

/// The kernel seccomp filters need (`Seccomp:` in /proc/self/status: CONFIG_SECCOMP).
pub fn kernel_has_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false)
}

/// Docker's default profile for a container with capabilities `caps` (its bounding set), on
/// this machine and kernel.
pub fn default_profile(caps: &[String]) -> Result<Value> {
    let v: Value = serde_json::from_str(DEFAULT_PROFILE).context("Docker's default profile")?;
    render(&v, caps, native_arch(), &kernel_release()).context("Docker's default profile")
}

/// A seccomp profile as `linux.seccomp`: the OCI form as it is, or Docker's profile format as
/// moby's `setupSeccomp` renders it: `archMap` narrowed to the entry of `native` (a libseccomp
/// name, [`native_arch`]) and its sub-architectures; a rule is kept unless one of
/// `excludes.arches` is `native`, one of `excludes.caps` is in `caps` or the kernel is at least
/// `excludes.minKernel`, and only if `includes.arches` (when given) holds `native`, every one
/// of `includes.caps` is in `caps` and the kernel is at least `includes.minKernel`; `name` is
/// folded into `names`; `comment`s are dropped.
pub fn render(v: &Value, caps: &[String], native: &str, release: &str) -> Result<Value> {
    let obj = v
        .as_object()
        .context("expected a JSON object with defaultAction")?;
    if obj.get("defaultAction").and_then(Value::as_str).is_none() {
        bail!("defaultAction is missing");
    }
    let mut out = Map::new();
    for (k, val) in obj {
        match k.as_str() {
            "archMap" | "syscalls" | "comment" => {}
            _ => {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    let map = obj.get("archMap").filter(|m| !m.is_null());
    if let Some(map) = map {
        let Some(map) = map.as_array() else {
            bail!("archMap is not a list");
        };
        if obj
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            bail!("give architectures or archMap, not both");
        }
        let mut arches = Vec::new();
        if let Some(scmp) = scmp_arch(native) {
            if let Some(a) = map.iter().find(|a| a["architecture"] == scmp) {
                arches.push(json!(scmp));
                arches.extend(
                    a["subArchitectures"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
        }
        if !arches.is_empty() {
            out.insert("architectures".into(), Value::Array(arches));
        }
    }
    let now = kernel_version(release);
    let kernel_at_least = |m: &Value, what: &str| -> Result<Option<bool>> {
        let Some(m) = m.as_str().filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        let Some(want) = kernel_version(m) else {
            bail!("{what}.minKernel {m:?} is not a kernel version such as 5.8");
        };
        let Some(now) = now else {
            bail!(
                "{what}.minKernel {m:?}: the running kernel's release {release:?} has no version"
            );
        };
        Ok(Some(now >= want))
    };
    let list = |v: &Value, what: &str| -> Result<Vec<String>> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .with_context(|| format!("{what}: {x} is not a string"))
                })
                .collect(),
            _ => bail!("{what} is not a list of strings"),
        }
    };
    let mut rules = Vec::new();
    for (i, r) in obj
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("syscalls[{i}]");
        let Some(ro) = r.as_object() else {
            bail!("{at} is not an object");
        };
        let exc = &r["excludes"];
        if list(&exc["arches"], &format!("{at}.excludes.arches"))?
            .iter()
            .any(|a| a == native)
            || list(&exc["caps"], &format!("{at}.excludes.caps"))?
                .iter()
                .any(|c| caps.contains(c))
            || kernel_at_least(&exc["minKernel"], &format!("{at}.excludes"))? == Some(true)
        {
            continue;
        }
        let inc = &r["includes"];
        let arches = list(&inc["arches"], &format!("{at}.includes.arches"))?;
        if (!arches.is_empty() && !arches.iter().any(|a| a == native))
            || !list(&inc["caps"], &format!("{at}.includes.caps"))?
                .iter()
                .all(|c| caps.contains(c))
            || kernel_at_least(&inc["minKernel"], &format!("{at}.includes"))? == Some(false)
        {
            continue;
        }
        let mut names: Vec<Value> = match ro.get("names") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => bail!("{at}.names is not a list"),
        };
        if let Some(n) = ro.get("name").filter(|n| !n.is_null() && **n != "") {
            if !names.is_empty() {
                bail!("{at}: give name or names, not both");
            }
            names.push(n.clone());
        }
        if names.is_empty() {
            bail!("{at} names no syscall");
        }
        let mut rule = Map::new();
        rule.insert("names".into(), Value::Array(names));
        for (k, val) in ro {
            match k.as_str() {
                "names" | "name" | "includes" | "excludes" | "comment" => {}
                _ => {
                    rule.insert(k.clone(), val.clone());
                }
            }
        }
        rules.push(Value::Object(rule));
    }
    if !rules.is_empty() {
        out.insert("syscalls".into(), Value::Array(rules));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::up::flags::DEFAULT_CAPS;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    fn caps(extra: &[&str]) -> Vec<String> {
        DEFAULT_CAPS
            .iter()
            .chain(extra)
            .map(|c| c.to_string())
            .collect()
    }

    fn default(c: &[String], native: &str, release: &str) -> Value {
        render(
            &serde_json::from_str(DEFAULT_PROFILE).unwrap(),
            c,
            native,
            release,
        )
        .unwrap()
    }

    /// The syscall names of the rules with this action.
    fn names_of(p: &Value, action: &str) -> Vec<String> {
        let mut v: Vec<String> = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn docker_format_rules_decided_as_moby() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64",
                 "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
            ],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "io"},
                {"name": "mount", "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "4.8"}},
                {"names": ["kexec_load"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"caps": ["CAP_CHOWN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["arm64"]}},
                {"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"arches": ["amd64"]}},
                {"names": ["old_call"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"minKernel": "5.10.3"}},
                {"names": ["both"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_CHOWN"]}}
            ]
        });
        let chown = vec!["CAP_CHOWN".to_string()];
        let out = render(&p, &chown, "amd64", "6.1.0-13-amd64").unwrap();
        assert_eq!(
            out["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(out["defaultErrnoRet"], 1);
        assert!(out.get("archMap").is_none());
        let names: Vec<&Value> = out["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["names"])
            .collect();
        assert_eq!(names, [&json!(["read", "write"]), &json!(["ptrace"])]);
        assert!(out["syscalls"][0].get("comment").is_none());
        // an older kernel: no ptrace; 5.10.2 < 5.10.3 keeps old_call
        let old = render(&p, &chown, "amd64", "4.4.0").unwrap();
        assert_eq!(
            names_of(&old, "SCMP_ACT_ALLOW"),
            ["old_call", "read", "write"]
        );
        let old = render(&p, &chown, "amd64", "5.10.2").unwrap();
        assert!(names_of(&old, "SCMP_ACT_ALLOW").contains(&"old_call".to_string()));
        // arches are libseccomp's names, not SCMP_ARCH_*
        let both = vec!["CAP_SYS_ADMIN".to_string(), "CAP_CHOWN".to_string()];
        let out = render(&p, &both, "arm64", "6.1").unwrap();
        assert_eq!(
            out["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert_eq!(
            names_of(&out, "SCMP_ACT_ALLOW"),
            [
                "arch_prctl",
                "both",
                "modify_ldt",
                "mount",
                "ptrace",
                "read",
                "write"
            ]
        );
        // an architecture the archMap lacks: no architectures (the native one alone)
        let out = render(&p, &chown, "s390x", "6.1").unwrap();
        assert!(out.get("architectures").is_none());
        // the OCI form passes through
        let oci = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]});
        assert_eq!(render(&oci, &chown, "amd64", "6.1").unwrap(), oci);
        for (bad, want) in [
            (json!([]), "JSON object"),
            (json!({"syscalls": []}), "defaultAction"),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "x"}]}),
                "syscalls[0] names no syscall",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"name": "a", "names": ["b"], "action": "x"}]}),
                "syscalls[0]: give name or names, not both",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["a"], "includes": {"minKernel": "new"}}]}),
                "syscalls[0].includes.minKernel \"new\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["a"], "excludes": {"caps": "CAP_CHOWN"}}]}),
                "syscalls[0].excludes.caps is not a list",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}),
                "architectures or archMap",
            ),
        ] {
            let e = err(render(&bad, &chown, "amd64", "6.1"));
            assert!(e.contains(want), "{e}");
        }
    }

    /// Rendered for Docker's 14 capabilities on amd64, the default profile is the OCI profile
    /// the seccomp oracle checks (tests/data/seccomp/docker-default.json, written from the same
    /// moby commit): husk's compiler makes the same BPF program of both.
    #[test]
    fn default_profile_for_dockers_caps_is_the_oracles() {
        let mine = default(&caps(&[]), "amd64", "6.1.0-13-amd64");
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/seccomp/docker-default.json"
        );
        let theirs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let bpf = |v: &Value| {
            let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v.clone()).unwrap();
            let p = crate::security::seccomp_compile(&s).unwrap().program;
            let insns: Vec<(u16, u8, u8, u32)> =
                p.insns.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
            (insns, p.flags)
        };
        let (a, b) = (bpf(&mine), bpf(&theirs));
        assert!(a.0.len() > 100, "{} instructions", a.0.len());
        assert_eq!(a, b);
        assert_eq!(mine["architectures"], theirs["architectures"]);
        assert_eq!(mine["defaultErrnoRet"], 1);
    }

    #[test]
    fn default_profile_follows_the_capabilities() {
        let base = default(&caps(&[]), "amd64", "6.1");
        let allowed = names_of(&base, "SCMP_ACT_ALLOW");
        for n in ["read", "execve", "clone", "chroot", "ptrace", "arch_prctl"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        for n in [
            "unshare", "mount", "setns", "keyctl", "reboot", "bpf", "clone3",
        ] {
            assert!(!allowed.contains(&n.to_string()), "{n}");
        }
        assert_eq!(names_of(&base, "SCMP_ACT_ERRNO"), ["clone3"]);
        // clone only without namespace flags
        let clone = base["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        // CAP_SYS_ADMIN: its calls allowed, clone and clone3 unconditionally
        let admin = default(&caps(&["CAP_SYS_ADMIN"]), "amd64", "6.1");
        let allowed = names_of(&admin, "SCMP_ACT_ALLOW");
        for n in ["unshare", "mount", "setns", "clone3", "bpf"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        assert!(names_of(&admin, "SCMP_ACT_ERRNO").is_empty());
        assert!(!admin["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"] == json!(["clone"]) && r.get("args").is_some()));
        // a dropped capability takes its calls away
        let no_chroot: Vec<String> = caps(&[])
            .into_iter()
            .filter(|c| c != "CAP_SYS_CHROOT")
            .collect();
        let p = default(&no_chroot, "amd64", "6.1");
        assert!(!names_of(&p, "SCMP_ACT_ALLOW").contains(&"chroot".to_string()));
        // CAP_SYS_TIME, CAP_SYS_PTRACE
        let p = default(&caps(&["CAP_SYS_TIME", "CAP_SYS_PTRACE"]), "amd64", "6.1");
        let allowed = names_of(&p, "SCMP_ACT_ALLOW");
        for n in ["settimeofday", "clock_settime", "kcmp", "pidfd_getfd"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        // other architectures: their own calls, not amd64's
        let arm = default(&caps(&[]), "arm64", "6.1");
        let allowed = names_of(&arm, "SCMP_ACT_ALLOW");
        assert!(allowed.contains(&"set_tls".to_string()));
        assert!(!allowed.contains(&"arch_prctl".to_string()));
        assert_eq!(
            arm["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        // a kernel older than 4.8: ptrace only with CAP_SYS_PTRACE
        let old = default(&caps(&[]), "amd64", "4.4.0-210-generic");
        assert!(!names_of(&old, "SCMP_ACT_ALLOW").contains(&"ptrace".to_string()));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-13-amd64"), Some((6, 1, 0)));
        assert_eq!(kernel_version("5.10.3"), Some((5, 10, 3)));
        assert_eq!(kernel_version("4.8"), Some((4, 8, 0)));
        assert_eq!(kernel_version("new"), None);
        assert_eq!(kernel_version("5"), None);
        assert_eq!(native_arch().is_empty(), scmp_arch(native_arch()).is_none());
    }
}
