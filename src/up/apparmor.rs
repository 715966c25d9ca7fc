//! AppArmor for `husk up`: Docker's default confinement, with a profile of husk's own.
//!
//! Where AppArmor is enabled, dockerd runs every container that names no profile (and is not
//! `--privileged`) under `docker-default`, a profile it generates and loads with
//! `apparmor_parser` when the kernel does not have it yet. `husk up` does the same with
//! `husk-default` (`data/apparmor-husk-default`: the rules of moby's
//! `profiles/apparmor/template.go`, self-contained). The profile is loaded here, by the
//! companion command, with the system's tool (as dockerd does); the runtime only writes the
//! profile's name to `attr/apparmor/exec`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// The name of husk's default profile.
pub const DEFAULT_PROFILE: &str = "husk-default";

/// Its text, as `apparmor_parser` reads it.
pub const DEFAULT_PROFILE_TEXT: &str = include_str!("data/apparmor-husk-default");

const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
const SECURITYFS_DIR: &str = "/sys/kernel/security/apparmor";
const PROFILES: &str = "/sys/kernel/security/apparmor/profiles";

/// The profile for `process.apparmorProfile` (None: unconfined, no field), as moby's
/// `WithApparmor` chooses it: the one `--security-opt apparmor=NAME` names (`unconfined`:
/// none), else none for `--privileged`, else the default profile where AppArmor is `enabled`
/// (asked only then: on a host without AppArmor that is one failed open).
pub fn choose(
    explicit: Option<&str>,
    privileged: bool,
    enabled: impl FnOnce() -> bool,
) -> Option<String> {
    match explicit {
        Some("unconfined") => None,
        Some(p) => Some(p.to_string()),
        None if privileged => None,
        None if enabled() => Some(DEFAULT_PROFILE.to_string()),
        None => None,
    }
}

/// Whether the host has AppArmor enabled (moby's `apparmor.HostSupports`): the module's
/// `enabled` parameter is `Y` and securityfs has its `apparmor` directory.
pub fn host_enabled() -> bool {
    std::fs::read(ENABLED).is_ok_and(|v| v.first() == Some(&b'Y'))
        && Path::new(SECURITYFS_DIR).is_dir()
}

/// Whether `profiles` (the text of securityfs' `apparmor/profiles`, a `NAME (MODE)` per line)
/// lists `name`.
fn lists(profiles: &str, name: &str) -> bool {
    profiles.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(" (") || rest.is_empty())
    })
}

fn is_loaded(name: &str) -> Result<bool> {
    let text = std::fs::read_to_string(PROFILES)
        .with_context(|| format!("AppArmor: read {PROFILES} (the loaded profiles)"))?;
    Ok(lists(&text, name))
}

/// `apparmor_parser`: from `PATH`, else `/usr/sbin` or `/sbin` (root's tools, often not in a
/// user's `PATH`).
fn find_parser(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dirs = path
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .filter(|d| d.is_absolute())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("apparmor_parser"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Loads husk's default profile unless the kernel has it, as dockerd's
/// `ensureDefaultAppArmorProfile`: `apparmor_parser -Kr` (replace, no cache), the text on its
/// standard input (no file is written). Concurrent `husk up`s load it once: the check and the
/// load are made under an exclusive flock of securityfs' `apparmor` directory (machine-wide,
/// nothing created; apparmor_parser itself takes no such lock).
pub fn ensure_default_loaded() -> Result<()> {
    if is_loaded(DEFAULT_PROFILE)? {
        return Ok(());
    }
    let dir = std::fs::File::open(SECURITYFS_DIR)
        .with_context(|| format!("AppArmor: open {SECURITYFS_DIR}"))?;
    let _lock = nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("AppArmor: lock {SECURITYFS_DIR}"))?;
    if is_loaded(DEFAULT_PROFILE)? {
        return Ok(());
    }
    let parser = find_parser(std::env::var_os("PATH").as_deref()).ok_or_else(|| {
        anyhow!(
            "AppArmor is enabled on this host and the container gets husk's default profile \
             {DEFAULT_PROFILE}, which is not loaded: loading it needs apparmor_parser, found \
             neither in PATH nor in /usr/sbin or /sbin; install it (Debian/Ubuntu: the \
             apparmor package) or choose the confinement: --security-opt apparmor=unconfined \
             (none) or apparmor=PROFILE (one that is loaded)"
        )
    })?;
    load(&parser, DEFAULT_PROFILE_TEXT)
        .with_context(|| format!("AppArmor: load the profile {DEFAULT_PROFILE}"))?;
    if !is_loaded(DEFAULT_PROFILE)? {
        bail!(
            "AppArmor: {} -Kr succeeded but {PROFILES} does not list {DEFAULT_PROFILE}",
            parser.display()
        );
    }
    Ok(())
}

/// For a kept container started again (`husk restart`): when its `config.json` asks for husk's
/// default profile and AppArmor is enabled, the profile is loaded as for a new container (the
/// kernel forgets it at a reboot, or an administrator removed it).
pub fn ensure_for_config(config: &Path) -> Result<()> {
    let text = std::fs::read(config).with_context(|| format!("read {}", config.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("parse {}", config.display()))?;
    ensure_for_profile(v["process"]["apparmorProfile"].as_str())
}

/// For the profile a container gets (`process.apparmorProfile`): husk's default profile is
/// loaded where AppArmor is enabled (as dockerd loads docker-default); any other profile, or
/// none, needs nothing of husk.
pub fn ensure_for_profile(profile: Option<&str>) -> Result<()> {
    if profile == Some(DEFAULT_PROFILE) && host_enabled() {
        ensure_default_loaded()?;
    }
    Ok(())
}

/// `PARSER -Kr` with `text` on its standard input; its error output in the error.
fn load(parser: &Path, text: &str) -> Result<()> {
    let mut child = Command::new(parser)
        .arg("-Kr")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", parser.display()))?;
    let written = child
        .stdin
        .take()
        .map(|mut i| i.write_all(text.as_bytes()))
        .transpose();
    let out = child
        .wait_with_output()
        .with_context(|| format!("wait for {}", parser.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    if !out.status.success() {
        bail!(
            "{} -Kr: {}{}",
            parser.display(),
            out.status,
            if err.is_empty() {
                String::new()
            } else {
                format!(": {err}")
            }
        );
    }
    written.with_context(|| format!("write the profile to {}", parser.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_choice() {
        let yes = || true;
        let no = || false;
        let never = || -> bool { panic!("AppArmor asked about when the flags decide") };
        // no option, not privileged: the default profile where AppArmor is enabled
        assert_eq!(choose(None, false, yes).as_deref(), Some(DEFAULT_PROFILE));
        assert_eq!(choose(None, false, no), None);
        // --privileged: unconfined, without asking the host
        assert_eq!(choose(None, true, never), None);
        // apparmor=unconfined: none; apparmor=NAME: NAME (also with --privileged, as Docker)
        assert_eq!(choose(Some("unconfined"), false, never), None);
        assert_eq!(choose(Some("unconfined"), true, never), None);
        assert_eq!(choose(Some("p1"), false, never).as_deref(), Some("p1"));
        assert_eq!(choose(Some("p1"), true, never).as_deref(), Some("p1"));
        assert_eq!(
            choose(Some(DEFAULT_PROFILE), false, never).as_deref(),
            Some(DEFAULT_PROFILE)
        );
    }

    #[test]
    fn profiles_listed() {
        let t = "docker-default (enforce)\nhusk-default (enforce)\n/usr/bin/man (complain)\n";
        assert!(lists(t, "husk-default"));
        assert!(lists(t, "/usr/bin/man"));
        assert!(!lists(t, "husk"));
        assert!(!lists(t, "husk-default2"));
        assert!(!lists("husk-default-x (enforce)\n", "husk-default"));
        assert!(!lists("", "husk-default"));
    }

    #[test]
    fn profile_is_dockers() {
        let t = DEFAULT_PROFILE_TEXT;
        assert!(t.contains(&format!(
            "profile {DEFAULT_PROFILE} flags=(attach_disconnected,mediate_deleted) {{"
        )));
        for rule in [
            "network,",
            "capability,",
            "file,",
            "umount,",
            "deny mount,",
            "signal (receive) peer=unconfined,",
            "signal (send,receive) peer=husk-default,",
            "ptrace (trace,read,tracedby,readby) peer=husk-default,",
            "deny @{HUSK_PROC}* w,",
            "deny @{HUSK_PROC}sysrq-trigger rwklx,",
            "deny @{HUSK_PROC}kcore rwklx,",
            "deny @{HUSK_PROC}sys/kernel/{?,??,[^s][^h][^m]**} w,",
            "deny /sys/fs/cg[^r]*/** wklx,",
            "deny /sys/firmware/** rwklx,",
            "deny /sys/kernel/security/** rwklx,",
        ] {
            assert!(t.lines().any(|l| l.trim() == rule), "missing rule {rule:?}");
        }
        assert!(t.contains("@{HUSK_PROC}=/proc/"));
    }

    #[test]
    fn config_without_the_default_profile_needs_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, r#"{"process": {"apparmorProfile": "other"}}"#).unwrap();
        ensure_for_config(&p).unwrap();
        std::fs::write(&p, r#"{"process": {}}"#).unwrap();
        ensure_for_config(&p).unwrap();
        std::fs::write(&p, "not json").unwrap();
        assert!(format!("{:#}", ensure_for_config(&p).unwrap_err()).contains("config.json"));
        let gone = d.path().join("gone.json");
        assert!(format!("{:#}", ensure_for_config(&gone).unwrap_err()).contains("gone.json"));
    }

    #[test]
    fn parser_found_in_path_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("apparmor_parser");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), d.path()]).unwrap();
        // not executable: skipped
        assert_ne!(find_parser(Some(&path)).as_deref(), Some(p.as_path()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_parser(Some(&path)).as_deref(), Some(p.as_path()));
        // a relative PATH entry is not searched
        let rel = std::env::join_paths([Path::new("rel")]).unwrap();
        assert!(find_parser(Some(&rel)).is_none_or(|f| f.is_absolute()));
    }
}
