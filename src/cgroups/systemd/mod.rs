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
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDevice, LinuxResources};

use super::dbus::{self, prop, Value};
use super::stats::Stats;
use super::util;
use super::{v1, v2, without_devices, CgroupState, FreezerState, Manager};

pub mod bus;
pub mod naming;
pub mod properties;

use bus::SystemdBus;
use naming::{below, placement, placement_in, Placement, DEFAULT_USER_SLICE};
use properties::{annotation_props, check_delegated, host_device_props, resource_props};

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
        let p = util::join_under(std::path::Path::new(util::CGROUP_ROOT), dir);
        let available = std::fs::read_to_string(p.join("cgroup.controllers"))
            .with_context(|| format!("reading {}/cgroup.controllers", p.display()))?;
        check_delegated(
            r,
            &available,
            &format!("the user's systemd instance at {dir}"),
        )
    }

    /// The unit's cgroup directory is gone (systemd removes it when the scope stops).
    fn cgroup_gone(&self) -> bool {
        let p = &self.place.path;
        let dir = if self.unified {
            util::join_under(std::path::Path::new(util::CGROUP_ROOT), p)
        } else {
            util::join_under(std::path::Path::new("/sys/fs/cgroup/systemd"), p)
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

    fn pids(&self) -> Result<Vec<i32>> {
        self.fs.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.fs.freeze(frozen)
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
