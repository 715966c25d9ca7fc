//! CLI contract: create/start/state/kill/delete/list/spec/--version/--pid-file/--log-format json.
mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn version_output_format() {
    // `--version` is called with no global flags; dockerd parses these lines.
    let o = run_timeout(
        std::process::Command::new(runtime()).arg("--version"),
        CMD_TIMEOUT,
    );
    assert!(o.status.success(), "--version failed: {}", text(&o.stderr));
    let s = text(&o.stdout);
    let first = s.lines().next().unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().collect();
    assert!(
        words.len() >= 3 && words[1] == "version",
        "first line must be `NAME version X.Y.Z`: {first:?}"
    );
    let ver = words[2];
    assert_eq!(
        ver.split('.')
            .take(3)
            .filter(|p| p.chars().take_while(|c| c.is_ascii_digit()).count() > 0)
            .count(),
        3,
        "version not X.Y.Z: {ver}"
    );
    assert!(
        s.lines().any(|l| l.starts_with("spec: 1.")),
        "no `spec: 1.x.y` line:\n{s}"
    );
    assert!(
        s.lines().any(|l| l.starts_with("commit:")),
        "no `commit:` line:\n{s}"
    );
}

/// The binary built from this checkout names the checkout's commit (dockerd and `docker info`
/// show it), with `-dirty` when tracked files had changes at build time.
#[test]
fn version_names_the_commit_it_was_built_from() {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_husk"));
    let o = run_timeout(
        std::process::Command::new(&bin).arg("--version"),
        CMD_TIMEOUT,
    );
    let s = text(&o.stdout);
    let commit = s
        .lines()
        .find_map(|l| l.strip_prefix("commit: "))
        .unwrap_or_else(|| panic!("no `commit: ` line:\n{s}"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(MANIFEST_DIR)
        .output();
    match head {
        Ok(h) if h.status.success() => {
            let head = text(&h.stdout).trim().to_string();
            let sha = commit.strip_suffix("-dirty").unwrap_or(commit);
            assert_eq!(sha, head, "commit line {commit:?} is not HEAD {head}");
        }
        _ => skip_part(
            "version_names_the_commit_it_was_built_from/head",
            "the source tree is not a git checkout",
        ),
    }
}

#[test]
fn spec_writes_default_config() {
    let dir = tempfile::Builder::new()
        .prefix("husk-test-spec-")
        .tempdir()
        .unwrap();
    let o = run_timeout(
        std::process::Command::new(runtime())
            .arg("spec")
            .current_dir(dir.path()),
        CMD_TIMEOUT,
    );
    assert!(o.status.success(), "spec failed: {}", text(&o.stderr));
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(
        c["ociVersion"].as_str().unwrap_or("").starts_with("1."),
        "ociVersion: {}",
        c["ociVersion"]
    );
    assert_eq!(c["root"]["path"], "rootfs");
    assert!(c["process"]["args"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(
            ns.contains(&want),
            "default spec lacks {want} namespace: {ns:?}"
        );
    }
    // --bundle writes elsewhere
    let d2 = tempfile::Builder::new()
        .prefix("husk-test-spec-")
        .tempdir()
        .unwrap();
    let o = run_timeout(
        std::process::Command::new(runtime())
            .args(["spec", "--bundle"])
            .arg(d2.path()),
        CMD_TIMEOUT,
    );
    assert!(
        o.status.success(),
        "spec --bundle failed: {}",
        text(&o.stderr)
    );
    assert!(d2.path().join("config.json").exists());
}

#[test]
fn lifecycle_state_fields_and_transitions() {
    root_or_skip!("lifecycle_state_fields_and_transitions");
    let mut c = Ctr::new("life", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    let s = c.state().expect("state after create");
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        assert!(s.get(k).is_some(), "state lacks {k}: {s}");
    }
    assert_eq!(s["id"], c.id.as_str());
    assert_eq!(s["status"], "created");
    let pid = s["pid"].as_i64().unwrap();
    assert!(
        pid > 0 && pid_alive(pid as i32),
        "created container has no live pid: {s}"
    );
    assert_eq!(s["bundle"], c.bundle.to_str().unwrap());
    assert!(
        s.get("annotations").is_none()
            || s["annotations"].as_object().is_some_and(|m| !m.is_empty()),
        "empty annotations must be omitted: {s}"
    );
    // RFC 3339 with nanoseconds: 2006-01-02T15:04:05.999999999Z
    let created = s["created"].as_str().unwrap();
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T' && created.contains('.'),
        "created not RFC3339 with fraction: {created}"
    );
    // the state JSON is indented
    let raw = text(&c.rt(&["state", &c.id]).stdout);
    assert!(raw.contains("\n  "), "state output not indented: {raw}");

    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    assert!(
        c.wait_status("running", Duration::from_secs(5)),
        "not running after start: {:?}",
        c.state()
    );
    let o = c.kill("KILL");
    assert!(o.status.success(), "kill: {}", text(&o.stderr));
    assert!(
        c.wait_status("stopped", Duration::from_secs(10)),
        "not stopped after kill: {:?}",
        c.state()
    );
    assert_eq!(c.state().unwrap()["pid"], 0, "pid must be 0 once stopped");
    let o = c.delete(false);
    assert!(o.status.success(), "delete: {}", text(&o.stderr));
    let o = c.rt(&["state", &c.id]);
    assert!(
        !o.status.success(),
        "state of a deleted container must fail"
    );
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        err.contains("does not exist"),
        "missing container error must say `does not exist`: {err}"
    );
    assert!(!pid_alive(pid as i32));
}

/// kill with numeric and named signals, with and without SIG.
#[test]
fn kill_signal_forms() {
    root_or_skip!("kill_signal_forms");
    for sig in ["9", "KILL", "SIGKILL", "15", "TERM", "SIGTERM"] {
        let mut c = Ctr::new("kill", "default");
        // pid 1 ignores unhandled signals: trap TERM and report it through the exit code.
        c.args(&[
            "/bin/sh",
            "-c",
            "trap 'exit 42' TERM; while :; do sleep 0.1; done",
        ]);
        c.create_ok(&[]);
        assert!(c.start().status.success());
        assert!(c.wait_status("running", Duration::from_secs(5)));
        let o = c.kill(sig);
        assert!(o.status.success(), "kill {sig}: {}", text(&o.stderr));
        assert!(
            c.wait_status("stopped", Duration::from_secs(10)),
            "kill {sig} did not stop the container"
        );
    }
}

#[test]
fn kill_bad_signal_fails() {
    root_or_skip!("kill_bad_signal_fails");
    let mut c = Ctr::new("killbad", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    for sig in ["SIGNOTASIGNAL", "999", "-1"] {
        let o = c.kill(sig);
        assert!(!o.status.success(), "kill with {sig} must fail");
    }
    assert_eq!(c.status().as_deref(), Some("created"));
}

#[test]
fn kill_created_container() {
    root_or_skip!("kill_created_container");
    let mut c = Ctr::new("killcr", "default");
    c.create_ok(&[]);
    let o = c.kill("KILL");
    assert!(
        o.status.success(),
        "kill on a created container must work: {}",
        text(&o.stderr)
    );
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
}

#[test]
fn delete_created_kills_it() {
    root_or_skip!("delete_created_kills_it");
    let mut c = Ctr::new("delcr", "default");
    c.create_ok(&[]);
    let pid = c.pids[0];
    let o = c.delete(false);
    assert!(
        o.status.success(),
        "plain delete of a created container must succeed: {}",
        text(&o.stderr)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !pid_alive(pid),
        "delete left the created container's process alive"
    );
    assert!(!c.root.join(&c.id).exists());
}

#[test]
fn delete_running_needs_force() {
    root_or_skip!("delete_running_needs_force");
    let mut c = Ctr::new("delrun", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let o = c.delete(false);
    assert!(
        !o.status.success(),
        "plain delete of a running container must fail"
    );
    assert_eq!(c.status().as_deref(), Some("running"));
    let o = c.delete(true);
    assert!(o.status.success(), "delete --force: {}", text(&o.stderr));
    assert!(c.state().is_none());
}

#[test]
fn delete_force_missing_is_ok() {
    root_or_skip!("delete_force_missing_is_ok");
    let c = Ctr::new("delmiss", "default");
    let o = c.delete(true);
    assert!(
        o.status.success(),
        "delete --force of a missing container must exit 0: {}",
        text(&o.stderr)
    );
    let o = c.delete(false);
    assert!(
        !o.status.success(),
        "plain delete of a missing container must fail"
    );
}

#[test]
fn list_formats() {
    root_or_skip!("list_formats");
    let mut a = Ctr::new("lista", "default");
    a.create_ok(&[]);
    let mut b = Ctr::new("listb", "default");
    b.root = a.root.clone(); // same --root: both listed
    b.log = a.log.clone();
    b.args(&["/probe", "sleep", "60"]);
    b.create_ok(&[]);
    assert!(b.start().status.success());

    let t = text(&a.rt(&["list"]).stdout);
    let header = t.lines().next().unwrap_or("");
    // the first column names the container (runc: ID, crun: NAME); PID and STATUS follow
    assert!(
        (header.starts_with("ID") || header.starts_with("NAME"))
            && header.contains("PID")
            && header.contains("STATUS"),
        "table header: {header:?}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with(&a.id) && l.contains("created")),
        "table lacks {}: {t}",
        a.id
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with(&b.id) && l.contains("running")),
        "table lacks {}: {t}",
        b.id
    );

    let j: Value = serde_json::from_slice(&a.rt(&["list", "--format", "json"]).stdout)
        .expect("list --format json is JSON");
    let arr = j.as_array().expect("array");
    assert_eq!(arr.len(), 2, "{j}");
    for (c, st) in [(&a, "created"), (&b, "running")] {
        let e = arr
            .iter()
            .find(|e| e["id"] == c.id.as_str())
            .unwrap_or_else(|| panic!("{} not in {j}", c.id));
        assert_eq!(e["status"], st);
        assert!(e["pid"].as_i64().unwrap() > 0);
        assert_eq!(e["bundle"], c.bundle.to_str().unwrap());
    }
    let q = text(&a.rt(&["list", "--quiet"]).stdout);
    let mut ids: Vec<&str> = q.lines().collect();
    ids.sort();
    let mut want = vec![a.id.as_str(), b.id.as_str()];
    want.sort();
    assert_eq!(ids, want, "list --quiet prints only ids");
    // b shares a's root: delete b first so each guard checks its own leftovers
    drop(b);
}

#[test]
fn list_empty_root() {
    root_or_skip!("list_empty_root");
    let c = Ctr::new("listempty", "default");
    let o = c.rt(&["list", "--format", "json"]);
    assert!(
        o.status.success(),
        "list on a missing root: {}",
        text(&o.stderr)
    );
    let s = text(&o.stdout);
    let v: Value = serde_json::from_str(s.trim())
        .unwrap_or_else(|e| panic!("list --format json must print JSON ([] or null): {e}: {s:?}"));
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "empty list must be [] or null: {s}"
    );
}

#[test]
fn pid_file_has_no_newline() {
    root_or_skip!("pid_file_has_no_newline");
    let mut c = Ctr::new("pidfile", "default");
    let pf = c.work.join("ctr.pid");
    let pfs = pf.to_str().unwrap().to_string();
    c.create_ok(&["--pid-file", &pfs]);
    let raw = std::fs::read_to_string(&pf).expect("pid file written");
    assert!(
        !raw.ends_with('\n'),
        "pid file must have no trailing newline: {raw:?}"
    );
    let pid: i64 = raw.parse().expect("pid file is a decimal number");
    assert_eq!(c.state().unwrap()["pid"].as_i64(), Some(pid));
    let leftovers: Vec<_> = std::fs::read_dir(&c.work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pid") && n != "ctr.pid")
        .collect();
    assert!(leftovers.is_empty(), "temp pid files left: {leftovers:?}");
}

#[test]
fn log_format_json_error_line() {
    root_or_skip!("log_format_json_error_line");
    let c = Ctr::new("logjson", "default");
    let o = c.rt(&["start", &c.id]);
    assert!(
        !o.status.success(),
        "start of a missing container must fail"
    );
    let log = c.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log line written to --log");
    let mut saw_error = 0;
    for l in &lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
        for k in ["level", "msg", "time"] {
            assert!(v.get(k).is_some(), "log line lacks {k}: {l}");
        }
        if v["level"] == "error" {
            saw_error += 1;
            assert!(
                v["msg"].as_str().unwrap().contains("does not exist"),
                "error msg: {l}"
            );
            let t = v["time"].as_str().unwrap();
            assert!(
                t.len() >= 20 && t.as_bytes()[10] == b'T',
                "time not RFC3339: {t}"
            );
        }
    }
    // podman parses the log as ONE object: one failing command, one error line
    assert_eq!(saw_error, 1, "want exactly one level=error line: {log}");
}

#[test]
fn run_forwards_exit_status() {
    root_or_skip!("run_forwards_exit_status");
    for n in [0, 3, 42] {
        let mut c = Ctr::new("exit", "default");
        c.args(&["/probe", "exit", &n.to_string()]);
        let o = c.run();
        assert_eq!(
            code(&o.status),
            n,
            "run must pass the exit status through; stderr {}",
            text(&o.stderr)
        );
    }
    // killed by a signal from outside: run exits 128+N
    let mut c = Ctr::new("exitsig", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.write_config();
    let mut cmd = c.cmd();
    cmd.args(["run", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = Helper(cmd.spawn().unwrap());
    assert!(
        c.wait_status("running", Duration::from_secs(10)),
        "run did not start the container"
    );
    c.pids
        .push(c.state().unwrap()["pid"].as_i64().unwrap() as i32);
    assert!(c.kill("KILL").status.success());
    let mut child = child;
    let st = wait_child(&mut child.0, Duration::from_secs(10));
    assert_eq!(
        code(&st),
        137,
        "a container killed by SIGKILL: run exits 137"
    );
}

#[test]
fn run_detach() {
    root_or_skip!("run_detach");
    let mut c = Ctr::new("rund", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.write_config();
    let b = c.bundle.to_str().unwrap().to_string();
    let id = c.id.clone();
    let o = c.rt(&["run", "--detach", "--bundle", &b, &id]);
    assert!(o.status.success(), "run --detach: {}", text(&o.stderr));
    let s = c.state().expect("state");
    c.pids.push(s["pid"].as_i64().unwrap() as i32);
    assert_eq!(s["status"], "running");
}

/// `exec ID CMD...`: the new process joins the container's namespaces and sees its rootfs.
#[test]
fn exec_joins_container() {
    root_or_skip!("exec_joins_container");
    let mut c = Ctr::new("exec", "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let pid = c.pids[0];
    let o = c.rt(&["exec", &c.id, "/probe"]);
    assert!(o.status.success(), "exec: {}", text(&o.stderr));
    let v = probe_json(&o);
    for t in ["pid", "net", "ipc", "uts", "mnt"] {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{t}")).unwrap();
        assert_eq!(
            v["ns"][t].as_str().unwrap(),
            want.to_str().unwrap(),
            "exec is not in the container's {t} ns"
        );
    }
    assert!(
        v["pid"].as_i64().unwrap() > 1,
        "exec'd process must not be pid 1"
    );
    // exit status passes through exec too
    let o = c.rt(&["exec", &c.id, "/probe", "exit", "5"]);
    assert_eq!(code(&o.status), 5);
}

/// The form containerd uses: `exec --process FILE.json --detach --pid-file ABS ID`.
#[test]
fn exec_process_json_detach_pid_file() {
    root_or_skip!("exec_process_json_detach_pid_file");
    let mut c = Ctr::new("execp", "root-rw");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let proc_json = c.work.join("process.json");
    std::fs::write(
        &proc_json,
        serde_json::to_vec(&serde_json::json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000},
            "args": ["/bin/sh", "-c", "/probe > /tmp/exec-report"],
            "env": ["PATH=/bin", "EXEC_MARK=1"],
            "cwd": "/tmp"
        }))
        .unwrap(),
    )
    .unwrap();
    let pf = c.work.join("exec.pid");
    let o = c.rt(&[
        "exec",
        "--process",
        proc_json.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pf.to_str().unwrap(),
        &c.id,
    ]);
    assert!(o.status.success(), "exec --process: {}", text(&o.stderr));
    let raw = std::fs::read_to_string(&pf).expect("exec pid file");
    assert!(
        !raw.ends_with('\n') && raw.parse::<i32>().is_ok(),
        "exec pid file: {raw:?}"
    );
    let report = c.rootfs().join("tmp/exec-report");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let v: Value = loop {
        if let Ok(s) = std::fs::read_to_string(&report) {
            if let Ok(v) = serde_json::from_str(s.trim()) {
                break v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the exec'd process did not run"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(v["uid"], 1000);
    assert_eq!(v["cwd"], "/tmp");
    assert!(
        v["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "EXEC_MARK=1"),
        "{}",
        v["env"]
    );
}
