//! Rootfs: mounts of each type with options, masked/readonly paths, readonly root, /dev,
//! devices, hostname/domainname, sysctl.
mod common;
use common::*;

fn has(opts: &[String], o: &str) -> bool {
    opts.iter().any(|x| x == o)
}

/// Runs `script` (`/bin/sh -c`, probe commands) in `c`: its output, and each line of it as
/// the JSON a probe prints.
fn run_probes(c: &mut Ctr, script: &str) -> (String, Vec<serde_json::Value>) {
    c.args(&["/bin/sh", "-c", script]);
    let out = text(&c.run().stdout);
    let vals = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (out, vals)
}

#[test]
fn mounts_of_each_type() {
    root_or_skip!("mounts_of_each_type");
    let mut c = Ctr::new("mounts", "mounts");
    std::fs::create_dir_all(c.bundle.join("bind-src")).unwrap();
    std::fs::write(c.bundle.join("bind-src/hello"), "from-host").unwrap();
    let v = c.run_probe();
    let m = |d: &str| {
        mount_info(&v, d)
            .unwrap_or_else(|| panic!("{d} not mounted; mountinfo: {}", v["mountinfo"]))
    };

    let (o, t, s) = m("/mnt/tmpfs");
    assert_eq!(t, "tmpfs");
    for x in ["nosuid", "nodev", "noexec"] {
        assert!(has(&o, x), "/mnt/tmpfs lacks {x}: {o:?}");
    }
    assert!(has(&s, "mode=1770"), "/mnt/tmpfs mode: {s:?}");
    assert!(has(&s, "size=1024k"), "/mnt/tmpfs size: {s:?}");

    let (o, _, _) = m("/mnt/bind-ro");
    assert!(has(&o, "ro"), "/mnt/bind-ro is not ro: {o:?}");
    let (o, _, _) = m("/mnt/bind-rw");
    assert!(has(&o, "rw") && has(&o, "nosuid"), "/mnt/bind-rw: {o:?}");

    // proc, with the options the fixture gives /proc
    let (o, t, _) = m("/proc");
    assert_eq!(t, "proc");
    assert!(
        has(&o, "nosuid") && has(&o, "noexec") && has(&o, "nodev"),
        "/proc: {o:?}"
    );
    // sysfs: the default /sys (crun refuses proc/sysfs anywhere but /proc and /sys)
    let (o, t, _) = m("/sys");
    assert_eq!(t, "sysfs");
    assert!(
        has(&o, "ro") && has(&o, "nosuid") && has(&o, "noexec"),
        "/sys: {o:?}"
    );
    let (_, t, s) = m("/mnt/pts");
    assert_eq!(t, "devpts");
    assert!(
        has(&s, "ptmxmode=666") && has(&s, "mode=620"),
        "devpts opts: {s:?}"
    );
    let (_, t, _) = m("/mnt/mqueue");
    assert_eq!(t, "mqueue");
    // the default mounts
    assert_eq!(m("/proc").1, "proc");
    assert_eq!(m("/dev").1, "tmpfs");
    assert_eq!(m("/dev/shm").1, "tmpfs");
    assert!(has(&m("/sys").0, "ro"), "/sys must be ro");
    // the cgroup mount: v2 is one cgroup2 mount, v1 a tmpfs with one cgroup mount per controller
    let (o, t, _) = m("/sys/fs/cgroup");
    if t == "cgroup2" {
        assert!(has(&o, "ro"), "/sys/fs/cgroup not ro: {o:?}");
    } else {
        assert_eq!(t, "tmpfs", "/sys/fs/cgroup type");
        for ctl in ["memory", "pids", "cpu"] {
            let (o, t, _) = m(&format!("/sys/fs/cgroup/{ctl}"));
            assert_eq!(t, "cgroup", "/sys/fs/cgroup/{ctl}");
            assert!(has(&o, "ro"), "/sys/fs/cgroup/{ctl} not ro: {o:?}");
        }
    }
}

#[test]
fn bind_mount_content_and_readonly() {
    root_or_skip!("bind_mount_content_and_readonly");
    for (dest, data, ok) in [
        ("/mnt/bind-ro/new", "x", false),
        ("/mnt/bind-rw/new", "written", true),
    ] {
        let mut c = Ctr::new("bindw", "mounts");
        std::fs::create_dir_all(c.bundle.join("bind-src")).unwrap();
        c.args(&["/probe", "write", dest, data]);
        let o = c.run();
        let v = probe_json(&o);
        assert_eq!(v["ok"], ok, "write {dest}: {v}");
        if ok {
            assert_eq!(
                std::fs::read_to_string(c.bundle.join("bind-src/new")).unwrap(),
                data
            );
        } else {
            assert_eq!(v["errno"], libc::EROFS, "{v}");
            assert!(!c.bundle.join("bind-src/new").exists());
        }
    }
    let mut c = Ctr::new("bindr", "mounts");
    std::fs::create_dir_all(c.bundle.join("bind-src")).unwrap();
    std::fs::write(c.bundle.join("bind-src/hello"), "from-host").unwrap();
    c.args(&["/probe", "read", "/mnt/bind-ro/hello"]);
    let v = probe_json(&c.run());
    assert_eq!(v["data"], "from-host");
}

#[test]
fn masked_and_readonly_paths() {
    root_or_skip!("masked_and_readonly_paths");
    let cases: &[(&[&str], &str)] = &[
        (
            &["/probe", "read", "/etc/hostname"],
            "masked file reads empty",
        ),
        (&["/probe", "ls", "/root"], "masked dir is empty"),
        (&["/probe", "write", "/home/user/x", "y"], "readonly path"),
        (
            &["/probe", "read", "/proc/timer_list"],
            "default masked /proc/timer_list",
        ),
        (
            &["/probe", "write", "/proc/sys/kernel/domainname", "h"],
            "default readonly /proc/sys",
        ),
        (
            &["/probe", "write", "/tmp/x", "y"],
            "non-masked path stays writable",
        ),
    ];
    for (args, what) in cases {
        let mut c = Ctr::new("mask", "masked-readonly");
        std::fs::write(c.rootfs().join("root/secret"), "s").unwrap();
        c.args(args);
        let v = probe_json(&c.run());
        match *what {
            "masked file reads empty" | "default masked /proc/timer_list" => {
                assert_eq!(v["ok"], true, "{what}: {v}");
                assert_eq!(v["data"], "", "{what}: {v}")
            }
            "masked dir is empty" => assert_eq!(v["entries"], serde_json::json!([]), "{what}: {v}"),
            "non-masked path stays writable" => assert_eq!(v["ok"], true, "{what}: {v}"),
            _ => {
                assert_eq!(v["ok"], false, "{what}: {v}");
                assert_eq!(v["errno"], libc::EROFS, "{what}: {v}")
            }
        }
    }
}

#[test]
fn readonly_root() {
    root_or_skip!("readonly_root");
    let mut c = Ctr::new("roroot", "default"); // runc's default spec: root.readonly true
    c.args(&["/probe", "write", "/newfile", "x"]);
    let v = probe_json(&c.run());
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["errno"], libc::EROFS);
    let mut c = Ctr::new("rwroot", "root-rw");
    c.args(&["/probe", "write", "/newfile", "x"]);
    let v = probe_json(&c.run());
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        std::fs::read_to_string(c.rootfs().join("newfile")).unwrap(),
        "x"
    );
}

#[test]
fn dev_contents() {
    root_or_skip!("dev_contents");
    let mut c = Ctr::new("dev", "default");
    let (_, vals) = run_probes(
        &mut c,
        "for f in null zero full random urandom tty ptmx fd stdin stdout stderr pts shm mqueue console; do /probe stat /dev/$f; done",
    );
    let names = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "stdout",
        "stderr", "pts", "shm", "mqueue", "console",
    ];
    let get = |n: &str| &vals[names.iter().position(|x| *x == n).unwrap()];
    for (n, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let v = get(n);
        assert_eq!(v["type"], "char", "/dev/{n}: {v}");
        assert_eq!(
            (v["major"].as_i64(), v["minor"].as_i64()),
            (Some(maj), Some(min)),
            "/dev/{n}: {v}"
        );
        assert_eq!(v["mode"], "0666", "/dev/{n} mode: {v}");
    }
    for (n, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let v = get(n);
        assert_eq!(v["type"], "symlink", "/dev/{n}: {v}");
        assert_eq!(v["target"], t, "/dev/{n}: {v}");
    }
    for n in ["pts", "shm", "mqueue"] {
        assert_eq!(get(n)["type"], "dir", "/dev/{n}: {}", get(n));
    }
    assert_eq!(
        get("console")["ok"],
        false,
        "no terminal: /dev/console must not exist: {}",
        get("console")
    );
}

#[test]
fn devices_created() {
    root_or_skip!("devices_created");
    let mut c = Ctr::new("devices", "devices");
    let (out, vals) = run_probes(
        &mut c,
        "/probe stat /dev/testnull; /probe stat /dev/testzero; /probe write /dev/testnull data",
    );
    assert_eq!(vals.len(), 3, "{out}");
    assert_eq!(vals[0]["type"], "char");
    assert_eq!(
        (vals[0]["major"].as_i64(), vals[0]["minor"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(vals[0]["mode"], "0640");
    assert_eq!(
        (vals[1]["major"].as_i64(), vals[1]["minor"].as_i64()),
        (Some(1), Some(5))
    );
    assert_eq!(vals[1]["mode"], "0600");
    assert_eq!(
        (vals[1]["uid"].as_i64(), vals[1]["gid"].as_i64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        vals[2]["ok"], true,
        "allowed device not writable: {}",
        vals[2]
    );
}

#[test]
fn hostname_and_domainname() {
    root_or_skip!("hostname_and_domainname");
    let mut c = Ctr::new("hostname", "hostname");
    let v = c.run_probe();
    assert_eq!(v["hostname"], "fixture-host");
    assert_eq!(v["domainname"], "fixture.domain");
}

#[test]
fn sysctl_applied() {
    root_or_skip!("sysctl_applied");
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut c = Ctr::new("sysctl", "sysctl");
    let v = c.run_probe();
    assert_eq!(v["sysctl"]["net.ipv4.ip_forward"], "1", "{}", v["sysctl"]);
    assert_eq!(
        v["sysctl"]["kernel.shm_rmid_forced"], "1",
        "{}",
        v["sysctl"]
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd,
        "the host's sysctl changed"
    );
}
