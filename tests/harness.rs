//! Self-tests of the harness and the probe: the guard really detects and removes leftovers,
//! the probe reports and fails as documented. These make sure the root tests CAN fail.
mod common;
use common::*;
use std::process::Command;

fn probe_bin() -> std::path::PathBuf {
    testroot().join("probe")
}

#[test]
fn probe_report_on_host() {
    let o = run_timeout(
        Command::new(probe_bin()).args(["--sysctl", "kernel.ostype"]),
        CMD_TIMEOUT,
    );
    assert!(o.status.success());
    let v = probe_json(&o);
    assert!(v["pid"].as_i64().unwrap() > 1, "pid: {}", v["pid"]);
    assert_eq!(
        v["ppid"].as_i64(),
        Some(std::process::id() as i64),
        "the probe's parent is this test"
    );
    assert_eq!(v["uid"].as_i64(), Some(unsafe { libc::getuid() } as i64));
    assert_eq!(v["sysctl"]["kernel.ostype"], "Linux");
    assert_eq!(
        v["ns"]["mnt"].as_str().unwrap(),
        std::fs::read_link("/proc/self/ns/mnt")
            .unwrap()
            .to_str()
            .unwrap()
    );
    for k in [
        "caps",
        "rlimits",
        "mountinfo",
        "fds",
        "cgroup",
        "sched",
        "ioprio",
        "umask",
        "env",
        "tty",
    ] {
        assert!(!v[k].is_null(), "probe report lacks {k}");
    }
    assert!(v["rlimits"]["RLIMIT_NOFILE"]["soft"].is_number());
}

#[test]
fn probe_active_checks_fail_with_errno() {
    let o = run_timeout(
        Command::new(probe_bin()).args(["read", "/nonexistent-husk-probe"]),
        CMD_TIMEOUT,
    );
    assert_eq!(code(&o.status), 1);
    let v = probe_json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["errno"], libc::ENOENT);
    let o = run_timeout(Command::new(probe_bin()).args(["exit", "7"]), CMD_TIMEOUT);
    assert_eq!(code(&o.status), 7);
    let o = run_timeout(
        Command::new(probe_bin()).args(["syscall", "getpid"]),
        CMD_TIMEOUT,
    );
    assert_eq!(probe_json(&o)["ok"], true);
    let o = run_timeout(
        Command::new(probe_bin()).arg("no-such-subcommand"),
        CMD_TIMEOUT,
    );
    assert_eq!(code(&o.status), 2);
}

#[test]
fn probe_is_static() {
    let o = run_timeout(Command::new("file").arg(probe_bin()), CMD_TIMEOUT);
    let s = text(&o.stdout);
    if !o.status.success() {
        skip("probe_is_static", "`file` not installed");
        return;
    }
    assert!(s.contains("static"), "probe is not statically linked: {s}");
}

/// The guard's leftover detection is real: plant each kind of leftover and see it reported.
#[test]
fn guard_detects_and_removes_leftovers() {
    if !require_root("guard_detects_and_removes_leftovers") {
        return;
    }
    let mut c = Ctr::new("selftest", "default");
    // a state dir
    std::fs::create_dir_all(c.root.join(&c.id)).unwrap();
    // a mount under the work dir
    let m = c.work.join("mnt");
    std::fs::create_dir_all(&m).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "none"])
        .arg(&m)
        .status()
        .unwrap()
        .success());
    // a cgroup named after the id
    let cg = std::path::Path::new("/sys/fs/cgroup/pids").join(&c.id);
    let made_cg = std::fs::create_dir(&cg).is_ok();
    // a process
    let mut child = Command::new("sleep").arg("600").spawn().unwrap();
    c.pids.push(child.id() as i32);

    let left = c.leftovers();
    let joined = left.join("\n");
    assert!(joined.contains("state dir"), "{joined}");
    assert!(
        joined.contains(&format!("mount {}", m.display())),
        "{joined}"
    );
    assert!(
        joined.contains(&format!("process {}", child.id())),
        "{joined}"
    );
    if made_cg {
        assert!(joined.contains("cgroup"), "{joined}");
    }
    c.force_cleanup();
    let _ = child.wait();
    assert!(mounts_under(&c.work).is_empty());
    assert!(!cg.exists());
    assert!(!c.work.exists());
    std::fs::create_dir_all(&c.work).unwrap(); // the guard's own delete runs there
}
