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
//! the user's session bus (`bus.rs`); the default slice is `user.slice` of that
//! manager, and the cgroup path is the manager's own `ControlGroup` (e.g.
//! `/user.slice/user-1000.slice/user@1000.service`) joined with the slice and unit. Only cgroup
//! v2 (a v1/hybrid host is refused, as runc does), and only the controllers the user's manager
//! has delegated (cgroup.controllers of its cgroup; a limit on another one is refused by field
//! name before anything starts). Device rules are not applied (an unprivileged process cannot
//! load the BPF program; runc tries and ignores the error when rootless). The state records the
//! driver "systemd-user" so that later commands talk to the user manager too.
//!
//! Split by concern: `naming.rs` (slice:prefix:name, unit names, cgroup paths),
//! `properties.rs` (resources, devices and annotations as unit properties), `bus.rs` (which
//! systemd instance, over which socket, and the [`bus::SystemdBus`] calls); this file is the
//! manager: the order of those calls and of the cgroupfs writes.
//!
//! Lifecycle (see [`Manager`]): `create` only connects; `apply_limits` checks the values and
//! keeps them; `place_init(pid)` starts the unit (`PIDs=[pid]`), creates what systemd does not
//! (v1 hierarchies it does not manage) and joins them, then writes the kept limits and owner
//! through cgroupfs, stopping the unit again if any of that fails; `place` is a cgroupfs join
//! of the running unit; `update` sets unit properties, then cgroupfs; `destroy` stops the unit,
//! then removes what cgroupfs made.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::dbus::{self, prop, Value};
use super::dir::CgroupDir;
use super::stats::Stats;
use super::util;
use super::{v1, v2, without_devices, CgroupState, FreezerState, Manager};

pub mod bus;
pub mod naming;
pub mod properties;

use bus::SystemdBus;
use naming::{below, placement, placement_in, Placement, DEFAULT_USER_SLICE};
use properties::{annotation_props, check_delegated, host_device_props, resource_props};

/// systemd's own hierarchy on a v1 or hybrid host, where it keeps its units' cgroups.
const V1_SYSTEMD_HIERARCHY: &str = "/sys/fs/cgroup/systemd";

/// How long to wait for a start/stop job (runc: 30 s); generous for slow machines.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The driver recorded in state.json for a unit of the user's systemd instance.
pub const USER_DRIVER: &str = "systemd-user";

pub struct SystemdManager {
    place: Placement,
    unified: bool,
    /// The user's systemd instance (rootless): the manager's own cgroup, under which the
    /// unit's path lies ("" when made from the state). None: the system manager.
    user_root: Option<String>,
    /// The cgroupfs manager of the unit's path: what systemd cannot express, and pids,
    /// freeze, kill, stats.
    fs: Box<dyn Manager>,
    /// `org.systemd.property.*` annotations.
    extra_props: Vec<Value>,
    /// Resources and devices from `apply_limits`, applied once the unit exists.
    pending: RefCell<Option<(LinuxResources, Vec<LinuxDevice>)>>,
    /// The owner from `delegate`, given to the cgroup once the unit exists (v2 only).
    pending_owner: RefCell<Option<(Option<u32>, Option<u32>)>>,
    /// Connected on first use.
    bus: RefCell<Option<Box<dyn SystemdBus>>>,
    /// Whether the unit exists (false from `create` until `place_init` started it).
    started: Cell<bool>,
}

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
            let fs = fs_manager(&place.path, unified)?;
            return Ok(Self::assemble(place, unified, None, fs, extra_props, None));
        }
        if !unified {
            bail!(
                "rootless --systemd-cgroup needs cgroup v2 (the unified hierarchy), and this host \
                 has the v1/hybrid layout: use the cgroupfs driver (no --systemd-cgroup)"
            );
        }
        let mut place = placement_in(cgroups_path, id, DEFAULT_USER_SLICE)?;
        let mut conn = bus::connect(true)?;
        let root = user_manager_root(conn.as_mut())?;
        place.path = below(&root, &place.path);
        let fs = fs_manager(&place.path, unified)?;
        Ok(Self::assemble(
            place,
            unified,
            Some(root),
            fs,
            extra_props,
            Some(conn),
        ))
    }

    /// From state.json: the unit name is the last path component. `user`: a unit of the user's
    /// systemd instance (driver "systemd-user").
    pub fn from_state(path: &str, user: bool) -> Result<SystemdManager> {
        let unit = path.rsplit('/').next().unwrap_or_default().to_string();
        if !(unit.ends_with(".scope") || unit.ends_with(".slice")) {
            bail!("systemd cgroup path {path:?} in the container state does not end in a unit");
        }
        let unified = util::detect_mode()? == util::Mode::Unified;
        let place = Placement {
            slice: String::new(),
            unit,
            path: path.to_string(),
        };
        let fs = fs_manager(path, unified)?;
        // the path is complete already; the root only marks the user's manager
        let root = user.then(String::new);
        Ok(Self::assemble(place, unified, root, fs, Vec::new(), None))
    }

    /// A manager whose unit is taken to exist until `create` says otherwise.
    fn assemble(
        place: Placement,
        unified: bool,
        user_root: Option<String>,
        fs: Box<dyn Manager>,
        extra_props: Vec<Value>,
        bus: Option<Box<dyn SystemdBus>>,
    ) -> SystemdManager {
        SystemdManager {
            place,
            unified,
            user_root,
            fs,
            extra_props,
            pending: RefCell::new(None),
            pending_owner: RefCell::new(None),
            bus: RefCell::new(bus),
            started: Cell::new(true),
        }
    }

    fn with_bus<T>(&self, f: impl FnOnce(&mut dyn SystemdBus) -> Result<T>) -> Result<T> {
        let mut b = self.bus.borrow_mut();
        let bus = match &mut *b {
            Some(bus) => bus,
            none => none.insert(bus::connect(self.user_root.is_some())?),
        };
        f(bus.as_mut())
    }

    /// The properties of the new unit: description, slice (or, for a slice unit, what it
    /// wants), delegation and `PIDs=[pid]` for a scope, accounting, the kept limits and device
    /// rules (not for the user's instance), then the annotations' properties.
    fn start_props(&self, pid: Option<i32>) -> Result<Vec<Value>> {
        let p = &self.place;
        let mut v = vec![prop(
            "Description",
            Value::Str(format!("husk container {}", p.unit)),
        )];
        if p.is_slice() {
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
        Ok(v)
    }

    /// StartTransientUnit and wait for its job.
    fn start_unit(&self, pid: Option<i32>) -> Result<()> {
        let v = self.start_props(pid)?;
        let unit = self.place.unit.clone();
        let res = self.with_bus(|b| {
            let job = b.start_transient_unit(&unit, v)?;
            let r = b.wait_job(&job, JOB_TIMEOUT, &|| false)?;
            if r != "done" {
                bail!("systemd job to start {unit} finished with result {r:?}");
            }
            Ok(())
        });
        match res {
            Err(e) if is_call_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                bail!("systemd unit {unit} already exists (another container with this name?)")
            }
            r => r.with_context(|| format!("starting systemd unit {unit}")),
        }
    }

    /// What follows the unit's start in `place_init`: the cgroupfs side of the cgroup (v1:
    /// systemd only creates the scope in the hierarchies it manages; join the rest), the kept
    /// limits and owner.
    fn finish_start(&self, pid: i32) -> Result<()> {
        self.fs.create()?;
        if self.place.is_slice() || !self.unified {
            self.fs.place(pid)?;
        }
        if let Some((r, d)) = self.pending.borrow().as_ref() {
            self.fs_apply(r, d)?;
        }
        let owner = *self.pending_owner.borrow();
        if let Some((uid, gid)) = owner {
            self.fs.delegate(uid, gid)?;
        }
        Ok(())
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
        let available = unified_dir(dir).read("cgroup.controllers")?;
        check_delegated(
            r,
            &available,
            &format!("the user's systemd instance at {dir}"),
        )
    }

    /// The unit's cgroup directory is gone (systemd removes it when the scope stops): in the
    /// unified hierarchy, or on v1 in systemd's own (name=systemd).
    fn cgroup_gone(&self) -> bool {
        let p = &self.place.path;
        let dir = if self.unified {
            unified_dir(p)
        } else {
            CgroupDir::new(util::join_under(Path::new(V1_SYSTEMD_HIERARCHY), p))
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
        let res = self.with_bus(|b| {
            if let Some(job) = b.stop_unit(&unit, &gone)? {
                b.wait_job(&job, JOB_TIMEOUT, &gone)?;
            }
            // a scope whose stop did not go cleanly (e.g. its processes were killed first, on a
            // failed create) stays loaded as "failed"; runc's stopUnit resets it as well
            let _ = b.reset_failed_unit(&unit);
            Ok(())
        });
        match res {
            Err(e) if is_call_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => Ok(()),
            Err(e) => {
                crate::logging::warn(&format!("stopping systemd unit {unit}: {e:#}"));
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

/// The directory of cgroup `path` in the unified hierarchy.
fn unified_dir(path: &str) -> CgroupDir {
    CgroupDir::new(util::join_under(Path::new(util::CGROUP_ROOT), path))
}

/// The user's systemd instance's own cgroup (its `ControlGroup` property), below which its
/// units' cgroups lie.
fn user_manager_root(b: &mut dyn SystemdBus) -> Result<String> {
    match b.manager_property("ControlGroup") {
        Ok(Value::Str(r)) if r.starts_with('/') => Ok(r),
        Ok(v) => bail!("the user's systemd instance reported ControlGroup {v:?}"),
        Err(e) => Err(e.context("asking the user's systemd instance for its cgroup")),
    }
}

/// Whether `e` is the D-Bus error `name` from systemd.
fn is_call_error(e: &anyhow::Error, name: &str) -> bool {
    e.downcast_ref::<dbus::CallError>()
        .is_some_and(|c| c.name == name)
}

impl Manager for SystemdManager {
    fn create(&self) -> Result<()> {
        // Connect now so that a host without systemd fails before anything is forked; the
        // unit itself needs the pid (PIDs=[pid]) and is started by place_init.
        self.started.set(false);
        self.with_bus(|_| Ok(()))
    }

    fn apply_limits(&self, resources: &LinuxResources, devs: &[LinuxDevice]) -> Result<()> {
        // validate now (errors before the fork), apply once the unit exists
        resource_props(resources, self.unified)?;
        self.check_user_delegation(resources)?;
        *self.pending.borrow_mut() = Some((resources.clone(), devs.to_vec()));
        if self.started.get() {
            self.fs_apply(resources, devs)?;
        }
        Ok(())
    }

    fn delegate(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        // as runc's systemd v2 manager (OwnerUID): chown what systemd created; never on v1
        if !self.unified {
            return Ok(());
        }
        if self.started.get() {
            return self.fs.delegate(uid, gid);
        }
        *self.pending_owner.borrow_mut() = Some((uid, gid));
        Ok(())
    }

    fn place_init(&self, pid: i32) -> Result<()> {
        if self.started.get() {
            return self.fs.place(pid);
        }
        // a slice unit takes no PIDs: it is started empty and the pid joins through cgroupfs
        let scope_pid = (!self.place.is_slice()).then_some(pid);
        self.start_unit(scope_pid)?;
        self.started.set(true);
        if let Err(e) = self.finish_start(pid) {
            let _ = self.destroy();
            return Err(e);
        }
        Ok(())
    }

    fn place(&self, pid: i32) -> Result<()> {
        // exec into a running container: plain cgroupfs join, as runc
        self.fs.place(pid)
    }

    fn clone_into_fd(&self) -> Option<std::os::fd::RawFd> {
        // exec into a running container can clone straight into the scope; a new container's
        // init must exist first (PIDs=[pid] starts the unit)
        if self.started.get() {
            self.fs.clone_into_fd()
        } else {
            None
        }
    }

    fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.check_user_delegation(resources)?;
        let mut v = resource_props(resources, self.unified)?;
        if resources.devices().is_some() && self.user_root.is_none() {
            v.extend(host_device_props(&super::device_rules(resources, &[])?)?);
        }
        if !v.is_empty() {
            let unit = self.place.unit.clone();
            match self.with_bus(|b| b.set_unit_properties(&unit, v)) {
                // systemd refused: that is the caller's error
                Err(e) if e.downcast_ref::<dbus::CallError>().is_some() => {
                    return Err(e.context(format!("setting properties of systemd unit {unit}")))
                }
                // no reply in time (seen once in the hybrid guest, where systemd had applied
                // the values): the cgroupfs writes below set them anyway
                Err(e) => crate::logging::warn(&format!(
                    "setting properties of systemd unit {unit}: {e:#}; writing cgroupfs directly"
                )),
                Ok(()) => {}
            }
        }
        if self.user_root.is_some() {
            return self.fs.update(&without_devices(resources));
        }
        self.fs.update(resources)
    }

    fn exists(&self) -> bool {
        self.fs.exists()
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.fs.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.fs.freeze(frozen)
    }

    fn freeze_within(&self, wait: std::time::Duration) -> Result<bool> {
        self.fs.freeze_within(wait)
    }

    fn is_frozen(&self) -> Result<bool> {
        self.fs.is_frozen()
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        self.fs.freezer_state()
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        self.fs.kill_all(signal)
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

    fn destroy(&self) -> Result<()> {
        if self.started.get() {
            self.stop_unit()?;
        }
        // directories systemd does not own (v1 hierarchies it does not manage)
        self.fs.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };
    use std::rc::Rc;

    /// A call the manager made on the bus.
    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Start(String, Vec<Value>),
        Wait(String),
        Set(String, Vec<Value>),
        Stop(String),
        ResetFailed(String),
    }

    /// What the fake systemd answers.
    struct Script {
        /// a D-Bus error name for StartTransientUnit
        start_error: Option<&'static str>,
        /// a D-Bus error name for SetUnitProperties; "" is a timeout (no D-Bus error)
        set_error: Option<&'static str>,
        stop_error: Option<&'static str>,
        job_result: &'static str,
        /// the manager's ControlGroup property
        control_group: Value,
    }

    impl Default for Script {
        fn default() -> Script {
            Script {
                start_error: None,
                set_error: None,
                stop_error: None,
                job_result: "done",
                control_group: Value::str("/user.slice/user-1000.slice/user@1000.service"),
            }
        }
    }

    fn call_error(name: &str) -> anyhow::Error {
        dbus::CallError {
            name: name.into(),
            message: "from the fake".into(),
        }
        .into()
    }

    struct FakeBus {
        calls: Rc<RefCell<Vec<Call>>>,
        script: Script,
    }

    impl SystemdBus for FakeBus {
        fn start_transient_unit(&mut self, unit: &str, properties: Vec<Value>) -> Result<String> {
            self.calls
                .borrow_mut()
                .push(Call::Start(unit.into(), properties));
            match self.script.start_error {
                Some(name) => Err(call_error(name)),
                None => Ok("/org/freedesktop/systemd1/job/1".into()),
            }
        }
        fn set_unit_properties(&mut self, unit: &str, properties: Vec<Value>) -> Result<()> {
            self.calls
                .borrow_mut()
                .push(Call::Set(unit.into(), properties));
            match self.script.set_error {
                Some("") => bail!("timed out waiting for systemd"),
                Some(name) => Err(call_error(name)),
                None => Ok(()),
            }
        }
        fn stop_unit(&mut self, unit: &str, _gone: &dyn Fn() -> bool) -> Result<Option<String>> {
            self.calls.borrow_mut().push(Call::Stop(unit.into()));
            match self.script.stop_error {
                Some(name) => Err(call_error(name)),
                None => Ok(Some("/org/freedesktop/systemd1/job/2".into())),
            }
        }
        fn reset_failed_unit(&mut self, unit: &str) -> Result<()> {
            self.calls.borrow_mut().push(Call::ResetFailed(unit.into()));
            Ok(())
        }
        fn wait_job(&mut self, job: &str, _: Duration, _: &dyn Fn() -> bool) -> Result<String> {
            self.calls.borrow_mut().push(Call::Wait(job.into()));
            Ok(self.script.job_result.into())
        }
        fn manager_property(&mut self, name: &str) -> Result<Value> {
            match name {
                "ControlGroup" => Ok(self.script.control_group.clone()),
                _ => Err(call_error("org.freedesktop.DBus.Error.UnknownProperty")),
            }
        }
    }

    /// The cgroupfs side, recording what the systemd manager asks of it.
    struct FakeFs {
        log: Rc<RefCell<Vec<String>>>,
        fail_apply: bool,
    }

    impl FakeFs {
        fn note(&self, what: &str) {
            self.log.borrow_mut().push(what.into());
        }
    }

    impl Manager for FakeFs {
        fn create(&self) -> Result<()> {
            self.note("create");
            Ok(())
        }
        fn apply_limits(&self, _: &LinuxResources, _: &[LinuxDevice]) -> Result<()> {
            self.note("apply_limits");
            if self.fail_apply {
                bail!(
                    "linux.resources.memory.limit: writing to memory.max: Device or resource busy"
                );
            }
            Ok(())
        }
        fn delegate(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
            self.note(&format!("delegate {uid:?} {gid:?}"));
            Ok(())
        }
        fn place(&self, pid: i32) -> Result<()> {
            self.note(&format!("place {pid}"));
            Ok(())
        }
        fn update(&self, _: &LinuxResources) -> Result<()> {
            self.note("update");
            Ok(())
        }
        fn pids(&self) -> Result<Vec<i32>> {
            Ok(Vec::new())
        }
        fn freeze(&self, _: bool) -> Result<()> {
            bail!("the systemd manager's tests do not freeze")
        }
        fn is_frozen(&self) -> Result<bool> {
            Ok(false)
        }
        fn freezer_state(&self) -> Result<FreezerState> {
            Ok(FreezerState::Thawed)
        }
        fn kill_all(&self, _: Signal) -> Result<()> {
            bail!("the systemd manager's tests do not kill")
        }
        fn stats(&self) -> Result<Stats> {
            Ok(Stats::default())
        }
        fn oom_kill_count(&self) -> Result<u64> {
            Ok(0)
        }
        fn state(&self) -> CgroupState {
            CgroupState::default()
        }
        fn destroy(&self) -> Result<()> {
            self.note("destroy");
            Ok(())
        }
    }

    struct Rig {
        m: SystemdManager,
        calls: Rc<RefCell<Vec<Call>>>,
        fs: Rc<RefCell<Vec<String>>>,
    }

    impl Rig {
        fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }
        fn fs(&self) -> Vec<String> {
            self.fs.borrow().clone()
        }
        /// The unit and properties of the one StartTransientUnit call.
        fn started(&self) -> (String, Vec<Value>) {
            let starts: Vec<_> = self
                .calls()
                .into_iter()
                .filter_map(|c| match c {
                    Call::Start(u, p) => Some((u, p)),
                    _ => None,
                })
                .collect();
            assert_eq!(starts.len(), 1, "{:?}", self.calls());
            starts.into_iter().next().unwrap()
        }
    }

    /// A new container's manager for `cgroups_path` (id "ctr"), after `create`.
    fn rig(cgroups_path: Option<&str>, unified: bool, script: Script, fail_apply: bool) -> Rig {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let fs = Rc::new(RefCell::new(Vec::new()));
        let m = SystemdManager::assemble(
            placement(cgroups_path, "ctr").unwrap(),
            unified,
            None,
            Box::new(FakeFs {
                log: fs.clone(),
                fail_apply,
            }),
            Vec::new(),
            Some(Box::new(FakeBus {
                calls: calls.clone(),
                script,
            })),
        );
        m.create().unwrap();
        Rig { m, calls, fs }
    }

    /// The value of property `name`, when there is exactly one.
    fn get(p: &[Value], name: &str) -> Option<Value> {
        let found: Vec<Value> = p
            .iter()
            .filter_map(|v| match v {
                Value::Struct(f) if f[0] == Value::str(name) => match &f[1] {
                    Value::Variant(x) => Some((**x).clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert!(found.len() <= 1, "{name} set {} times", found.len());
        found.into_iter().next()
    }

    fn memory(limit: i64) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn memory_limit_goes_to_the_new_scope_then_to_cgroupfs() {
        let r = rig(None, true, Script::default(), false);
        r.m.apply_limits(&memory(64 << 20), &[]).unwrap();
        r.m.delegate(Some(100000), Some(100000)).unwrap();
        // nothing happens before the init exists
        assert!(r.calls().is_empty(), "{:?}", r.calls());
        assert!(r.fs().is_empty(), "{:?}", r.fs());
        assert_eq!(r.m.clone_into_fd(), None);

        r.m.place_init(4242).unwrap();
        let (unit, p) = r.started();
        assert_eq!(unit, "husk-ctr.scope");
        assert_eq!(get(&p, "MemoryMax"), Some(Value::U64(64 << 20)));
        assert_eq!(get(&p, "Slice"), Some(Value::str("system.slice")));
        assert_eq!(get(&p, "Delegate"), Some(Value::Bool(true)));
        assert_eq!(
            get(&p, "PIDs"),
            Some(Value::Array("u".into(), vec![Value::U32(4242)]))
        );
        assert_eq!(get(&p, "IOAccounting"), Some(Value::Bool(true)));
        assert_eq!(get(&p, "BlockIOAccounting"), None);
        assert_eq!(get(&p, "DevicePolicy"), Some(Value::str("strict")));
        assert_eq!(
            r.calls()[1],
            Call::Wait("/org/freedesktop/systemd1/job/1".into())
        );
        // v2 scope: systemd placed the pid; cgroupfs gets the limits again and the owner
        assert_eq!(
            r.fs(),
            [
                "create",
                "apply_limits",
                "delegate Some(100000) Some(100000)"
            ]
        );
        assert_eq!(r.m.state().path, "/system.slice/husk-ctr.scope");
        assert_eq!(r.m.state().driver, "systemd");

        // exec: a cgroupfs join, never another unit
        r.m.place(4343).unwrap();
        assert_eq!(r.fs().last().unwrap(), "place 4343");
        r.m.destroy().unwrap();
        assert_eq!(
            r.calls()[2..],
            [
                Call::Stop("husk-ctr.scope".into()),
                Call::Wait("/org/freedesktop/systemd1/job/2".into()),
                Call::ResetFailed("husk-ctr.scope".into()),
            ]
        );
        assert_eq!(r.fs().last().unwrap(), "destroy");
    }

    #[test]
    fn cpu_quota_on_v1_joins_the_hierarchies_systemd_does_not_manage() {
        let r = rig(None, false, Script::default(), false);
        let cpu = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        r.m.apply_limits(&cpu, &[]).unwrap();
        // no delegation on cgroup v1
        r.m.delegate(Some(1), Some(1)).unwrap();
        r.m.place_init(7).unwrap();
        let (_, p) = r.started();
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(get(&p, "CPUShares"), Some(Value::U64(512)));
        assert_eq!(get(&p, "CPUWeight"), None);
        assert_eq!(get(&p, "BlockIOAccounting"), Some(Value::Bool(true)));
        assert_eq!(r.fs(), ["create", "place 7", "apply_limits"]);
    }

    #[test]
    fn slice_path_names_the_unit_and_its_slice() {
        let r = rig(
            Some("machine-x.slice:docker:abc"),
            true,
            Script::default(),
            false,
        );
        r.m.place_init(9).unwrap();
        let (unit, p) = r.started();
        assert_eq!(unit, "docker-abc.scope");
        assert_eq!(get(&p, "Slice"), Some(Value::str("machine-x.slice")));
        assert_eq!(
            get(&p, "Description"),
            Some(Value::str("husk container docker-abc.scope"))
        );
        // no apply_limits: none were given
        assert_eq!(r.fs(), ["create"]);
        assert_eq!(
            r.m.state().path,
            "/machine.slice/machine-x.slice/docker-abc.scope"
        );

        // a name ending in .slice is a slice unit: started empty, the pid joins by cgroupfs
        let r = rig(
            Some("system.slice:p:my-pod.slice"),
            true,
            Script::default(),
            false,
        );
        r.m.place_init(9).unwrap();
        let (unit, p) = r.started();
        assert_eq!(unit, "my-pod.slice");
        assert_eq!(get(&p, "Wants"), Some(Value::str("system.slice")));
        assert_eq!(get(&p, "Slice"), None);
        assert_eq!(get(&p, "PIDs"), None);
        assert_eq!(get(&p, "Delegate"), None);
        assert_eq!(r.fs(), ["create", "place 9"]);
        assert_eq!(r.m.state().path, "/my.slice/my-pod.slice");
    }

    #[test]
    fn an_existing_unit_is_refused_and_left_alone() {
        let script = Script {
            start_error: Some("org.freedesktop.systemd1.UnitExists"),
            ..Script::default()
        };
        let r = rig(None, true, script, false);
        r.m.apply_limits(&memory(1 << 30), &[]).unwrap();
        let e = r.m.place_init(5).unwrap_err().to_string();
        assert_eq!(
            e,
            "systemd unit husk-ctr.scope already exists (another container with this name?)"
        );
        assert!(r.fs().is_empty(), "{:?}", r.fs());
        // create's cleanup destroys the manager: the other container's unit is not stopped
        r.m.destroy().unwrap();
        assert!(
            !r.calls().iter().any(|c| matches!(c, Call::Stop(_))),
            "{:?}",
            r.calls()
        );
        assert_eq!(r.fs(), ["destroy"]);
    }

    #[test]
    fn a_failed_start_job_is_an_error_naming_the_unit() {
        let script = Script {
            job_result: "failed",
            ..Script::default()
        };
        let r = rig(None, true, script, false);
        let e = format!("{:#}", r.m.place_init(5).unwrap_err());
        assert!(
            e.contains("starting systemd unit husk-ctr.scope")
                && e.contains("finished with result \"failed\""),
            "{e}"
        );
        assert!(r.fs().is_empty(), "{:?}", r.fs());
    }

    #[test]
    fn a_cgroupfs_failure_after_the_start_stops_the_unit() {
        let r = rig(None, true, Script::default(), true);
        r.m.apply_limits(&memory(1 << 20), &[]).unwrap();
        let e = r.m.place_init(5).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.memory.limit:"), "{e}");
        let stops = r
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Stop(_)))
            .count();
        assert_eq!(stops, 1, "{:?}", r.calls());
        assert_eq!(r.fs(), ["create", "apply_limits", "destroy"]);
    }

    fn pids(limit: i64) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(limit).build().unwrap())
            .build()
            .unwrap()
    }

    /// The manager of a running container (as from the state).
    fn running(script: Script) -> Rig {
        let r = rig(None, true, script, false);
        r.m.started.set(true);
        r
    }

    #[test]
    fn update_sets_unit_properties_then_cgroupfs() {
        let r = running(Script::default());
        r.m.update(&pids(20)).unwrap();
        let Call::Set(unit, p) = &r.calls()[0] else {
            panic!("{:?}", r.calls())
        };
        assert_eq!(unit, "husk-ctr.scope");
        assert_eq!(get(p, "TasksMax"), Some(Value::U64(20)));
        assert_eq!(
            get(p, "DevicePolicy"),
            None,
            "devices not given: left alone"
        );
        assert_eq!(r.fs(), ["update"]);
        // nothing systemd can express: no call, cgroupfs only
        r.m.update(&LinuxResources::default()).unwrap();
        assert_eq!(r.calls().len(), 1);
        assert_eq!(r.fs(), ["update", "update"]);
    }

    #[test]
    fn update_refused_by_systemd_is_the_callers_error() {
        let r = running(Script {
            set_error: Some("org.freedesktop.DBus.Error.InvalidArgs"),
            ..Script::default()
        });
        let e = format!("{:#}", r.m.update(&pids(20)).unwrap_err());
        assert!(
            e.starts_with("setting properties of systemd unit husk-ctr.scope")
                && e.contains("InvalidArgs"),
            "{e}"
        );
        assert!(r.fs().is_empty(), "{:?}", r.fs());
        // no answer at all: cgroupfs gets the values anyway
        let r = running(Script {
            set_error: Some(""),
            ..Script::default()
        });
        r.m.update(&pids(20)).unwrap();
        assert_eq!(r.fs(), ["update"]);
    }

    #[test]
    fn stopping_a_unit_systemd_no_longer_has_is_fine() {
        let r = running(Script {
            stop_error: Some("org.freedesktop.systemd1.NoSuchUnit"),
            ..Script::default()
        });
        r.m.destroy().unwrap();
        assert_eq!(r.calls(), [Call::Stop("husk-ctr.scope".into())]);
        assert_eq!(r.fs(), ["destroy"]);
    }

    #[test]
    fn user_instance_root_from_its_control_group() {
        let mut b = FakeBus {
            calls: Rc::new(RefCell::new(Vec::new())),
            script: Script::default(),
        };
        assert_eq!(
            user_manager_root(&mut b).unwrap(),
            "/user.slice/user-1000.slice/user@1000.service"
        );
        // anything but an absolute cgroup path is refused, naming what came back
        for bad in [Value::str("user.slice"), Value::U32(1)] {
            b.script.control_group = bad.clone();
            let e = user_manager_root(&mut b).unwrap_err().to_string();
            assert!(
                e.starts_with("the user's systemd instance reported ControlGroup")
                    && e.contains(&format!("{bad:?}")),
                "{e}"
            );
        }
    }
}
