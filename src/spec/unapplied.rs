//! Fields of a config that husk does not apply are refused by name (config.md "Valid values":
//! a value the runtime does not support MUST be an error), never silently ignored.
//!
//! Unknown properties stay ignored, as config.md requires; these are the properties the
//! runtime-spec defines that husk leaves alone:
//! - `linux.mountLabel` on a host with SELinux enabled: no SELinux `context=` for the container's
//!   mounts (without SELinux there is nothing to label, and it is ignored as runc does);
//! - `process.commandLine`, `process.user.username`: Windows-only (config.md "Process", "User");
//! - the `windows`, `solaris`, `vm` and `zos` sections: platforms husk is not;
//! - top-level `uidMappings` / `gidMappings` (a pre-1.0 form oci-spec still parses): the
//!   mappings husk applies are `linux.uidMappings` / `linux.gidMappings`.
//!
//! Applied elsewhere or refused there: `linux.intelRdt` (spec/mod.rs). `linux.seccomp.
//! listenerPath` (security/notify.rs) and `linux.timeOffsets` (process/spawn.rs) are applied.

use anyhow::{bail, Result};
use oci_spec::runtime::Spec;

pub fn check(spec: &Spec) -> Result<()> {
    check_with(spec, crate::security::lsm::selinux_enabled)
}

/// [`check`] with the host's SELinux state as a function (asked only when a mountLabel is set).
fn check_with(spec: &Spec, selinux_enabled: fn() -> bool) -> Result<()> {
    crate::process::timens::offsets_text(spec)?;
    if let Some(l) = spec.linux() {
        // Where SELinux is not enabled a mount label has nothing to apply to: runc (go-selinux)
        // leaves the mount options unchanged and runs the container, and engines set the field
        // whatever the host. Where it is enabled the mounts would go unlabelled: refused.
        if let Some(label) = l.mount_label().as_deref().filter(|s| !s.is_empty()) {
            if selinux_enabled() {
                bail!("linux.mountLabel: {label:?}: SELinux mount labels are not applied by husk (remove the field, or use a runtime that labels mounts)");
            }
        }
    }
    if let Some(p) = spec.process() {
        if p.command_line().is_some() {
            bail!("process.commandLine: a Windows-only field; husk runs process.args");
        }
        if p.user().username().is_some() {
            bail!(
                "process.user.username: a Windows-only field; husk takes process.user.uid and gid"
            );
        }
    }
    for (name, v) in [
        ("windows", spec.windows().is_some()),
        ("solaris", spec.solaris().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
    ] {
        if v {
            bail!("{name}: this config has a {name} section, which husk (a Linux container runtime) does not apply");
        }
    }
    if spec.uid_mappings().is_some() || spec.gid_mappings().is_some() {
        bail!("uidMappings: top-level uidMappings/gidMappings are not applied; husk applies linux.uidMappings and linux.gidMappings");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_json(v: serde_json::Value) -> Result<()> {
        check_with(&serde_json::from_value(v).unwrap(), || true)
    }

    #[test]
    fn mount_label_without_selinux_is_ignored() {
        let v = serde_json::json!({"ociVersion": "1.3.0", "linux": {"mountLabel": "system_u:object_r:x:s0"}});
        assert!(check_with(&serde_json::from_value(v).unwrap(), || false).is_ok());
    }

    #[test]
    fn refused_by_name() {
        let base = || serde_json::json!({"ociVersion": "1.3.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}}});
        assert!(check_json(base()).is_ok());
        let mut unknown = base();
        unknown["somethingNew"] = serde_json::json!({"x": 1});
        assert!(
            check_json(unknown).is_ok(),
            "unknown properties stay ignored"
        );
        for (path, want) in [
            (
                (
                    "linux",
                    "mountLabel",
                    serde_json::json!("system_u:object_r:x:s0"),
                ),
                "linux.mountLabel",
            ),
            (
                ("process", "commandLine", serde_json::json!("cmd /c")),
                "process.commandLine",
            ),
            (
                (
                    "",
                    "vm",
                    serde_json::json!({"hypervisor": {"path": "/x"}, "kernel": {"path": "/k"}}),
                ),
                "vm",
            ),
            (
                ("", "windows", serde_json::json!({"layerFolders": []})),
                "windows",
            ),
            (("", "solaris", serde_json::json!({})), "solaris"),
            (("", "zos", serde_json::json!({})), "zos"),
        ] {
            let mut v = base();
            let (sec, key, val) = path;
            if sec.is_empty() {
                v[key] = val;
            } else {
                v[sec][key] = val;
            }
            let e = check_json(v).unwrap_err().to_string();
            assert!(e.starts_with(want), "{want}: {e}");
        }
        let mut v = base();
        v["process"]["user"]["username"] = serde_json::json!("ContainerUser");
        let e = check_json(v).unwrap_err().to_string();
        assert!(e.starts_with("process.user.username"), "{e}");
        let mut v = base();
        v["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let e = check_json(v).unwrap_err().to_string();
        assert!(e.starts_with("uidMappings"), "{e}");
        let mut v = base();
        v["linux"] = serde_json::json!({"mountLabel": ""});
        assert!(check_json(v).is_ok(), "an empty label is no label");
    }
}
