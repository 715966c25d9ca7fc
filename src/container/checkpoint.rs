//! `checkpoint` and `restore` through CRIU, as runc does them: a `criu swrk` child, one DUMP /
//! PRE_DUMP / RESTORE request built from the container's config (bind mounts as external
//! mounts, joined net/pid namespaces as external namespaces, the cgroup root, the pty master of
//! a terminal), NOTIFY messages answered, CRIU's refusal reported with its log file.

use super::lifecycle::{status_of, Global};
use super::{CheckpointOptions, CriuOptions, RestoreOptions};
use crate::criu::proto::ReqType;
use crate::criu::request::{self, is_bind, mounts};
use crate::criu::{Notify, Swrk};
use crate::process::teardown::Teardown;
use crate::state::{self, Status};
use anyhow::{bail, Context, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Name of the file in the image dir recording the link targets of init's fds 0-2 (runc's).
const DESCRIPTORS: &str = "descriptors.json";

/// The `cg_root`s runc gives a restore: the cgroups CRIU itself was moved into, as listed in
/// /proc/PID/cgroup (one entry per controller; "" for the v2 hierarchy).
fn cg_roots_of(pid: i32) -> Result<Vec<(Option<String>, String)>> {
    let p = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&p).with_context(|| format!("read {p}"))?;
    let mut v = Vec::new();
    for l in crate::sys::procfmt::proc_cgroup(&text) {
        if l.controllers.is_empty() {
            // the cgroup2 line: CRIU's root for the unnamed hierarchy
            v.push((Some(String::new()), l.path));
            continue;
        }
        for c in l.controllers {
            v.push((Some(c), l.path.clone()));
        }
    }
    Ok(v)
}

/// `--status-fd` must be an open, writable fd (runc's check).
fn check_status_fd(fd: i32) -> Result<()> {
    // SAFETY: F_GETFL only reads the flags of fd, whatever it is; an invalid fd gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        bail!("--status-fd {fd}: {}", std::io::Error::last_os_error());
    }
    if flags & (libc::O_WRONLY | libc::O_RDWR) == 0 {
        bail!("--status-fd {fd}: not writable");
    }
    Ok(())
}

/// Lazy pages: CRIU says `status-ready` when its page server is up; runc writes \0 to the
/// status fd then and closes it.
fn status_ready(fd: Option<i32>) {
    if let Some(fd) = fd {
        // SAFETY: fd was checked open and writable by check_status_fd; it is written once and
        // closed, and nothing else in husk uses it.
        unsafe {
            if libc::write(fd, [0u8].as_ptr().cast(), 1) != 1 {
                crate::logging::warn(&format!("--status-fd {fd}: cannot write \\0"));
            }
            libc::close(fd);
        }
    }
}

/// Make a directory (and parents) 0700 if missing; return its absolute path and an O_DIRECTORY fd.
fn open_dir(flag: &str, p: &Path, create: bool) -> Result<(PathBuf, File)> {
    let abs = std::path::absolute(p).with_context(|| format!("{flag} {}", p.display()))?;
    if create {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&abs)
            .with_context(|| format!("{flag}: create directory {}", abs.display()))?;
    }
    let f =
        File::open(&abs).with_context(|| format!("{flag}: open directory {}", abs.display()))?;
    if !f.metadata()?.is_dir() {
        bail!("{flag}: {} is not a directory", abs.display());
    }
    Ok((abs, f))
}

fn image_and_work(a: &CriuOptions, create_image: bool) -> Result<(PathBuf, File, PathBuf, File)> {
    let image = match &a.image_path {
        Some(p) => p.clone(),
        None => std::env::current_dir()
            .context("--image-path not given and the current directory is unknown")?
            .join("checkpoint"),
    };
    let (image, imgf) = open_dir("--image-path", &image, create_image)?;
    let (work, workf) = match &a.work_path {
        Some(w) => open_dir("--work-path", w, true)?,
        None => (image.clone(), imgf.try_clone()?),
    };
    Ok((image, imgf, work, workf))
}

/// The flags of `checkpoint` that shape its request.
fn dump_flags(a: &CheckpointOptions) -> request::Dump<'_> {
    request::Dump {
        pre_dump: a.pre_dump,
        leave_running: a.leave_running,
        tcp_skip_in_flight: a.tcp_skip_in_flight,
        link_remap: a.link_remap,
        parent_path: a.parent_path.as_deref(),
        page_server: a.page_server.as_deref(),
    }
}

/// The inode of each joined net and pid namespace of the config (CRIU's external namespaces).
fn joined_ns_inodes(spec: &Spec) -> Result<Vec<(LinuxNamespaceType, u64)>> {
    let mut v = Vec::new();
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.as_slice())
        .unwrap_or(&[])
    {
        if let (Some(path), Some(_)) = (ns.path(), request::ext_ns_key(ns.typ())) {
            let ino = std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata(path)
                    .with_context(|| format!("namespace path {}", path.display()))?,
            );
            v.push((ns.typ(), ino));
        }
    }
    Ok(v)
}

/// Masked paths that are files (masked by binding /dev/null): CRIU sees them as external
/// mounts of /dev/null.
fn masked_files(spec: &Spec, pid: i32) -> Vec<String> {
    let Some(paths) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
    else {
        return Vec::new();
    };
    paths
        .iter()
        .filter(|p| {
            std::fs::metadata(format!("/proc/{pid}/root/{}", p.trim_start_matches('/')))
                .is_ok_and(|m| !m.is_dir())
        })
        .cloned()
        .collect()
}

pub fn checkpoint(g: &Global, a: &CheckpointOptions, criu: &str) -> Result<()> {
    state::validate_id(&a.id)?;
    let _lock = g.store.lock(&a.id)?;
    let st = g.store.load(&a.id)?;
    match status_of(g, &st) {
        Status::Running | Status::Paused => {}
        // runc's words, plus the phrase callers match for a stopped container.
        Status::Stopped => {
            bail!("container not running: it cannot be checkpointed in stopped state")
        }
        s => bail!("container cannot be checkpointed in {} state", s.as_str()),
    }
    let cfg = g.store.dir(&a.id).join(state::CONFIG_FILE);
    let raw = std::fs::read(&cfg).with_context(|| format!("read {}", cfg.display()))?;
    let spec = crate::spec::parse(&raw).with_context(|| format!("parse {}", cfg.display()))?;
    // Directories this checkpoint makes are removed again if it fails while they are empty
    // (CRIU's log, named in the error, keeps its directory).
    let made: Vec<PathBuf> = [a.criu.image_path.clone(), a.criu.work_path.clone()]
        .into_iter()
        .flatten()
        .chain(
            a.criu
                .image_path
                .is_none()
                .then(|| std::env::current_dir().ok().map(|d| d.join("checkpoint")))
                .flatten(),
        )
        .filter_map(|p| std::path::absolute(p).ok())
        .filter(|p| !p.exists())
        .collect();
    let res = (|| -> Result<()> {
        let (image, imgf, work, workf) = image_and_work(&a.criu, true)?;
        if let Some(parent) = &a.parent_path {
            if Path::new(parent).is_absolute() {
                bail!("--parent-path {parent}: must be relative (to --image-path)");
            }
            if !image.join(parent).is_dir() {
                bail!(
                    "--parent-path {parent}: {} is not a directory",
                    image.join(parent).display()
                );
            }
        }
        if let Some(fd) = a.status_fd {
            check_status_fd(fd)?;
        }
        let running = request::Running {
            masked_files: masked_files(&spec, st.pid),
            joined_ns: joined_ns_inodes(&spec)?,
        };
        let dirs = request::Dirs {
            image: imgf.as_raw_fd(),
            work: workf.as_raw_fd(),
        };
        let req = request::dump(&a.criu, &dump_flags(a), &spec, &st, dirs, &running)?;
        if !a.pre_dump {
            // What init's stdio is, so restore can hand over the pipes (runc's descriptors.json).
            let fds: Vec<String> = (0..3)
                .map(|i| {
                    std::fs::read_link(format!("/proc/{}/fd/{i}", st.pid))
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            state::write_atomic(
                &image.join(DESCRIPTORS),
                serde_json::to_string(&fds)?.as_bytes(),
                0o600,
            )?;
        }
        let log = work.join(request::dump_log(&dump_flags(a)));
        let mut status_fd = a.status_fd;
        let res = Swrk::start(criu, &log, false).and_then(|mut sw| {
            sw.call(&req, |n: Notify| {
                crate::logging::debug(&format!("criu notify: {}", n.script));
                if n.script == "status-ready" {
                    status_ready(status_fd.take());
                }
                Ok(())
            })?;
            sw.finish(req.typ)
        });
        if let Err(e) = res {
            // Nothing half made: only CRIU's log stays (it is named in the error).
            let _ = std::fs::remove_file(image.join(DESCRIPTORS));
            return Err(e);
        }
        Ok(())
    })();
    if let Err(e) = res {
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(e);
    }
    if !a.leave_running && !a.pre_dump {
        // runc destroys the checkpointed container: CRIU has killed its processes.
        if state::process_start_time(st.pid) == Some(st.pid_start_time) {
            crate::process::kill_and_wait(st.pid, false);
        }
        super::lifecycle::destroy(g, &st)?;
    }
    Ok(())
}

/// What restore prepared before its state dir existed.
struct RestoreInput<'a> {
    dir: &'a Path,
    descriptors: &'a [String],
    console: Option<&'a OwnedFd>,
    image: &'a File,
    work: &'a File,
    log: PathBuf,
}

/// Restore into the state dir `r.dir`: what exists is noted in `undo` as it is made.
fn restore_in(
    g: &Global,
    a: &RestoreOptions,
    criu: &str,
    bundle: &crate::spec::Bundle,
    plan: &crate::namespaces::Plan,
    r: RestoreInput,
    undo: &mut Teardown,
) -> Result<state::ContainerState> {
    let spec = &bundle.spec;
    undo.cgroup = Some(crate::process::make_cgroup(
        spec,
        &a.id,
        g.systemd_cgroup,
        g.rootless,
    )?);

    let criu_root = r.dir.join("criu-root");
    std::fs::create_dir(&criu_root).with_context(|| format!("mkdir {}", criu_root.display()))?;
    nix::mount::mount(
        Some(&bundle.rootfs),
        &criu_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| {
        format!(
            "bind rootfs {} on {}",
            bundle.rootfs.display(),
            criu_root.display()
        )
    })?;
    undo.criu_root = Some(criu_root.clone());
    prepare_restore_mounts(&bundle.rootfs, spec, &mut undo.mounts)?;

    // Joined net/pid namespaces: CRIU inherits their fds (opened and checked by the plan).
    let mut ns_fds = Vec::new();
    for j in plan
        .join
        .iter()
        .filter(|j| request::ext_ns_key(j.typ).is_some())
    {
        nix::fcntl::fcntl(
            &j.fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .context("let CRIU inherit a namespace fd")?;
        ns_fds.push((j.typ, j.fd.as_raw_fd()));
    }
    let flags = request::Restore {
        root: criu_root.to_string_lossy().into_owned(),
        descriptors: r.descriptors,
        ns_fds,
        lsm_profile: a.lsm_profile.as_deref(),
        lsm_mount_context: a.lsm_mount_context.as_deref(),
    };
    let dirs = request::Dirs {
        image: r.image.as_raw_fd(),
        work: r.work.as_raw_fd(),
    };
    let mut req = request::restore(&a.criu, &flags, spec, dirs)?;

    if !a.detach && !a.no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    let mut sw = Swrk::start(criu, &r.log, true)?;
    // CRIU restores the tasks into its own cgroups (runc's criuApplyCgroups): move it into the
    // container's, and name them as the roots.
    undo.cgroup
        .as_ref()
        .expect("set")
        .place_init(sw.pid())
        .context("move criu into the container's cgroup")?;
    if let Some(o) = req.opts.as_mut() {
        o.cg_root = cg_roots_of(sw.pid())?;
    }
    let mut notified_pid = None;
    let resp = sw.call(&req, |n: Notify| {
        crate::logging::debug(&format!("criu notify: {}", n.script));
        match n.script.as_str() {
            "orphan-pts-master" => {
                let (Some(sock), Some(master)) = (r.console, n.fd) else {
                    bail!("criu sent the pty master but there is no console socket");
                };
                crate::process::console::send_fd(sock.as_raw_fd(), "console", master.as_raw_fd())
                    .context("--console-socket: send the pty master")?;
            }
            "setup-namespaces" => {
                // runc runs prestart and createRuntime hooks here, with the restored pid.
                crate::process::run_create_hooks(&a.id, n.pid.unwrap_or(0), bundle)?;
            }
            "post-restore" => {
                if let Some(p) = n.pid.filter(|p| *p > 0) {
                    notified_pid = Some(p);
                }
            }
            _ => {}
        }
        Ok(())
    });
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = notified_pid {
                undo.pid = p;
            }
            return Err(e);
        }
    };
    if let Err(e) = sw.finish(ReqType::Restore) {
        undo.pid = resp.restore_pid.or(notified_pid).unwrap_or(0);
        return Err(e);
    }
    let pid = resp
        .restore_pid
        .or(notified_pid)
        .context("criu restore: no pid of the restored init in its answer")?;
    undo.pid = pid;
    undo.unmount_temporary();
    let own_pid_ns = plan.creates(libc::CLONE_NEWPID);
    let cg = undo.cgroup.as_deref().expect("set");
    let st = crate::process::new_state(bundle, &a.id, pid, cg, own_pid_ns, g.systemd_cgroup)?;
    g.store.save(&st)?;
    if let Some(pf) = &a.pid_file {
        crate::process::write_pid_file(pf, pid)?;
    }
    Ok(st)
}

/// runc's prepareCriuRestoreMounts: create the mount points CRIU will mount on (except under a
/// tmpfs, whose content CRIU restores), and bind the bind-mount sources for the time of the
/// restore so mount points inside them can exist.
fn prepare_restore_mounts(rootfs: &Path, spec: &Spec, umounts: &mut Vec<PathBuf>) -> Result<()> {
    use crate::rootfs::resolve;
    use nix::sys::stat::Mode;
    let tmpfs: Vec<&Path> = mounts(spec)
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let root =
        resolve::open_root(rootfs).with_context(|| format!("open rootfs {}", rootfs.display()))?;
    for (i, m) in mounts(spec).iter().enumerate() {
        let dest = m.destination();
        // Below a tmpfs (not the tmpfs itself): CRIU restores the tmpfs content. cgroup mounts
        // need no mount point (runc's makeCriuRestoreMountpoints).
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t))
            || m.typ().as_deref() == Some("cgroup")
        {
            continue;
        }
        let ctx = || format!("mounts[{i}] ({}): mount point for restore", dest.display());
        let bind = is_bind(m);
        let src = m.source().as_deref();
        let src_is_file =
            bind && src.is_some_and(|s| std::fs::metadata(s).is_ok_and(|m| !m.is_dir()));
        let fd: OwnedFd = if src_is_file {
            resolve::create_file(root.as_fd(), dest, Mode::from_bits_truncate(0o644))
                .with_context(ctx)?
        } else {
            resolve::mkdir_all(root.as_fd(), dest, Mode::from_bits_truncate(0o755))
                .with_context(ctx)?
        };
        if bind {
            let src =
                src.with_context(|| format!("mounts[{i}].source: missing for a bind mount"))?;
            let target = resolve::fd_path(fd.as_fd()).with_context(ctx)?;
            crate::rootfs::mounts::mount_on_fd(
                Some(&src.to_string_lossy()),
                fd.as_fd(),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .with_context(|| format!("mounts[{i}]: bind {} for restore", src.display()))?;
            umounts.push(target);
        }
    }
    Ok(())
}

pub fn restore(g: &Global, a: &RestoreOptions, criu: &str) -> Result<i32> {
    state::validate_id(&a.id)?;
    let bundle = crate::spec::load(&a.bundle)?;
    let spec = &bundle.spec;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && a.console_socket.is_none() {
        bail!(
            "process.terminal is true: restore needs --console-socket to hand over the pty master"
        );
    }
    let (image, imgf, work, workf) = image_and_work(&a.criu, false)?;
    let descriptors: Vec<String> = match std::fs::read(image.join(DESCRIPTORS)) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("parse {}", image.join(DESCRIPTORS).display()))?,
        Err(_) => Vec::new(),
    };
    let console = a
        .console_socket
        .as_deref()
        .map(crate::process::console::connect)
        .transpose()?;
    let plan = crate::namespaces::Plan::from_spec(spec)?;
    if g.store.dir(&a.id).exists() {
        bail!("container {} already exists", a.id);
    }
    // (the lock is held until the restore ended, as create holds it)
    let (mut undo, _lock) = crate::process::make_state_dir(&g.store, &a.id, &bundle, None)?;
    let dir = undo.dir.clone();
    let restored = restore_in(
        g,
        a,
        criu,
        &bundle,
        &plan,
        RestoreInput {
            dir: &dir,
            descriptors: &descriptors,
            console: console.as_ref(),
            image: &imgf,
            work: &workf,
            log: work.join("restore.log"),
        },
        &mut undo,
    );
    let st = match restored {
        Ok(st) => st,
        Err(e) => {
            undo.run_warn();
            return Err(e);
        }
    };
    if a.detach {
        return Ok(0);
    }
    // rst_sibling: the restored init is our child. Forward signals until it exits (as `run`
    // does), then remove the container. Signals are blocked only now: CRIU itself relies on
    // SIGCHLD and must not inherit a blocked mask.
    let mask = super::foreground::block_signals()?;
    let code = super::foreground::forward_until_exit(st.pid, &mask, None)?;
    super::foreground::remove_after_exit(g, &st)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({"ociVersion": "1.2.0", "root": {"path": "rootfs"}});
        if let serde_json::Value::Object(m) = extra {
            for (k, x) in m {
                v[k] = x;
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn restore_cgroup_roots_from_proc() {
        let r = cg_roots_of(std::process::id() as i32).unwrap();
        assert!(!r.is_empty());
        if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            assert!(
                r.iter()
                    .any(|(c, p)| c.as_deref() == Some("") && p.starts_with('/')),
                "{r:?}"
            );
        }
    }

    #[test]
    fn status_fd_must_be_writable() {
        let e = check_status_fd(987_654).unwrap_err().to_string();
        assert!(e.contains("--status-fd 987654"), "{e}");
        let r = File::open("/dev/null").unwrap();
        let e = check_status_fd(r.as_raw_fd()).unwrap_err().to_string();
        assert!(e.contains("not writable"), "{e}");
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        check_status_fd(w.as_raw_fd()).unwrap();
    }

    #[test]
    fn restore_mount_points_as_runc() {
        if nix::unistd::geteuid().as_raw() != 0 {
            crate::testing::skip("restore_mount_points_as_runc", "needs root (bind mounts)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("inner")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let sp = spec(serde_json::json!({"mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
            {"destination": "/data", "type": "bind", "source": src.to_string_lossy(), "options": ["rbind"]},
            {"destination": "/data/inner/x", "type": "tmpfs", "source": "tmpfs"}
        ]}));
        let mut um = Vec::new();
        let r = prepare_restore_mounts(&root, &sp, &mut um);
        // the nested mount point was made inside the bound source, through the bind
        let nested = src.join("inner/x").is_dir();
        for m in um.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        r.unwrap();
        assert!(
            root.join("dev").is_dir(),
            "the tmpfs mount point itself is made"
        );
        assert!(!root.join("dev/pts").exists(), "nothing below a tmpfs");
        assert!(
            !root.join("sys/fs/cgroup").exists(),
            "no cgroup mount point"
        );
        assert!(root.join("data").is_dir());
        assert_eq!(um.len(), 1, "one bind to undo: {um:?}");
        assert!(
            nested,
            "mount points inside a bind mount go through the bind"
        );
    }
}
