//! The cgroup manager: one interface, implementations for cgroupfs v1 (including hybrid hosts),
//! cgroupfs v2 and (later) systemd.
//!
//! Host-side only: nothing here runs inside the container's namespaces.

use anyhow::Result;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

/// What the state store keeps about a container's cgroup so that later commands (kill --all,
/// pause, delete, ps, events) can find it again without re-reading config.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CgroupState {
    /// "v1", "v2" or "systemd".
    pub driver: String,
    /// The cgroup path relative to each hierarchy's root, e.g. "/husk/ID" or "/system.slice/husk-ID.scope".
    pub path: String,
}

/// One container's cgroup(s).
pub trait Manager {
    /// Create the cgroup directories (idempotent). Must not leave anything behind on error.
    fn create(&self) -> Result<()>;
    /// Apply `linux.resources`. Errors name the resource field (e.g. `linux.resources.memory.limit`).
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Move a process into the cgroup(s).
    fn add_task(&self, pid: i32) -> Result<()>;
    /// On cgroup v2 an O_PATH|O_DIRECTORY fd of the leaf, for clone3(CLONE_INTO_CGROUP).
    fn clone_into_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Every pid in the cgroup (recursively).
    fn pids(&self) -> Result<Vec<i32>>;
    /// Freeze (true) or thaw (false), waiting until the kernel reports the new state.
    fn freeze(&self, frozen: bool) -> Result<()>;
    /// Whether the cgroup is currently frozen.
    fn is_frozen(&self) -> Result<bool>;
    /// Remove every cgroup directory created for the container, retrying while busy.
    fn destroy(&self) -> Result<()>;
    /// What to persist in state.json.
    fn state(&self) -> CgroupState;
}

/// The manager for a new container: `cgroups_path` as in config.json (None = the default path
/// derived from `id`), `systemd` from `--systemd-cgroup`.
pub fn new_manager(
    _cgroups_path: Option<&str>,
    _id: &str,
    _systemd: bool,
) -> Result<Box<dyn Manager>> {
    anyhow::bail!("cgroups are not implemented yet")
}

/// The manager of an existing container, from what its state.json kept.
pub fn from_state(_s: &CgroupState) -> Result<Box<dyn Manager>> {
    anyhow::bail!("cgroups are not implemented yet")
}
