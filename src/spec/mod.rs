//! Loading and checking a bundle's config.json, and the default spec of `husk spec`.
//!
//! Errors name the JSON path of the offending field (through serde_path_to_error), so a user
//! sees `process.user.uid: invalid type: string "x", expected u32` rather than a line number.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

mod default;
mod unapplied;
pub use default::default_spec_json;

/// A parsed and validated bundle.
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical rootfs path.
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// config.json exactly as read (kept in the state dir for later commands).
    pub raw: Vec<u8>,
}

/// Parse config.json bytes, naming the JSON path of any error.
///
/// Unknown capability names are logged as a warning and ignored (config.md "Linux Process":
/// MUST be logged as a warning, runtimes SHOULD NOT fail; runc does the same), and relative
/// mount destinations are made relative to "/" (config.md "Mounts", runtime-spec 1.2).
pub fn parse(bytes: &[u8]) -> Result<Spec> {
    Ok(parse_clean(bytes)?.0)
}

/// [`parse`], plus the config without the ignored capability names when there were any (what
/// `create` keeps in the state dir, so later commands do not warn again).
fn parse_clean(bytes: &[u8]) -> Result<(Spec, Option<Vec<u8>>)> {
    // The plain parse is the fast path; only a failing config is parsed again with path
    // tracking (which instantiates every Deserialize impl a second time) to name the field.
    let (mut spec, clean) = match serde_json::from_slice::<Spec>(bytes) {
        Ok(s) => (s, None),
        Err(_) => match lenient(bytes) {
            Some((clean, unknown)) => {
                let s = parse_tracked(&clean)?;
                if !unknown.is_empty() {
                    crate::logging::warn(&format!(
                        "ignoring unknown or unavailable capabilities: [{}]",
                        unknown.join(" ")
                    ));
                }
                (s, Some(clean))
            }
            None => (parse_tracked(bytes)?, None),
        },
    };
    check_nul(bytes)?;
    if let Some(mounts) = spec.mounts_mut() {
        for (i, m) in mounts.iter_mut().enumerate() {
            if m.destination().as_os_str().is_empty() {
                bail!("mounts[{i}].destination: must not be empty");
            }
            if m.destination().is_relative() {
                let d = Path::new("/").join(m.destination());
                m.set_destination(d);
            }
        }
    }
    Ok((spec, clean))
}

/// A NUL byte in a string the kernel gets (a path, an argument, an environment entry, a label)
/// would be cut there or refused much later with an error that names nothing: refuse it here,
/// naming the field. Only a config that contains the escape `\u0000` at all is walked (JSON
/// cannot carry a raw NUL in a string). Annotations are exempt: they are never passed to the
/// kernel.
fn check_nul(bytes: &[u8]) -> Result<()> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    fn walk(v: &serde_json::Value, path: &mut String) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(path.clone()),
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
                let n = path.len();
                path.push_str(&format!("[{i}]"));
                let r = walk(x, path);
                path.truncate(n);
                r
            }),
            serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
                if path.is_empty() && k == "annotations" {
                    return None;
                }
                let n = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let r = if k.contains('\0') {
                    Some(path.clone())
                } else {
                    walk(x, path)
                };
                path.truncate(n);
                r
            }),
            _ => None,
        }
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match walk(&v, &mut String::new()) {
        Some(field) => bail!("{field}: must not contain a NUL byte"),
        None => Ok(()),
    }
}

fn parse_tracked(bytes: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, Spec>(de) {
        Ok(s) => Ok(s),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                bail!("config.json: {inner}")
            }
            bail!("config.json: {path}: {inner}")
        }
    }
}

/// What the strict parse refuses but the spec allows, taken out of the config: capability
/// names husk does not know (returned, sorted and once each, for the warning) and empty
/// `execCPUAffinity` lists; a missing `process.user` is filled in (uid 0 / gid 0). None when there is nothing of the kind (or the JSON does not parse
/// at all).
fn lenient(bytes: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let process = v.get_mut("process")?;
    let affinity = drop_empty_affinity(process);
    let user = default_user(process);
    let unknown = drop_unknown_caps(process);
    if unknown.is_empty() && !affinity && !user {
        return None;
    }
    Some((serde_json::to_vec(&v).ok()?, unknown))
}

/// config.md: `execCPUAffinity.initial` / `final` are optional strings, and runc treats an
/// empty one as unset; oci-spec refuses "" as a CPU list. Removes empty ones; true if any.
pub fn drop_empty_affinity(process: &mut serde_json::Value) -> bool {
    let Some(a) = process
        .get_mut("execCPUAffinity")
        .and_then(|a| a.as_object_mut())
    else {
        return false;
    };
    let before = a.len();
    a.retain(|k, v| !(matches!(k.as_str(), "initial" | "final") && v.as_str() == Some("")));
    a.len() != before
}

/// config.md: `process.user` is optional (only `cwd` is REQUIRED); runc's specconv then runs
/// the process as uid 0 / gid 0. oci-spec requires the field: adds `{"uid":0,"gid":0}` when it
/// is missing; true if it did.
pub fn default_user(process: &mut serde_json::Value) -> bool {
    match process.as_object_mut() {
        Some(p) if !p.contains_key("user") => {
            p.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
            true
        }
        _ => false,
    }
}

/// Removes the capability names husk does not know from `process.capabilities`; returns them
/// (sorted, once each).
fn drop_unknown_caps(process: &mut serde_json::Value) -> Vec<String> {
    use oci_spec::runtime::Capability;
    let mut unknown: Vec<String> = Vec::new();
    let Some(caps) = process
        .get_mut("capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return unknown;
    };
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        if let Some(list) = caps.get_mut(set).and_then(|l| l.as_array_mut()) {
            list.retain(|c| {
                let known = serde_json::from_value::<Capability>(c.clone()).is_ok();
                if !known {
                    if let Some(name) = c.as_str() {
                        unknown.push(name.to_string());
                    }
                }
                // a non-string entry stays, for the tracked parse to name it
                known || !c.is_string()
            });
        }
    }
    unknown.sort();
    unknown.dedup();
    unknown
}

/// Read, parse and validate `<bundle>/config.json` for a new container.
pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(bundle)
        .with_context(|| format!("bundle {}: cannot make the path absolute", bundle.display()))?;
    let cfg = dir.join("config.json");
    let raw = std::fs::read(&cfg).with_context(|| format!("open {}", cfg.display()))?;
    let (spec, clean) = parse_clean(&raw)?;
    let rootfs = validate(&spec, &dir)?;
    unapplied::check(&spec)?;
    Ok(Bundle {
        dir,
        rootfs,
        spec,
        raw: clean.unwrap_or(raw),
    })
}

/// Checks a runtime must make before creating anything; returns the canonical rootfs path.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    check_oci_version(spec.version())?;
    let root = spec
        .root()
        .as_ref()
        .context("root: missing (config.json must name the container's root filesystem)")?;
    let rp = root.path();
    if rp.as_os_str().is_empty() {
        bail!("root.path: must not be empty");
    }
    let abs = if rp.is_absolute() {
        rp.clone()
    } else {
        bundle.join(rp)
    };
    let rootfs = std::fs::canonicalize(&abs)
        .with_context(|| format!("root.path: rootfs {} does not exist", abs.display()))?;
    if !rootfs.is_dir() {
        bail!("root.path: rootfs {} is not a directory", rootfs.display());
    }

    let process = spec
        .process()
        .as_ref()
        .context("process: missing (a container needs a process to run)")?;
    match process.args() {
        Some(a) if a.first().is_some_and(|a0| a0.is_empty()) => {
            bail!("process.args[0]: the program to run must not be empty")
        }
        Some(a) if !a.is_empty() => {}
        _ => bail!("process.args: must not be empty"),
    }
    if !process.cwd().is_absolute() {
        bail!(
            "process.cwd: {:?} is not an absolute path",
            process.cwd().display()
        );
    }
    // Used by exec only (not applicable to the init), but checked here as runc's specconv
    // converts it at create: a bad list fails create, not a later exec.
    crate::process::affinity::ExecAffinity::of(process)?;
    // rlimits, oomScoreAdj, ioPriority, scheduler: their ranges do not depend on the host
    crate::security::check_process(process)?;
    if let Some(profile) = process.apparmor_profile() {
        crate::security::lsm::check_apparmor(profile)?;
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') {
                bail!("process.env[{i}]: {e:?} is not of the form KEY=VALUE");
            }
        }
    }

    // config.md "POSIX-platform Mounts", "Linux mount options": idmap/ridmap and mount
    // uidMappings/gidMappings (only bind mounts; a user namespace when there are no mappings)
    crate::rootfs::idmap::validate(spec)?;

    if let Some(h) = spec.hooks() {
        #[allow(deprecated)]
        let kinds = [
            ("prestart", h.prestart()),
            ("createRuntime", h.create_runtime()),
            ("createContainer", h.create_container()),
            ("startContainer", h.start_container()),
            ("poststart", h.poststart()),
            ("poststop", h.poststop()),
        ];
        // config.md "POSIX-platform Hooks": path MUST be absolute; timeout MUST be > 0.
        // Checked here so a bad poststart/poststop hook fails create, not a later operation.
        for (kind, hooks) in kinds {
            for (i, hk) in hooks.iter().flatten().enumerate() {
                if !hk.path().is_absolute() {
                    bail!(
                        "hooks.{kind}[{i}].path: {:?} is not an absolute path",
                        hk.path().display()
                    );
                }
                if let Some(t) = hk.timeout().filter(|t| *t <= 0) {
                    bail!("hooks.{kind}[{i}].timeout: must be greater than zero, got {t}");
                }
            }
        }
    }

    let linux = spec.linux().as_ref();
    let mut types = HashSet::new();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    if let Some(ns) = namespaces {
        for (i, n) in ns.iter().enumerate() {
            if !types.insert(n.typ()) {
                bail!(
                    "linux.namespaces[{i}]: namespace type {:?} given twice",
                    n.typ()
                );
            }
            if let Some(p) = n.path() {
                if !p.is_absolute() {
                    bail!(
                        "linux.namespaces[{i}].path: {:?} is not an absolute path",
                        p.display()
                    );
                }
            }
        }
    }
    let has = |t: LinuxNamespaceType| types.contains(&t);
    // runtime-spec: a namespace type not listed is inherited from the runtime. Without a mount
    // namespace the rootfs is set up in the runtime's (rootfs::own_mount_ns); what only a
    // namespace of the container's own can carry is refused by name.
    if !has(LinuxNamespaceType::Mount) {
        if linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .is_some_and(|p| !p.is_empty())
        {
            bail!(
                "linux.rootfsPropagation: needs a mount namespace in linux.namespaces (without \
                 one the container's mounts are made in the runtime's namespace)"
            );
        }
        if has(LinuxNamespaceType::User) {
            bail!(
                "linux.namespaces: a user namespace needs a mount namespace too (its root cannot \
                 mount in the runtime's mount namespace)"
            );
        }
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        bail!(
            "hostname: cannot set the hostname without a private UTS namespace (no \"uts\" in linux.namespaces)"
        );
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        bail!(
            "domainname: cannot set the domainname without a private UTS namespace (no \"uts\" in linux.namespaces)"
        );
    }
    if let Some(l) = linux {
        let maps = l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps && !has(LinuxNamespaceType::User) {
            bail!("linux.uidMappings: id mappings need a user namespace in linux.namespaces");
        }
        if has(LinuxNamespaceType::User) {
            let user_ns_new = namespaces
                .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User))
                .is_some_and(|n| n.path().is_none());
            if user_ns_new && !maps {
                bail!("linux.uidMappings: a new user namespace needs uidMappings and gidMappings");
            }
        }
        // config-linux.md "IntelRdt": with intelRdt set the runtime MUST place the process in
        // a resctrl group or fail. husk has no resctrl support (features: intelRdt disabled),
        // and config.md says unsupported values MUST be an error: refuse, never ignore.
        if l.intel_rdt().is_some() {
            bail!("linux.intelRdt: Intel RDT (resctrl) is not supported by husk");
        }
        // config-linux.md "Masked Paths", "Readonly Paths": MUST be absolute paths
        for (field, paths) in [
            ("linux.maskedPaths", l.masked_paths()),
            ("linux.readonlyPaths", l.readonly_paths()),
        ] {
            for (i, p) in paths.iter().flatten().enumerate() {
                if !p.starts_with('/') {
                    bail!("{field}[{i}]: {p:?} is not an absolute path");
                }
            }
        }
        // config-linux.md "Devices": path is the full path in the container
        for (i, d) in l.devices().iter().flatten().enumerate() {
            if !d.path().is_absolute() {
                bail!(
                    "linux.devices[{i}].path: {:?} is not an absolute path",
                    d.path().display()
                );
            }
        }
        if let Some(p) = l.rootfs_propagation().as_deref().filter(|p| !p.is_empty()) {
            crate::rootfs::options::parse_propagation(p)?;
        }
        if let Some(sysctl) = l.sysctl() {
            for key in sysctl.keys() {
                check_sysctl(key, &has)?;
            }
        }
    }
    crate::netdev::validate(spec)?;
    crate::process::mempolicy::check(spec)?;
    Ok(rootfs)
}

/// config.md "Specification version": `ociVersion` is REQUIRED and MUST be SemVer 2.0.0.
fn check_oci_version(v: &str) -> Result<()> {
    if v.is_empty() {
        bail!(
            "ociVersion: missing (config.json must name the runtime-spec version, e.g. \"1.2.0\")"
        );
    }
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let num = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(num) {
        bail!("ociVersion: {v:?} is not a SemVer 2.0.0 version");
    }
    Ok(())
}

/// runc's rule: a sysctl is allowed only when the container has the namespace that isolates it.
fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if key.contains("..") || key.contains('\0') || key.starts_with('/') {
        bail!("linux.sysctl: {key:?} is not a valid sysctl name");
    }
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        if has(LinuxNamespaceType::Ipc) {
            return Ok(());
        }
        bail!("linux.sysctl: {key:?} needs a private IPC namespace");
    }
    if key.starts_with("net.") {
        if has(LinuxNamespaceType::Network) {
            return Ok(());
        }
        bail!("linux.sysctl: {key:?} needs a private network namespace");
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if has(LinuxNamespaceType::Uts) {
            return Ok(());
        }
        bail!("linux.sysctl: {key:?} needs a private UTS namespace");
    }
    bail!("linux.sysctl: {key:?} is not namespaced and would change the host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_and_empty_destinations_name_the_field() {
        let base = r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":{"cwd":"/",
            "user":{"uid":0,"gid":0},"args":["sh","-c"],"env":["A=1","B=2"]},
            "annotations":{"a":"x\u0000y"},"mounts":[{"destination":"/proc","type":"proc"}]}"#;
        parse(base.as_bytes()).expect("a NUL in an annotation is harmless");
        for (from, to, field) in [
            (r#""B=2""#, r#""B=\u00002""#, "process.env[1]"),
            (r#""-c""#, r#""-\u0000c""#, "process.args[1]"),
            (r#""/proc""#, r#""/pr\u0000oc""#, "mounts[0].destination"),
            (r#""rootfs""#, r#""root\u0000fs""#, "root.path"),
            (
                r#""/proc""#,
                r#""""#,
                "mounts[0].destination: must not be empty",
            ),
        ] {
            let e = parse(base.replace(from, to).as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{to}: {e}");
        }
        // an escaped backslash followed by "u0000" is no NUL
        parse(base.replace(r#""B=2""#, r#""B=\\u0000""#).as_bytes()).unwrap();
    }

    #[test]
    fn type_error_names_the_field() {
        let e =
            parse(br#"{"ociVersion":"1.2.0","process":{"user":{"uid":"x","gid":0},"cwd":"/"}}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("process.user.uid"), "{e}");
    }

    #[test]
    fn malformed_json_is_reported() {
        let e = parse(b"{\"ociVersion\": ").unwrap_err().to_string();
        assert!(e.starts_with("config.json"), "{e}");
    }

    #[test]
    fn empty_exec_cpu_affinity_lists_are_unset() {
        let j = br#"{"ociVersion":"1.2.0","process":{"user":{"uid":0,"gid":0},"cwd":"/",
            "execCPUAffinity":{"initial":"","final":""}}}"#;
        let s = parse(j).unwrap();
        let a = s
            .process()
            .as_ref()
            .unwrap()
            .exec_cpu_affinity()
            .clone()
            .unwrap();
        assert!(a.initial().is_none() && a.cpu_affinity_final().is_none());
        let j = br#"{"ociVersion":"1.2.0","process":{"user":{"uid":0,"gid":0},"cwd":"/",
            "execCPUAffinity":{"initial":"0","final":""}}}"#;
        let s = parse(j).unwrap();
        let a = s
            .process()
            .as_ref()
            .unwrap()
            .exec_cpu_affinity()
            .clone()
            .unwrap();
        assert_eq!(a.initial().as_deref(), Some("0"));
        // a bad list is still an error naming the field
        let j = br#"{"ociVersion":"1.2.0","process":{"user":{"uid":0,"gid":0},"cwd":"/",
            "execCPUAffinity":{"initial":"x","final":""}}}"#;
        let e = parse(j).unwrap_err().to_string();
        assert!(e.contains("process.execCPUAffinity"), "{e}");
    }

    #[test]
    fn unknown_capability_is_ignored() {
        let j = br#"{"ociVersion":"1.2.0","process":{"user":{"uid":0,"gid":0},"cwd":"/",
            "capabilities":{"bounding":["CAP_NOPE","CAP_KILL"],"permitted":["CAP_NOPE"]}}}"#;
        let (s, clean) = parse_clean(j).unwrap();
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().map(|b| b.len()), Some(1));
        assert!(!String::from_utf8(clean.unwrap())
            .unwrap()
            .contains("CAP_NOPE"));
        // a wrong type is still an error naming the field
        let j = br#"{"ociVersion":"1.2.0","process":{"user":{"uid":0,"gid":0},"cwd":"/",
            "capabilities":{"bounding":["CAP_NOPE",7]}}}"#;
        let e = parse(j).unwrap_err().to_string();
        assert!(e.contains("process.capabilities.bounding"), "{e}");
    }

    #[test]
    fn relative_mount_destination_is_relative_to_root() {
        let j = br#"{"ociVersion":"1.2.0","mounts":[{"destination":"mnt/x","type":"tmpfs"}]}"#;
        let s = parse(j).unwrap();
        assert_eq!(
            s.mounts().as_ref().unwrap()[0].destination(),
            Path::new("/mnt/x")
        );
    }

    #[test]
    fn default_spec_parses_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        for rootless in [false, true] {
            let s = parse(default_spec_json(rootless).as_bytes()).unwrap();
            validate(&s, dir.path()).unwrap();
        }
    }

    #[test]
    fn masked_and_readonly_paths_must_be_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        for field in ["maskedPaths", "readonlyPaths"] {
            let mut v: serde_json::Value = serde_json::from_str(&default_spec_json(false)).unwrap();
            v["linux"][field] = serde_json::json!(["/proc/kcore", "proc/kcore"]);
            let s = parse(v.to_string().as_bytes()).unwrap();
            let e = validate(&s, dir.path()).unwrap_err().to_string();
            assert!(e.contains(&format!("linux.{field}[1]")), "{e}");
        }
    }

    #[test]
    fn hooks_need_absolute_path_and_positive_timeout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        for (hook, want) in [
            (
                serde_json::json!({"path": "bin/true"}),
                "hooks.poststop[0].path",
            ),
            (
                serde_json::json!({"path": "/bin/true", "timeout": 0}),
                "hooks.poststop[0].timeout",
            ),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(&default_spec_json(false)).unwrap();
            v["hooks"] = serde_json::json!({ "poststop": [hook] });
            let s = parse(v.to_string().as_bytes()).unwrap();
            let e = validate(&s, dir.path()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn intel_rdt_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&default_spec_json(false)).unwrap();
        v["linux"]["intelRdt"] = serde_json::json!({"closID": "x"});
        let s = parse(v.to_string().as_bytes()).unwrap();
        let e = validate(&s, dir.path()).unwrap_err().to_string();
        assert!(e.contains("linux.intelRdt"), "{e}");
    }

    #[test]
    fn no_mount_namespace_is_inherited_unless_the_config_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&default_spec_json(false)).unwrap();
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        validate(&parse(v.to_string().as_bytes()).unwrap(), dir.path()).unwrap();
        let mut p = v.clone();
        p["linux"]["rootfsPropagation"] = "shared".into();
        let e = validate(&parse(p.to_string().as_bytes()).unwrap(), dir.path()).unwrap_err();
        assert!(e.to_string().contains("linux.rootfsPropagation"), "{e}");
        let mut u = v.clone();
        u["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        u["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1, "size": 1}]);
        u["linux"]["gidMappings"] = u["linux"]["uidMappings"].clone();
        let e = validate(&parse(u.to_string().as_bytes()).unwrap(), dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("user namespace needs a mount"),
            "{e}"
        );
    }

    #[test]
    fn missing_process_user_is_uid_0() {
        let s = parse(br#"{"ociVersion":"1.2.0","process":{"cwd":"/","args":["x"]}}"#).unwrap();
        let u = s.process().as_ref().unwrap().user().clone();
        assert_eq!((u.uid(), u.gid()), (0, 0));
    }

    #[test]
    fn oci_version_is_required_semver() {
        assert!(check_oci_version("1.2.0").is_ok());
        assert!(check_oci_version("1.0.2-dev").is_ok());
        assert!(check_oci_version("")
            .unwrap_err()
            .to_string()
            .contains("ociVersion"));
        assert!(check_oci_version("1.2").is_err());
        assert!(check_oci_version("one.two.three").is_err());
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let none = |_t: LinuxNamespaceType| false;
        assert!(check_sysctl("net.ipv4.ip_forward", &none).is_err());
        assert!(check_sysctl("kernel.shmmax", &|t| t == LinuxNamespaceType::Ipc).is_ok());
        assert!(check_sysctl("vm.swappiness", &|_| true).is_err());
    }
}
