//! How the systemd driver reaches systemd: which instance and over which socket (the policy;
//! `dbus.rs` is the wire protocol), and [`SystemdBus`], the few manager calls the driver
//! makes, so that its logic can be tested without a bus.
//!
//! - The system instance (root): systemd's private socket when it exists, as runc, else the
//!   system bus.
//! - The user's instance (rootless, driver `systemd-user`), as runc's rootless systemd driver:
//!   the user's session bus, `$DBUS_SESSION_BUS_ADDRESS`, or `$XDG_RUNTIME_DIR/bus` when that
//!   is not set. The bus authenticates the caller by the uid it has on the host
//!   (SO_PEERCRED), so inside a user namespace (rootless podman runs its runtime as uid 0 of
//!   one) the uid given to `AUTH EXTERNAL` is the host uid the euid maps to.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::cgroups::dbus::{self, parse_bus_address, props, BusAddr, Conn, Value};

pub const SYSTEMD_PRIVATE: &str = "/run/systemd/private";
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// The calls the systemd driver makes on systemd's manager object. D-Bus errors come back as
/// [`dbus::CallError`] (its `name` tells `UnitExists` and `NoSuchUnit` apart).
pub trait SystemdBus {
    /// `StartTransientUnit(unit, "replace", properties, [])`: the job's object path.
    fn start_transient_unit(&mut self, unit: &str, properties: Vec<Value>) -> Result<String>;
    /// `SetUnitProperties(unit, runtime = true, properties)`.
    fn set_unit_properties(&mut self, unit: &str, properties: Vec<Value>) -> Result<()>;
    /// `StopUnit(unit, "replace")`: the job, or None when `gone()` held before the reply came
    /// (systemd stops an emptied scope by itself, and its reply can then be long in coming).
    fn stop_unit(&mut self, unit: &str, gone: &dyn Fn() -> bool) -> Result<Option<String>>;
    /// `ResetFailedUnit(unit)`.
    fn reset_failed_unit(&mut self, unit: &str) -> Result<()>;
    /// Waits for the `JobRemoved` signal of `job`: its result ("done", "failed", ...), or
    /// "done" once `done()` holds.
    fn wait_job(&mut self, job: &str, timeout: Duration, done: &dyn Fn() -> bool)
        -> Result<String>;
    /// A property of the manager object (the user's instance: `ControlGroup`).
    fn manager_property(&mut self, name: &str) -> Result<Value>;
}

impl SystemdBus for Conn {
    fn start_transient_unit(&mut self, unit: &str, properties: Vec<Value>) -> Result<String> {
        let reply = self.manager(
            "StartTransientUnit",
            &[
                Value::str(unit),
                Value::str("replace"),
                props(properties),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        )?;
        Ok(reply
            .first()
            .and_then(|j| j.as_str())
            .ok_or_else(|| anyhow!("StartTransientUnit returned no job"))?
            .to_string())
    }

    fn set_unit_properties(&mut self, unit: &str, properties: Vec<Value>) -> Result<()> {
        self.manager(
            "SetUnitProperties",
            &[Value::str(unit), Value::Bool(true), props(properties)],
        )
        .map(|_| ())
    }

    fn stop_unit(&mut self, unit: &str, gone: &dyn Fn() -> bool) -> Result<Option<String>> {
        let reply = self.call_until(
            Some(dbus::SYSTEMD_DEST),
            dbus::SYSTEMD_PATH,
            dbus::MANAGER_IFACE,
            "StopUnit",
            &[Value::str(unit), Value::str("replace")],
            gone,
        )?;
        Ok(reply
            .as_ref()
            .and_then(|r| r.first())
            .and_then(|j| j.as_str())
            .map(str::to_string))
    }

    fn reset_failed_unit(&mut self, unit: &str) -> Result<()> {
        self.manager("ResetFailedUnit", &[Value::str(unit)])
            .map(|_| ())
    }

    fn wait_job(
        &mut self,
        job: &str,
        timeout: Duration,
        done: &dyn Fn() -> bool,
    ) -> Result<String> {
        Conn::wait_job(self, job, timeout, done)
    }

    fn manager_property(&mut self, name: &str) -> Result<Value> {
        Conn::manager_property(self, name)
    }
}

/// A connection to the user's systemd instance (`user`, rootless) or the system's.
pub fn connect(user: bool) -> Result<Box<dyn SystemdBus>> {
    Ok(Box::new(if user {
        connect_user()?
    } else {
        connect_system()?
    }))
}

/// systemd's private socket when it exists (root, as runc), else the system bus.
fn connect_system() -> Result<Conn> {
    let euid = nix::unistd::geteuid().as_raw();
    match UnixStream::connect(SYSTEMD_PRIVATE) {
        Ok(s) => Conn::open(s, false, euid).context(SYSTEMD_PRIVATE),
        Err(e1) => {
            let s = UnixStream::connect(SYSTEM_BUS).map_err(|e2| {
                anyhow!(
                    "cannot connect to systemd: {SYSTEMD_PRIVATE}: {e1}; {SYSTEM_BUS}: {e2} \
                     (is the host running systemd?)"
                )
            })?;
            Conn::open(s, true, euid).context(SYSTEM_BUS)
        }
    }
}

/// The user's systemd instance, on the user's session bus, as the host uid (see the module
/// comment).
fn connect_user() -> Result<Conn> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (addr, tried) = session_bus(
        env("DBUS_SESSION_BUS_ADDRESS").as_deref(),
        env("XDG_RUNTIME_DIR").as_deref(),
    )?;
    let fail = |e: &dyn std::fmt::Display| {
        anyhow!(
            "cannot connect to the user's systemd instance (rootless --systemd-cgroup) at \
             {tried}: {e} (is a user session with systemd --user running? see \
             `loginctl enable-linger`)"
        )
    };
    let sock = addr.connect().map_err(|e| fail(&e))?;
    let euid = nix::unistd::geteuid().as_raw();
    let uid = match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => crate::sys::procfmt::id_to_parent(&m, euid).ok_or_else(|| {
            anyhow!(
                "uid {euid} is not mapped in /proc/self/uid_map ({:?})",
                m.trim()
            )
        })?,
        Err(_) => euid,
    };
    Conn::open(sock, true, uid).map_err(|e| fail(&format!("{e:#}")))
}

/// Which session bus to use, from `$DBUS_SESSION_BUS_ADDRESS` (`dbus_env`) or else
/// `$XDG_RUNTIME_DIR/bus`; with a description of what was tried, for errors.
pub fn session_bus(dbus_env: Option<&str>, xdg_runtime: Option<&str>) -> Result<(BusAddr, String)> {
    match (dbus_env, xdg_runtime) {
        (Some(a), _) => {
            let addr = parse_bus_address(a).context("DBUS_SESSION_BUS_ADDRESS")?;
            Ok((addr, format!("DBUS_SESSION_BUS_ADDRESS={a}")))
        }
        (None, Some(x)) => {
            let p = std::path::Path::new(x).join("bus");
            let tried = format!(
                "{} ($XDG_RUNTIME_DIR/bus; DBUS_SESSION_BUS_ADDRESS is not set)",
                p.display()
            );
            Ok((BusAddr::Path(p), tried))
        }
        (None, None) => bail!(
            "rootless --systemd-cgroup needs the user's session bus, and neither \
             DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_bus_choice() {
        let p = |s: &str| BusAddr::Path(s.into());
        // the environment first, then $XDG_RUNTIME_DIR/bus, else a clear error
        let (a, t) = session_bus(Some("unix:path=/x/bus"), Some("/run/user/5")).unwrap();
        assert_eq!(a, p("/x/bus"));
        assert!(
            t.contains("DBUS_SESSION_BUS_ADDRESS=unix:path=/x/bus"),
            "{t}"
        );
        let (a, t) = session_bus(None, Some("/run/user/5")).unwrap();
        assert_eq!(a, p("/run/user/5/bus"));
        assert!(
            t.contains("/run/user/5/bus") && t.contains("XDG_RUNTIME_DIR"),
            "{t}"
        );
        let e = session_bus(None, None).unwrap_err().to_string();
        assert!(
            e.contains("DBUS_SESSION_BUS_ADDRESS") && e.contains("XDG_RUNTIME_DIR"),
            "{e}"
        );
        assert!(session_bus(Some("tcp:host=x"), Some("/run/user/5")).is_err());
    }

    #[test]
    fn uid_map_lookup() {
        // the initial namespace
        assert_eq!(
            crate::sys::procfmt::id_to_parent("         0          0 4294967295\n", 1000),
            Some(1000)
        );
        // rootless podman: 0 -> 1000, 1..65536 -> 100000..
        let m = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(crate::sys::procfmt::id_to_parent(m, 0), Some(1000));
        assert_eq!(crate::sys::procfmt::id_to_parent(m, 1), Some(100000));
        assert_eq!(crate::sys::procfmt::id_to_parent(m, 65536), Some(165535));
        assert_eq!(crate::sys::procfmt::id_to_parent(m, 65537), None);
        assert_eq!(crate::sys::procfmt::id_to_parent("", 0), None);
        assert_eq!(
            crate::sys::procfmt::id_to_parent("garbage\n0 1000 1\n", 0),
            Some(1000)
        );
    }
}
