//! Seccomp user notification, the runtime's side: once the container's process installed a
//! filter with SCMP_ACT_NOTIFY rules, its listener fd goes to the seccomp agent listening at
//! `linux.seccomp.listenerPath`, in one message on a new connection: the container process
//! state (runtime-spec runtime.md "The Container Process State") as JSON, with the fd in
//! SCM_RIGHTS at the index of "seccompFd" in `fds`.

use super::SeccompProgram;
use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// The container process state for the agent: `pid` is the process that installed the filter
/// (as the runtime sees it), `state` the container's state (runtime.md "State") as JSON.
pub fn process_state_json(p: &SeccompProgram, pid: i32, state: &[u8]) -> Result<String> {
    let state: serde_json::Value =
        serde_json::from_slice(state).context("encode the container state")?;
    let mut v = serde_json::json!({
        "ociVersion": state["ociVersion"].clone(),
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = p.listener_metadata.as_deref().filter(|m| !m.is_empty()) {
        v["metadata"] = m.into();
    }
    Ok(v.to_string())
}

/// Connect to listenerPath and send the container process state with `fd`.
pub fn send_to_agent(p: &SeccompProgram, pid: i32, state: &[u8], fd: BorrowedFd) -> Result<()> {
    let Some(path) = p.listener.as_deref() else {
        anyhow::bail!("linux.seccomp.listenerPath is not set");
    };
    let msg = process_state_json(p, pid, state)?;
    let sock = UnixStream::connect(path).with_context(|| {
        format!(
            "failed to connect with seccomp agent specified in the seccomp profile (linux.seccomp.listenerPath {})",
            path.display()
        )
    })?;
    crate::process::console::send_fd(sock.as_raw_fd(), &msg, fd.as_raw_fd())
        .with_context(|| format!("cannot send seccomp fd to {}", path.display()))?;
    crate::log_debug!(
        "seccomp notification fd of pid {pid} sent to the agent at {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn program(meta: Option<&str>) -> SeccompProgram {
        let mut s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        s.set_listener_metadata(meta.map(String::from));
        crate::security::seccomp_compile(&s).unwrap()
    }

    #[test]
    fn container_process_state_shape() {
        let state =
            crate::hooks::state_json("c1", "creating", 42, std::path::Path::new("/b"), None);
        let v: Value =
            serde_json::from_str(&process_state_json(&program(Some("m")), 42, &state).unwrap())
                .unwrap();
        assert_eq!(
            v,
            json!({"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 42, "metadata": "m",
                   "state": {"ociVersion": "1.2.0", "id": "c1", "status": "creating",
                             "pid": 42, "bundle": "/b"}})
        );
        // metadata is omitted when unset or empty (omitempty in runtime-spec's Go types)
        for m in [None, Some("")] {
            let v: Value =
                serde_json::from_str(&process_state_json(&program(m), 42, &state).unwrap())
                    .unwrap();
            assert!(v.get("metadata").is_none(), "{v}");
        }
        assert!(program(None).notifies());
        assert_eq!(
            program(None).listener.as_deref(),
            Some(std::path::Path::new("/run/agent.sock"))
        );
    }
}
