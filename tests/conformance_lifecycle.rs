//! Conformance: runtime.md (state, lifecycle, operations in each state, errors, hooks failure
//! semantics) and the exit codes / error words of runc-cli-contract.md.
//!
//! Each `// req:` line names the requirement ids (docs/requirements.txt) the next test checks;
//! docs/conformance.md is generated from these annotations (docs/gen-conformance.py).
mod common;
use common::*;
use std::time::Duration;

macro_rules! root_or_skip {
    ($name:expr) => {
        if !require_root($name) {
            return;
        }
    };
}

fn err_of(c: &Ctr, o: &std::process::Output) -> String {
    format!("{}\n{}", text(&o.stderr), c.log_text())
}

/// A created container whose process sleeps, started: status running.
fn running(tag: &str) -> Ctr {
    let mut c = Ctr::new(tag, "default");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    let o = c.start();
    assert!(o.status.success(), "start: {}", err_of(&c, &o));
    assert!(c.wait_status("running", Duration::from_secs(5)));
    c
}

/// A container that ran `/probe exit 0` and is now stopped (not deleted).
fn stopped(tag: &str) -> Ctr {
    let mut c = Ctr::new(tag, "default");
    c.args(&["/probe", "exit", "0"]);
    c.create_ok(&[]);
    let o = c.start();
    assert!(o.status.success(), "start: {}", err_of(&c, &o));
    assert!(
        c.wait_status("stopped", Duration::from_secs(10)),
        "container did not stop: {:?}",
        c.state()
    );
    c
}

// req: RT-STATE-MISSING RT-ERR-WORDS RT-ERR-EXIT
#[test]
fn state_of_missing_container_fails() {
    root_or_skip!("state_of_missing_container_fails");
    let c = Ctr::new("stmiss", "default");
    let o = c.rt(&["state", &c.id]);
    assert_eq!(code(&o.status), 1, "state of a missing container exits 1");
    assert!(
        err_of(&c, &o).contains("does not exist"),
        "error must say `does not exist`: {}",
        err_of(&c, &o)
    );
    assert!(o.stdout.is_empty(), "no state printed: {}", text(&o.stdout));
}

// req: RT-OP-NEEDS-ID
#[test]
fn operations_without_id_fail() {
    root_or_skip!("operations_without_id_fail");
    let c = Ctr::new("noid", "default");
    for op in ["state", "start", "delete", "kill"] {
        let o = c.rt(&[op]);
        assert!(!o.status.success(), "`{op}` without an id must fail");
    }
    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let o = c.rt(&["create", "--bundle", &b]);
    assert!(!o.status.success(), "`create` without an id must fail");
    let n = std::fs::read_dir(&c.root).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "create without an id created something in --root");
}

// req: RT-CREATE-UNIQUE-ID RT-STATE-ID-UNIQUE RT-ERRORS-NO-CHANGE
#[test]
fn create_with_existing_id_fails_and_keeps_the_first() {
    root_or_skip!("create_with_existing_id_fails_and_keeps_the_first");
    let mut c = Ctr::new("dupid", "default");
    c.create_ok(&[]);
    let before = c.state().expect("state");
    let o = c.create(&[]);
    assert_eq!(
        code(&o.status),
        1,
        "second create with the same id must fail"
    );
    let after = c.state().expect("the first container must still exist");
    assert_eq!(after["status"], "created");
    assert_eq!(
        after["pid"], before["pid"],
        "the first container was replaced"
    );
    assert!(pid_alive(before["pid"].as_i64().unwrap() as i32));
}

// req: RT-CREATE-STATUS RT-START-STATUS RT-STOPPED-STATUS RT-STATE-FIELDS
#[test]
fn status_created_running_stopped() {
    root_or_skip!("status_created_running_stopped");
    let mut c = Ctr::new("status", "default");
    c.args(&["/probe", "sleep", "1"]);
    c.create_ok(&[]);
    let s = c.state().unwrap();
    assert_eq!(s["status"], "created");
    assert!(s["pid"].as_i64().unwrap_or(0) > 0, "created has a pid: {s}");
    for k in ["ociVersion", "id", "status", "pid", "bundle"] {
        assert!(s.get(k).is_some(), "state lacks {k}: {s}");
    }
    assert_eq!(s["id"], c.id.as_str());
    assert_eq!(s["bundle"], c.bundle.to_str().unwrap());
    assert!(c.start().status.success());
    assert_eq!(c.status().as_deref(), Some("running"));
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    let s = c.state().unwrap();
    assert_eq!(
        s["pid"], 0,
        "a stopped container's pid is 0 (contract): {s}"
    );
}

// req: RT-START-MISSING
#[test]
fn start_missing_container_fails() {
    root_or_skip!("start_missing_container_fails");
    let c = Ctr::new("startmiss", "default");
    let o = c.start();
    assert_eq!(code(&o.status), 1);
    assert!(
        err_of(&c, &o).contains("does not exist"),
        "{}",
        err_of(&c, &o)
    );
}

// req: RT-START-TWICE
#[test]
fn start_twice_fails_without_effect() {
    root_or_skip!("start_twice_fails_without_effect");
    let c = running("start2");
    let pid = c.state().unwrap()["pid"].clone();
    let o = c.start();
    assert_eq!(code(&o.status), 1, "second start must fail");
    let s = c.state().unwrap();
    assert_eq!(s["status"], "running", "second start changed the container");
    assert_eq!(s["pid"], pid);
}

// req: RT-START-TWICE
#[test]
fn start_stopped_container_fails() {
    root_or_skip!("start_stopped_container_fails");
    let c = stopped("startstop");
    let o = c.start();
    assert_eq!(code(&o.status), 1, "start of a stopped container must fail");
    assert_eq!(c.status().as_deref(), Some("stopped"));
}

// req: RT-KILL-NOT-RUNNING RT-ERR-WORDS
#[test]
fn kill_stopped_container_fails() {
    root_or_skip!("kill_stopped_container_fails");
    let c = stopped("killstop");
    let o = c.kill("TERM");
    assert_eq!(code(&o.status), 1, "kill of a stopped container must fail");
    let e = err_of(&c, &o).to_lowercase();
    assert!(
        e.contains("not running") || e.contains("no such process"),
        "error words callers match (`container not running`): {e}"
    );
    assert_eq!(c.status().as_deref(), Some("stopped"));
}

// req: RT-KILL-MISSING
#[test]
fn kill_missing_container_fails() {
    root_or_skip!("kill_missing_container_fails");
    let c = Ctr::new("killmiss", "default");
    let o = c.kill("KILL");
    assert_eq!(code(&o.status), 1);
    assert!(
        err_of(&c, &o).contains("does not exist"),
        "{}",
        err_of(&c, &o)
    );
}

// req: RT-KILL-SENDS RT-STOPPED-STATUS
#[test]
fn kill_running_sends_the_signal() {
    root_or_skip!("kill_running_sends_the_signal");
    let c = running("killrun");
    let o = c.kill("KILL");
    assert!(o.status.success(), "kill: {}", err_of(&c, &o));
    assert!(
        c.wait_status("stopped", Duration::from_secs(5)),
        "SIGKILL did not stop the container"
    );
}

// req: RT-DELETE-MISSING RT-ERR-WORDS
#[test]
fn delete_missing_container_fails() {
    root_or_skip!("delete_missing_container_fails");
    let c = Ctr::new("delmiss2", "default");
    let o = c.delete(false);
    assert_eq!(code(&o.status), 1);
    assert!(
        err_of(&c, &o).contains("does not exist"),
        "{}",
        err_of(&c, &o)
    );
}

// req: RT-DELETE-RUNNING RT-ERRORS-NO-CHANGE
#[test]
fn delete_running_fails_and_keeps_it_running() {
    root_or_skip!("delete_running_fails_and_keeps_it_running");
    let c = running("delrun2");
    let pid = c.state().unwrap()["pid"].as_i64().unwrap() as i32;
    let o = c.delete(false);
    assert_eq!(
        code(&o.status),
        1,
        "delete of a running container must fail"
    );
    assert_eq!(c.status().as_deref(), Some("running"));
    assert!(pid_alive(pid));
    assert!(
        c.root.join(&c.id).exists(),
        "state dir removed by a failed delete"
    );
}

// req: RT-DELETE-CREATED
#[test]
fn delete_created_container_kills_it() {
    root_or_skip!("delete_created_container_kills_it");
    let mut c = Ctr::new("delcreated", "default");
    c.create_ok(&[]);
    let pid = c.state().unwrap()["pid"].as_i64().unwrap() as i32;
    // runc-cli-contract.md: plain delete of a `created` container kills it (what runc does and
    // containerd relies on); runtime.md 1.2 would have this fail. See docs/conformance.md.
    let o = c.delete(false);
    assert!(
        o.status.success(),
        "delete of a created container: {}",
        err_of(&c, &o)
    );
    assert!(c.state().is_none());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !pid_alive(pid),
        "the created container's process survived delete"
    );
}

// req: RT-DELETE-RESOURCES RT-LIFECYCLE-DELETE
#[test]
fn delete_removes_what_create_made() {
    root_or_skip!("delete_removes_what_create_made");
    let mut c = Ctr::new("delres", "cgroups");
    c.create_ok(&[]);
    let pid = c.state().unwrap()["pid"].as_i64().unwrap() as i32;
    assert!(!cgroup_dirs(&c.id).is_empty(), "no cgroup was created");
    assert!(c.start().status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    let o = c.delete(false);
    assert!(o.status.success(), "delete: {}", err_of(&c, &o));
    assert!(!pid_alive(pid), "process left");
    assert!(
        cgroup_dirs(&c.id).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs(&c.id)
    );
    assert!(!c.root.join(&c.id).exists(), "state dir left");
    assert!(mounts_under(&c.work).is_empty(), "mounts left");
}

// req: RT-DELETE-NOT-OWNED
#[test]
fn delete_keeps_what_it_did_not_create() {
    root_or_skip!("delete_keeps_what_it_did_not_create");
    let holder = ns_holder(&["--net"], "true");
    let mut c = Ctr::new("delnotown", "mounts");
    std::fs::create_dir_all(c.bundle.join("bind-src")).unwrap();
    std::fs::write(c.bundle.join("bind-src/hello"), "from-host").unwrap();
    let netns = format!("/proc/{}/ns/net", holder.pid());
    if let Some(ns) = c.config["linux"]["namespaces"].as_array_mut() {
        for n in ns.iter_mut() {
            if n["type"] == "network" {
                n["path"] = netns.clone().into();
            }
        }
    }
    c.args(&["/probe", "exit", "0"]);
    let o = c.run();
    assert!(o.status.success(), "run: {}", err_of(&c, &o));
    assert_eq!(
        std::fs::read_to_string(c.bundle.join("bind-src/hello")).unwrap_or_default(),
        "from-host",
        "a bind mount's source was touched by delete"
    );
    assert!(c.rootfs().join("probe").exists(), "the rootfs was removed");
    assert!(
        pid_alive(holder.pid()),
        "the joined namespace's holder was killed"
    );
    assert!(std::fs::read_link(&netns).is_ok(), "joined netns gone");
}

// req: RT-CONFIG-IMMUTABLE
#[test]
fn config_changes_after_create_do_not_change_the_process() {
    root_or_skip!("config_changes_after_create_do_not_change_the_process");
    let mut c = Ctr::new("immut2", "default");
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    let pid = c.state().unwrap()["pid"].as_i64().unwrap();
    let mut changed = c.config.clone();
    changed["process"]["env"] = serde_json::json!(["CHANGED=1", "PATH=/bin"]);
    changed["process"]["args"] = serde_json::json!(["/bin/sleep", "31"]);
    std::fs::write(
        c.bundle.join("config.json"),
        serde_json::to_vec(&changed).unwrap(),
    )
    .unwrap();
    assert!(c.start().status.success());
    assert!(c.wait_status("running", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(200));
    let cmdline = text(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
    let env = text(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
    assert!(
        cmdline.starts_with("/probe\x00sleep\x0030"),
        "process args changed after create: {cmdline:?}"
    );
    assert!(
        !env.contains("CHANGED=1"),
        "env changed after create: {env:?}"
    );
}

fn hook_fails_at(tag: &str, kind: &str) -> (Ctr, std::process::Output) {
    let mut c = Ctr::new(tag, "default");
    c.config["hooks"] = serde_json::json!({
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind}-fails >&2; exit 3")]}]
    });
    c.args(&["/probe", "exit", "0"]);
    let o = c.run();
    (c, o)
}

// req: RT-HOOK-FAIL-CREATE RT-ERRORS-NO-CHANGE
#[test]
fn failing_create_runtime_hook_aborts_and_cleans_up() {
    root_or_skip!("failing_create_runtime_hook_aborts_and_cleans_up");
    let (c, o) = hook_fails_at("hookcr", "createRuntime");
    assert_eq!(
        code(&o.status),
        1,
        "a failing createRuntime hook must fail run"
    );
    assert!(
        err_of(&c, &o).contains("createRuntime"),
        "{}",
        err_of(&c, &o)
    );
    assert!(c.state().is_none(), "container left after a failed hook");
}

// req: RT-HOOK-FAIL-CREATE
#[test]
fn failing_create_container_hook_aborts_and_cleans_up() {
    root_or_skip!("failing_create_container_hook_aborts_and_cleans_up");
    let (c, o) = hook_fails_at("hookcc", "createContainer");
    assert_eq!(
        code(&o.status),
        1,
        "a failing createContainer hook must fail run"
    );
    assert!(
        err_of(&c, &o).contains("createContainer"),
        "{}",
        err_of(&c, &o)
    );
    assert!(c.state().is_none(), "container left after a failed hook");
}

// req: RT-HOOK-FAIL-START
#[test]
fn failing_start_container_hook_fails_start_and_stops_it() {
    root_or_skip!("failing_start_container_hook_fails_start_and_stops_it");
    let mut c = Ctr::new("hooksc", "default");
    c.config["hooks"] = serde_json::json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]
    });
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    let pid = c.state().unwrap()["pid"].as_i64().unwrap() as i32;
    let o = c.start();
    assert_eq!(
        code(&o.status),
        1,
        "a failing startContainer hook must fail start"
    );
    assert!(
        err_of(&c, &o).contains("startContainer"),
        "{}",
        err_of(&c, &o)
    );
    // the user process must not run; the container is stopped (then deleted by the caller)
    assert!(
        c.wait_status("stopped", Duration::from_secs(5)) || c.state().is_none(),
        "container not stopped after a failed startContainer hook: {:?}",
        c.state()
    );
    assert!(!pid_alive(pid), "the container process survived");
}

// req: RT-HOOK-FAIL-POSTSTOP
#[test]
fn failing_poststop_hook_warns_and_delete_succeeds() {
    root_or_skip!("failing_poststop_hook_warns_and_delete_succeeds");
    let mut c = Ctr::new("hookps", "default");
    let marker = c.work.join("second-poststop-ran");
    c.config["hooks"] = serde_json::json!({
        "poststop": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo poststop-fails >&2; exit 5"]},
            {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", marker.display())]}
        ]
    });
    c.args(&["/probe", "exit", "0"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    let o = c.delete(false);
    assert!(
        o.status.success(),
        "a failing poststop hook must not fail delete: {}",
        err_of(&c, &o)
    );
    assert!(c.state().is_none(), "container not deleted");
    assert!(
        marker.exists(),
        "the hooks after the failing poststop did not run"
    );
    let log = c.log_text().to_lowercase();
    assert!(
        log.contains("warn") || text(&o.stderr).to_lowercase().contains("warn"),
        "a failing poststop must be logged as a warning: {log}"
    );
}

// req: RT-ERR-EXIT
#[test]
fn exec_that_cannot_start_exits_255() {
    root_or_skip!("exec_that_cannot_start_exits_255");
    let c = running("exec255");
    let o = c.rt(&["exec", &c.id, "/no/such/binary"]);
    assert_eq!(
        code(&o.status),
        255,
        "exec failing to start the process: {}",
        err_of(&c, &o)
    );
}

// req: RT-STATE-PID RT-HOOK-STATE-STDIN RT-HOOK-CREATING
#[test]
fn hooks_get_the_host_pid_and_creating_status() {
    root_or_skip!("hooks_get_the_host_pid_and_creating_status");
    let mut c = Ctr::new("hookpid", "hooks");
    let hookdir = c.work.join("hookout");
    std::fs::create_dir_all(&hookdir).unwrap();
    c.substitute("@HOOKDIR@", hookdir.to_str().unwrap());
    c.args(&["/probe", "exit", "0"]);
    c.create_ok(&[]);
    let pid = c.state().unwrap()["pid"].as_i64().unwrap();
    assert!(c.start().status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
    ] {
        let raw = std::fs::read_to_string(hookdir.join(format!("{h}.json"))).unwrap_or_default();
        let s: serde_json::Value = serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("{h}: no state on stdin ({e}): {raw:?}"));
        assert_eq!(
            s["pid"].as_i64(),
            Some(pid),
            "{h}: runtime.md State: pid is the container process as seen by the host: {s}"
        );
        if h == "createRuntime" || h == "prestart" {
            assert_eq!(s["status"], "creating", "{h}: {s}");
        }
    }
}
