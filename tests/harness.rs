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

/// `make test`'s summary counts a test that printed `SKIP name: why` as skipped, not passed
/// (libtest says "ok" for it), a `SKIP-PART` as a skip of a test that still passed, and a stage
/// whose log is missing as a failure of the run.
#[test]
fn summary_counts_skipped_tests_apart_from_passed() {
    let dir = std::env::temp_dir().join(format!("husk-test-summary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |stage: &str, text: &str| std::fs::write(dir.join(format!("{stage}.log")), text);
    write("lint", "lint: ok\n").unwrap();
    write(
        "unit",
        "test a ... ok\nSKIP b: needs a thing\ntest b ... ok\n\
         test result: ok. 7 passed; 0 failed; 1 ignored; 0 measured\n",
    )
    .unwrap();
    write(
        "root",
        "SKIP-PART c/part: no device\nSKIP d: no tool\nSKIP e: no tool\n\
         test result: ok. 10 passed; 0 failed; 0 ignored; 0 measured\n\
         test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured\n",
    )
    .unwrap();
    write(
        "fallback",
        "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured\n",
    )
    .unwrap();
    for s in [
        "containerd",
        "engines",
        "cri",
        "validation",
        "package",
        "vm",
    ] {
        write(s, &format!("{s}: 4 passed, 0 failed, 1 skipped\n")).unwrap();
    }
    let run = || {
        Command::new("bash")
            .arg(std::path::Path::new(MANIFEST_DIR).join("integration/summary.sh"))
            .arg(&dir)
            .output()
            .unwrap()
    };
    let o = run();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let row = |stage: &str| -> Vec<String> {
        let l = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(stage))
            .unwrap_or_else(|| panic!("no {stage} row in:\n{out}"));
        l.split_whitespace().skip(1).map(String::from).collect()
    };
    assert!(o.status.success(), "summary failed:\n{out}");
    assert_eq!(row("unit"), ["6", "0", "2"], "{out}");
    assert_eq!(row("root"), ["11", "0", "3"], "{out}");
    // 1 + 6 + 11 + 2 + 6 × 4 passed; 2 + 3 + 6 skipped
    assert!(
        out.contains("make test: 44 passed, 0 failed, 11 skipped"),
        "{out}"
    );
    assert!(out.contains("SKIP-PART c/part: no device"), "{out}");
    std::fs::remove_file(dir.join("vm.log")).unwrap();
    let o = run();
    assert!(
        !o.status.success(),
        "a stage without a log must fail the summary"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
