//! The six hook points of config.json: each hook gets the container state as JSON on stdin, runs
//! with its own args and env, and is killed after `timeout` seconds.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

/// Run `hooks` in order; stops at the first failure. `what` names the hook list, e.g.
/// "hooks.prestart".
pub fn run_all(what: &str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        let t = std::time::Instant::now();
        run(h, state_json).with_context(|| format!("{what}[{i}] ({})", h.path().display()))?;
        crate::log_debug!(
            "{what}[{i}] ({}) succeeded in {:?}",
            h.path().display(),
            t.elapsed()
        );
    }
    Ok(())
}

/// Run the hooks, reporting failures as warnings (poststart, poststop).
pub fn run_all_warn(what: &str, hooks: &[Hook], state_json: &[u8]) {
    for (i, h) in hooks.iter().enumerate() {
        let t = std::time::Instant::now();
        match run(h, state_json) {
            Ok(()) => crate::log_debug!(
                "{what}[{i}] ({}) succeeded in {:?}",
                h.path().display(),
                t.elapsed()
            ),
            Err(e) => crate::logging::warn(&format!("{what}[{i}] ({}): {e:#}", h.path().display())),
        }
    }
}

fn memfd(name: &str) -> Result<std::fs::File> {
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .context("memfd_create")?;
    Ok(std::fs::File::from(fd))
}

/// Run one hook.
pub fn run(h: &Hook, state_json: &[u8]) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for e in h.env().as_deref().unwrap_or(&[]) {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    let out = memfd("hook-stdout")?;
    let err = memfd("hook-stderr")?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(err.try_clone()?));
    let mut child = cmd.spawn().context("start hook")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state_json);
    }
    let status = match h.timeout() {
        Some(t) if t > 0 => {
            let pidfd = crate::sys::pidfd::open(child.id() as i32).context("pidfd_open")?;
            let done = crate::sys::pidfd::wait_exit(
                pidfd.as_fd(),
                t.saturating_mul(1000).min(i32::MAX as i64) as i32,
            )?;
            if !done {
                let _ = child.kill();
                let _ = child.wait();
                bail!("timed out after {t}s");
            }
            child.wait()?
        }
        Some(t) => bail!("timeout: must be greater than zero, got {t}"),
        None => child.wait()?,
    };
    if status.success() {
        return Ok(());
    }
    let read = |mut f: std::fs::File| {
        let mut s = String::new();
        let _ = f.rewind();
        let _ = f.take(4096).read_to_string(&mut s);
        s.trim().to_string()
    };
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    bail!("{how}, stdout: {:?}, stderr: {:?}", read(out), read(err))
}

/// The OCI state passed to hooks.
pub fn state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "ociVersion": "1.2.0",
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
    });
    if let Some(a) = annotations.filter(|a| !a.is_empty()) {
        v["annotations"] = serde_json::to_value(a).unwrap_or_default();
    }
    serde_json::to_vec(&v).unwrap_or_default()
}
