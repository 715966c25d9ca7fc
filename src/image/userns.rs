//! Rootless unpack with the user's subordinate ids, as rootless podman does: the caller's own
//! uid/gid are 0 of a new user namespace and its `/etc/subuid` / `/etc/subgid` ranges are 1..N,
//! the maps written by the setuid `newuidmap`/`newgidmap` (package `uidmap`: an unprivileged
//! process may only map its own id). The extraction runs in a child that is root there, so the
//! image's owners are applied, shifted into those ranges. `husk up --userns keep-id|nomap`
//! places the same ids as podman does for those modes ([`Mapping`]) and unpacks the same way.

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

/// Where a user namespace puts the caller's own uid/gid among its subordinate ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mapping {
    /// The caller is 0, the ranges follow from 1 on: a rootless unpack, `image unshare`
    /// (rootless podman's own namespace).
    #[default]
    CallerAsRoot,
    /// `husk up --userns keep-id[:uid=U,gid=G]`: the caller is `uid`/`gid` (its own ids unless
    /// asked otherwise), the ranges fill the container ids from 0 around it (podman's
    /// `GetKeepIDMapping`: 0..uid-1 the first subordinate ids, uid the caller, uid+1.. the rest).
    KeepId { uid: u32, gid: u32 },
    /// `husk up --userns nomap`: the ranges alone from 0; the caller's own ids are not mapped.
    NoMap,
}

/// The id layout of a user's user namespace: the caller's ids and its `/etc/subuid` and
/// `/etc/subgid` ranges (in file order), placed as `mapping` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub uids: Vec<Range>,
    pub gids: Vec<Range>,
    pub mapping: Mapping,
    newuidmap: PathBuf,
    newgidmap: PathBuf,
}

/// The end (exclusive) of the container ids a map may use: the kernel refuses an extent that
/// reaches 4294967295, `(uid_t)-1`.
const ID_END: u64 = u32::MAX as u64;

/// (containerID, hostID, size) triples, by container id: the caller's own id `own` at container
/// id `at` (not mapped when `None`), and `ranges`, in order, on the container ids from 0 that
/// `at` leaves free, as far as the id space goes.
pub fn place(own: u32, at: Option<u32>, ranges: &[Range]) -> Vec<(u32, u32, u32)> {
    let at = at.map(u64::from);
    let mut out = Vec::new();
    let mut c: u64 = 0;
    for r in ranges {
        let (mut h, mut left) = (u64::from(r.start), u64::from(r.count));
        while left > 0 && c < ID_END {
            if Some(c) == at {
                c += 1;
                continue;
            }
            let stop = match at {
                Some(a) if a > c => a,
                _ => ID_END,
            };
            let n = left.min(stop - c);
            out.push((c as u32, h as u32, n as u32));
            c += n;
            h += n;
            left -= n;
        }
    }
    if let Some(a) = at {
        out.push((a as u32, own, 1));
    }
    out.sort_by_key(|t| t.0);
    out
}

/// The container ids `triples` map, for the layer applier's owner check.
pub fn mapped_ids(triples: &[(u32, u32, u32)]) -> super::layer::MappedIds {
    let mut below = 0u64;
    let mut also = None;
    for &(c, _, s) in triples {
        if u64::from(c) == below {
            below += u64::from(s);
        } else if s == 1 && also.is_none() {
            also = Some(c);
        }
    }
    super::layer::MappedIds { below, also }
}

/// How many ids `ranges` give.
pub fn count(ranges: &[Range]) -> u64 {
    ranges.iter().map(|r| u64::from(r.count)).sum()
}

impl Layout {
    /// A layout of these ids (tests of what is computed from it; the tools are never run).
    #[cfg(test)]
    pub fn of(user: &str, uid: u32, gid: u32, uids: Vec<Range>, gids: Vec<Range>) -> Layout {
        Layout {
            user: user.into(),
            uid,
            gid,
            uids,
            gids,
            mapping: Mapping::CallerAsRoot,
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        }
    }

    /// The same ids placed as `mapping` says.
    pub fn with_mapping(mut self, mapping: Mapping) -> Layout {
        self.mapping = mapping;
        self
    }

    /// The container ids the caller's own uid and gid have (`None`: not mapped, `nomap`).
    pub fn caller_at(&self) -> (Option<u32>, Option<u32>) {
        match self.mapping {
            Mapping::CallerAsRoot => (Some(0), Some(0)),
            Mapping::KeepId { uid, gid } => (Some(uid), Some(gid)),
            Mapping::NoMap => (None, None),
        }
    }

    /// The container's uid map: (containerID, hostID, size) triples.
    pub fn uid_triples(&self) -> Vec<(u32, u32, u32)> {
        place(self.uid, self.caller_at().0, &self.uids)
    }
    pub fn gid_triples(&self) -> Vec<(u32, u32, u32)> {
        place(self.gid, self.caller_at().1, &self.gids)
    }

    /// The container uids the map covers (an image owner outside them is refused).
    pub fn uid_ids(&self) -> super::layer::MappedIds {
        mapped_ids(&self.uid_triples())
    }
    pub fn gid_ids(&self) -> super::layer::MappedIds {
        mapped_ids(&self.gid_triples())
    }

    /// Where [`run_mapped`]'s namespace puts the caller: where the container has it, and for
    /// `nomap` on the first container id after the ranges (the caller's own directories, the
    /// bundle's rootfs among them, must be reachable there; no image owner is ever given it,
    /// since it lies outside [`Layout::uid_ids`]).
    pub fn ns_caller_at(&self) -> (u32, u32) {
        let beyond = |r: &[Range]| count(r).min(ID_END - 1) as u32;
        match self.caller_at() {
            (Some(u), Some(g)) => (u, g),
            _ => (beyond(&self.uids), beyond(&self.gids)),
        }
    }

    /// The ids of [`run_mapped`]'s namespace: the container's, and for `nomap` the caller's
    /// own after them.
    fn ns_uid_triples(&self) -> Vec<(u32, u32, u32)> {
        let mut t = self.uid_triples();
        if self.caller_at().0.is_none() {
            t.push((self.ns_caller_at().0, self.uid, 1));
        }
        t
    }
    fn ns_gid_triples(&self) -> Vec<(u32, u32, u32)> {
        let mut t = self.gid_triples();
        if self.caller_at().1.is_none() {
            t.push((self.ns_caller_at().1, self.gid, 1));
        }
        t
    }

    /// `linux.uidMappings` / `linux.gidMappings` of a runtime spec.
    pub fn spec_mappings(&self) -> (serde_json::Value, serde_json::Value) {
        (
            spec_triples(&self.uid_triples()),
            spec_triples(&self.gid_triples()),
        )
    }
}

/// Triples as OCI `{"containerID", "hostID", "size"}` objects.
pub fn spec_triples(t: &[(u32, u32, u32)]) -> serde_json::Value {
    serde_json::Value::Array(
        t.iter()
            .map(|(c, h, s)| serde_json::json!({"containerID": c, "hostID": h, "size": s}))
            .collect(),
    )
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
        mapping: Mapping::CallerAsRoot,
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

/// Have newuidmap and newgidmap (found in `$PATH`) write these maps for the process `pid`, which
/// has just made a user namespace of its own (the caller's ids and ranges, as [`Layout`] places
/// them; the tools check them against /etc/subuid and /etc/subgid).
pub fn write_maps(pid: i32, uids: &[(u32, u32, u32)], gids: &[(u32, u32, u32)]) -> Result<()> {
    let tool = |name: &str| {
        crate::rootless::find_id_map_tool(name)
            .with_context(|| format!("{name} is not installed (package uidmap) or not in $PATH"))
    };
    run_map_tool(&tool("newuidmap")?, pid, uids)?;
    run_map_tool(&tool("newgidmap")?, pid, gids)
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
    let parent = nix::unistd::getpid();
    // SAFETY: fork(2); the child only runs the unpack or execs a command (no locks other
    // threads could hold are needed: `husk image` runs it on its only thread) and ends with
    // _exit.
    let pid = match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            drop((ready_r, go_w, err_r));
            let code = child(parent, ready_w, go_r, err_w, f);
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
    let mapped = run_map_tool(&layout.newuidmap, pid.as_raw(), &layout.ns_uid_triples())
        .and_then(|_| run_map_tool(&layout.newgidmap, pid.as_raw(), &layout.ns_gid_triples()));
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
fn child(
    parent: nix::unistd::Pid,
    ready_w: OwnedFd,
    go_r: OwnedFd,
    err_w: OwnedFd,
    f: impl FnOnce() -> Result<()>,
) -> i32 {
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
    // root of the namespace (the caller's own ids are 0 there only in the unpack's layout;
    // keep-id puts them elsewhere, nomap leaves them out of the container's ids); the caller's
    // supplementary groups are not mapped
    let zero_u = nix::unistd::Uid::from_raw(0);
    let zero_g = nix::unistd::Gid::from_raw(0);
    if let Err(e) = nix::unistd::setresgid(zero_g, zero_g, zero_g)
        .and_then(|()| nix::unistd::setresuid(zero_u, zero_u, zero_u))
    {
        let _ = write!(err, "become root of the user namespace: {e}");
        return 1;
    }
    let _ = nix::unistd::setgroups(&[]);
    // gone with husk, should it be killed meanwhile: nothing of the unpack goes on writing while
    // `husk rm -f` removes the bundle (set after the credentials changed, which clear it)
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid() != parent
    {
        return 1;
    }
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
            mapping: Mapping::CallerAsRoot,
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        };
        assert_eq!(
            l.uid_triples(),
            [(0, 1000, 1), (1, 100000, 65536), (65537, 400000, 5)]
        );
        assert_eq!(
            l.uid_ids(),
            crate::image::layer::MappedIds {
                below: 65542,
                also: None
            }
        );
        assert_eq!(l.gid_triples(), [(0, 1001, 1), (1, 200000, 10)]);
        assert_eq!(l.gid_ids().below, 11);
        let (u, _) = l.spec_mappings();
        assert_eq!(u[1]["hostID"], 100000);
        assert_eq!(u[2]["containerID"], 65537);
        // the namespace of run_mapped is the container's
        assert_eq!(l.ns_uid_triples(), l.uid_triples());
        assert_eq!(l.ns_caller_at(), (0, 0));

        // keep-id: podman's three lines, the caller at its own id, 1 + the count in all
        let k = l.clone().with_mapping(Mapping::KeepId {
            uid: 1000,
            gid: 1001,
        });
        assert_eq!(
            k.uid_triples(),
            [
                (0, 100000, 1000),
                (1000, 1000, 1),
                (1001, 101000, 64536),
                (65537, 400000, 5)
            ]
        );
        assert_eq!(k.uid_ids().below, 65542);
        assert_eq!(k.gid_triples(), [(0, 200000, 10), (1001, 1001, 1)]);
        // (a gid beyond the count: podman leaves the ids between unmapped)
        assert_eq!(
            k.gid_ids(),
            crate::image::layer::MappedIds {
                below: 10,
                also: Some(1001)
            }
        );
        assert_eq!(k.ns_uid_triples(), k.uid_triples());
        assert_eq!(k.ns_caller_at(), (1000, 1001));

        // nomap: the ranges alone; run_mapped's namespace has the caller after them
        let n = l.clone().with_mapping(Mapping::NoMap);
        assert_eq!(n.uid_triples(), [(0, 100000, 65536), (65536, 400000, 5)]);
        assert_eq!(n.uid_ids().below, 65541);
        assert!(!n.uid_ids().has(65541));
        assert_eq!(n.gid_triples(), [(0, 200000, 10)]);
        assert_eq!(n.ns_caller_at(), (65541, 10));
        assert_eq!(
            n.ns_uid_triples(),
            [(0, 100000, 65536), (65536, 400000, 5), (65541, 1000, 1)]
        );
        assert_eq!(n.ns_gid_triples(), [(0, 200000, 10), (10, 1001, 1)]);
    }

    #[test]
    fn placing_the_callers_id() {
        let r = |start, count| Range { start, count };
        let one = [r(100000, 65536)];
        // keep-id of uid 0: the caller at 0, the ranges from 1 (no empty first line)
        assert_eq!(place(0, Some(0), &one), [(0, 0, 1), (1, 100000, 65536)]);
        // at the last id of the ranges: two lines, no empty third one
        assert_eq!(
            place(1000, Some(65536), &one),
            [(0, 100000, 65536), (65536, 1000, 1)]
        );
        assert_eq!(
            place(1000, Some(65535), &one),
            [(0, 100000, 65535), (65535, 1000, 1), (65536, 165535, 1)]
        );
        // a caller's id larger than the count: every range below it, a gap, the caller
        assert_eq!(
            place(65534, Some(65534), &[r(100000, 1000)]),
            [(0, 100000, 1000), (65534, 65534, 1)]
        );
        assert_eq!(
            mapped_ids(&place(65534, Some(65534), &[r(100000, 1000)])).describe(),
            "0-999 and 65534"
        );
        // the caller's id falls inside the second range
        assert_eq!(
            place(7, Some(12), &[r(500, 10), r(900, 10)]),
            [(0, 500, 10), (10, 900, 2), (12, 7, 1), (13, 902, 8)]
        );
        // no ranges: the caller alone
        assert_eq!(place(7, Some(7), &[]), [(7, 7, 1)]);
        assert_eq!(place(7, None, &[]), []);
        assert_eq!(mapped_ids(&[]).describe(), "none");
        // the container ids stop before 4294967295 (the kernel's limit)
        assert_eq!(
            place(5, None, &[r(0, 4294967295), r(1, 1)]),
            [(0, 0, 4294967295)]
        );
        assert_eq!(
            place(5, Some(0), &[r(0, 4294967295)]),
            [(0, 5, 1), (1, 0, 4294967294)]
        );
        assert_eq!(count(&[r(1, 4294967295), r(1, 4294967295)]), 8589934590);
    }
}
