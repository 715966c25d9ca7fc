//! `checkpoint` and `restore` through CRIU, as runc does them: a `criu swrk` child, one DUMP /
//! PRE_DUMP / RESTORE request built from the container's config (bind mounts as external
//! mounts, joined net/pid namespaces as external namespaces, the cgroup root, the pty master of
//! a terminal), NOTIFY messages answered, CRIU's refusal reported with its log file.

use super::lifecycle::{status_of, Global};
use super::{CheckpointOptions, CriuOptions, RestoreOptions};
use crate::criu::proto::{CgMode, Opts, PageServer, Req, ReqType};
use crate::criu::{Notify, Swrk};
use crate::process::teardown::Teardown;
use crate::state::{self, Status};
use anyhow::{bail, Context, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Name of the file in the image dir recording the link targets of init's fds 0-2 (runc's).
const DESCRIPTORS: &str = "descriptors.json";
const CRIU_LOG_LEVEL: i32 = 4;

/// A bind mount of config.json (type `bind`, or a `bind`/`rbind` option).
fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

fn mounts(spec: &Spec) -> &[Mount] {
    spec.mounts().as_deref().unwrap_or(&[])
}

/// runc's `--empty-ns`: CRIU never restores network properties (runc does not manage network
/// devices), so CLONE_NEWNET is always in the mask; `network` is the only name accepted.
fn empty_ns_mask(names: &[String]) -> Result<Option<u32>> {
    for n in names {
        if n != "network" {
            bail!("--empty-ns: namespace {n:?} is not supported (only network)");
        }
    }
    Ok(Some(libc::CLONE_NEWNET as u32))
}

fn page_server(s: &str) -> Result<PageServer> {
    let (addr, port) = s
        .rsplit_once(':')
        .with_context(|| format!("--page-server {s:?}: expected ADDRESS:PORT"))?;
    let port: i32 = port
        .parse()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .with_context(|| format!("--page-server {s:?}: port must be 1-65535"))?;
    Ok(PageServer {
        address: addr.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    })
}

/// The CRIU options both directions share.
fn common_opts(a: &CriuOptions, image: &File, work: &File, log_file: &str) -> Result<Opts> {
    Ok(Opts {
        images_dir_fd: image.as_raw_fd(),
        work_dir_fd: Some(work.as_raw_fd()),
        log_level: Some(CRIU_LOG_LEVEL),
        log_file: Some(log_file.into()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        shell_job: Some(a.shell_job),
        ext_unix_sk: Some(a.ext_unix_sk),
        tcp_established: Some(a.tcp_established),
        file_locks: Some(a.file_locks),
        auto_dedup: Some(a.auto_dedup),
        lazy_pages: Some(a.lazy_pages),
        empty_ns: empty_ns_mask(&a.empty_ns)?,
        manage_cgroups_mode: Some(match a.manage_cgroups_mode.as_deref() {
            None | Some("") => CgMode::Default,
            Some(m) => CgMode::parse(m)?,
        }),
        ..Default::default()
    })
}

/// runc's CRIU configuration file: the `org.criu.config` annotation (empty: none), else
/// `/etc/criu/runc.conf` (kept under runc's name so a host's CRIU setup for runc applies).
fn criu_config_file(spec: &Spec) -> Option<String> {
    match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.criu.config"))
    {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some("/etc/criu/runc.conf".into()),
    }
}

/// Device nodes of config.json: external mounts for CRIU (bind-mounted in user namespaces).
fn device_paths(spec: &Spec) -> Vec<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .map(|d| {
            d.iter()
                .map(|d| d.path().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

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

/// CRIU's name of a namespace type (runc's configs.NsName).
fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
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

/// `cg_root` entries: the container's cgroup is the root CRIU records and restores under.
fn cg_roots(cg: &crate::cgroups::CgroupState) -> Vec<(Option<String>, String)> {
    let slash = |p: &str| format!("/{}", p.trim_start_matches('/'));
    let mut v = vec![(None, slash(&cg.path))];
    for (ctrl, p) in &cg.paths {
        v.push((Some(ctrl.clone()), slash(p)));
    }
    v
}

/// The cgroup CRIU freezes during the dump (runc: the v2 group, or the v1 freezer).
fn freeze_cgroup(cg: &crate::cgroups::CgroupState) -> String {
    let rel = cg.path.trim_start_matches('/');
    if cg.driver == "v1" {
        let p = cg
            .paths
            .iter()
            .find(|(k, _)| k.split(',').any(|c| c == "freezer"))
            .map(|(_, p)| p.trim_start_matches('/'))
            .unwrap_or(rel);
        format!("/sys/fs/cgroup/freezer/{p}")
    } else {
        format!("/sys/fs/cgroup/{rel}")
    }
}

/// The external key runc gives a joined namespace (`extRootNetNS`, `extRootPidNS`).
fn ext_ns_key(t: LinuxNamespaceType) -> Option<&'static str> {
    match t {
        LinuxNamespaceType::Network => Some("extRootNetNS"),
        LinuxNamespaceType::Pid => Some("extRootPidNS"),
        _ => None,
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

/// The request `checkpoint` sends for a running container. Pure, for the unit tests.
pub fn dump_request(
    a: &CheckpointOptions,
    spec: &Spec,
    st: &state::ContainerState,
    image: &File,
    work: &File,
    masked_files: &[String],
) -> Result<Req> {
    let log = if a.pre_dump {
        "pre-dump.log"
    } else {
        "dump.log"
    };
    let mut o = common_opts(&a.criu, image, work, log)?;
    o.pid = Some(st.pid);
    o.root = Some(st.rootfs.to_string_lossy().into_owned());
    o.leave_running = Some(a.leave_running || a.pre_dump);
    o.tcp_skip_in_flight = Some(a.tcp_skip_in_flight);
    o.link_remap = Some(a.link_remap);
    o.parent_img = a.parent_path.clone();
    if a.parent_path.is_some() {
        o.track_mem = Some(true);
    }
    o.ps = a.page_server.as_deref().map(page_server).transpose()?;
    o.config_file = criu_config_file(spec);
    // --status-fd is served through CRIU's `status-ready` notification (runc with CRIU >= 3.15).
    if spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
    {
        o.orphan_pts_master = Some(true);
    }
    // A pre-dump only saves memory: no mounts (runc's rule).
    if !a.pre_dump {
        for m in mounts(spec).iter().filter(|m| is_bind(m)) {
            let d = m.destination().to_string_lossy().into_owned();
            o.ext_mnt.push((d.clone(), d));
        }
        for p in masked_files {
            o.ext_mnt.push((p.clone(), "/dev/null".into()));
        }
        for d in device_paths(spec) {
            o.ext_mnt.push((d.clone(), d));
        }
    }
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.as_slice())
        .unwrap_or(&[])
    {
        if let (Some(path), Some(key)) = (ns.path(), ext_ns_key(ns.typ())) {
            let ino = std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata(path)
                    .with_context(|| format!("namespace path {}", path.display()))?,
            );
            o.external
                .push(format!("{}[{ino}]:{key}", ns_name(ns.typ())));
        }
    }
    o.cg_root = cg_roots(&st.cgroup);
    o.freeze_cgroup = Some(freeze_cgroup(&st.cgroup));
    Ok(Req::new(
        if a.pre_dump {
            ReqType::PreDump
        } else {
            ReqType::Dump
        },
        Some(o),
    ))
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
        let req = dump_request(a, &spec, &st, &imgf, &workf, &masked_files(&spec, st.pid))?;
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
        let log = work.join(if a.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        });
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
    terminal: bool,
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
    state::write_atomic(&r.dir.join(state::CONFIG_FILE), &bundle.raw, 0o600)
        .context("save config.json")?;
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

    let mut o = common_opts(&a.criu, r.image, r.work, "restore.log")?;
    o.root = Some(criu_root.to_string_lossy().into_owned());
    o.rst_sibling = Some(true);
    o.evasive_devices = Some(true);
    o.orphan_pts_master = r.terminal.then_some(true);
    o.lsm_profile = a.lsm_profile.clone();
    o.lsm_mount_context = a.lsm_mount_context.clone();
    o.config_file = criu_config_file(spec);
    for m in mounts(spec).iter().filter(|m| is_bind(m)) {
        let src = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        o.ext_mnt
            .push((m.destination().to_string_lossy().into_owned(), src));
    }
    // Masked files were dumped as external mounts named /dev/null.
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty())
    {
        o.ext_mnt.push(("/dev/null".into(), "/dev/null".into()));
    }
    for d in device_paths(spec) {
        o.ext_mnt.push((d.clone(), d));
    }
    // The caller's stdio pipes stand in for the checkpointed ones (CRIU inherits our 0-2).
    for (i, d) in r.descriptors.iter().enumerate().take(3) {
        if d.contains("pipe:") {
            o.inherit_fd.push((d.clone(), i as i32));
        }
    }
    // Joined net/pid namespaces: CRIU inherits their fds (opened and checked by the plan);
    // other joined namespaces CRIU joins by path (runc's handleRestoringNamespaces).
    for (i, ns) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let Some(path) = ns.path() else { continue };
        if let Some(key) = ext_ns_key(ns.typ()) {
            let j = plan
                .join
                .iter()
                .find(|j| j.typ == ns.typ())
                .context("namespace plan lost a joined namespace")?;
            nix::fcntl::fcntl(
                &j.fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .context("let CRIU inherit a namespace fd")?;
            o.inherit_fd.push((key.into(), j.fd.as_raw_fd()));
        } else if ns.typ() == LinuxNamespaceType::Cgroup {
            bail!(
                "linux.namespaces[{i}]: CRIU cannot restore into a joined cgroup namespace ({})",
                path.display()
            );
        } else {
            o.join_ns.push((
                ns_name(ns.typ()).into(),
                path.to_string_lossy().into_owned(),
            ));
        }
    }

    if !a.detach && !a.no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    let mut sw = Swrk::start(criu, &r.log, true)?;
    // CRIU restores the tasks into its own cgroups (runc's criuApplyCgroups): move it into the
    // container's, and name them as the roots.
    undo.cgroup
        .as_ref()
        .expect("set")
        .add_task(sw.pid())
        .context("move criu into the container's cgroup")?;
    o.cg_root = cg_roots_of(sw.pid())?;
    let req = Req::new(ReqType::Restore, Some(o));
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
                if let Some(h) = spec.hooks().as_ref() {
                    let st = crate::hooks::state_json(
                        &a.id,
                        "creating",
                        n.pid.unwrap_or(0),
                        &bundle.dir,
                        spec.annotations().as_ref(),
                    );
                    #[allow(deprecated)]
                    if let Some(x) = h.prestart() {
                        crate::hooks::run_all("hooks.prestart", x, &st)?;
                    }
                    if let Some(x) = h.create_runtime() {
                        crate::hooks::run_all("hooks.createRuntime", x, &st)?;
                    }
                }
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
    let dir = g.store.create_dir(&a.id)?;
    let mut undo = Teardown::new(dir.clone());
    let restored = restore_in(
        g,
        a,
        criu,
        &bundle,
        &plan,
        RestoreInput {
            dir: &dir,
            terminal,
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
    let mut mask = nix::sys::signal::SigSet::all();
    mask.remove(nix::sys::signal::SIGKILL);
    mask.remove(nix::sys::signal::SIGSTOP);
    mask.thread_block().context("block signals")?;
    let code = super::run::forward_until_exit(st.pid, &mask, None)?;
    if let Ok(cg) = crate::cgroups::from_state(&st.cgroup) {
        let _ = cg.kill_all(nix::sys::signal::SIGKILL);
    }
    while let Ok(ws) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
        if ws == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
    super::lifecycle::destroy(g, &st)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> CheckpointOptions {
        use clap::Parser;
        let mut v = vec!["husk", "checkpoint"];
        v.extend_from_slice(extra);
        v.push("c1");
        match crate::cli::Cli::try_parse_from(v).unwrap().command {
            Some(crate::cli::Command::Checkpoint(a)) => a.into(),
            _ => unreachable!(),
        }
    }

    fn st() -> state::ContainerState {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "id": "c1", "pid": 4242, "pidStartTime": 1,
            "bundle": "/b", "rootfs": "/b/rootfs", "created": "x", "owner": "root",
            "cgroup": {"driver": "v2", "path": "husk/c1"}
        }))
        .unwrap()
    }

    fn spec(extra: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"terminal": true, "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["bind", "ro"]}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}]}
        });
        if let serde_json::Value::Object(m) = extra {
            for (k, x) in m {
                v[k] = x;
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dump_request_carries_the_container() {
        let d = tempfile::tempdir().unwrap();
        let f = File::open(d.path()).unwrap();
        let a = args(&[
            "--tcp-established",
            "--manage-cgroups-mode",
            "full",
            "--empty-ns",
            "network",
        ]);
        let r = dump_request(
            &a,
            &spec(serde_json::json!({})),
            &st(),
            &f,
            &f,
            &["/proc/kcore".into()],
        )
        .unwrap();
        assert_eq!(r.typ, ReqType::Dump);
        let o = r.opts.unwrap();
        assert_eq!(o.pid, Some(4242));
        assert_eq!(o.root.as_deref(), Some("/b/rootfs"));
        assert_eq!(o.leave_running, Some(false));
        assert_eq!(o.tcp_established, Some(true));
        assert_eq!(o.manage_cgroups_mode, Some(CgMode::Full));
        assert_eq!(o.empty_ns, Some(libc::CLONE_NEWNET as u32));
        assert_eq!(o.orphan_pts_master, Some(true));
        assert_eq!(o.images_dir_fd, f.as_raw_fd());
        assert_eq!(
            o.ext_mnt,
            [
                ("/data".to_string(), "/data".to_string()),
                ("/etc/hosts".into(), "/etc/hosts".into()),
                ("/proc/kcore".into(), "/dev/null".into())
            ]
        );
        assert_eq!(o.cg_root, [(None, "/husk/c1".to_string())]);
        assert_eq!(o.freeze_cgroup.as_deref(), Some("/sys/fs/cgroup/husk/c1"));
        let ino =
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata("/proc/self/ns/net").unwrap());
        assert_eq!(o.external, [format!("net[{ino}]:extRootNetNS")]);
        assert_eq!(o.log_file.as_deref(), Some("dump.log"));
        assert_eq!(o.config_file.as_deref(), Some("/etc/criu/runc.conf"));
        assert_eq!(o.status_fd, None, "--status-fd is served by notification");
        // and it encodes
        assert!(!Req::new(ReqType::Dump, Some(o)).encode().is_empty());
    }

    #[test]
    fn pre_dump_and_page_server() {
        let d = tempfile::tempdir().unwrap();
        let f = File::open(d.path()).unwrap();
        let a = args(&[
            "--pre-dump",
            "--parent-path",
            "../p1",
            "--page-server",
            "10.0.0.1:27",
        ]);
        let r = dump_request(&a, &spec(serde_json::json!({})), &st(), &f, &f, &[]).unwrap();
        assert_eq!(r.typ, ReqType::PreDump);
        let o = r.opts.unwrap();
        assert_eq!(o.track_mem, Some(true));
        assert_eq!(o.leave_running, Some(true));
        assert_eq!(o.parent_img.as_deref(), Some("../p1"));
        assert_eq!(
            o.ps,
            Some(PageServer {
                address: "10.0.0.1".into(),
                port: 27
            })
        );
        assert!(o.ext_mnt.is_empty(), "a pre-dump saves no mounts");
        assert_eq!(o.manage_cgroups_mode, Some(CgMode::Default));
        let a = args(&["--pre-dump"]);
        let o = dump_request(&a, &spec(serde_json::json!({})), &st(), &f, &f, &[])
            .unwrap()
            .opts
            .unwrap();
        assert_eq!(o.track_mem, None, "runc tracks memory only with a parent");
    }

    #[test]
    fn bad_flag_values_name_the_flag() {
        let d = tempfile::tempdir().unwrap();
        let f = File::open(d.path()).unwrap();
        for (flags, word) in [
            (
                vec!["--manage-cgroups-mode", "nope"],
                "--manage-cgroups-mode",
            ),
            (vec!["--empty-ns", "nope"], "--empty-ns"),
            (vec!["--page-server", "nohost"], "--page-server"),
            (vec!["--page-server", "h:0"], "--page-server"),
        ] {
            let e = dump_request(
                &args(&flags),
                &spec(serde_json::json!({})),
                &st(),
                &f,
                &f,
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(word), "{flags:?}: {e}");
        }
    }

    #[test]
    fn criu_config_annotation_and_devices() {
        let d = tempfile::tempdir().unwrap();
        let f = File::open(d.path()).unwrap();
        let sp = spec(serde_json::json!({
            "annotations": {"org.criu.config": ""},
            "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        }));
        let o = dump_request(&args(&[]), &sp, &st(), &f, &f, &[])
            .unwrap()
            .opts
            .unwrap();
        assert_eq!(o.config_file, None, "an empty org.criu.config means none");
        assert_eq!(
            o.empty_ns,
            Some(libc::CLONE_NEWNET as u32),
            "runc: net always empty"
        );
        assert!(o
            .ext_mnt
            .contains(&("/dev/fuse".into(), "/dev/fuse".into())));
        let sp = spec(serde_json::json!({"annotations": {"org.criu.config": "/my.conf"}}));
        assert_eq!(criu_config_file(&sp).as_deref(), Some("/my.conf"));
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
            eprintln!("SKIP restore_mount_points_as_runc: needs root (bind mounts)");
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

    #[test]
    fn v1_freezer_and_roots() {
        let mut s = st();
        s.cgroup = serde_json::from_value(serde_json::json!({
            "driver": "v1", "path": "husk/c1", "paths": {"cpu,cpuacct": "other/c1", "freezer": "frz/c1"}
        }))
        .unwrap();
        assert_eq!(freeze_cgroup(&s.cgroup), "/sys/fs/cgroup/freezer/frz/c1");
        let r = cg_roots(&s.cgroup);
        assert_eq!(r[0], (None, "/husk/c1".to_string()));
        assert!(r.contains(&(Some("cpu,cpuacct".into()), "/other/c1".into())));
    }
}
