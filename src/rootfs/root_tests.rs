//! Tests that mount for real. Each runs in a forked child that first unshares its mount
//! namespace and makes `/` rprivate, so nothing it mounts is seen by (or survives into) the host;
//! the tree lives in a fresh temp dir that the parent removes. They need root and are skipped
//! (with a message) otherwise.

use super::*;
use anyhow::{anyhow, ensure, Result};
use nix::sys::stat::{lstat, stat};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::PathBuf;

fn skip_unless_root(name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    let why = "needs root (mount namespaces, mknod, pivot_root)";
    assert!(
        std::env::var_os("CI").is_none_or(|v| v != "true"),
        "{name}: {why}, and under CI=true a root test that cannot run is a failure"
    );
    crate::testing::skip(name, why);
    true
}

/// Run `f` in a forked child inside a private mount namespace; its error (or panic) comes back
/// through a pipe and fails the test.
fn in_child(f: impl FnOnce() -> Result<()>) {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
    // SAFETY: fork is unsafe in a multi-threaded process (the test harness has threads) because
    // only this thread survives in the child: the child only runs `f` (our own single-threaded
    // code; glibc's malloc is fork-safe), writes to the pipe and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(r);
            // A watchdog: a child stuck on a lock another test thread held at fork time must
            // fail the test, not hang the run.
            // SAFETY: alarm(2) only arms a timer for this process.
            unsafe { libc::alarm(60) };
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                mount(NONE, "/", NONE, MsFlags::MS_PRIVATE | MsFlags::MS_REC, NONE)?;
                f()
            }));
            let msg = match res {
                Ok(Ok(())) => String::new(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(p) => format!(
                    "panic: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                ),
            };
            let mut w = fs::File::from(w);
            let _ = w.write_all(msg.as_bytes());
            // SAFETY: _exit ends the forked child without running the test harness's atexit or
            // destructors (which belong to the parent).
            unsafe { libc::_exit(if msg.is_empty() { 0 } else { 1 }) };
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            fs::File::from(r).read_to_string(&mut msg).unwrap();
            let st = waitpid(child, None).unwrap();
            assert!(msg.is_empty(), "child failed: {msg}");
            assert_eq!(st, WaitStatus::Exited(child, 0));
        }
    }
}

fn spec(v: serde_json::Value) -> Spec {
    let mut base = serde_json::json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}]}
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
        for (k, val) in o {
            b.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(base).unwrap()
}

struct Bundle {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    rootfs: PathBuf,
}

fn bundle() -> Bundle {
    let tmp = tempfile::Builder::new()
        .prefix("husk-rootfs-test")
        .tempdir()
        .unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/hostname"), "c\n").unwrap();
    Bundle {
        _tmp: tmp,
        dir,
        rootfs,
    }
}

fn prep(b: &Bundle, s: &Spec) -> Result<()> {
    prepare(&RootfsOptions {
        cgroup2_dir: None,
        spec: s,
        rootfs: &b.rootfs,
        bundle: &b.dir,
        new_cgroupns: false,
        in_userns: false,
        idmapped: &[],
    })
}

fn ro(p: &str) -> Result<bool> {
    Ok(statvfs(p)?.flags().contains(FsFlags::ST_RDONLY))
}

fn fstype(p: &Path) -> Result<i64> {
    Ok(nix::sys::statfs::statfs(p)?.filesystem_type().0 as i64)
}

/// Two tests of `$body(walk)`: in-root resolution by openat2 (`walk` false) and by the walk
/// that stands in for it where openat2 is missing (`walk` true).
macro_rules! both_resolvers {
    ($name:ident, $without:ident, $body:ident) => {
        #[test]
        fn $name() {
            if skip_unless_root(stringify!($name)) {
                return;
            }
            $body(false);
        }

        #[test]
        fn $without() {
            if skip_unless_root(stringify!($without)) {
                return;
            }
            $body(true);
        }
    };
}

both_resolvers!(
    full_container_lifecycle,
    full_container_lifecycle_without_openat2,
    lifecycle
);

fn lifecycle(walk: bool) {
    let b = bundle();
    fs::create_dir_all(b.dir.join("data/sub")).unwrap();
    fs::write(b.dir.join("data/f"), "data").unwrap();
    fs::write(b.dir.join("hostfile"), "hf").unwrap();
    let s = spec(serde_json::json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": "data",
             "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/etc/hostfile", "type": "none", "source": "hostfile",
             "options": ["bind", "rprivate"]},
            {"destination": "/etc", "type": "tmpfs", "options": ["tmpcopyup", "mode=755"]},
            {"destination": "/opt", "type": "tmpfs", "source": "tmpfs", "options": ["rro"]}
        ],
        "linux": {
            "namespaces": [{"type": "mount"}],
            "devices": [
                {"path": "/dev/fifo0", "type": "p", "major": 0, "minor": 0, "fileMode": 0o600},
                {"path": "/dev/sub/mynull", "type": "c", "major": 1, "minor": 3,
                 "fileMode": 0o640, "uid": 1000, "gid": 1001}
            ],
            "maskedPaths": ["/proc/timer_list", "/proc/acpi", "/proc/does-not-exist"],
            "readonlyPaths": ["/proc/sys", "/proc/nope"]
        }
    }));
    fs::create_dir(b.rootfs.join("opt")).unwrap();
    fs::set_permissions(
        b.rootfs.join("opt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o710),
    )
    .unwrap();
    in_child(|| {
        if walk {
            resolve::force_userspace_walk();
        }
        let r = &b.rootfs;
        prep(&b, &s)?;
        // the rootfs now is a mount point of its own
        ensure!(
            fstype(&r.join("proc"))? == libc::PROC_SUPER_MAGIC,
            "proc not mounted"
        );
        ensure!(
            fstype(&r.join("dev"))? == libc::TMPFS_MAGIC,
            "/dev not a tmpfs"
        );
        ensure!(
            fstype(&r.join("sys"))? == libc::SYSFS_MAGIC,
            "sysfs not mounted"
        );
        ensure!(ro(r.join("sys").to_str().unwrap())?, "sysfs must be ro");
        let null = fs::symlink_metadata(r.join("dev/null"))?;
        ensure!(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3));
        ensure!(null.mode() & 0o777 == 0o666, "mode {:o}", null.mode());
        for d in ["zero", "full", "random", "urandom", "tty"] {
            ensure!(
                fs::symlink_metadata(r.join("dev").join(d))?
                    .file_type()
                    .is_char_device(),
                "{d}"
            );
        }
        let m = fs::symlink_metadata(r.join("dev/sub/mynull"))?;
        ensure!(m.file_type().is_char_device() && m.uid() == 1000 && m.gid() == 1001);
        ensure!(m.mode() & 0o777 == 0o640, "mynull mode {:o}", m.mode());
        ensure!(fs::symlink_metadata(r.join("dev/fifo0"))?
            .file_type()
            .is_fifo());
        ensure!(fs::read_link(r.join("dev/ptmx"))? == Path::new("pts/ptmx"));
        ensure!(fs::read_link(r.join("dev/fd"))? == Path::new("/proc/self/fd"));
        ensure!(fs::read_link(r.join("dev/stderr"))? == Path::new("/proc/self/fd/2"));
        ensure!(r.join("dev/pts/ptmx").exists(), "devpts");
        ensure!(fstype(&r.join("dev/mqueue"))? == 0x19800202, "mqueue");
        // bind, relative source, ro + nosuid on the top mount
        ensure!(fs::read_to_string(r.join("data/f"))? == "data");
        ensure!(ro(r.join("data").to_str().unwrap())?, "/data must be ro");
        ensure!(statvfs(&r.join("data"))?
            .flags()
            .contains(FsFlags::ST_NOSUID));
        // tmpcopyup kept the old /etc, including the file bound there before it was covered?
        // (no: the bind is under the tmpfs now, the copy has the empty mount point file)
        ensure!(
            fs::read_to_string(r.join("etc/hostname"))? == "c\n",
            "tmpcopyup"
        );
        ensure!(fstype(&r.join("etc"))? == libc::TMPFS_MAGIC, "/etc tmpfs");
        let opt = fs::metadata(r.join("opt"))?;
        ensure!(
            opt.mode() & 0o7777 == 0o710,
            "tmpfs over /opt has mode {:o}",
            opt.mode()
        );
        ensure!(ro(r.join("opt").to_str().unwrap())?, "rro on /opt");
        ensure!(fstype(&r.join("opt"))? == libc::TMPFS_MAGIC, "/opt tmpfs");
        // cgroup v1 (this host) or v2
        let cg = r.join("sys/fs/cgroup");
        ensure!(ro(cg.to_str().unwrap())?, "cgroup tmpfs must be ro");
        if fstype(&cg)? == libc::TMPFS_MAGIC {
            let own = fs::read_dir(&cg)?.count();
            ensure!(own > 0, "no cgroup controller was bound");
            for e in fs::read_dir(&cg)? {
                let p = e?.path();
                if !fs::symlink_metadata(&p)?.file_type().is_symlink() {
                    ensure!(ro(p.to_str().unwrap())?, "{p:?} must be ro");
                }
            }
        }
        // stdin is the host's /dev/null, as when runc is started with </dev/null
        let host_null = open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        nix::unistd::dup2_stdin(&host_null)?;
        drop(host_null);
        pivot(r, false)?;
        reopen_dev_null()?;
        let now = nix::sys::stat::fstat(std::io::stdin().as_fd())?;
        ensure!(
            now.st_dev == stat("/dev/null")?.st_dev,
            "stdin still the host's /dev/null"
        );
        ensure!(std::env::current_dir()? == Path::new("/"));
        ensure!(
            fs::read_to_string("/data/f")? == "data",
            "not in the new root"
        );
        ensure!(
            !Path::new(&b.dir).join("rootfs").exists(),
            "the old root is still reachable"
        );
        // as the real init does: a pty of the container's own devpts instance
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
        nix::pty::grantpt(&master)?;
        nix::pty::unlockpt(&master)?;
        let name = nix::pty::ptsname_r(&master)?;
        let slave = open(
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let slave_rdev = nix::sys::stat::fstat(&slave)?.st_rdev;
        ensure!(!Path::new("/dev/console").exists());
        bind_console(slave.as_fd())?;
        let c = stat("/dev/console")?;
        ensure!(c.st_rdev == slave_rdev, "console is not the pty slave");
        finalize(&s)?;
        ensure!(
            fs::read_to_string("/proc/timer_list")?.is_empty(),
            "timer_list not masked"
        );
        ensure!(
            fs::read_dir("/proc/acpi")?.count() == 0,
            "/proc/acpi not masked"
        );
        ensure!(ro("/proc/acpi")?, "masked dir is ro");
        ensure!(ro("/proc/sys")?, "/proc/sys must be ro");
        ensure!(!ro("/proc")?, "/proc itself stays rw");
        ensure!(ro("/")?, "root.readonly");
        ensure!(fs::write("/newfile", "x").is_err(), "wrote to a ro root");
        ensure!(!ro("/dev")?, "/dev stays rw");
        Ok(())
    });
}

#[test]
fn destination_symlinks_stay_inside_rootfs() {
    if skip_unless_root("destination_symlinks_stay_inside_rootfs") {
        return;
    }
    let b = bundle();
    let outside = b.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("marker"), "host").unwrap();
    // CVE-2021-30465 shapes: symlinks to / and to ../../.. (plus the host path of `outside`)
    symlink("/", b.rootfs.join("to_root")).unwrap();
    symlink("../../../../../../../../..", b.rootfs.join("etc/up")).unwrap();
    // CVE-2024-45310: an absolute symlink to a host directory, with directories to create
    symlink(&outside, b.rootfs.join("hostlink")).unwrap();
    let rel_outside = outside
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    fs::create_dir_all(b.rootfs.join(&rel_outside)).unwrap();
    let s = spec(serde_json::json!({
        "mounts": [
            {"destination": "/to_root", "type": "tmpfs", "source": "tmpfs"},
            {"destination": format!("/etc/up/{rel_outside}"), "type": "tmpfs", "source": "t"},
            {"destination": "/hostlink/made/here", "type": "tmpfs", "source": "t"},
        ],
        "linux": {"namespaces": [{"type": "mount"}]}
    }));
    let dev_before = stat("/").unwrap().st_dev;
    in_child(|| {
        prep(&b, &s)?;
        ensure!(stat("/")?.st_dev == dev_before, "host / was covered");
        ensure!(
            fs::read_to_string(outside.join("marker"))? == "host",
            "host dir was covered"
        );
        ensure!(!outside.join("made").exists(), "created outside the rootfs");
        // the tmpfs at /to_root covers the rootfs itself (in-root "/"); the other two mounts
        // went on top of directories inside it, made under the new tmpfs ... or under it:
        ensure!(
            fstype(&b.rootfs)? == libc::TMPFS_MAGIC,
            "/to_root should have landed on rootfs/"
        );
        Ok(())
    });
    assert!(!outside.join("made").exists());
    assert_eq!(fs::read_to_string(outside.join("marker")).unwrap(), "host");
}

both_resolvers!(
    nested_destinations_created_inside,
    nested_destinations_created_inside_without_openat2,
    nested_destinations
);

fn nested_destinations(walk: bool) {
    let b = bundle();
    let outside = b.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    symlink(&outside, b.rootfs.join("hostlink")).unwrap();
    symlink("../../../../../..", b.rootfs.join("up")).unwrap();
    let rel_outside = outside
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // the same path inside the rootfs: that is where in-root resolution must lead
    fs::create_dir_all(b.rootfs.join(&rel_outside)).unwrap();
    // and a symlink whose in-root target does not exist: refused, nothing made anywhere
    symlink(outside.join("dangling"), b.rootfs.join("dangling")).unwrap();
    let dangling = spec(serde_json::json!({
        "mounts": [{"destination": "/dangling/sub", "type": "tmpfs", "source": "t"}],
        "linux": {"namespaces": [{"type": "mount"}]}
    }));
    let s = spec(serde_json::json!({
        "mounts": [
            {"destination": "/hostlink/made/here", "type": "tmpfs", "source": "t"},
            {"destination": format!("/up/{rel_outside}/x"), "type": "bind",
             "source": "/etc/hostname", "options": ["bind"]},
        ],
        "linux": {"namespaces": [{"type": "mount"}]}
    }));
    in_child(|| {
        if walk {
            resolve::force_userspace_walk();
        }
        prep(&b, &s)?;
        ensure!(
            !outside.join("made").exists(),
            "CVE-2024-45310: created on the host"
        );
        ensure!(!outside.join("x").exists(), "created on the host");
        let inside = b.rootfs.join(&rel_outside);
        ensure!(
            fstype(&inside.join("made/here"))? == libc::TMPFS_MAGIC,
            "tmpfs not in rootfs"
        );
        ensure!(
            inside.join("x").is_file(),
            "bind file target not created in rootfs"
        );
        let e = format!("{:#}", prep(&b, &dangling).unwrap_err());
        ensure!(
            e.contains("mounts[0]") && e.contains("/dangling/sub"),
            "{e}"
        );
        ensure!(!outside.join("dangling").exists() && !inside.join("dangling").exists());
        Ok(())
    });
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "host dir was written to"
    );
}

#[test]
fn dev_symlink_to_host_creates_nothing_on_host() {
    if skip_unless_root("dev_symlink_to_host_creates_nothing_on_host") {
        return;
    }
    let b = bundle();
    let hostdev = b.dir.join("hostdev");
    fs::create_dir_all(&hostdev).unwrap();
    symlink(&hostdev, b.rootfs.join("dev")).unwrap();
    // first with no in-root target: an error, and nothing anywhere
    let s0 = spec(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}]}}));
    in_child(|| {
        let e = format!("{:#}", prep(&b, &s0).unwrap_err());
        ensure!(e.contains("/dev/null"), "{e}");
        Ok(())
    });
    assert!(fs::read_dir(&hostdev).unwrap().next().is_none());
    fs::create_dir_all(b.rootfs.join(hostdev.strip_prefix("/").unwrap())).unwrap();
    let s = spec(serde_json::json!({
        "linux": {"namespaces": [{"type": "mount"}],
                  "devices": [{"path": "/dev/extra", "type": "c", "major": 1, "minor": 5}]}
    }));
    in_child(|| {
        prep(&b, &s)?;
        ensure!(
            fs::read_dir(&hostdev)?.next().is_none(),
            "device nodes created on the host"
        );
        let inside = b.rootfs.join(hostdev.strip_prefix("/")?);
        ensure!(fs::symlink_metadata(inside.join("null"))?
            .file_type()
            .is_char_device());
        ensure!(fs::symlink_metadata(inside.join("extra"))?
            .file_type()
            .is_char_device());
        ensure!(fs::read_link(inside.join("ptmx"))? == Path::new("pts/ptmx"));
        Ok(())
    });
    assert!(fs::read_dir(&hostdev).unwrap().next().is_none());
}

#[test]
fn proc_and_sysfs_on_symlink_refused() {
    if skip_unless_root("proc_and_sysfs_on_symlink_refused") {
        return;
    }
    for (typ, dest) in [("proc", "/proc"), ("sysfs", "/sys")] {
        let b = bundle();
        fs::create_dir_all(b.rootfs.join("elsewhere")).unwrap();
        symlink("/elsewhere", b.rootfs.join(&dest[1..])).unwrap();
        let s = spec(serde_json::json!({
            "mounts": [{"destination": dest, "type": typ, "source": typ}],
            "linux": {"namespaces": [{"type": "mount"}]}
        }));
        in_child(|| {
            let e = match prep(&b, &s) {
                Ok(()) => return Err(anyhow!("{typ} on a symlink was accepted")),
                Err(e) => format!("{e:#}"),
            };
            ensure!(
                e.contains("mounts[0]") && e.contains(dest) && e.contains("symlink"),
                "{e}"
            );
            ensure!(
                fs::read_dir(b.rootfs.join("elsewhere"))?.next().is_none(),
                "mounted anyway"
            );
            Ok(())
        });
    }
}

#[test]
fn errors_name_the_mount_and_the_device() {
    if skip_unless_root("errors_name_the_mount_and_the_device") {
        return;
    }
    let b = bundle();
    let s = spec(serde_json::json!({
        "mounts": [
            {"destination": "/a", "type": "tmpfs", "source": "t"},
            {"destination": "/data", "type": "bind", "source": "/nope", "options": ["rbind"]}],
        "linux": {"namespaces": [{"type": "mount"}]}
    }));
    let s2 = spec(serde_json::json!({
        "mounts": [{"destination": "/x", "type": "tmpfs", "options": ["idmap"]}],
        "linux": {"namespaces": [{"type": "mount"}]}
    }));
    let host_target = b.dir.join("host_target");
    fs::write(&host_target, "keep").unwrap();
    symlink(&host_target, b.rootfs.join("evil")).unwrap();
    let s3 = spec(serde_json::json!({
        "linux": {"namespaces": [{"type": "mount"}],
                  "devices": [{"path": "/evil", "type": "c", "major": 1, "minor": 3}]}
    }));
    in_child(|| {
        let e = format!("{:#}", prep(&b, &s).unwrap_err());
        ensure!(
            e.contains("mounts[1]") && e.contains("\"/nope\"") && e.contains("No such file"),
            "{e}"
        );
        let e = format!("{:#}", prep(&b, &s2).unwrap_err());
        ensure!(e.contains("mounts[0]") && e.contains("idmap"), "{e}");
        let e = format!("{:#}", prep(&b, &s3).unwrap_err());
        ensure!(
            e.contains("linux.devices[0]") && e.contains("/evil") && e.contains("symlink"),
            "{e}"
        );
        ensure!(fs::read_to_string(&host_target)? == "keep");
        Ok(())
    });
}

#[test]
fn masking_refuses_a_fake_dev_null() {
    if skip_unless_root("masking_refuses_a_fake_dev_null") {
        return;
    }
    let b = bundle();
    fs::create_dir_all(b.dir.join("fakedev")).unwrap();
    fs::write(b.dir.join("fakedev/null"), "not null").unwrap();
    fs::write(b.rootfs.join("secret"), "s").unwrap();
    let s = spec(serde_json::json!({
        "mounts": [{"destination": "/dev", "type": "bind", "source": "fakedev", "options": ["rbind"]}],
        "linux": {"namespaces": [{"type": "mount"}], "maskedPaths": ["/secret"]}
    }));
    in_child(|| {
        prep(&b, &s)?;
        ensure!(
            !b.rootfs.join("dev/zero").exists(),
            "devices made on a bound /dev"
        );
        pivot(&b.rootfs, false)?;
        let e = format!("{:#}", finalize(&s).unwrap_err());
        ensure!(
            e.contains("maskedPaths[0]") && e.contains("/dev/null"),
            "{e}"
        );
        ensure!(fs::read_to_string("/secret")? == "s");
        Ok(())
    });
}

#[test]
fn no_pivot_moves_and_chroots() {
    if skip_unless_root("no_pivot_moves_and_chroots") {
        return;
    }
    let b = bundle();
    let s = spec(serde_json::json!({
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}], "rootfsPropagation": "rprivate"}
    }));
    in_child(|| {
        prep(&b, &s)?;
        pivot(&b.rootfs, true)?;
        ensure!(fs::read_to_string("/etc/hostname")? == "c\n");
        ensure!(lstat("/proc/self").is_ok());
        finalize(&s)?;
        Ok(())
    });
}

/// Enter a new user namespace mapping root to root (single line: allowed for oneself), together
/// with a new mount namespace owned by it (so every inherited mount has its flags locked).
fn enter_userns() -> Result<()> {
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
    fs::write("/proc/self/setgroups", "deny")?;
    fs::write("/proc/self/uid_map", "0 0 1")?;
    fs::write("/proc/self/gid_map", "0 0 1")?;
    mount(NONE, "/", NONE, MsFlags::MS_PRIVATE | MsFlags::MS_REC, NONE)?;
    Ok(())
}

#[test]
fn user_namespace_binds_devices_and_sys_keeps_locked_flags() {
    if skip_unless_root("user_namespace_binds_devices_and_sys_keeps_locked_flags") {
        return;
    }
    let b = bundle();
    fs::create_dir_all(b.dir.join("locked")).unwrap();
    fs::write(b.rootfs.join("etc/secret"), "s").unwrap();
    let s = spec(serde_json::json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/locked", "type": "bind", "source": "locked", "options": ["bind", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "mount"}, {"type": "user"}],
            "maskedPaths": ["/etc/secret", "/sys/firmware"],
            "readonlyPaths": ["/sys/kernel"]
        }
    }));
    in_child(|| {
        // a nosuid,nodev mount that becomes locked in the user namespace
        let locked = b.dir.join("locked");
        let f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(Some("tmpfs"), &locked, Some("tmpfs"), f, NONE)?;
        fs::write(locked.join("l"), "l")?;
        enter_userns()?;
        prepare(&RootfsOptions {
            cgroup2_dir: None,
            spec: &s,
            rootfs: &b.rootfs,
            bundle: &b.dir,
            new_cgroupns: false,
            in_userns: true,
            idmapped: &[],
        })?;
        let r = &b.rootfs;
        let null = fs::metadata(r.join("dev/null"))?;
        ensure!(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3));
        ensure!(fstype(&r.join("sys"))? == libc::SYSFS_MAGIC);
        ensure!(ro(r.join("sys").to_str().unwrap())?, "/sys must be ro");
        ensure!(
            r.join("sys/kernel").is_dir(),
            "host /sys not bound recursively"
        );
        // every mount under the container's /sys (the host's submounts came with the rbind)
        let sys = format!("{}/sys", r.display());
        let mi = fs::read_to_string("/proc/self/mountinfo")?;
        let mut n = 0;
        for l in mi.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f[4].starts_with(&sys) {
                n += 1;
                ensure!(
                    f[5].split(',').any(|o| o == "ro"),
                    "rw mount under /sys: {l}"
                );
            }
        }
        ensure!(n > 1, "expected the host's /sys submounts too");
        let l = statvfs(&r.join("locked"))?.flags();
        ensure!(
            l.contains(FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV),
            "{l:?}"
        );
        ensure!(fs::read_to_string(r.join("locked/l"))? == "l");
        pivot(r, false)?;
        finalize(&s)?;
        ensure!(
            fs::read_to_string("/etc/secret")?.is_empty(),
            "/etc/secret not masked"
        );
        ensure!(
            fs::read_dir("/sys/firmware")?.next().is_none(),
            "/sys/firmware not masked"
        );
        ensure!(ro("/sys/kernel")?, "/sys/kernel");
        ensure!(ro("/")?, "root.readonly");
        Ok(())
    });
}

#[test]
fn without_cap_mknod_devices_are_bound() {
    if skip_unless_root("without_cap_mknod_devices_are_bound") {
        return;
    }
    let b = bundle();
    let s = spec(serde_json::json!({
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}],
        "linux": {"namespaces": [{"type": "mount"}]}
    }));
    in_child(|| {
        caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_MKNOD)?;
        prep(&b, &s)?;
        let m = fs::metadata(b.rootfs.join("dev/urandom"))?;
        ensure!(m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 9));
        // mknod was refused, so the host's node must have been bind-mounted there
        let mi = fs::read_to_string("/proc/self/mountinfo")?;
        let want = format!("{}/dev/urandom ", b.rootfs.display());
        ensure!(mi.contains(&want), "/dev/urandom is not a bind mount");
        // /dev was ro in the spec: applied after the nodes were made
        ensure!(
            ro(b.rootfs.join("dev").to_str().unwrap())?,
            "/dev must end up ro"
        );
        Ok(())
    });
}

#[test]
fn shared_rootfs_propagation_still_pivots() {
    if skip_unless_root("shared_rootfs_propagation_still_pivots") {
        return;
    }
    let b = bundle();
    let s = spec(serde_json::json!({
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}], "rootfsPropagation": "rshared"}
    }));
    in_child(|| {
        prep(&b, &s)?;
        pivot(&b.rootfs, false)?;
        finalize(&s)?;
        let mi = fs::read_to_string("/proc/self/mountinfo")?;
        let root = mi
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .ok_or_else(|| anyhow!("no / in {mi}"))?;
        ensure!(root.contains(" shared:"), "/ is not shared: {root}");
        Ok(())
    });
}

#[test]
fn cgroup_namespace_gets_own_cgroups_readonly_only_with_ro() {
    if skip_unless_root("cgroup_namespace_gets_own_cgroups_readonly_only_with_ro") {
        return;
    }
    if fstype(Path::new("/sys/fs/cgroup/unified")).ok() != Some(libc::CGROUP2_SUPER_MAGIC)
        && fstype(Path::new("/sys/fs/cgroup")).ok() != Some(libc::CGROUP2_SUPER_MAGIC)
    {
        crate::testing::skip(
            "cgroup_namespace_gets_own_cgroups_readonly_only_with_ro",
            "no cgroup2 on this host",
        );
        return;
    }
    let b = bundle();
    let s = spec(serde_json::json!({
        "mounts": [
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/cg-rw", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev"]}
        ],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "cgroup"}]}
    }));
    in_child(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)?;
        prepare(&RootfsOptions {
            cgroup2_dir: None,
            spec: &s,
            rootfs: &b.rootfs,
            bundle: &b.dir,
            new_cgroupns: true,
            in_userns: false,
            idmapped: &[],
        })?;
        let cg = b.rootfs.join("sys/fs/cgroup");
        let rw = b.rootfs.join("cg-rw");
        if fstype(Path::new("/sys/fs/cgroup"))? == libc::CGROUP2_SUPER_MAGIC {
            ensure!(fstype(&cg)? == libc::CGROUP2_SUPER_MAGIC, "not cgroup2");
            ensure!(ro(cg.to_str().unwrap())?, "cgroup with ro must be ro");
            ensure!(fstype(&rw)? == libc::CGROUP2_SUPER_MAGIC, "not cgroup2");
            ensure!(
                !ro(rw.to_str().unwrap())?,
                "no ro (mount(8): rw) with a cgroup namespace"
            );
        } else {
            // v1 or hybrid: fresh per-hierarchy mounts rooted at the container's cgroup
            let mem = cg.join("memory");
            ensure!(
                fstype(&mem)? == libc::CGROUP_SUPER_MAGIC,
                "memory is not cgroup v1"
            );
            ensure!(ro(mem.to_str().unwrap())?, "cgroup with ro must be ro");
            ensure!(
                fstype(&cg.join("unified"))? == libc::CGROUP2_SUPER_MAGIC,
                "hybrid: unified is not cgroup2"
            );
            let rwm = rw.join("memory");
            ensure!(
                !ro(rwm.to_str().unwrap())?,
                "no ro (mount(8): rw) with a cgroup namespace"
            );
        }
        Ok(())
    });
}

#[test]
fn nothing_mounted_inside_proc_but_lxcfs_files() {
    if skip_unless_root("nothing_mounted_inside_proc_but_lxcfs_files") {
        return;
    }
    let b = bundle();
    fs::write(b.dir.join("uptime"), "1.0 1.0\n").unwrap();
    symlink("/proc", b.rootfs.join("p")).unwrap();
    let proc = serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"});
    let mk = |m: serde_json::Value| {
        spec(serde_json::json!({
            "mounts": [proc.clone(), m],
            "linux": {"namespaces": [{"type": "mount"}]}
        }))
    };
    let bad = [
        mk(serde_json::json!({"destination": "/proc/sys", "type": "tmpfs", "source": "t"})),
        mk(serde_json::json!({"destination": "/p/sys", "type": "tmpfs", "source": "t"})),
        mk(serde_json::json!({"destination": "/p", "type": "tmpfs", "source": "t"})),
        mk(serde_json::json!({"destination": "/p/sys/kernel", "type": "sysfs", "source": "s"})),
    ];
    let good = mk(
        serde_json::json!({"destination": "/p/uptime", "type": "bind",
                                     "source": "uptime", "options": ["bind", "ro"]}),
    );
    in_child(|| {
        for (i, s) in bad.iter().enumerate() {
            let e = match prep(&b, s) {
                Ok(()) => return Err(anyhow!("bad[{i}] was accepted")),
                Err(e) => format!("{e:#}"),
            };
            ensure!(
                e.contains("mounts[1]") && e.contains("/proc"),
                "bad[{i}]: {e}"
            );
        }
        prep(&b, &good)?;
        ensure!(fs::read_to_string(b.rootfs.join("proc/uptime"))? == "1.0 1.0\n");
        Ok(())
    });
}
