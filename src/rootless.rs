//! Rootless mode, as runc decides it: `--rootless true|false|auto` (default auto), where auto
//! means rootless when husk runs with a non-zero effective uid or inside a user namespace (where
//! "root" cannot write the host's cgroup tree). In rootless mode a container that may not
//! create its cgroup runs in its caller's (`process::make_cgroup`); and a non-root caller's
//! state defaults to `$XDG_RUNTIME_DIR/husk`.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// The system-wide default of `--root`.
pub const DEFAULT_ROOT: &str = "/run/husk";

/// `--rootless`: given as true or false, or `auto` (the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Yes,
    No,
    Auto,
}

impl Mode {
    /// The value of `--rootless` (None when not given).
    pub fn parse(flag: Option<&str>) -> Result<Mode> {
        match flag.unwrap_or("auto") {
            "true" => Ok(Mode::Yes),
            "false" => Ok(Mode::No),
            "auto" => Ok(Mode::Auto),
            other => bail!("--rootless: invalid value {other:?} (expected true, false or auto)"),
        }
    }

    /// Whether husk runs rootless. `Auto` decides when asked (for root that reads
    /// /proc/self/uid_map), so callers ask only where the answer matters: the systemd driver's
    /// choice of manager, and a cgroup that could not be created.
    pub fn get(self) -> bool {
        match self {
            Mode::Yes => true,
            Mode::No => false,
            Mode::Auto => !nix::unistd::geteuid().is_root() || in_user_namespace(),
        }
    }
}

/// The value of `--rootless` (None when not given): whether husk runs rootless.
pub fn resolve(flag: Option<&str>) -> Result<bool> {
    Ok(Mode::parse(flag)?.get())
}

/// Whether this process runs in a user namespace other than the initial one: the initial
/// namespace maps every id (`0 0 4294967295`).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => !crate::sys::procfmt::is_identity_map(&m),
        Err(_) => false,
    }
}

/// `--root` when not given: `/run/husk`, or for a caller that is not root (or is root in a user
/// namespace, with `USER` other than root), `$XDG_RUNTIME_DIR/husk` when that is set, as runc
/// does with `runc`.
pub fn default_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let honour = |x: &std::ffi::OsStr| {
        if !nix::unistd::geteuid().is_root() {
            return true;
        }
        in_user_namespace() && std::env::var("USER").map_or(true, |u| u != "root") && !x.is_empty()
    };
    match xdg {
        Some(x) if honour(&x) => PathBuf::from(x).join("husk"),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// The executable file `tool` (the setuid `newuidmap`/`newgidmap` of package uidmap) in
/// `$PATH`, or in `/usr/bin:/bin:/usr/sbin:/sbin` without one, as runc and podman find them.
pub fn find_id_map_tool(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert!(resolve(Some("true")).unwrap());
        assert!(!resolve(Some("false")).unwrap());
        let e = resolve(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("--rootless") && e.contains("\"yes\""), "{e}");
        // auto as root on the host (how the test suite runs) is not rootless
        if nix::unistd::geteuid().is_root() && !in_user_namespace() {
            assert!(!resolve(None).unwrap());
            assert!(!resolve(Some("auto")).unwrap());
        }
    }

    #[test]
    fn identity_map() {
        assert!(crate::sys::procfmt::is_identity_map(
            "         0          0 4294967295\n"
        ));
        assert!(!crate::sys::procfmt::is_identity_map(
            "         0       1000          1\n"
        ));
        assert!(!crate::sys::procfmt::is_identity_map(
            "0 0 4294967295\n1 1 1\n"
        ));
    }
}
