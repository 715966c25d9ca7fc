//! `linux.timeOffsets` (config-linux.md "Offset for Time Namespace"): the offsets of the
//! container's new time namespace.
//!
//! A time namespace's offsets can only be written before any process is in it, and clone3 with
//! CLONE_NEWTIME puts the child in it at birth. So the runtime makes the namespace itself:
//! unshare(CLONE_NEWTIME) (which changes only the namespace of its future children), writes
//! `/proc/self/timens_offsets`, clones the init without CLONE_NEWTIME (the init is born in the
//! new namespace), and then returns its children's namespace to its own.

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::fs::File;
use std::os::fd::AsFd;

/// The text for /proc/self/timens_offsets, or None without offsets. Errors name the field.
pub fn offsets_text(spec: &Spec) -> Result<Option<String>> {
    let Some(l) = spec.linux() else {
        return Ok(None);
    };
    let Some(offs) = l.time_offsets().as_ref().filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    let new_timens = l
        .namespaces()
        .as_ref()
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Time))
        .is_some_and(|n| n.path().is_none());
    if !new_timens {
        bail!("linux.timeOffsets: offsets need a new time namespace (a \"time\" entry without a path in linux.namespaces)");
    }
    let mut keys: Vec<&String> = offs.keys().collect();
    keys.sort();
    let mut text = String::new();
    for k in keys {
        if k != "monotonic" && k != "boottime" {
            bail!("linux.timeOffsets.{k}: unknown clock (expected monotonic or boottime)");
        }
        let o = &offs[k];
        let nanos = o.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            bail!("linux.timeOffsets.{k}.nanosecs: {nanos} is not below 1000000000");
        }
        text.push_str(&format!("{k} {} {nanos}\n", o.secs().unwrap_or(0)));
    }
    Ok(Some(text))
}

/// The runtime's own time namespace, to return its children's to after the clone.
pub struct Restore(File);

impl Restore {
    pub fn back(self) -> Result<()> {
        nix::sched::setns(
            self.0.as_fd(),
            CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        )
        .context("linux.timeOffsets: return to the runtime's time namespace")
    }
}

/// Make the new time namespace for the next child and write its offsets.
pub fn prepare(text: &str) -> Result<Restore> {
    let own =
        File::open("/proc/self/ns/time").context("linux.timeOffsets: open /proc/self/ns/time")?;
    nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
        .context("linux.timeOffsets: create the time namespace")?;
    let restore = Restore(own);
    if let Err(e) = crate::sys::procfs::write_proc_file("self/timens_offsets", text.as_bytes()) {
        let _ = restore.back();
        return Err(e.context(format!(
            "linux.timeOffsets: write {text:?} to /proc/self/timens_offsets"
        )));
    }
    Ok(restore)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.2.0", "linux": linux})).unwrap()
    }

    #[test]
    fn text_and_errors() {
        let ns = serde_json::json!([{"type": "time"}]);
        let t = offsets_text(&spec(serde_json::json!({"namespaces": ns,
            "timeOffsets": {"monotonic": {"secs": 86400}, "boottime": {"secs": -5, "nanosecs": 7}}})))
        .unwrap()
        .unwrap();
        assert_eq!(t, "boottime -5 7\nmonotonic 86400 0\n");
        assert!(offsets_text(&spec(serde_json::json!({"namespaces": ns})))
            .unwrap()
            .is_none());
        let e = offsets_text(&spec(
            serde_json::json!({"timeOffsets": {"monotonic": {"secs": 1}}}),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("linux.timeOffsets"), "{e}");
        let e = offsets_text(&spec(
            serde_json::json!({"namespaces": ns, "timeOffsets": {"realtime": {"secs": 1}}}),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("linux.timeOffsets.realtime"), "{e}");
    }
}
