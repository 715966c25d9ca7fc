//! The CRIU requests of `checkpoint` and `restore`, built as runc builds them, as pure
//! functions of the options, the container's config and state, and what the caller opened
//! (image and work directory fds, joined namespaces): no file is read and nothing is changed
//! here, so the unit tests below see exactly the request each option set gives.

use super::proto::{CgMode, Opts, PageServer, Req, ReqType};
use crate::cgroups::CgroupState;
use crate::state::ContainerState;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::os::fd::RawFd;
use std::path::PathBuf;

/// CRIU's log level in every request (runc's).
const LOG_LEVEL: i32 = 4;

/// What `checkpoint` and `restore` share.
#[derive(Debug, Clone, Default)]
pub struct CriuOptions {
    /// Directory for the checkpoint images (default: ./checkpoint).
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (default: the image path).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// soft, full, strict or ignore.
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces to create empty rather than restore.
    pub empty_ns: Vec<String>,
    pub lazy_pages: bool,
    pub auto_dedup: bool,
}

/// The image and work directories, opened by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Dirs {
    pub image: RawFd,
    pub work: RawFd,
}

/// The flags of a dump (`checkpoint`) besides [`CriuOptions`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Dump<'a> {
    pub pre_dump: bool,
    pub leave_running: bool,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
    /// Parent images, relative to the image dir.
    pub parent_path: Option<&'a str>,
    /// ADDRESS:PORT of a page server.
    pub page_server: Option<&'a str>,
}

/// What a dump needs to know of the running container besides its config and state.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// Masked paths that are files (masked by binding /dev/null).
    pub masked_files: Vec<String>,
    /// The inode of each joined namespace of the config (by type).
    pub joined_ns: Vec<(LinuxNamespaceType, u64)>,
}

/// The flags and prepared parts of a restore besides [`CriuOptions`].
#[derive(Debug, Clone, Default)]
pub struct Restore<'a> {
    /// The directory CRIU restores the root into (a bind of the bundle's rootfs).
    pub root: String,
    /// Link targets of the checkpointed init's fds 0-2 (the image's descriptors.json).
    pub descriptors: &'a [String],
    /// Joined namespaces CRIU inherits as fds (net and pid), by type.
    pub ns_fds: Vec<(LinuxNamespaceType, RawFd)>,
    pub lsm_profile: Option<&'a str>,
    pub lsm_mount_context: Option<&'a str>,
}

/// A bind mount of config.json (type `bind`, or a `bind`/`rbind` option).
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

pub fn mounts(spec: &Spec) -> &[Mount] {
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
fn common_opts(a: &CriuOptions, dirs: Dirs, log_file: &str) -> Result<Opts> {
    Ok(Opts {
        images_dir_fd: dirs.image,
        work_dir_fd: Some(dirs.work),
        log_level: Some(LOG_LEVEL),
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
pub fn config_file(spec: &Spec) -> Option<String> {
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

/// `cg_root` entries: the container's cgroup is the root CRIU records and restores under.
fn cg_roots(cg: &CgroupState) -> Vec<(Option<String>, String)> {
    let slash = |p: &str| format!("/{}", p.trim_start_matches('/'));
    let mut v = vec![(None, slash(&cg.path))];
    for (ctrl, p) in &cg.paths {
        v.push((Some(ctrl.clone()), slash(p)));
    }
    v
}

/// The cgroup CRIU freezes during the dump (runc: the v2 group, or the v1 freezer).
fn freeze_cgroup(cg: &CgroupState) -> String {
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
pub fn ext_ns_key(t: LinuxNamespaceType) -> Option<&'static str> {
    match t {
        LinuxNamespaceType::Network => Some("extRootNetNS"),
        LinuxNamespaceType::Pid => Some("extRootPidNS"),
        _ => None,
    }
}

/// The namespaces of config.json.
fn namespaces(spec: &Spec) -> &[oci_spec::runtime::LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.as_slice())
        .unwrap_or(&[])
}

/// The name of a dump's log file (in the work dir).
pub fn dump_log(d: &Dump) -> &'static str {
    if d.pre_dump {
        "pre-dump.log"
    } else {
        "dump.log"
    }
}

/// The DUMP (or PRE_DUMP) request for the running container `st`.
pub fn dump(
    c: &CriuOptions,
    d: &Dump,
    spec: &Spec,
    st: &ContainerState,
    dirs: Dirs,
    running: &Running,
) -> Result<Req> {
    let mut o = common_opts(c, dirs, dump_log(d))?;
    o.pid = Some(st.pid);
    o.root = Some(st.rootfs.to_string_lossy().into_owned());
    o.leave_running = Some(d.leave_running || d.pre_dump);
    o.tcp_skip_in_flight = Some(d.tcp_skip_in_flight);
    o.link_remap = Some(d.link_remap);
    o.parent_img = d.parent_path.map(str::to_string);
    if d.parent_path.is_some() {
        o.track_mem = Some(true);
    }
    o.ps = d.page_server.map(page_server).transpose()?;
    o.config_file = config_file(spec);
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
    if !d.pre_dump {
        for m in mounts(spec).iter().filter(|m| is_bind(m)) {
            let d = m.destination().to_string_lossy().into_owned();
            o.ext_mnt.push((d.clone(), d));
        }
        for p in &running.masked_files {
            o.ext_mnt.push((p.clone(), "/dev/null".into()));
        }
        for d in device_paths(spec) {
            o.ext_mnt.push((d.clone(), d));
        }
    }
    for ns in namespaces(spec) {
        if let (Some(path), Some(key)) = (ns.path(), ext_ns_key(ns.typ())) {
            let ino = running
                .joined_ns
                .iter()
                .find(|(t, _)| *t == ns.typ())
                .map(|(_, ino)| *ino)
                .with_context(|| format!("namespace path {}: inode unknown", path.display()))?;
            o.external.push(format!(
                "{}[{ino}]:{key}",
                crate::namespaces::proc_name(ns.typ())
            ));
        }
    }
    o.cg_root = cg_roots(&st.cgroup);
    o.freeze_cgroup = Some(freeze_cgroup(&st.cgroup));
    let typ = if d.pre_dump {
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    Ok(Req::new(typ, Some(o)))
}

/// The RESTORE request for the bundle's config. Its `cg_root` is left empty: those are the
/// cgroups CRIU itself runs in, known once it is started.
pub fn restore(c: &CriuOptions, r: &Restore, spec: &Spec, dirs: Dirs) -> Result<Req> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut o = common_opts(c, dirs, "restore.log")?;
    o.root = Some(r.root.clone());
    o.rst_sibling = Some(true);
    o.evasive_devices = Some(true);
    o.orphan_pts_master = terminal.then_some(true);
    o.lsm_profile = r.lsm_profile.map(str::to_string);
    o.lsm_mount_context = r.lsm_mount_context.map(str::to_string);
    o.config_file = config_file(spec);
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
    // Joined net/pid namespaces: CRIU inherits their fds; other joined namespaces CRIU joins
    // by path (runc's handleRestoringNamespaces).
    for (i, ns) in namespaces(spec).iter().enumerate() {
        let Some(path) = ns.path() else { continue };
        if let Some(key) = ext_ns_key(ns.typ()) {
            let fd = r
                .ns_fds
                .iter()
                .find(|(t, _)| *t == ns.typ())
                .map(|(_, fd)| *fd)
                .context("namespace plan lost a joined namespace")?;
            o.inherit_fd.push((key.into(), fd));
        } else if ns.typ() == LinuxNamespaceType::Cgroup {
            bail!(
                "linux.namespaces[{i}]: CRIU cannot restore into a joined cgroup namespace ({})",
                path.display()
            );
        } else {
            o.join_ns.push((
                crate::namespaces::proc_name(ns.typ()).into(),
                path.to_string_lossy().into_owned(),
            ));
        }
    }
    Ok(Req::new(ReqType::Restore, Some(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRS: Dirs = Dirs { image: 7, work: 8 };

    fn st() -> ContainerState {
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
            "process": {
                "terminal": true, "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {
                    "destination": "/data", "type": "bind", "source": "/srv/data",
                    "options": ["rbind"]
                },
                {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["bind", "ro"]}
            ],
            "linux": {"namespaces": [
                {"type": "mount"}, {"type": "network", "path": "/run/netns/n1"}
            ]}
        });
        if let serde_json::Value::Object(m) = extra {
            for (k, x) in m {
                v[k] = x;
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn running() -> Running {
        Running {
            masked_files: vec!["/proc/kcore".into()],
            joined_ns: vec![(LinuxNamespaceType::Network, 4026531840)],
        }
    }

    fn opts(r: Req) -> Opts {
        r.opts.expect("a request carries options")
    }

    #[test]
    fn dump_carries_the_container() {
        let c = CriuOptions {
            tcp_established: true,
            manage_cgroups_mode: Some("full".into()),
            empty_ns: vec!["network".into()],
            ..Default::default()
        };
        let r = dump(
            &c,
            &Dump::default(),
            &spec(serde_json::json!({})),
            &st(),
            DIRS,
            &running(),
        )
        .unwrap();
        assert_eq!(r.typ, ReqType::Dump);
        let o = opts(r);
        assert_eq!(o.pid, Some(4242));
        assert_eq!(o.root.as_deref(), Some("/b/rootfs"));
        assert_eq!(o.leave_running, Some(false));
        assert_eq!(o.tcp_established, Some(true));
        assert_eq!(o.ext_unix_sk, Some(false));
        assert_eq!(o.manage_cgroups, Some(true));
        assert_eq!(o.manage_cgroups_mode, Some(CgMode::Full));
        assert_eq!(o.empty_ns, Some(libc::CLONE_NEWNET as u32));
        assert_eq!(o.orphan_pts_master, Some(true));
        assert_eq!((o.images_dir_fd, o.work_dir_fd), (7, Some(8)));
        assert_eq!(o.log_level, Some(LOG_LEVEL));
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
        assert_eq!(o.external, ["net[4026531840]:extRootNetNS"]);
        assert_eq!(o.log_file.as_deref(), Some("dump.log"));
        assert_eq!(o.config_file.as_deref(), Some("/etc/criu/runc.conf"));
        assert_eq!(o.status_fd, None, "--status-fd is served by notification");
        assert_eq!((o.rst_sibling, o.evasive_devices), (None, None));
        // and it encodes
        assert!(!Req::new(ReqType::Dump, Some(o)).encode().is_empty());
    }

    #[test]
    fn pre_dump_and_page_server() {
        let d = Dump {
            pre_dump: true,
            parent_path: Some("../p1"),
            page_server: Some("10.0.0.1:27"),
            ..Default::default()
        };
        let c = CriuOptions::default();
        let sp = spec(serde_json::json!({}));
        let r = dump(&c, &d, &sp, &st(), DIRS, &running()).unwrap();
        assert_eq!(r.typ, ReqType::PreDump);
        let o = opts(r);
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
        assert_eq!(o.log_file.as_deref(), Some("pre-dump.log"));
        let d = Dump {
            pre_dump: true,
            page_server: Some("[::1]:9"),
            ..Default::default()
        };
        let o = opts(dump(&c, &d, &sp, &st(), DIRS, &running()).unwrap());
        assert_eq!(o.track_mem, None, "runc tracks memory only with a parent");
        assert_eq!(o.ps.map(|p| p.address).as_deref(), Some("::1"));
    }

    #[test]
    fn leave_running_and_v1_freezer() {
        let mut s = st();
        s.cgroup = serde_json::from_value(serde_json::json!({
            "driver": "v1", "path": "husk/c1",
            "paths": {"cpu,cpuacct": "other/c1", "freezer": "frz/c1"}
        }))
        .unwrap();
        let d = Dump {
            leave_running: true,
            tcp_skip_in_flight: true,
            link_remap: true,
            ..Default::default()
        };
        let sp = spec(serde_json::json!({}));
        let o = opts(dump(&CriuOptions::default(), &d, &sp, &s, DIRS, &running()).unwrap());
        assert_eq!(o.leave_running, Some(true));
        assert_eq!(o.tcp_skip_in_flight, Some(true));
        assert_eq!(o.link_remap, Some(true));
        assert_eq!(
            o.freeze_cgroup.as_deref(),
            Some("/sys/fs/cgroup/freezer/frz/c1")
        );
        assert_eq!(o.cg_root[0], (None, "/husk/c1".to_string()));
        assert!(o
            .cg_root
            .contains(&(Some("cpu,cpuacct".into()), "/other/c1".into())));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let sp = spec(serde_json::json!({}));
        let cases: [(CriuOptions, Dump, &str); 4] = [
            (
                CriuOptions {
                    manage_cgroups_mode: Some("nope".into()),
                    ..Default::default()
                },
                Dump::default(),
                "--manage-cgroups-mode",
            ),
            (
                CriuOptions {
                    empty_ns: vec!["nope".into()],
                    ..Default::default()
                },
                Dump::default(),
                "--empty-ns",
            ),
            (
                CriuOptions::default(),
                Dump {
                    page_server: Some("nohost"),
                    ..Default::default()
                },
                "--page-server",
            ),
            (
                CriuOptions::default(),
                Dump {
                    page_server: Some("h:0"),
                    ..Default::default()
                },
                "--page-server",
            ),
        ];
        for (c, d, word) in cases {
            let e = dump(&c, &d, &sp, &st(), DIRS, &running())
                .unwrap_err()
                .to_string();
            assert!(e.contains(word), "{word}: {e}");
        }
        // a joined namespace whose inode the caller did not give
        let e = dump(
            &CriuOptions::default(),
            &Dump::default(),
            &sp,
            &st(),
            DIRS,
            &Running::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/run/netns/n1"), "{e}");
    }

    #[test]
    fn criu_config_annotation_and_devices() {
        let sp = spec(serde_json::json!({
            "annotations": {"org.criu.config": ""},
            "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        }));
        let o = opts(
            dump(
                &CriuOptions::default(),
                &Dump::default(),
                &sp,
                &st(),
                DIRS,
                &Running::default(),
            )
            .unwrap(),
        );
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
        assert_eq!(config_file(&sp).as_deref(), Some("/my.conf"));
    }

    fn restore_flags(descriptors: &[String]) -> Restore<'_> {
        Restore {
            root: "/state/c1/criu-root".into(),
            descriptors,
            ns_fds: vec![(LinuxNamespaceType::Network, 11)],
            lsm_profile: Some("apparmor:p1"),
            lsm_mount_context: None,
        }
    }

    #[test]
    fn restore_carries_the_bundle() {
        let fds = [
            "/dev/null".to_string(),
            "pipe:[1234]".into(),
            "pipe:[1235]".into(),
        ];
        let sp = spec(serde_json::json!({
            "linux": {
                "namespaces": [
                    {"type": "network", "path": "/run/netns/n1"},
                    {"type": "ipc", "path": "/proc/1/ns/ipc"}
                ],
                "maskedPaths": ["/proc/kcore"]
            }
        }));
        let c = CriuOptions {
            file_locks: true,
            ..Default::default()
        };
        let r = restore(&c, &restore_flags(&fds), &sp, DIRS).unwrap();
        assert_eq!(r.typ, ReqType::Restore);
        let o = opts(r);
        assert_eq!(o.root.as_deref(), Some("/state/c1/criu-root"));
        assert_eq!(o.rst_sibling, Some(true));
        assert_eq!(o.evasive_devices, Some(true));
        assert_eq!(o.orphan_pts_master, Some(true));
        assert_eq!(o.file_locks, Some(true));
        assert_eq!(o.pid, None);
        assert_eq!(o.lsm_profile.as_deref(), Some("apparmor:p1"));
        assert_eq!(o.log_file.as_deref(), Some("restore.log"));
        assert_eq!(
            o.ext_mnt,
            [
                ("/data".to_string(), "/srv/data".to_string()),
                ("/etc/hosts".into(), "/etc/hosts".into()),
                ("/dev/null".into(), "/dev/null".into())
            ]
        );
        assert_eq!(
            o.inherit_fd,
            [
                ("pipe:[1234]".to_string(), 1),
                ("pipe:[1235]".into(), 2),
                ("extRootNetNS".into(), 11)
            ]
        );
        assert_eq!(
            o.join_ns,
            [("ipc".to_string(), "/proc/1/ns/ipc".to_string())]
        );
        assert!(
            o.cg_root.is_empty(),
            "CRIU's own cgroups are the caller's to add"
        );
        assert!(!Req::new(ReqType::Restore, Some(o)).encode().is_empty());
    }

    #[test]
    fn restore_refusals() {
        let sp = spec(serde_json::json!({
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "cgroup", "path": "/proc/1/ns/cgroup"}]}
        }));
        let e = restore(&CriuOptions::default(), &restore_flags(&[]), &sp, DIRS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.namespaces[0]"), "{e}");
        // a joined pid namespace without the fd the caller opened
        let sp = spec(serde_json::json!({
            "linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}
        }));
        assert!(restore(&CriuOptions::default(), &restore_flags(&[]), &sp, DIRS).is_err());
        // no terminal: no pty master asked for
        let sp = spec(serde_json::json!({
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
            "linux": {}
        }));
        let o = opts(restore(&CriuOptions::default(), &restore_flags(&[]), &sp, DIRS).unwrap());
        assert_eq!(o.orphan_pts_master, None);
    }
}
