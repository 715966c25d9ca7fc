//! The cgroup manager: one interface, [`Manager`], with its lifecycle (prepare, place, update,
//! destroy); implementations for cgroupfs v1 (including hybrid hosts, `v1.rs`), cgroupfs v2
//! (`v2.rs`) and systemd (transient units over D-Bus, `systemd/`), plus [`NoCgroup`] for a
//! rootless container that could not get a cgroup of its own.
//!
//! Host-side only: nothing here runs inside the container's namespaces.
//!
//! Placement follows runc's cgroupfs driver (libcontainer/cgroups/fs and fs2, specconv):
//! - `cgroupsPath` absolute: that path below every hierarchy's mount point;
//! - relative (including the default, which is the container id, as in runc): below the cgroup
//!   husk itself runs in; on v1 per hierarchy (runc `GetOwnCgroupPath`), on v2 below the *parent*
//!   of the own cgroup (runc fs2 `defaultDirPath`: the own cgroup usually has processes, so no
//!   controllers could be enabled for a child of it);
//! - `slice:prefix:name` is the systemd driver's form (`systemd/naming.rs`); without
//!   `--systemd-cgroup` it is a relative path like any other, with a warning, as runc takes it.
//!
//! How the rest of husk uses it (the lifecycle of [`Manager`]):
//! - create/run: `new_manager_with(spec cgroupsPath, id, --systemd-cgroup, ...)`, then
//!   prepare: `create()`, `apply_limits(linux.resources, linux.devices)`, `delegate(..)`;
//!   place the init: clone3 with `CLONE_INTO_CGROUP` into `clone_into_fd()`, or the child's
//!   own writes from `self_placement()` (v1), else `place_init(pid)` after the fork (which
//!   starts the systemd unit); then `state()` into state.json.
//! - later commands: `from_state(&state.cgroup)`; `exec` = `place(pid)` (or clone3),
//!   `pause`/`resume` = `freeze(true/false)`, status = `freezer_state()`, `ps` = `pids()`,
//!   `kill --all` = `kill_all(sig)`, `update` = `update(resources)`, `events --stats` =
//!   `stats::Event::stats(id, stats()?)`, OOM events by watching `oom_kill_count()` grow,
//!   `delete` = `kill_all(SIGKILL)` if needed, then `destroy()`.
//!
//! The file-level work on one cgroup directory (pids, placing a pid, freezer, `cgroup.kill`,
//! OOM count, stats) is `dir::CgroupDir`'s, shared by the v1 and v2 managers and, through
//! them, the systemd driver. Limits are written by the driver that knows the files
//! (`v1.rs`, `v2.rs`; value conversions in `translate.rs`, device rules in `devices.rs`).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDevice, LinuxResources};
use serde::{Deserialize, Serialize};

pub mod dbus;
pub mod devices;
mod dir;
pub mod stats;
pub mod systemd;
pub mod translate;
pub mod util;
mod v1;
mod v2;

#[cfg(test)]
mod root_tests;

pub use stats::Stats;

/// What the state store keeps about a container's cgroup so that later commands (kill --all,
/// pause, delete, ps, events) can find it again without re-reading config.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CgroupState {
    /// "v1", "v2", "systemd", "systemd-user" (a unit of the user's systemd instance, rootless)
    /// or "none".
    pub driver: String,
    /// The cgroup path relative to each hierarchy's root, e.g. "/husk/ID" or "/system.slice/husk-ID.scope".
    pub path: String,
    /// v1 only: hierarchies whose path differs from `path` (a relative cgroupsPath is resolved
    /// against husk's own cgroup, which can differ per hierarchy), keyed by the hierarchy's
    /// controllers as in /proc/self/cgroup ("cpu,cpuacct", "name=systemd", "" for the hybrid
    /// cgroup2). Empty in the usual case and then not serialized.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, String>,
    /// cgroupfs drivers: the ancestor directories the container's create made (a nested
    /// cgroupsPath such as "/a/b/ID" whose "/a" did not exist), removed again by delete when
    /// they are empty. Only directories between a hierarchy's mount point and the container's
    /// own are honoured (see `util::created_ancestor`). Usually empty and then not serialized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<std::path::PathBuf>,
}

/// What a cgroup's freezer says, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze, not every task frozen yet (v1 `FREEZING`; v2 `cgroup.freeze` 1 while
    /// `cgroup.events` still says `frozen 0`).
    Freezing,
    Frozen,
}

/// One container's cgroup(s), through its lifecycle:
///
/// 1. prepare the resources before the init exists: [`create`](Manager::create), then
///    [`apply_limits`](Manager::apply_limits), then [`delegate`](Manager::delegate);
/// 2. place the container's first process (its init; on `restore`, CRIU's restore helper):
///    clone3 into [`clone_into_fd`](Manager::clone_into_fd) or the child's own writes from
///    [`self_placement`](Manager::self_placement) where the driver offers them, else
///    [`place_init`](Manager::place_init);
/// 3. place later processes (`exec`): [`place`](Manager::place), or clone3 / self-placement
///    as for the init;
/// 4. while the container lives: [`update`](Manager::update), [`freeze`](Manager::freeze),
///    [`pids`](Manager::pids), [`kill_all`](Manager::kill_all), [`stats`](Manager::stats),
///    [`oom_kill_count`](Manager::oom_kill_count);
/// 5. [`destroy`](Manager::destroy).
///
/// A manager made by [`from_state`] is at step 3 already.
pub trait Manager {
    /// Step 1: make the cgroup directories (idempotent); the systemd driver only connects to
    /// systemd here, so that a host without it fails before anything is forked (its unit needs
    /// the init's pid, see [`Manager::place_init`]). Leaves nothing behind on error.
    fn create(&self) -> Result<()>;
    /// Step 1: `linux.resources` at container creation, with the config's `linux.devices`.
    /// Errors name the resource field (e.g. `linux.resources.memory.limit`). Device rules are
    /// runc's: the spec's rules followed by runc's default allow list (null, zero, full,
    /// random, urandom, tty, ptmx, pts, tun, mknod of any device), starting from deny-all; so
    /// they are applied even when the spec has none. `devices` grant no access (see
    /// [`device_rules`]); a default whose node they redefine is left out, as in runc. The
    /// systemd driver checks the values now and applies them in [`Manager::place_init`].
    fn apply_limits(&self, resources: &LinuxResources, devices: &[LinuxDevice]) -> Result<()>;
    /// [`Manager::apply_limits`] without `linux.devices`.
    #[cfg(test)]
    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        self.apply_limits(resources, &[])
    }
    /// Step 1, cgroup v2 delegation (runtime-spec "Cgroup ownership", see
    /// [`delegation_owner`]): give the container's cgroup directory and its delegatable files
    /// to `uid`/`gid`, before the container's program runs. The default does nothing: on
    /// cgroup v1 the spec says runtimes SHOULD NOT change ownership (delegation is not safe
    /// there). The systemd driver gives them once the unit exists.
    fn delegate(&self, _uid: Option<u32>, _gid: Option<u32>) -> Result<()> {
        Ok(())
    }
    /// Step 2: put the container's first process (its init, or CRIU's restore helper) in the
    /// cgroup, when clone3 or the child itself did not. cgroupfs: the same as
    /// [`Manager::place`]. systemd: starts the transient unit with `PIDs=[pid]` (a slice unit
    /// is started empty and the pid joined through cgroupfs), then writes the limits of
    /// `apply_limits` and the owner of `delegate`; on failure the unit is stopped again.
    fn place_init(&self, pid: i32) -> Result<()> {
        self.place(pid)
    }
    /// Step 3: move a process into the existing cgroup(s): `cgroup.procs` of the v2 directory,
    /// of every v1 hierarchy's, or of the systemd unit's (never a new unit).
    fn place(&self, pid: i32) -> Result<()>;
    /// On cgroup v2 an O_PATH|O_DIRECTORY fd of the leaf, for clone3(CLONE_INTO_CGROUP).
    fn clone_into_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// How a single-threaded child can place ITSELF, cheaper than `place` from the parent:
    /// (an fd for clone3 CLONE_INTO_CGROUP covering the cgroup2 part, if any; files to which the
    /// child writes "0"). On cgroup v1 a write of "0" to `tasks` moves only the writing thread and
    /// skips the global threadgroup rwsem, whose write side waits for an RCU grace period (often
    /// milliseconds) on every `cgroup.procs` write. None: use `clone_into_fd` / `place`.
    fn self_placement(&self) -> Option<(Option<std::os::fd::RawFd>, Vec<std::path::PathBuf>)> {
        None
    }
    /// `runc update`: apply only what `resources` sets; device rules are left alone unless
    /// `resources.devices` is given (then they replace the current ones, defaults appended).
    fn update(&self, resources: &LinuxResources) -> Result<()>;
    /// Whether any of the cgroup's directories exists yet (before `create`, a cgroup someone
    /// else left or made). Lets create's occupancy check skip a cgroup that is not there
    /// without reading files that are not there either.
    fn exists(&self) -> bool {
        true
    }
    /// Every pid in the cgroup (recursively).
    fn pids(&self) -> Result<Vec<i32>>;
    /// Freeze (true) or thaw (false), waiting until the kernel reports the new state.
    fn freeze(&self, frozen: bool) -> Result<()>;
    /// Ask for a freeze and wait for it at most `wait`: Ok(false) when the cgroup is still
    /// freezing (the request stands: thaw it again). Drivers without a freezer of their own
    /// wait as [`freeze`](Manager::freeze) does.
    fn freeze_within(&self, wait: std::time::Duration) -> Result<bool> {
        let _ = wait;
        self.freeze(true).map(|()| true)
    }
    /// Whether the cgroup's tasks are frozen for whatever reason, its own freezer or an
    /// ancestor's: a new container's cgroup must not be (see [`refuse_frozen`]).
    fn is_frozen(&self) -> Result<bool>;
    /// The cgroup's own freezer: what status and delete trust over state.json (a `pause`
    /// killed half way leaves the cgroup freezing or frozen behind). Frozen only through an
    /// ancestor is `Thawed`, as runc's GetState says.
    fn freezer_state(&self) -> Result<FreezerState>;
    /// Signal every process in the cgroup. SIGKILL on v2 uses cgroup.kill where the kernel has
    /// it; otherwise the cgroup is frozen, every pid signalled, and thawed (so nothing can fork
    /// away in between).
    fn kill_all(&self, signal: nix::sys::signal::Signal) -> Result<()>;
    /// `runc events --stats` data.
    fn stats(&self) -> Result<Stats>;
    /// How many processes the kernel OOM killer killed in this cgroup (v2 memory.events
    /// oom_kill, v1 memory.oom_control oom_kill). Compare two readings to detect an OOM event.
    fn oom_kill_count(&self) -> Result<u64>;
    /// What to persist in state.json.
    fn state(&self) -> CgroupState;
    /// Step 5: remove every cgroup directory created for the container (systemd: stop the
    /// unit first), retrying while busy.
    fn destroy(&self) -> Result<()>;
}

/// runtime-spec config-linux.md "Cgroup ownership": the host (uid, gid) the container's cgroup
/// is to be delegated to, or None. Only when the container gets a new user namespace (with the
/// mappings in the spec) AND a new cgroup namespace AND a cgroup mount at /sys/fs/cgroup that is
/// read-write (no `ro` among its options, or a `rw` after the last one: mount(8) semantics, as
/// runc's `hasRwCgroupfs`). The ids are the host ids that `process.user.uid` / `process.user.gid` map to (the
/// user the container's program runs as); an unmapped one is left unchanged (None).
/// runc (specconv, `OwnerUID`) also chowns without a user namespace, to process.user.uid itself,
/// and never changes the group; husk also hands over the group so that the delegatee sees its
/// cgroup as its own (`0:0` inside, not `0:nogroup`), as crun does.
pub fn delegation_owner(spec: &oci_spec::runtime::Spec) -> Option<(Option<u32>, Option<u32>)> {
    use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};
    let linux = spec.linux().as_ref()?;
    let ns = linux.namespaces().as_deref().unwrap_or(&[]);
    let new_ns = |t: LinuxNamespaceType| ns.iter().any(|n| n.typ() == t && n.path().is_none());
    if !new_ns(LinuxNamespaceType::User) || !new_ns(LinuxNamespaceType::Cgroup) {
        return None;
    }
    let rw_cgroupfs = spec.mounts().as_deref().unwrap_or(&[]).iter().any(|m| {
        let cgroup = m
            .source()
            .as_ref()
            .is_some_and(|s| s.as_os_str() == "cgroup")
            || matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2"));
        let dest = util::clean_path(&m.destination().to_string_lossy());
        let rw = m
            .options()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .rev()
            .find(|o| *o == "ro" || *o == "rw")
            .is_none_or(|o| o == "rw");
        cgroup && dest == "/sys/fs/cgroup" && rw
    });
    if !rw_cgroupfs {
        return None;
    }
    let host = |maps: &Option<Vec<LinuxIdMapping>>, id: u32| -> Option<u32> {
        maps.as_deref()?.iter().find_map(|m| {
            let off = id.checked_sub(m.container_id())?;
            (off < m.size())
                .then(|| m.host_id().checked_add(off))
                .flatten()
        })
    };
    let (uid, gid) = spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()))
        .unwrap_or((0, 0));
    let owner = (
        host(linux.uid_mappings(), uid),
        host(linux.gid_mappings(), gid),
    );
    (owner != (None, None)).then_some(owner)
}

/// `slice:prefix:name`, the cgroupsPath form of the systemd driver.
fn is_systemd_form(p: &str) -> bool {
    !p.starts_with('/') && p.split(':').count() == 3
}

/// The cgroup path (as in /proc/self/cgroup, relative to a hierarchy root or relative to the own
/// cgroup when it does not start with "/") for a cgroupsPath and container id, without the
/// systemd driver.
pub fn inner_path(cgroups_path: Option<&str>, id: &str) -> Result<String> {
    match cgroups_path.filter(|p| !p.is_empty()) {
        // the systemd form slice:prefix:name without --systemd-cgroup is, as in runc, an
        // ordinary relative path (`new_manager_with` warns about the mismatch)
        Some(p) => Ok(util::clean_path(p)),
        None => {
            // runc: no cgroupsPath means Name = id, Path = "" -> the relative path "<id>".
            if id.is_empty() {
                bail!("no cgroupsPath and an empty container id");
            }
            Ok(util::clean_path(id))
        }
    }
}

/// The manager for a new container: `cgroups_path` as in config.json (None = the default path
/// derived from `id`), `systemd` from `--systemd-cgroup`.
#[cfg(test)]
pub fn new_manager(
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
) -> Result<Box<dyn Manager>> {
    new_manager_with(
        cgroups_path,
        id,
        systemd,
        &std::collections::HashMap::new(),
        false,
    )
}

/// [`new_manager`] with the spec's annotations (the systemd driver passes
/// `org.systemd.property.*` ones to systemd as unit properties, as runc does) and whether husk
/// runs rootless (the systemd driver then uses the user's systemd instance).
pub fn new_manager_with(
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
    annotations: &std::collections::HashMap<String, String>,
    rootless: bool,
) -> Result<Box<dyn Manager>> {
    if systemd {
        return Ok(Box::new(systemd::SystemdManager::new(
            cgroups_path,
            id,
            annotations,
            rootless,
        )?));
    }
    if let Some(p) = cgroups_path.filter(|p| is_systemd_form(p)) {
        // an engine configured for cgroupfs while its client assumed systemd (kubelet's
        // default driver): runc takes the string as a relative path, and so does husk
        crate::logging::warn(&format!(
            "cgroupsPath {p:?} has the systemd form slice:prefix:name but --systemd-cgroup is not \
             set: using it as a cgroupfs path relative to the runtime's own cgroup (is the engine \
             configured for the systemd cgroup driver?)"
        ));
    }
    let inner = inner_path(cgroups_path, id)?;
    if inner == "/" || inner == "." {
        bail!("cgroupsPath {cgroups_path:?} names a cgroup root; refusing to manage it");
    }
    match util::detect_mode()? {
        util::Mode::Unified => Ok(Box::new(v2::V2Manager::new(&inner)?)),
        util::Mode::Legacy => Ok(Box::new(v1::V1Manager::new(&inner, &BTreeMap::new())?)),
    }
}

/// The manager of an existing container, from what its state.json kept.
pub fn from_state(s: &CgroupState) -> Result<Box<dyn Manager>> {
    if s.driver == NoCgroup::DRIVER {
        return Ok(Box::new(NoCgroup));
    }
    if !s.path.starts_with('/') || s.path == "/" {
        bail!("invalid cgroup path {:?} in the container state", s.path);
    }
    match s.driver.as_str() {
        "v2" => Ok(Box::new(
            v2::V2Manager::new(&s.path)?.adopt_created(&s.created),
        )),
        "v1" => Ok(Box::new(
            v1::V1Manager::new(&s.path, &s.paths)?.adopt_created(&s.created),
        )),
        "systemd" => Ok(Box::new(systemd::SystemdManager::from_state(
            &s.path, false,
        )?)),
        systemd::USER_DRIVER => Ok(Box::new(systemd::SystemdManager::from_state(
            &s.path, true,
        )?)),
        d => bail!("unknown cgroup driver {d:?} in the container state"),
    }
}

/// A rootless container that could not get a cgroup of its own (no write access to any
/// hierarchy and no limits asked for): it runs in the cgroup of whoever started it, as with
/// runc's rootless cgroup managers, which drop the paths they cannot create. Nothing to create
/// or remove; what needs a cgroup of its own (pause, update, stats) is refused with the reason.
pub struct NoCgroup;

impl NoCgroup {
    /// The `driver` recorded in state.json.
    pub const DRIVER: &'static str = "none";

    fn refuse<T>(what: &str) -> Result<T> {
        bail!("{what} needs the container's own cgroup, and this rootless container has none (husk could not create one)")
    }
}

impl Manager for NoCgroup {
    fn create(&self) -> Result<()> {
        Ok(())
    }
    fn apply_limits(&self, _: &LinuxResources, _: &[LinuxDevice]) -> Result<()> {
        Ok(())
    }
    fn update(&self, _: &LinuxResources) -> Result<()> {
        Self::refuse("update")
    }
    fn place(&self, _: i32) -> Result<()> {
        Ok(())
    }
    fn pids(&self) -> Result<Vec<i32>> {
        Self::refuse("listing the container's processes")
    }
    fn freeze(&self, frozen: bool) -> Result<()> {
        Self::refuse(if frozen { "pause" } else { "resume" })
    }
    fn is_frozen(&self) -> Result<bool> {
        Ok(false)
    }
    fn freezer_state(&self) -> Result<FreezerState> {
        Ok(FreezerState::Thawed)
    }
    fn kill_all(&self, _: nix::sys::signal::Signal) -> Result<()> {
        Self::refuse("kill --all")
    }
    fn destroy(&self) -> Result<()> {
        Ok(())
    }
    fn stats(&self) -> Result<Stats> {
        Self::refuse("events")
    }
    fn oom_kill_count(&self) -> Result<u64> {
        Ok(0)
    }
    fn state(&self) -> CgroupState {
        CgroupState {
            driver: Self::DRIVER.into(),
            ..Default::default()
        }
    }
}

/// How long [`freeze_signal_thaw`] waits for its freeze before it signals all the same.
const SIGNAL_FREEZE_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Freeze, signal every pid, thaw (the thaw also happens when signalling failed), so that
/// nothing forks away in between: `kill_all` where `cgroup.kill` is missing or the signal is
/// not SIGKILL. The freeze is waited for [`SIGNAL_FREEZE_WAIT`] at most: a task that cannot be
/// frozen (one waiting in the kernel uninterruptibly, e.g. for a FUSE server) keeps the cgroup
/// freezing for good, and the signal goes out then all the same, while the others are frozen
/// or on their way (a child forked meanwhile is frozen too, and a caller that sweeps comes
/// back for it); the thaw then lets a SIGKILL take the frozen ones. A cgroup that cannot be
/// frozen at all is signalled all the same.
pub(crate) fn freeze_signal_thaw(m: &dyn Manager, signal: nix::sys::signal::Signal) -> Result<()> {
    let asked = m.freeze_within(SIGNAL_FREEZE_WAIT).is_ok();
    let res = (|| -> Result<()> {
        for pid in m.pids()? {
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => bail!("signalling pid {pid}: {}", e.desc()),
            }
        }
        Ok(())
    })();
    if asked {
        m.freeze(false)?;
    }
    res
}

/// runc's checks of a new container's cgroup before its init joins it (libcontainer's
/// `Create`): a cgroup that already holds processes is refused ("container's cgroup is not
/// empty", an error since runc 1.2; runc 1.1 only warned), and so is a frozen one ("container's
/// cgroup unexpectedly frozen"): the init would block in the freezer, uninterruptibly, and the
/// create would never return. A cgroup that does not exist (yet), or cannot be read, passes.
/// `what` names the cgroup in the error (the `linux.cgroupsPath` value or the default path).
pub fn refuse_occupied_or_frozen(cg: &dyn Manager, what: &str) -> Result<()> {
    if !cg.exists() {
        return Ok(());
    }
    if let Ok(pids) = cg.pids() {
        if !pids.is_empty() {
            bail!(
                "{what}: container's cgroup is not empty: {} process(es) found",
                pids.len()
            );
        }
    }
    refuse_frozen(cg, what)
}

/// The frozen half of [`refuse_occupied_or_frozen`], for a cgroup just created: a new cgroup
/// below a frozen one is frozen too.
pub fn refuse_frozen(cg: &dyn Manager, what: &str) -> Result<()> {
    if cg.is_frozen().unwrap_or(false) {
        bail!("{what}: container's cgroup unexpectedly frozen");
    }
    Ok(())
}

/// Whether `resources` asks for anything that only a cgroup of the container's own can give
/// (device rules aside: those only narrow what a rootless container could not open anyway).
/// A rootless container without write access to the cgroup tree can run without its own cgroup
/// only when this is false (runc: "cannot set ... limit: container could not join or create
/// cgroup").
pub fn needs_own_cgroup(r: &LinuxResources) -> bool {
    without_devices(r) != LinuxResources::default()
}

/// `r` without device rules (what a rootless container's cgroup is given: an unprivileged
/// process can load no device filter).
pub(crate) fn without_devices(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    r.set_devices(None);
    r
}

/// The full device rule list runc applies (specconv `CreateCgroupConfig` with the defaults of
/// `createDevices`): the spec's `linux.resources.devices` in order, then runc's default allow
/// list, without the defaults whose node path `linux.devices` redefines. A `linux.devices`
/// entry itself grants nothing: it is a node to create, and whether the container may use it is
/// decided by `linux.resources.devices` alone (a deny-all there keeps it unusable).
pub(crate) fn device_rules(
    resources: &LinuxResources,
    linux_devices: &[LinuxDevice],
) -> Result<Vec<devices::Rule>> {
    let spec = resources.devices().as_deref().unwrap_or(&[]);
    let mut rules = Vec::with_capacity(spec.len() + devices::DEFAULT_ALLOWED.len());
    for (i, d) in spec.iter().enumerate() {
        rules.push(devices::from_spec(i, d)?);
    }
    let redefined = |path: &str| {
        linux_devices
            .iter()
            .any(|d| d.path().as_os_str() == std::ffi::OsStr::new(path))
    };
    rules.extend(
        devices::DEFAULT_ALLOWED
            .iter()
            .filter(|r| !devices::default_node_path(r).is_some_and(redefined))
            .copied(),
    );
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_forms() {
        assert_eq!(inner_path(Some("/a/b"), "id").unwrap(), "/a/b");
        assert_eq!(inner_path(Some("/a/../b/"), "id").unwrap(), "/b");
        assert_eq!(inner_path(Some("a/b"), "id").unwrap(), "a/b");
        assert_eq!(inner_path(Some("../../a"), "id").unwrap(), "a");
        assert_eq!(inner_path(None, "ctr1").unwrap(), "ctr1");
        assert_eq!(inner_path(Some(""), "ctr1").unwrap(), "ctr1");
        // the systemd form without the systemd driver: a relative path, as in runc
        assert_eq!(
            inner_path(Some("system.slice:husk:ctr1"), "ctr1").unwrap(),
            "system.slice:husk:ctr1"
        );
        assert!(is_systemd_form("system.slice:husk:ctr1"));
        assert!(!is_systemd_form("/a:b:c"));
        assert!(!is_systemd_form("a:b"));
        // an absolute path with colons is a plain path
        assert_eq!(inner_path(Some("/a:b:c"), "id").unwrap(), "/a:b:c");
    }

    #[test]
    fn systemd_state() {
        let st = CgroupState {
            driver: "systemd".into(),
            path: "/system.slice/husk-x.scope".into(),
            ..Default::default()
        };
        assert_eq!(from_state(&st).unwrap().state(), st);
        let bad = CgroupState {
            path: "/system.slice/husk-x".into(),
            ..st
        };
        assert!(from_state(&bad).is_err());
        assert!(new_manager(Some("/a/b"), "x", true).is_err());
        let user = CgroupState {
            driver: "systemd-user".into(),
            path: "/user.slice/user-1000.slice/user@1000.service/user.slice/husk-x.scope".into(),
            ..Default::default()
        };
        assert_eq!(from_state(&user).unwrap().state(), user);
    }

    #[test]
    fn state_json_compat() {
        // the two-field form written before `paths` existed still reads
        let s: CgroupState = serde_json::from_str(r#"{"driver":"v1","path":"/husk/x"}"#).unwrap();
        assert!(s.paths.is_empty());
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"driver":"v1","path":"/husk/x"}"#
        );
    }

    #[test]
    fn delegation_conditions() {
        let spec = |ns: &str, opts: &str, user: &str| -> oci_spec::runtime::Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion": "1.2.0", "root": {{"path": "rootfs"}},
                "process": {{"cwd": "/", "args": ["sh"], "user": {user}}},
                "mounts": [{{"destination": "/sys/fs/cgroup/", "type": "cgroup",
                    "source": "cgroup", "options": {opts}}}],
                "linux": {{"namespaces": {ns},
                    "uidMappings": [{{"containerID": 0, "hostID": 100000, "size": 65536}}],
                    "gidMappings": [{{"containerID": 0, "hostID": 200000, "size": 1000}}]}}}}"#
            ))
            .unwrap()
        };
        let both = r#"[{"type": "user"}, {"type": "cgroup"}, {"type": "mount"}]"#;
        let root = r#"{"uid": 0, "gid": 0}"#;
        let rw = r#"["nosuid", "ro", "rw"]"#;
        assert_eq!(
            delegation_owner(&spec(both, rw, root)),
            Some((Some(100000), Some(200000)))
        );
        let u = r#"{"uid": 1000, "gid": 5000}"#;
        assert_eq!(
            delegation_owner(&spec(both, rw, u)),
            Some((Some(101000), None))
        );
        // without `ro` the mount is read-write (mount(8)): delegated
        assert_eq!(
            delegation_owner(&spec(both, r#"["nosuid"]"#, root)),
            Some((Some(100000), Some(200000)))
        );
        // read-only (the last of ro/rw), no user ns, no new cgroup ns: nothing
        assert_eq!(delegation_owner(&spec(both, r#"["rw", "ro"]"#, root)), None);
        assert_eq!(
            delegation_owner(&spec(both, r#"["nosuid", "ro"]"#, root)),
            None
        );
        let no_user = r#"[{"type": "cgroup"}, {"type": "mount"}]"#;
        assert_eq!(delegation_owner(&spec(no_user, rw, root)), None);
        let joined = r#"[{"type": "user"}, {"type": "cgroup", "path": "/proc/1/ns/cgroup"}]"#;
        assert_eq!(delegation_owner(&spec(joined, rw, root)), None);
        // unmapped ids: nothing to give
        let far = r#"{"uid": 70000, "gid": 70000}"#;
        assert_eq!(delegation_owner(&spec(both, rw, far)), None);
    }

    #[test]
    fn default_device_rules() {
        let r = LinuxResources::default();
        let rules = device_rules(&r, &[]).unwrap();
        let p = devices::Policy::build(&rules).unwrap();
        assert!(!p.default_allow);
        assert_eq!(p.exceptions.len(), devices::DEFAULT_ALLOWED.len());
    }

    fn resources_and_devices(json: &str) -> (LinuxResources, Vec<LinuxDevice>) {
        let l: oci_spec::runtime::Linux = serde_json::from_str(json).unwrap();
        (
            l.resources().clone().unwrap_or_default(),
            l.devices().clone().unwrap_or_default(),
        )
    }

    #[test]
    fn linux_devices_grant_no_access() {
        // a deny-all with /dev/kmsg as a node: no rule for 1:11, under every driver (v1 lines,
        // v2 eBPF and systemd properties are all built from this list)
        let (r, d) = resources_and_devices(
            r#"{"resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "devices": [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11},
                            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]}"#,
        );
        let rules = device_rules(&r, &d).unwrap();
        assert_eq!(rules.len(), 1 + devices::DEFAULT_ALLOWED.len());
        let p = devices::Policy::build(&rules).unwrap();
        assert!(!p.default_allow);
        let grants = |k: char, ma: u32, mi: u32| {
            p.exceptions.iter().any(|e| {
                e.kind == k
                    && e.major.is_none_or(|m| m == ma)
                    && e.minor.is_none_or(|m| m == mi)
                    && e.access & (devices::ACC_READ | devices::ACC_WRITE) != 0
            })
        };
        assert!(!grants('c', 1, 11));
        assert!(!grants('b', 8, 0));
        assert!(grants('c', 1, 3));
        let lines: Vec<String> = p.v1_writes().into_iter().map(|(_, l)| l).collect();
        assert!(!lines.iter().any(|l| l.starts_with("c 1:11")), "{lines:?}");
        // the systemd driver's DeviceAllow= is built from the same list
        let props =
            systemd::properties::device_props(&rules, "Character devices:\n  1 mem\n").unwrap();
        let props = format!("{props:?}");
        assert!(props.contains("/dev/char/1:3"), "{props}");
        assert!(!props.contains("1:11") && !props.contains("8:0"), "{props}");
        // the spec's own rule is what grants access
        let (r, d) = resources_and_devices(
            r#"{"resources": {"devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]},
                "devices": [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]}"#,
        );
        let p = devices::Policy::build(&device_rules(&r, &d).unwrap()).unwrap();
        let kmsg: Vec<_> = p
            .exceptions
            .iter()
            .filter(|e| (e.kind, e.major, e.minor) == ('c', Some(1), Some(11)))
            .collect();
        assert_eq!(kmsg.len(), 1);
        assert_eq!(kmsg[0].access, devices::ACC_READ);
    }

    #[test]
    fn redefined_default_node_drops_its_default_rule() {
        // runc createDevices: a linux.devices entry at a default's path replaces that default,
        // its rule included; the other defaults stay
        let (r, d) = resources_and_devices(
            r#"{"resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
                            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 5}]}"#,
        );
        let rules = device_rules(&r, &d).unwrap();
        assert_eq!(rules.len(), devices::DEFAULT_ALLOWED.len());
        assert!(!rules
            .iter()
            .any(|r| (r.kind, r.major, r.minor) == ('c', Some(1), Some(3))));
        assert!(rules
            .iter()
            .any(|r| (r.kind, r.major, r.minor) == ('c', Some(1), Some(5))));
        // rules without a node (pts, ptmx, tun, mknod) are never dropped
        for (i, rule) in devices::DEFAULT_ALLOWED.iter().enumerate() {
            if devices::default_node_path(rule).is_none() {
                assert!(rules.contains(rule), "default {i} dropped");
            }
        }
    }
}
