//! Rootless unpack with the user's subordinate ids, as rootless podman does: the caller's own
//! uid/gid are 0 of a new user namespace and its `/etc/subuid` / `/etc/subgid` ranges are 1..N,
//! the maps written by the setuid `newuidmap`/`newgidmap` (package `uidmap`: an unprivileged
//! process may only map its own id). The extraction runs in a child that is root there, so the
//! image's owners are applied, shifted into those ranges.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One `/etc/subuid` or `/etc/subgid` range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// The id layout of a rootless unpack: container id 0 is `uid`/`gid`, the ranges follow from
/// container id 1 on, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub uids: Vec<Range>,
    pub gids: Vec<Range>,
    newuidmap: PathBuf,
    newgidmap: PathBuf,
}

/// (containerID, hostID, size) triples of one id kind.
fn triples(own: u32, ranges: &[Range]) -> Vec<(u32, u32, u32)> {
    let mut out = vec![(0, own, 1)];
    let mut next = 1u32;
    for r in ranges {
        out.push((next, r.start, r.count));
        next = next.saturating_add(r.count);
    }
    out
}

/// How many container ids `ranges` plus the caller's own id give (ids 0..count-1 are mapped).
fn mapped(ranges: &[Range]) -> u64 {
    1 + ranges.iter().map(|r| u64::from(r.count)).sum::<u64>()
}

impl Layout {
    pub fn uid_triples(&self) -> Vec<(u32, u32, u32)> {
        triples(self.uid, &self.uids)
    }
    pub fn gid_triples(&self) -> Vec<(u32, u32, u32)> {
        triples(self.gid, &self.gids)
    }
    /// The number of uids mapped (the highest usable container uid is this minus one).
    pub fn uid_count(&self) -> u64 {
        mapped(&self.uids)
    }
    pub fn gid_count(&self) -> u64 {
        mapped(&self.gids)
    }
    /// `linux.uidMappings` / `linux.gidMappings` of a runtime spec.
    pub fn spec_mappings(&self) -> (serde_json::Value, serde_json::Value) {
        let j = |t: Vec<(u32, u32, u32)>| {
            serde_json::Value::Array(
                t.into_iter()
                    .map(|(c, h, s)| serde_json::json!({"containerID": c, "hostID": h, "size": s}))
                    .collect(),
            )
        };
        (j(self.uid_triples()), j(self.gid_triples()))
    }
}

/// The ranges of `/etc/subuid`-format `text` for the user `name` or numeric `id` (both forms
/// are accepted, as shadow's tools accept them), in file order. Malformed lines and empty
/// ranges are skipped, as shadow skips them.
pub fn ranges_in(text: &str, name: &str, id: u32) -> Vec<Range> {
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || (owner != name && owner != id) {
                return None;
            }
            let start: u32 = start.parse().ok()?;
            let count: u32 = count.parse().ok()?;
            // the range must fit in the 32-bit id space
            if count == 0 || u64::from(start) + u64::from(count) > u64::from(u32::MAX) {
                return None;
            }
            Some(Range { start, count })
        })
        .collect()
}

/// The rootless layout of the calling user, or why there is none (one line, for the warning).
/// Only for a caller that is not root.
pub fn layout_of_caller() -> std::result::Result<Layout, String> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .ok_or_else(|| format!("uid {uid} has no passwd entry, so no /etc/subuid entry"))?;
    let read = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
    let uids = ranges_in(&read("/etc/subuid"), &user, uid);
    if uids.is_empty() {
        return Err(format!("/etc/subuid has no entry for {user} (uid {uid})"));
    }
    let gids = ranges_in(&read("/etc/subgid"), &user, uid);
    if gids.is_empty() {
        return Err(format!("/etc/subgid has no entry for {user} (uid {uid})"));
    }
    let newuidmap = crate::rootless::find_id_map_tool("newuidmap")
        .ok_or("newuidmap is not installed (package uidmap) or not in $PATH")?;
    let newgidmap = crate::rootless::find_id_map_tool("newgidmap")
        .ok_or("newgidmap is not installed (package uidmap) or not in $PATH")?;
    Ok(Layout {
        user,
        uid,
        gid,
        uids,
        gids,
        newuidmap,
        newgidmap,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")
}

/// Run `tool PID c h s ...` (newuidmap/newgidmap) for the child `pid`.
fn run_map_tool(tool: &Path, pid: i32, t: &[(u32, u32, u32)]) -> Result<()> {
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string());
    for (c, h, s) in t {
        cmd.args([c.to_string(), h.to_string(), s.to_string()]);
    }
    let o = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("run {}", tool.display()))?;
    if !o.status.success() {
        bail!(
            "{} {pid} {}: {} ({})",
            tool.display(),
            t.iter()
                .map(|(c, h, s)| format!("{c} {h} {s}"))
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&o.stderr).trim(),
            o.status
        );
    }
    Ok(())
}

/// Run `f` in a child process that is root of a new user namespace mapped as `layout` says;
/// its error (as text) is this function's. The child does not return: it exits when `f` ends.
pub fn run_mapped(layout: &Layout, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let (st, msg) = run_in(layout, f)?;
    match st {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        _ if !msg.is_empty() => Err(anyhow!(msg)),
        other => bail!("the child in the user namespace ended: {other:?}"),
    }
}

/// `husk image unshare CMD [ARG...]`: run CMD as root of the user namespace a rootless unpack
/// uses (podman's `unshare`), e.g. to remove a bundle whose files belong to the subordinate
/// ids. Root runs CMD as it is. The result is CMD's exit code (128 + N for a signal N).
pub fn unshare(command: &[String]) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = command.split_first() else {
        bail!("image unshare: no command given");
    };
    let code = |st: nix::sys::wait::WaitStatus| match st {
        nix::sys::wait::WaitStatus::Exited(_, c) => Some(c),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    };
    if nix::unistd::geteuid().is_root() {
        let st = std::process::Command::new(prog)
            .args(args)
            .status()
            .with_context(|| format!("image unshare: run {prog}"))?;
        use std::os::unix::process::ExitStatusExt;
        return Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
    }
    let layout = layout_of_caller().map_err(|why| anyhow!("image unshare: {why}"))?;
    let (st, msg) = run_in(&layout, || {
        let e = std::process::Command::new(prog).args(args).exec();
        Err(anyhow!("image unshare: run {prog}: {e}"))
    })?;
    if !msg.is_empty() {
        return Err(anyhow!(msg));
    }
    code(st).with_context(|| format!("image unshare: {prog} ended: {st:?}"))
}

/// Fork a child that unshares a user namespace, have newuidmap/newgidmap map it as `layout`
/// says, and run `f` there; the child's wait status and error text (empty if none).
fn run_in(
    layout: &Layout,
    f: impl FnOnce() -> Result<()>,
) -> Result<(nix::sys::wait::WaitStatus, String)> {
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // SAFETY: fork(2); the child only runs the unpack or execs a command (no locks other
    // threads could hold are needed: `husk image` runs it on its only thread) and ends with
    // _exit.
    let pid = match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            drop((ready_r, go_w, err_r));
            let code = child(ready_w, go_r, err_w, f);
            // SAFETY: _exit ends the child without running the parent's atexit handlers or
            // flushing its copied stdio buffers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop((ready_w, go_r, err_w));
    let kill_and_reap = |e: anyhow::Error| -> anyhow::Error {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        e
    };
    let mut b = [0u8; 1];
    let mut ready = std::fs::File::from(ready_r);
    if ready.read(&mut b).unwrap_or(0) != 1 {
        // the child says why on the error pipe
        let mut msg = String::new();
        let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
        let _ = nix::sys::wait::waitpid(pid, None);
        bail!("new user namespace: {}", msg.trim());
    }
    let mapped = run_map_tool(&layout.newuidmap, pid.as_raw(), &layout.uid_triples())
        .and_then(|_| run_map_tool(&layout.newgidmap, pid.as_raw(), &layout.gid_triples()));
    if let Err(e) = mapped {
        return Err(kill_and_reap(e.context(format!(
            "map the ids of {} (/etc/subuid, /etc/subgid) into a user namespace",
            layout.user
        ))));
    }
    let mut go = std::fs::File::from(go_w);
    if let Err(e) = go.write_all(b"g") {
        return Err(kill_and_reap(anyhow!(
            "start the user namespace child: {e}"
        )));
    }
    drop(go);
    let mut msg = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
    let st = nix::sys::wait::waitpid(pid, None).context("wait for the user namespace child")?;
    Ok((st, msg))
}

/// The child's side: a new user namespace, wait for the maps, run `f`. Returns the exit code.
fn child(ready_w: OwnedFd, go_r: OwnedFd, err_w: OwnedFd, f: impl FnOnce() -> Result<()>) -> i32 {
    let mut err = std::fs::File::from(err_w);
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        let _ = write!(err, "unshare(CLONE_NEWUSER): {e}");
        return 1;
    }
    if nix::unistd::write(&ready_w, b"r").is_err() {
        return 1;
    }
    drop(ready_w);
    let mut b = [0u8; 1];
    // the parent closes its end without a byte when mapping failed
    if nix::unistd::read(&go_r, &mut b).unwrap_or(0) != 1 {
        return 1;
    }
    // uid and gid are 0 here now; the caller's supplementary groups are not mapped
    let _ = nix::unistd::setgroups(&[]);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            let _ = write!(err, "{e:#}");
            1
        }
        Err(_) => {
            let _ = write!(err, "the child in the user namespace panicked");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_ranges() {
        let t = "# c\nalice:100000:65536\nbob:200000:65536\n1234:300000:10\nalice:400000:5\n\
                 alice:bad:1\nalice:1:0\nalice:4294967295:2\nalice:1:2:3\n";
        assert_eq!(
            ranges_in(t, "alice", 999),
            [
                Range {
                    start: 100000,
                    count: 65536
                },
                Range {
                    start: 400000,
                    count: 5
                }
            ]
        );
        assert_eq!(
            ranges_in(t, "carol", 1234),
            [Range {
                start: 300000,
                count: 10
            }]
        );
        assert!(ranges_in(t, "dave", 1).is_empty());
    }

    #[test]
    fn layout_triples() {
        let l = Layout {
            user: "alice".into(),
            uid: 1000,
            gid: 1001,
            uids: vec![
                Range {
                    start: 100000,
                    count: 65536,
                },
                Range {
                    start: 400000,
                    count: 5,
                },
            ],
            gids: vec![Range {
                start: 200000,
                count: 10,
            }],
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        };
        assert_eq!(
            l.uid_triples(),
            [(0, 1000, 1), (1, 100000, 65536), (65537, 400000, 5)]
        );
        assert_eq!(l.uid_count(), 65542);
        assert_eq!(l.gid_triples(), [(0, 1001, 1), (1, 200000, 10)]);
        assert_eq!(l.gid_count(), 11);
        let (u, _) = l.spec_mappings();
        assert_eq!(u[1]["hostID"], 100000);
        assert_eq!(u[2]["containerID"], 65537);
    }
}
