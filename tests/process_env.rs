//! The process and its environment, as runc's users rely on them: the cwd entered before the
//! user switch, the pty handed to the process's user, an optional `process.user`, the
//! createContainer hooks' cwd, a read-only /dev with a terminal, bind sources a user
//! namespace's root cannot reach, `rootfsPropagation: unbindable`, a container without a mount
//! namespace (and nothing left of it after delete), a seccomp filter that refuses getcwd.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Start a container whose program is `/probe tty` (or `args`) with `terminal: true` and read
/// what it prints through the pty master received on the console socket.
fn run_on_terminal(c: &mut Ctr) -> String {
    c.config["process"]["terminal"] = true.into();
    let rx = ConsoleReceiver::new(&c.work);
    let sock = rx.path.to_str().unwrap().to_string();
    let receiver = std::thread::spawn(move || rx.receive(Duration::from_secs(30)));
    c.create_ok(&["--console-socket", &sock]);
    let master = receiver.join().expect("console receiver");
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    read_pty(&master, Duration::from_secs(10))
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// Item: `process.cwd` that root can enter and the user cannot (a 0700 root directory) works,
/// as in runc (chdir before the user switch, retried after it on EACCES/EPERM).
#[test]
fn cwd_entered_before_switching_user() {
    if !require_root("cwd_entered_before_switching_user") {
        return;
    }
    let mut c = Ctr::new("cwdroot", "cwd-root-as-user");
    let dir = c.rootfs().join("root");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let v = c.run_probe();
    assert_eq!(v["uid"], 1000, "{v}");
    assert_eq!(v["cwd"], "/root", "{v}");
    // and the user really cannot enter it: the cwd came from the runtime, not the user's rights
    let mut c2 = Ctr::new("cwdroot2", "user");
    std::fs::set_permissions(
        c2.rootfs().join("root"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    c2.args(&["/probe", "ls", "/root"]);
    let o = c2.run();
    assert!(!o.status.success(), "uid 1000 could list a 0700 /root");
}

/// Item: with `terminal: true` the pty belongs to the process's user (uid; the devpts gid
/// stays), so the process can reopen its own terminal, as runc does; for `run` and `exec -t`.
#[test]
fn terminal_belongs_to_the_process_user() {
    if !require_root("terminal_belongs_to_the_process_user") {
        return;
    }
    let mut c = Ctr::new("ttyown", "default");
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c.args(&["/probe", "tty"]);
    let out = run_on_terminal(&mut c);
    let v = json_lines(&out)
        .pop()
        .unwrap_or_else(|| panic!("no probe JSON: {out:?}"));
    assert_eq!(v["isatty0"], true, "{v}");
    assert_eq!(v["owner_uid"], 1000, "the pty is not the user's: {v}");
    assert_eq!(
        v["reopen"], true,
        "the user cannot reopen its terminal: {v}"
    );

    // exec -t --user into a running container
    let mut c = Ctr::new("ttyownx", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let rx = ConsoleReceiver::new(&c.work);
    let sock = rx.path.to_str().unwrap().to_string();
    let receiver = std::thread::spawn(move || rx.receive(Duration::from_secs(30)));
    let o = c.rt(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        &sock,
        "--user",
        "1000:1000",
        &c.id,
        "/probe",
        "tty",
    ]);
    assert!(o.status.success(), "exec -t: {}", text(&o.stderr));
    let master = receiver.join().expect("console receiver");
    let out = read_pty(&master, Duration::from_secs(10));
    let v = json_lines(&out)
        .pop()
        .unwrap_or_else(|| panic!("no probe JSON from exec: {out:?}"));
    assert_eq!(v["owner_uid"], 1000, "exec's pty is not the user's: {v}");
    assert_eq!(v["reopen"], true, "{v}");
}

/// Item: `process.user` is optional in config.json and in `exec --process` (config.md requires
/// only `cwd`); the process then runs as uid 0 / gid 0, as runc's default.
#[test]
fn process_user_is_optional() {
    if !require_root("process_user_is_optional") {
        return;
    }
    let mut c = Ctr::new("nouser", "default");
    c.config["process"].as_object_mut().unwrap().remove("user");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let pj = c.work.join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({"args": ["/probe"], "cwd": "/tmp", "env": ["PATH=/bin"]}))
            .unwrap(),
    )
    .unwrap();
    let o = c.rt(&["exec", "--process", pj.to_str().unwrap(), &c.id]);
    assert!(o.status.success(), "exec --process: {}", text(&o.stderr));
    let v = probe_json(&o);
    assert_eq!((v["uid"].clone(), v["gid"].clone()), (json!(0), json!(0)));
    assert_eq!(v["cwd"], "/tmp");
    // the container's own process too
    let mut c = Ctr::new("nouser2", "default");
    c.config["process"].as_object_mut().unwrap().remove("user");
    let v = c.run_probe();
    assert_eq!((v["uid"].clone(), v["gid"].clone()), (json!(0), json!(0)));
    assert_eq!(v["groups"], json!([]), "{v}");
}

/// Item: createContainer hooks run with the container's rootfs as their cwd, as runc's.
#[test]
fn create_container_hooks_run_in_the_rootfs() {
    if !require_root("create_container_hooks_run_in_the_rootfs") {
        return;
    }
    // the hook creates `created-in-hook-cwd` in its cwd; the probe looks for it at /
    let mut c = Ctr::new("hookcwd", "hook-create-cwd");
    let v = c.run_probe();
    assert_eq!(
        v["type"], "file",
        "the createContainer hook did not run in the rootfs: {v}"
    );
    assert!(
        !c.bundle.join("created-in-hook-cwd").exists(),
        "the hook ran in the bundle"
    );
}

/// Item: /dev mounted `ro` with `terminal: true`: /dev/console is the pty and /dev stays
/// read-only.
#[test]
fn read_only_dev_with_a_terminal() {
    if !require_root("read_only_dev_with_a_terminal") {
        return;
    }
    let mut c = Ctr::new("devro", "default");
    for m in c.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push("ro".into());
        }
    }
    c.args(&[
        "/bin/sh",
        "-c",
        "/probe stat /dev/console; /probe mkdir /dev/new; /probe tty",
    ]);
    let out = run_on_terminal(&mut c);
    let v = json_lines(&out);
    assert_eq!(v.len(), 3, "{out:?}");
    assert_eq!(v[0]["type"], "char", "/dev/console is not the pty: {out:?}");
    assert_eq!(
        v[0]["major"], 136,
        "/dev/console is not a pty slave: {out:?}"
    );
    assert_eq!(v[1]["errno"], libc::EROFS, "/dev is not read-only: {out:?}");
    assert_eq!(v[2]["isatty0"], true, "{out:?}");
}

/// Item: in a user namespace a bind source its root cannot reach (under a 0700 directory of
/// the host's root) is opened by the runtime before entering the namespace, as runc's mount
/// source fds.
#[test]
fn userns_bind_source_unreachable_from_inside() {
    if !require_root("userns_bind_source_unreachable_from_inside") {
        return;
    }
    let mut c = Ctr::new("usernsbind", "userns-private-bind");
    let private = c.bundle.join("private");
    std::fs::create_dir_all(private.join("bind-src")).unwrap();
    std::fs::write(private.join("bind-src/hello"), "from-host").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    c.args(&["/probe", "read", "/mnt/hello"]);
    let o = c.run_ok();
    let v = probe_json(&o);
    assert_eq!(v["data"], "from-host", "{v}");
}

/// Item: `rootfsPropagation: unbindable` makes the container's / unbindable.
#[test]
fn rootfs_propagation_unbindable() {
    if !require_root("rootfs_propagation_unbindable") {
        return;
    }
    let mut c = Ctr::new("unbind", "default");
    c.config["linux"]["rootfsPropagation"] = "unbindable".into();
    let v = c.run_probe();
    let l = mount_line(&v, "/").unwrap_or_else(|| panic!("no / in mountinfo: {v}"));
    assert!(l.contains(" unbindable "), "/ is not unbindable: {l}");
}

/// The host's mount table, as (mount point, optional fields) lines.
fn host_mount_table() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").unwrap_or(f.len());
            format!("{} {}", f[4], f[6..sep].join(" "))
        })
        .filter(|l| !l.starts_with("/tmp/husk-test-"))
        .collect()
}

// req: LNX-NS-INHERIT
/// Item: a config without a mount namespace runs in the runtime's one (runtime-spec: the
/// namespace is inherited), with the container's mounts made there under the rootfs; nothing
/// remains in the host namespace after delete (the guard checks), and no propagation of a host
/// mount was changed.
#[test]
fn no_mount_namespace_inherits_and_leaves_nothing() {
    if !require_root("no_mount_namespace_inherits_and_leaves_nothing") {
        return;
    }
    let before = host_mount_table();
    {
        let mut c = Ctr::with_config("nomntns", no_mount_ns());
        c.args(&["/probe", "sleep", "60"]);
        c.create_ok(&[]);
        assert!(c.start().status.success());
        let o = c.rt(&["exec", &c.id, "/probe"]);
        assert!(o.status.success(), "exec: {}", text(&o.stderr));
        let v = probe_json(&o);
        let host = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        assert_eq!(
            v["ns"]["mnt"].as_str().unwrap(),
            host.to_str().unwrap(),
            "not in the runtime's mount namespace"
        );
        assert_ne!(v["ns"]["pid"].as_str().unwrap(), host_ns_of("pid"));
        // the container sees its own /proc, /dev and a read-only root
        let (_, fstype, _) = mount_info(&v, "/proc").expect("no /proc in the container");
        assert_eq!(fstype, "proc");
        let (_, fstype, _) = mount_info(&v, "/dev").expect("no /dev in the container");
        assert_eq!(fstype, "tmpfs");
        let (opts, _, _) = mount_info(&v, "/").expect("no / in the container");
        assert!(opts.iter().any(|o| o == "ro"), "root.readonly: {opts:?}");
        assert_eq!(v["cwd"], "/");
        // the host sees them under the rootfs while the container exists
        let rootfs = c.rootfs();
        assert!(
            !mounts_under(&rootfs).is_empty(),
            "no mount under the rootfs on the host"
        );
        let o = c.kill("KILL");
        assert!(o.status.success(), "kill: {}", text(&o.stderr));
        assert!(c.wait_status("stopped", Duration::from_secs(10)));
        let o = c.delete(false);
        assert!(o.status.success(), "delete: {}", text(&o.stderr));
        let left = mounts_under(&rootfs);
        assert!(left.is_empty(), "mounts left after delete: {left:?}");
    }
    // a run that fails after the mounts were made leaves nothing either
    {
        let mut c = Ctr::with_config("nomntnsf", no_mount_ns());
        c.args(&["/no/such/program"]);
        let o = c.run();
        assert!(!o.status.success());
        assert!(
            mounts_under(&c.work).is_empty(),
            "{:?}",
            mounts_under(&c.work)
        );
    }
    assert_eq!(before, host_mount_table(), "the host's mount table changed");
}

/// The default config without a mount namespace. Not a differential fixture: runc 1.1.5 leaves
/// the container's mounts behind in the host namespace (docs/differential.md).
fn no_mount_ns() -> Value {
    let mut v = fixture("default");
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    v
}

fn host_ns_of(t: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{t}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Item: a seccomp filter that refuses getcwd (installed before the cwd check when
/// noNewPrivileges is false) fails the start naming getcwd, the errno and the filter, not
/// "outside the container".
#[test]
fn getcwd_refused_by_seccomp_is_named() {
    if !require_root("getcwd_refused_by_seccomp_is_named") {
        return;
    }
    let mut c = Ctr::new("getcwd", "default");
    c.config["process"]["noNewPrivileges"] = false.into();
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let o = c.run();
    assert!(!o.status.success(), "ran with getcwd refused");
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(err.contains("getcwd"), "{err}");
    assert!(err.contains("EPERM"), "{err}");
    assert!(err.contains("seccomp"), "{err}");
    assert!(!err.contains("outside the container"), "{err}");
}

/// Without a mount namespace, `create` killed with SIGKILL half way (while its createRuntime
/// hook runs, after the init made its mounts in the host namespace): `delete --force` removes
/// those mounts too (the guard checks nothing is left).
#[test]
fn no_mount_namespace_create_killed_mid_way_leaves_nothing() {
    if !require_root("no_mount_namespace_create_killed_mid_way_leaves_nothing") {
        return;
    }
    if is_runc() || is_crun() {
        skip(
            "no_mount_namespace_create_killed_mid_way_leaves_nothing",
            "needs the runtime to run createRuntime hooks after the mounts (husk)",
        );
        return;
    }
    let mut c = Ctr::with_config("nomntkill", no_mount_ns());
    c.create_killed_mid_way(|c| {
        assert!(
            !mounts_under(&c.rootfs()).is_empty(),
            "precondition: the container's mounts exist while create is half way"
        );
    });
    let o = c.delete(true);
    assert!(o.status.success(), "delete --force: {}", text(&o.stderr));
    let left = mounts_under(&c.rootfs());
    assert!(
        left.is_empty(),
        "mounts left after delete --force: {left:?}"
    );
}
