//! Conformance: runtime.md (state, lifecycle, operations in each state, errors, hooks failure
//! semantics) and the exit codes / error words of runc-cli-contract.md.
//!
//! Each `// req:` line names the requirement ids (docs/requirements.txt) the next test checks;
//! docs/conformance.md is generated from these annotations (docs/gen-conformance.py).
mod common;
use common::*;
use std::time::Duration;

fn err_of(c: &Ctr, o: &std::process::Output) -> String {
    format!("{}\n{}", text(&o.stderr), c.log_text())
}

/// `op` of a container that does not exist failed as runc's does: exit 1, `does not exist`.
fn assert_missing(c: &Ctr, o: &std::process::Output, op: &str) {
    assert_eq!(code(&o.status), 1, "{op} of a missing container exits 1");
    let e = err_of(c, o);
    assert!(
        e.contains("does not exist"),
        "{op}: the error must say `does not exist`: {e}"
    );
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
    assert_missing(&c, &o, "state");
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

// req: RT-CREATE-STATUS RT-START-STATUS RT-STOPPED-STATUS RT-STATE-FIELDS RT-SCOPE
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
    assert_missing(&c, &o, "start");
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
    assert_missing(&c, &o, "kill");
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
    assert_missing(&c, &o, "delete");
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
    assert_hook_failure_aborts_run("hookcr", "createRuntime");
}

// req: RT-HOOK-FAIL-CREATE
#[test]
fn failing_create_container_hook_aborts_and_cleans_up() {
    root_or_skip!("failing_create_container_hook_aborts_and_cleans_up");
    assert_hook_failure_aborts_run("hookcc", "createContainer");
}

/// `run` with a hook of `phase` that fails: exit 1, the error names the phase, and no
/// container is left.
fn assert_hook_failure_aborts_run(tag: &str, phase: &str) {
    let (c, o) = hook_fails_at(tag, phase);
    assert_eq!(code(&o.status), 1, "a failing {phase} hook must fail run");
    assert!(err_of(&c, &o).contains(phase), "{}", err_of(&c, &o));
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

// ---- runtime-spec 1.2 walk: hooks (config.md), features.md, features-linux.md ----

/// Write an executable hook script at a host-only path (outside the rootfs).
fn hook_script(path: &std::path::Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

fn read_trim(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

// req: CFG-HOOK-NAMESPACES
#[test]
fn hooks_resolve_and_run_in_the_namespaces_the_spec_names() {
    root_or_skip!("hooks_resolve_and_run_in_the_namespaces_the_spec_names");
    let mut c = Ctr::new("hookns", "hooks");
    let hookdir = c.work.join("hookout");
    std::fs::create_dir_all(&hookdir).unwrap();
    c.substitute("@HOOKDIR@", hookdir.to_str().unwrap());
    let mut hooks = serde_json::Map::new();
    // paths that exist only in the runtime mount namespace
    for k in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        let p = hook_script(
            &c.work.join(format!("hook-{k}.sh")),
            &format!("readlink /proc/self/ns/mnt > {}/{k}.mnt", hookdir.display()),
        );
        hooks.insert(k.into(), serde_json::json!([{ "path": p }]));
    }
    // a path that exists only in the container (/probe), writing through the /hookout bind
    hooks.insert(
        "startContainer".into(),
        serde_json::json!([{"path": "/probe",
            "args": ["probe", "write", "/hookout/startContainer.ran", "yes"]}]),
    );
    c.config["hooks"] = serde_json::Value::Object(hooks);
    c.args(&["/probe"]);
    let v = c.run_probe();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let ctr_mnt = v["ns"]["mnt"].as_str().unwrap_or_default().to_string();
    assert_ne!(
        ctr_mnt, host_mnt,
        "the container has its own mount namespace"
    );
    for k in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(
            read_trim(&hookdir.join(format!("{k}.mnt"))),
            host_mnt,
            "{k} must run in the runtime namespace"
        );
    }
    assert_eq!(
        read_trim(&hookdir.join("createContainer.mnt")),
        ctr_mnt,
        "createContainer must run in the container namespace (path from the runtime namespace)"
    );
    assert_eq!(
        read_trim(&hookdir.join("startContainer.ran")),
        "yes",
        "startContainer path must resolve, and run, in the container namespace"
    );
}

// req: CFG-HOOK-TIMING
#[test]
fn hooks_run_before_start_and_delete_return() {
    root_or_skip!("hooks_run_before_start_and_delete_return");
    let mut c = Ctr::new("hooktime", "hooks");
    let hookdir = c.work.join("hookout");
    std::fs::create_dir_all(&hookdir).unwrap();
    c.substitute("@HOOKDIR@", hookdir.to_str().unwrap());
    let d = hookdir.display();
    let poststart = hook_script(
        &c.work.join("poststart.sh"),
        &format!(
            "pid=$(grep -o '\"pid\": *[0-9]*' | grep -o '[0-9]*$')\n\
             tr '\\0' ' ' < /proc/$pid/cmdline > {d}/poststart.cmdline"
        ),
    );
    let poststop = hook_script(
        &c.work.join("poststop.sh"),
        &format!("echo ran > {d}/poststop"),
    );
    c.config["hooks"] = serde_json::json!({
        // pid 1 of the container is still the runtime's init, not the user program
        "startContainer": [{"path": "/bin/sh",
            "args": ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline > /hookout/startContainer.cmdline"]}],
        "poststart": [{"path": poststart}],
        "poststop": [{"path": poststop}],
    });
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    assert!(
        !hookdir.join("poststart.cmdline").exists(),
        "poststart ran at create"
    );
    let o = c.start();
    assert!(o.status.success(), "start: {}", err_of(&c, &o));
    // checked right after start returned
    let sc = read_trim(&hookdir.join("startContainer.cmdline"));
    assert!(
        !sc.is_empty() && !sc.contains("sleep"),
        "startContainer must run before the user program is executed: {sc:?}"
    );
    let ps = read_trim(&hookdir.join("poststart.cmdline"));
    assert!(
        ps.contains("/probe sleep 30"),
        "poststart must run after the user program is executed and before start returns: {ps:?}"
    );
    assert!(c.kill("KILL").status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    assert!(
        !hookdir.join("poststop").exists(),
        "poststop ran before delete"
    );
    let o = c.delete(false);
    assert!(o.status.success(), "delete: {}", err_of(&c, &o));
    assert_eq!(
        read_trim(&hookdir.join("poststop")),
        "ran",
        "poststop must run before delete returns"
    );
}

/// (major, minor, patch) of a SemVer string, pre-release ignored.
fn semver(v: &str) -> (u64, u64, u64) {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let n: Vec<u64> = core.split('.').map(|x| x.parse().unwrap_or(0)).collect();
    (n[0], *n.get(1).unwrap_or(&0), *n.get(2).unwrap_or(&0))
}

// req: FEAT-OCIVERSION
#[test]
fn features_oci_versions_are_accepted() {
    root_or_skip!("features_oci_versions_are_accepted");
    let f = features();
    let min = f["ociVersionMin"]
        .as_str()
        .expect("ociVersionMin")
        .to_string();
    let max = f["ociVersionMax"]
        .as_str()
        .expect("ociVersionMax")
        .to_string();
    assert!(
        semver(&max) >= semver(&min),
        "ociVersionMax {max} < ociVersionMin {min}"
    );
    for v in [&min, &max] {
        let mut c = Ctr::new("featver", "default");
        c.config["ociVersion"] = v.as_str().into();
        c.args(&["/probe", "exit", "0"]);
        let o = c.run();
        assert!(o.status.success(), "ociVersion {v}: {}", err_of(&c, &o));
    }
}

// req: FEAT-NO-UNDEFINED
#[test]
fn features_has_only_properties_of_its_version() {
    root_or_skip!("features_has_only_properties_of_its_version");
    let f = features();
    let max = semver(f["ociVersionMax"].as_str().unwrap_or("0.0.0"));
    let v12 = max >= (1, 2, 0);
    let v13 = max >= (1, 3, 0);
    let check = |what: &str, v: &serde_json::Value, allowed: &[&str]| {
        for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
            assert!(
                allowed.contains(&k.as_str()),
                "{what}.{k} is not defined by runtime-spec {max:?}"
            );
        }
    };
    let mut top = vec![
        "ociVersionMin",
        "ociVersionMax",
        "hooks",
        "mountOptions",
        "linux",
        "annotations",
    ];
    let mut linux = vec![
        "namespaces",
        "capabilities",
        "cgroup",
        "seccomp",
        "apparmor",
        "selinux",
        "intelRdt",
    ];
    if v12 {
        top.push("potentiallyUnsafeConfigAnnotations");
        linux.push("mountExtensions");
    }
    if v13 {
        // features-linux.md (runtime-spec 1.3): memoryPolicy, netDevices
        linux.extend(["memoryPolicy", "netDevices"]);
        check(
            "linux.memoryPolicy",
            &f["linux"]["memoryPolicy"],
            &["modes", "flags"],
        );
        check("linux.netDevices", &f["linux"]["netDevices"], &["enabled"]);
    }
    check("features", &f, &top);
    check("linux", &f["linux"], &linux);
    check(
        "linux.cgroup",
        &f["linux"]["cgroup"],
        &["v1", "v2", "systemd", "systemdUser", "rdma"],
    );
    check(
        "linux.seccomp",
        &f["linux"]["seccomp"],
        &[
            "enabled",
            "actions",
            "operators",
            "archs",
            "knownFlags",
            "supportedFlags",
        ],
    );
    for k in ["apparmor", "selinux", "intelRdt"] {
        check(&format!("linux.{k}"), &f["linux"][k], &["enabled"]);
    }
    check(
        "linux.mountExtensions",
        &f["linux"]["mountExtensions"],
        &["idmap"],
    );
    check(
        "linux.mountExtensions.idmap",
        &f["linux"]["mountExtensions"]["idmap"],
        &["enabled"],
    );
}

// req: FEAT-HOOKS
#[test]
fn features_hooks_are_hooks_of_the_spec() {
    root_or_skip!("features_hooks_are_hooks_of_the_spec");
    let f = features();
    let hooks = f["hooks"].as_array().expect("hooks");
    let known = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    for h in hooks {
        assert!(
            known.contains(&h.as_str().unwrap_or("")),
            "unknown hook {h}"
        );
    }
    // every listed hook is accepted in one config and runs
    let mut c = Ctr::new("feathooks", "hooks");
    let hookdir = c.work.join("hookout");
    std::fs::create_dir_all(&hookdir).unwrap();
    c.substitute("@HOOKDIR@", hookdir.to_str().unwrap());
    let mut m = serde_json::Map::new();
    for h in hooks {
        let h = h.as_str().unwrap();
        let (path, out) = if h == "startContainer" {
            ("/bin/sh".to_string(), format!("/hookout/{h}"))
        } else {
            ("/bin/sh".to_string(), format!("{}/{h}", hookdir.display()))
        };
        m.insert(
            h.into(),
            serde_json::json!([{"path": path, "args": ["sh", "-c", format!("echo ran > {out}")]}]),
        );
    }
    c.config["hooks"] = serde_json::Value::Object(m);
    c.args(&["/probe", "exit", "0"]);
    let o = c.run();
    assert!(o.status.success(), "run: {}", err_of(&c, &o));
    for h in hooks {
        let h = h.as_str().unwrap();
        assert_eq!(read_trim(&hookdir.join(h)), "ran", "hook {h} did not run");
    }
}

// req: FEAT-LINUX-RECOGNIZE
#[test]
fn features_linux_values_are_recognized() {
    root_or_skip!("features_linux_values_are_recognized");
    let f = features();
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let l = &f["linux"];
    for ns in strs(&l["namespaces"]) {
        assert!(
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
                .contains(&ns.as_str()),
            "unknown namespace type {ns}"
        );
    }
    // every listed capability in the bounding set: accepted, and the known ones applied
    let caps = strs(&l["capabilities"]);
    let mut c = Ctr::new("featcaps", "default");
    c.config["process"]["capabilities"]["bounding"] = serde_json::json!(caps);
    let v = c.run_probe();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let bnd = cap_mask(&v, "CapBnd");
    // what this host can grant: the runtime's own bounding set, up to cap_last_cap
    let host_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    let full = (1u64 << (last + 1)) - 1;
    if caps.len() as u32 > last {
        assert_eq!(
            bnd,
            host_bnd & full,
            "bounding set with every listed capability: {bnd:x}"
        );
    }
    // seccomp: every action, operator, arch and supported flag in one profile
    let sc = &l["seccomp"];
    let known_flags = strs(&sc["knownFlags"]);
    let supported = strs(&sc["supportedFlags"]);
    for fl in &supported {
        assert!(
            known_flags.contains(fl),
            "supported flag {fl} is not a known flag"
        );
    }
    let unused = [
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "kexec_load",
        "init_module",
        "delete_module",
        "settimeofday",
        "quotactl",
        "vhangup",
        "iopl",
        "ioperm",
        "uselib",
        "ustat",
        "sysfs",
        "syslog",
        "adjtimex",
        "clock_adjtime",
        "finit_module",
        "kexec_file_load",
    ];
    let mut rules = Vec::new();
    let mut i = 0;
    for a in strs(&sc["actions"]) {
        if a == "SCMP_ACT_NOTIFY" {
            continue; // needs a listenerPath agent
        }
        rules.push(serde_json::json!({"names": [unused[i]], "action": a}));
        i += 1;
    }
    for op in strs(&sc["operators"]) {
        rules.push(
            serde_json::json!({"names": [unused[i]], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}),
        );
        i += 1;
    }
    let mut c = Ctr::new("featsec", "default");
    c.config["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        // One filter holds architectures of one byte order (libseccomp refuses the other,
        // EDOM, and so does husk): the big-endian s390x is listed but not for this host.
        "architectures": strs(&sc["archs"])
            .into_iter()
            .filter(|a| cfg!(target_endian = "big") || *a != "SCMP_ARCH_S390X")
            .collect::<Vec<_>>(),
        "flags": supported,
        "syscalls": rules,
    });
    let v = c.run_probe();
    assert_eq!(v["pid"], 1, "{v}");
}

// req: CFG-ANNOTATION-STOPSIGNAL
#[test]
fn kill_without_a_signal_sends_the_stop_signal_annotation() {
    root_or_skip!("kill_without_a_signal_sends_the_stop_signal_annotation");
    for (annotation, want) in [(Some("SIGUSR1"), "USR1"), (None, "TERM")] {
        let mut c = Ctr::new("stopsig", "default");
        c.config["root"]["readonly"] = false.into();
        if let Some(a) = annotation {
            c.config["annotations"] = serde_json::json!({"org.opencontainers.image.stopSignal": a});
        }
        c.args(&[
            "/bin/sh",
            "-c",
            "trap 'echo USR1 > /tmp/sig; exit 0' USR1; trap 'echo TERM > /tmp/sig; exit 0' TERM; \
             echo ready > /tmp/ready; while :; do sleep 0.1; done",
        ]);
        c.create_ok(&[]);
        let o = c.start();
        assert!(o.status.success(), "start: {}", err_of(&c, &o));
        let ready = c.rootfs().join("tmp/ready");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ready.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ready.exists(), "the container's shell did not start");
        let o = c.rt(&["kill", &c.id]);
        assert!(o.status.success(), "kill: {}", err_of(&c, &o));
        assert!(
            c.wait_status("stopped", Duration::from_secs(10)),
            "the container did not stop on the default signal"
        );
        assert_eq!(
            read_trim(&c.rootfs().join("tmp/sig")),
            want,
            "annotation {annotation:?}"
        );
    }
}
