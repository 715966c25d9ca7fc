//! The `--log-format json` error contract (runc-cli-contract.md): after each failing command
//! the log holds exactly ONE line (podman parses it as a single object), valid JSON
//! `{"level":"error","msg":…,"time":RFC3339}`, with the words callers match, and the exit code
//! is non-zero (255 for exec). Errors of the container's init (sent through the sync channel)
//! come out the same way.
mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// Run `args` against `c`'s root with a fresh log; check one JSON error line holding `words`
/// (any of them) and the exit code; return the msg.
fn fails_with(c: &Ctr, args: &[&str], words: &[&str], code_want: i32) -> String {
    let _ = std::fs::remove_file(&c.log);
    let o = c.rt(args);
    let log = c.log_text();
    assert_eq!(
        code(&o.status),
        code_want,
        "{args:?}: exit status (log: {log}; stderr: {})",
        text(&o.stderr)
    );
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want exactly one log line: {log:?}"
    );
    let v: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("{args:?}: log line is not JSON ({e}): {}", lines[0]));
    let obj = v.as_object().expect("a JSON object");
    assert_eq!(obj.len(), 3, "{args:?}: exactly level, msg, time: {v}");
    assert_eq!(v["level"], "error", "{args:?}: {v}");
    let t = v["time"].as_str().expect("time is a string");
    assert!(
        t.len() >= 20 && t.as_bytes()[10] == b'T' && (t.ends_with('Z') || t.contains('+')),
        "{args:?}: time not RFC 3339: {t}"
    );
    let msg = v["msg"].as_str().expect("msg is a string").to_string();
    assert!(
        words.iter().any(|w| msg.contains(w)),
        "{args:?}: msg {msg:?} lacks any of {words:?}"
    );
    msg
}

fn sleeper(tag: &str) -> Ctr {
    let mut c = Ctr::new(tag, "default");
    c.args(&["sleep", "1000"]);
    c
}

#[test]
fn missing_container_every_subcommand() {
    root_or_skip!("missing_container_every_subcommand");
    let c = sleeper("lgmiss");
    let id = "lg-no-such-ctr";
    for args in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
        vec!["pause", id],
        vec!["resume", id],
        vec!["ps", "--format", "json", id],
        vec!["events", "--stats", id],
        vec!["update", "--memory", "10M", id],
        vec!["checkpoint", "--image-path", "/nonexistent-img", id],
    ] {
        fails_with(&c, &args, &["does not exist"], 1);
    }
    fails_with(&c, &["exec", id, "true"], &["does not exist"], 255);
}

#[test]
fn exec_failures_use_the_matched_words() {
    root_or_skip!("exec_failures_use_the_matched_words");
    let mut c = sleeper("lgexec");
    c.create_ok(&[]);
    assert!(c.start().status.success());
    assert!(c.wait_status("running", Duration::from_secs(5)));
    let id = c.id.clone();
    fails_with(
        &c,
        &["exec", &id, "nosuchcmd"],
        &["executable file not found in"],
        255,
    );
    fails_with(
        &c,
        &["exec", &id, "/nonexistent/x"],
        &["no such file or directory"],
        255,
    );
    fails_with(
        &c,
        &["exec", &id, "/etc/passwd"],
        &["permission denied"],
        255,
    );
    fails_with(&c, &["kill", &id, "NOSUCHSIG"], &["NOSUCHSIG"], 1);

    // stopped: the not-found/not-running words
    assert!(c.kill("KILL").status.success());
    assert!(c.wait_status("stopped", Duration::from_secs(5)));
    fails_with(&c, &["kill", &id, "TERM"], &["container not running"], 1);
    fails_with(&c, &["pause", &id], &["container not running"], 1);
    fails_with(
        &c,
        &[
            "checkpoint",
            "--image-path",
            &c.work.join("img").to_string_lossy(),
            &id,
        ],
        &["container not running"],
        1,
    );
}

#[test]
fn init_errors_are_one_line() {
    root_or_skip!("init_errors_are_one_line");
    for (tag, args, words) in [
        ("lgnocmd", "nosuchcmd", "executable file not found in"),
        ("lgnoent", "/nonexistent/x", "no such file or directory"),
        ("lgnoexec", "/etc/passwd", "permission denied"),
    ] {
        let mut c = sleeper(tag);
        c.args(&[args]);
        c.write_config();
        let b = c.bundle.to_string_lossy().into_owned();
        let id = c.id.clone();
        fails_with(&c, &["create", "--bundle", &b, &id], &[words], 1);
        assert!(
            c.state().is_none(),
            "{tag}: a failed create leaves no container"
        );
        // Drop checks nothing (process, cgroup, mount, state dir) was left behind
    }
}

#[test]
fn usage_error_is_one_line() {
    // no root needed: clap refuses before anything happens
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log.json");
    let o = run_timeout(
        std::process::Command::new(runtime())
            .arg("--root")
            .arg(d.path())
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "state", "--no-such-flag", "x"]),
        CMD_TIMEOUT,
    );
    assert!(!o.status.success());
    let l = std::fs::read_to_string(&log).expect("usage errors must reach --log");
    let lines: Vec<&str> = l.lines().collect();
    assert_eq!(lines.len(), 1, "{l}");
    let v: Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("--no-such-flag"), "{v}");
}

#[test]
fn log_is_appended_one_line_per_failure() {
    root_or_skip!("log_is_appended_one_line_per_failure");
    let c = sleeper("lgappend");
    let _ = std::fs::remove_file(&c.log);
    for _ in 0..3 {
        assert!(!c.rt(&["state", "lg-absent"]).status.success());
    }
    let l = c.log_text();
    assert_eq!(l.lines().count(), 3, "three failures, three lines: {l}");
    for line in l.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["level"], "error");
    }
}

#[test]
fn warning_folds_into_the_one_error_line() {
    root_or_skip!("warning_folds_into_the_one_error_line");
    if is_runc() || is_crun() {
        return skip(
            "warning_folds_into_the_one_error_line",
            "husk's folding of warnings",
        );
    }
    // a warning first (an unknown capability, ignored), then a failure (no such executable)
    let mut c = sleeper("lgwarn");
    c.args(&["nosuchcmd"]);
    c.config["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push("CAP_NOT_A_CAPABILITY".into());
    c.write_config();
    let b = c.bundle.to_string_lossy().into_owned();
    let id = c.id.clone();
    let msg = fails_with(
        &c,
        &["create", "--bundle", &b, &id],
        &["executable file not found in"],
        1,
    );
    assert!(
        msg.contains("warnings:") && msg.contains("CAP_NOT_A_CAPABILITY"),
        "the warning must ride in the one error line: {msg}"
    );
}
