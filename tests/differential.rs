//! Differential runs: every bundle in `spec-fixtures/` under husk and under the reference
//! runtimes (Debian's runc and crun, when installed), compared after normalising what
//! legitimately differs (pids, times, ids, paths, namespace inodes, cgroup paths).
//!
//! For each fixture and runtime: `create` (stdout/stderr to files), `state`, `start`, wait for
//! `stopped`, `state`, `delete`, then what the probe printed from inside, the hook order (the
//! `hooks` fixture) and what was left behind. Every difference between husk and a reference
//! runtime must be either fixed in husk or listed in `docs/differential.md` (fixture, runtime,
//! key prefix, reason citing the spec); the test FAILS on any other difference.
//!
//! Invalid fixtures (`invalid-*`) must make husk's `create` fail with exit 1, with an error that
//! contains one of the words in `spec-fixtures/NAME/expect-error` (the JSON field), and leave
//! nothing behind. A reference runtime that accepts an invalid fixture is a difference too.
//!
//! `HUSK_DIFF_ONLY=fixture,fixture` limits the run; `HUSK_DIFF_REPORT=FILE` writes the full
//! report (default `target/differential-report.md`).
mod common;
use common::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Hide a hybrid host's empty v2 hierarchy from crun (it refuses hybrid hosts), as the benchmark.
const CRUN_WRAP: &str = "mount -t tmpfs -o size=1m,mode=755 husk-diff-nounified /sys/fs/cgroup/unified && exec \"$0\" \"$@\"";

#[derive(Clone)]
struct Runtime {
    name: &'static str,
    bin: PathBuf,
    wrap: bool,
}

impl Runtime {
    fn cmd(&self, root: &Path) -> Command {
        let mut c = if self.wrap {
            let mut c = Command::new("unshare");
            c.args(["-m", "sh", "-c", CRUN_WRAP]).arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        c.arg("--root").arg(root);
        c
    }
}

fn hybrid() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && Path::new("/sys/fs/cgroup/unified").exists()
}

fn runtimes() -> Vec<Runtime> {
    let mut v = vec![Runtime {
        name: "husk",
        bin: runtime(),
        wrap: false,
    }];
    let only: Option<String> = std::env::var("HUSK_DIFF_RUNTIMES").ok();
    for (name, bin, wrap) in [
        ("runc", "/usr/sbin/runc", false),
        ("crun", "/usr/bin/crun", hybrid()),
    ] {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|x| x == name))
        {
            continue;
        }
        if Path::new(bin).exists() {
            v.push(Runtime {
                name,
                bin: bin.into(),
                wrap,
            });
        } else {
            skip_part(
                "differential/runtimes",
                &format!("{name} not installed at {bin}: no comparison with it"),
            );
        }
    }
    v
}

fn fixtures() -> Vec<String> {
    let dir = Path::new(MANIFEST_DIR).join("spec-fixtures");
    let only: Option<Vec<String>> = std::env::var("HUSK_DIFF_ONLY")
        .ok()
        .map(|s| s.split(',').map(String::from).collect());
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("config.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
        .filter(|n| {
            // a cgroup v1 limitation: on a v2 host `unified` is valid
            let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
            if n.ends_with("-on-v1") && v2 {
                skip_part(
                    "differential/fixtures",
                    &format!("{n}: only invalid on a cgroup v1 host"),
                );
                return false;
            }
            true
        })
        .collect();
    v.sort();
    v
}

/// One fixture run under one runtime.
struct Run {
    id: String,
    work: PathBuf,
    bundle: PathBuf,
    root: PathBuf,
    pids: Vec<i32>,
}

impl Run {
    fn new(fixture: &str, rt: &Runtime, holder: Option<i32>) -> (Run, Value, Option<String>) {
        let id = unique_id(&format!("d{}", rt.name));
        let work = tempfile::Builder::new()
            .prefix(&format!("husk-test-diff-{}-", rt.name))
            .tempdir()
            .unwrap()
            .keep();
        let bundle = work.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(testroot())
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::create_dir_all(bundle.join("bind-src")).unwrap();
        std::fs::write(bundle.join("bind-src/hello"), "from-host").unwrap();
        // a bind source that only the host's root can reach (userns-private-bind)
        std::fs::create_dir_all(bundle.join("private/bind-src")).unwrap();
        std::fs::write(bundle.join("private/bind-src/hello"), "from-host").unwrap();
        std::fs::set_permissions(
            bundle.join("private"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        std::fs::create_dir_all(work.join("hookout")).unwrap();
        let raw = fixture_raw(fixture);
        let mut raw_out = None;
        let mut cfg = Value::Null;
        match serde_json::from_str::<Value>(&raw) {
            Ok(mut v) => {
                if v["linux"].is_object() {
                    v["linux"]["cgroupsPath"] = Value::String(format!("/{id}"));
                }
                let hd = work.join("hookout").to_string_lossy().into_owned();
                let bd = bundle.to_string_lossy().into_owned();
                let pid = holder.unwrap_or(0);
                subst(&mut v, &|s: &str| {
                    let mut s = s.replace("@HOOKDIR@", &hd).replace("@BUNDLE@", &bd);
                    for t in ["NET", "UTS", "IPC", "MNT", "PID", "CGROUP", "USER"] {
                        s = s.replace(
                            &format!("@NS_{t}@"),
                            &format!("/proc/{pid}/ns/{}", t.to_lowercase()),
                        );
                    }
                    s
                });
                std::fs::write(
                    bundle.join("config.json"),
                    serde_json::to_vec_pretty(&v).unwrap(),
                )
                .unwrap();
                cfg = v;
            }
            Err(_) => {
                std::fs::write(bundle.join("config.json"), &raw).unwrap();
                raw_out = Some(raw);
            }
        }
        let root = work.join("root");
        (
            Run {
                id,
                work,
                bundle,
                root,
                pids: Vec::new(),
            },
            cfg,
            raw_out,
        )
    }

    fn rt(&self, rt: &Runtime, args: &[&str]) -> std::process::Output {
        let mut c = rt.cmd(&self.root);
        c.args(args).current_dir(&self.work);
        run_timeout(&mut c, CMD_TIMEOUT)
    }

    fn state(&self, rt: &Runtime) -> Option<Value> {
        let o = self.rt(rt, &["state", &self.id]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    fn leftovers(&self) -> Vec<String> {
        let mut l = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        for &p in &self.pids {
            while pid_alive(p) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if pid_alive(p) {
                l.push("process".to_string());
            }
        }
        if self.root.join(&self.id).exists() {
            l.push("state dir".into());
        }
        if !mounts_under(&self.work).is_empty() {
            l.push("mount".into());
        }
        if !cgroup_dirs(&self.id).is_empty() {
            l.push("cgroup dir".into());
        }
        l
    }

    fn cleanup(&self, rt: &Runtime) {
        let _ = self.rt(rt, &["delete", "--force", &self.id]);
        force_remove(&self.pids, &self.work, &self.id);
    }
}

fn subst(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| subst(x, f)),
        Value::Object(o) => o.values_mut().for_each(|x| subst(x, f)),
        _ => {}
    }
}

/// Host namespace ids and the holder's, to name a container's namespaces host/holder/new.
struct NsRef {
    host: BTreeMap<String, String>,
    holder: BTreeMap<String, String>,
}

fn ns_ids(pid: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for t in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/{pid}/ns/{t}")) {
            m.insert(t.to_string(), l.to_string_lossy().into_owned());
        }
    }
    m
}

/// Replace what legitimately differs between runs and runtimes.
fn norm_str(s: &str, run: &Run) -> String {
    let mut s = s.replace(run.bundle.to_str().unwrap(), "<bundle>");
    s = s.replace(run.work.to_str().unwrap(), "<work>");
    s = s.replace(&run.id, "<id>");
    // pipe:[123] socket:[456] → pipe socket
    for k in ["pipe:[", "socket:[", "anon_inode:["] {
        if let Some(i) = s.find(k) {
            s = s[..i + k.len() - 1].to_string();
        }
    }
    s
}

fn normalise_probe(p: &Value, run: &Run, ns: &NsRef) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(o) = p.as_object() else {
        return out;
    };
    for (k, v) in o {
        match k.as_str() {
            "ns" => {
                for (t, id) in v.as_object().into_iter().flatten() {
                    let id = id.as_str().unwrap_or("");
                    let w = if ns.host.get(t).map(String::as_str) == Some(id) {
                        "host"
                    } else if ns.holder.get(t).map(String::as_str) == Some(id) {
                        "holder"
                    } else {
                        "new"
                    };
                    out.insert(format!("ns.{t}"), json!(w));
                }
            }
            "cgroup" => {
                for l in v.as_array().into_iter().flatten() {
                    let l = l.as_str().unwrap_or("");
                    let mut f = l.splitn(3, ':');
                    let (_, ctl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
                    let path = if path.contains(&run.id) {
                        "<container cgroup>".to_string()
                    } else {
                        path.to_string()
                    };
                    out.insert(format!("cgroup.{ctl}"), json!(path));
                }
            }
            "mountinfo" => {
                for l in v.as_array().into_iter().flatten() {
                    let l = l.as_str().unwrap_or("");
                    let f: Vec<&str> = l.split(' ').collect();
                    let Some(sep) = f.iter().position(|x| *x == "-") else {
                        continue;
                    };
                    if f.len() < sep + 3 || f.len() < 6 {
                        continue;
                    }
                    let mp = f[4];
                    let mut opts: Vec<&str> = f[5].split(',').collect();
                    opts.sort();
                    let mut sopts: Vec<String> = f
                        .get(sep + 3)
                        .map(|s| s.split(',').map(String::from).collect())
                        .unwrap_or_default();
                    sopts.sort();
                    out.insert(
                        format!("mount {mp}"),
                        json!(format!(
                            "{} {} {}",
                            opts.join(","),
                            f[sep + 1],
                            norm_str(&sopts.join(","), run)
                        )),
                    );
                }
            }
            "uid_map" | "gid_map" => {
                let m: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        l.as_str()
                            .unwrap_or("")
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                out.insert(k.clone(), json!(m));
            }
            "session_keyring" => {
                // the serial is new in every run; the description names the container
                out.insert(
                    "session_keyring.desc".into(),
                    json!(norm_str(v["desc"].as_str().unwrap_or(""), run)),
                );
            }
            "fds" => {
                for (fd, t) in v.as_object().into_iter().flatten() {
                    out.insert(
                        format!("fds.{fd}"),
                        json!(norm_str(t.as_str().unwrap_or(""), run)),
                    );
                }
            }
            _ => flatten(k, v, &mut out),
        }
    }
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                flatten(&format!("{prefix}.{k}"), x, out)
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

fn normalise_state(s: &Option<Value>, run: &Run) -> Value {
    let Some(s) = s else {
        return json!("<state failed>");
    };
    let mut m = Map::new();
    for (k, v) in s.as_object().into_iter().flatten() {
        let nv = match k.as_str() {
            "pid" => json!(if v.as_i64().unwrap_or(0) > 0 {
                ">0"
            } else {
                "0"
            }),
            "created" => json!(if chrono_like(v.as_str().unwrap_or("")) {
                "<rfc3339>"
            } else {
                "<not rfc3339>"
            }),
            "ociVersion" => json!("<version>"),
            _ => match v.as_str() {
                Some(x) => json!(norm_str(x, run)),
                None => v.clone(),
            },
        };
        m.insert(k.clone(), nv);
    }
    Value::Object(m)
}

/// RFC 3339 shape: 2024-01-02T03:04:05[.frac](Z|+hh:mm)
fn chrono_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

/// What `run` left behind on the host (`none`, or the list).
fn leftovers(run: &Run) -> Value {
    let left = run.leftovers();
    json!(if left.is_empty() {
        "none".to_string()
    } else {
        left.join(",")
    })
}

/// Whether the runtime still has a state for `run`'s container: `exists` or `gone`.
fn presence(run: &Run, rt: &Runtime) -> Value {
    json!(if run.state(rt).is_some() {
        "exists"
    } else {
        "gone"
    })
}

/// Everything observed for one fixture under one runtime, flattened to comparable keys.
fn observe(
    fixture: &str,
    rt: &Runtime,
    ns: &NsRef,
    holder: Option<i32>,
) -> (Map<String, Value>, String) {
    let (mut run, _cfg, _raw) = Run::new(fixture, rt, holder);
    let mut obs = Map::new();
    let outf = run.work.join("stdout");
    let errf = run.work.join("stderr");
    let so = std::fs::File::create(&outf).unwrap();
    let se = std::fs::File::create(&errf).unwrap();
    let mut c = rt.cmd(&run.root);
    let b = run.bundle.to_string_lossy().into_owned();
    // create flags a fixture needs (`spec-fixtures/NAME/create-flags`, one per line), the
    // same for every runtime
    let flags = std::fs::read_to_string(
        Path::new(MANIFEST_DIR)
            .join("spec-fixtures")
            .join(fixture)
            .join("create-flags"),
    )
    .unwrap_or_default();
    c.arg("create")
        .args(flags.lines().map(str::trim).filter(|l| !l.is_empty()))
        .args(["--bundle", &b, &run.id])
        .current_dir(&run.work)
        .stdin(Stdio::null())
        .stdout(so)
        .stderr(se);
    let mut child = c.spawn().unwrap();
    let st = try_wait_child(&mut child, CMD_TIMEOUT);
    let create_code = st.map(|s| code(&s)).unwrap_or(-1);
    obs.insert(
        "create".into(),
        json!(if create_code == 0 { "ok" } else { "failed" }),
    );
    let mut err_text = String::new();
    if create_code == 0 {
        let s = run.state(rt);
        if let Some(p) = s.as_ref().and_then(|s| s["pid"].as_i64()) {
            run.pids.push(p as i32);
        }
        for (k, v) in normalise_state(&s, &run).as_object().into_iter().flatten() {
            obs.insert(format!("state(created).{k}"), v.clone());
        }
        let o = run.rt(rt, &["start", &run.id]);
        obs.insert(
            "start".into(),
            json!(if o.status.success() { "ok" } else { "failed" }),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = None;
        while Instant::now() < deadline {
            last = run.state(rt);
            if last.as_ref().and_then(|s| s["status"].as_str()) == Some("stopped") {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        for (k, v) in normalise_state(&last, &run)
            .as_object()
            .into_iter()
            .flatten()
        {
            if k != "created" {
                obs.insert(format!("state(after exit).{k}"), v.clone());
            }
        }
        let o = run.rt(rt, &["delete", &run.id]);
        obs.insert(
            "delete".into(),
            json!(if o.status.success() { "ok" } else { "failed" }),
        );
        obs.insert("state after delete".into(), presence(&run, rt));
        let stdout = std::fs::read_to_string(&outf).unwrap_or_default();
        match stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        {
            Some(p) => {
                for (k, v) in normalise_probe(&p, &run, ns) {
                    obs.insert(format!("probe.{k}"), v);
                }
            }
            None => {
                obs.insert("probe".into(), json!("<no output>"));
            }
        }
        let order = std::fs::read_to_string(run.work.join("hookout/order")).unwrap_or_default();
        if !order.is_empty() {
            obs.insert(
                "hooks.order".into(),
                json!(order.lines().collect::<Vec<_>>().join(",")),
            );
            for h in order.lines() {
                if let Ok(s) = std::fs::read_to_string(run.work.join(format!("hookout/{h}.json"))) {
                    let s: Value = serde_json::from_str(&s).unwrap_or(Value::Null);
                    obs.insert(format!("hooks.{h}.status"), s["status"].clone());
                    obs.insert(
                        format!("hooks.{h}.pid"),
                        json!(if s["pid"].as_i64().unwrap_or(0) > 0 {
                            ">0"
                        } else {
                            "0/none"
                        }),
                    );
                }
            }
        }
    } else {
        err_text = format!(
            "{}\n{}",
            std::fs::read_to_string(&errf).unwrap_or_default(),
            std::fs::read_to_string(run.work.join("stdout")).unwrap_or_default()
        );
        obs.insert("create exit code".into(), json!(create_code));
        obs.insert("state after failed create".into(), presence(&run, rt));
    }
    obs.insert("leftovers".into(), leftovers(&run));
    run.cleanup(rt);
    (obs, err_text)
}

/// What a reference runtime left behind where husk left nothing is the reference's defect, not a
/// difference in husk: it is reported (and the runner removes it), never failed on, so a reference's
/// nondeterministic leaks (crun 1.8.1 sometimes leaves a cgroup directory) cannot turn the suite red.
/// husk's own leftovers are checked separately and always fail.
fn reference_leak(key: &str, husk_value: Option<&Value>) -> bool {
    key == "leftovers" && husk_value.is_some_and(|v| v == "none")
}

fn report_reference_leaks(leaks: &[String]) {
    for l in leaks {
        eprintln!("differential: reference leak, reported only: {l}");
    }
}

/// `| fixture | runtime | key prefix | reason |` rows of docs/differential.md's allow list.
fn allow_list() -> Vec<(String, String, String)> {
    let p = Path::new(MANIFEST_DIR).join("docs/differential.md");
    let t = std::fs::read_to_string(&p).unwrap_or_default();
    let mut v = Vec::new();
    let mut in_table = false;
    for l in t.lines() {
        if l.starts_with("<!-- allow-list -->") {
            in_table = true;
            continue;
        }
        if l.starts_with("<!-- end allow-list -->") {
            break;
        }
        if !in_table || !l.starts_with('|') || l.starts_with("|--") || l.starts_with("| fixture") {
            continue;
        }
        let cells: Vec<String> = l
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_string())
            .collect();
        if cells.len() >= 4 {
            assert!(
                cells[3].contains('§') || cells[3].contains(".md"),
                "docs/differential.md: reason must cite the spec: {l}"
            );
            v.push((cells[0].clone(), cells[1].clone(), cells[2].clone()));
        }
    }
    v
}

/// `*` matches any run of characters (also none).
fn glob(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len())
                    .any(|i| s.is_char_boundary(head.len() + i) && glob(rest, &s[head.len() + i..]))
        }
    }
}

/// A row allows a difference when its fixture and key patterns match and the runtime is listed
/// (`runc`, `crun`, `runc,crun` or `*`). A key pattern without `*` is a prefix.
fn allowed(allow: &[(String, String, String)], fixture: &str, rt: &str, key: &str) -> bool {
    allow.iter().any(|(f, r, k)| {
        glob(f, fixture)
            && (r == "*" || r.split(',').any(|x| x.trim() == rt))
            && (if k.contains('*') {
                glob(k, key)
            } else {
                key.starts_with(k.as_str())
            })
    })
}

#[test]
fn differential_against_runc_and_crun() {
    if !require_root("differential_against_runc_and_crun") {
        return;
    }
    let rts = runtimes();
    let holder = ns_holder(&["--uts", "--net", "--ipc"], "hostname joined-uts-ns");
    let nsref = NsRef {
        host: ns_ids("self"),
        holder: ns_ids(&holder.pid().to_string()),
    };
    let allow = allow_list();
    let mut report = String::from("# differential report\n\n");
    let mut failures = Vec::new();
    let mut explained = 0;
    let mut reference_leaks = Vec::new();
    for fx in fixtures() {
        let invalid = fx.starts_with("invalid-");
        let mut per: Vec<(&str, Map<String, Value>)> = Vec::new();
        for rt in &rts {
            let (obs, err) = observe(&fx, rt, &nsref, Some(holder.pid()));
            if rt.name == "husk" {
                // husk's own contract, whatever the references do
                if obs["leftovers"] != "none" {
                    failures.push(format!("{fx}: husk left behind {}", obs["leftovers"]));
                }
                if invalid {
                    let words: Vec<String> = std::fs::read_to_string(
                        Path::new(MANIFEST_DIR)
                            .join("spec-fixtures")
                            .join(&fx)
                            .join("expect-error"),
                    )
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.trim().to_lowercase())
                    .collect();
                    if obs["create"] != "failed" || obs["create exit code"] != 1 {
                        failures.push(format!(
                            "{fx}: husk create must fail with exit 1: create {}, exit {}",
                            obs["create"],
                            obs.get("create exit code").cloned().unwrap_or(Value::Null)
                        ));
                    } else if words.is_empty() {
                        failures.push(format!("{fx}: spec-fixtures/{fx}/expect-error missing"));
                    } else if !words.iter().any(|w| err.to_lowercase().contains(w)) {
                        failures.push(format!(
                            "{fx}: husk's error does not name the field ({words:?}): {}",
                            err.trim()
                        ));
                    }
                }
            }
            let mut obs = obs;
            if !err.trim().is_empty() {
                let e: String = err.trim().chars().take(300).collect();
                obs.insert("~error".into(), json!(e));
            }
            per.push((rt.name, obs));
        }
        report.push_str(&format!("## {fx}\n\n"));
        let husk = per[0].1.clone();
        for (name, obs) in &per[1..] {
            // a different create outcome makes every later key differ: report only that
            let mut keys: Vec<&String> = if husk.get("create") != obs.get("create") {
                vec![husk.keys().find(|k| *k == "create").unwrap()]
            } else {
                husk.keys().chain(obs.keys()).collect()
            };
            keys.sort();
            keys.dedup();
            for k in keys {
                let (a, b) = (husk.get(k), obs.get(k));
                if a == b || k.starts_with('~') {
                    continue;
                }
                let show =
                    |x: Option<&Value>| x.map(|v| v.to_string()).unwrap_or("<absent>".into());
                let line = format!(
                    "{fx} / {name} / `{k}`: husk {} vs {name} {}",
                    show(a),
                    show(b)
                );
                let line = if k == "create" {
                    format!(
                        "{line} (husk: {}; {name}: {})",
                        show(husk.get("~error")),
                        show(obs.get("~error"))
                    )
                } else {
                    line
                };
                if reference_leak(k, a) {
                    reference_leaks.push(line.clone());
                    report.push_str(&format!(
                        "- reference leak (not a husk difference): {line}\n"
                    ));
                } else if allowed(&allow, &fx, name, k) {
                    explained += 1;
                    report.push_str(&format!("- explained: {line}\n"));
                } else {
                    report.push_str(&format!("- UNEXPLAINED: {line}\n"));
                    failures.push(line);
                }
            }
        }
        report.push('\n');
    }
    report.push_str(&format!(
        "\n{explained} explained differences, {} reference leaks, {} unexplained failures\n",
        reference_leaks.len(),
        failures.len()
    ));
    report_reference_leaks(&reference_leaks);
    let rp = std::env::var_os("HUSK_DIFF_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target/differential-report.md"));
    let _ = std::fs::write(&rp, &report);
    eprintln!("differential: report in {}", rp.display());
    assert!(
        failures.is_empty(),
        "{} differences neither fixed nor listed in docs/differential.md:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Exit code and whether the error carries a not-found / not-running word callers match.
fn op_result(o: &std::process::Output) -> Value {
    let e = format!("{}{}", text(&o.stderr), text(&o.stdout)).to_lowercase();
    let word = if o.status.success() {
        ""
    } else if e.contains("does not exist") {
        " (does not exist)"
    } else if e.contains("not running") {
        " (not running)"
    } else {
        ""
    };
    json!(format!("exit {}{word}", code(&o.status)))
}

/// Runs each `(key, args)` in order, recording its [`op_result`] under `key`.
fn ops(obs: &mut Map<String, Value>, run: &Run, rt: &Runtime, steps: &[(&str, &[&str])]) {
    for (key, args) in steps {
        obs.insert(key.to_string(), op_result(&run.rt(rt, args)));
    }
}

/// The operations of runtime.md in each state, under each runtime.
fn lifecycle_ops(rt: &Runtime) -> Map<String, Value> {
    let mut obs = Map::new();
    let (mut run, _, _) = Run::new("default", rt, None);
    // sleep instead of the probe
    let cfgp = run.bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfgp).unwrap()).unwrap();
    cfg["process"]["args"] = json!(["/probe", "sleep", "30"]);
    std::fs::write(&cfgp, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = run.id.clone();
    let id = id.as_str();
    let b = run.bundle.to_string_lossy().into_owned();
    let b = b.as_str();
    ops(
        &mut obs,
        &run,
        rt,
        &[
            ("state (missing)", &["state", id]),
            ("start (missing)", &["start", id]),
            ("kill (missing)", &["kill", id, "KILL"]),
            ("delete (missing)", &["delete", id]),
            ("delete --force (missing)", &["delete", "--force", id]),
        ],
    );
    let status = |run: &Run| {
        json!(run
            .state(rt)
            .and_then(|s| s["status"].as_str().map(String::from))
            .unwrap_or_else(|| "<gone>".into()))
    };
    obs.insert(
        "create".into(),
        op_result(&run.rt(rt, &["create", "--bundle", b, id])),
    );
    if let Some(p) = run.state(rt).and_then(|s| s["pid"].as_i64()) {
        run.pids.push(p as i32);
    }
    obs.insert(
        "create again (same id)".into(),
        op_result(&run.rt(rt, &["create", "--bundle", b, id])),
    );
    obs.insert("status after create".into(), status(&run));
    obs.insert("start".into(), op_result(&run.rt(rt, &["start", id])));
    obs.insert("status after start".into(), status(&run));
    ops(
        &mut obs,
        &run,
        rt,
        &[
            ("kill 0 (running)", &["kill", id, "0"]),
            (
                "update negative values, --cpu-share (running)",
                &[
                    "update",
                    "--memory-swap",
                    "-1",
                    "--cpu-quota",
                    "-1",
                    "--pids-limit",
                    "-1",
                    "--cpu-share",
                    "512",
                    id,
                ],
            ),
            ("start again", &["start", id]),
            ("delete (running)", &["delete", id]),
        ],
    );
    obs.insert("status after delete (running)".into(), status(&run));
    obs.insert(
        "kill KILL (running)".into(),
        op_result(&run.rt(rt, &["kill", id, "KILL"])),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&run) != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    obs.insert("status after kill".into(), status(&run));
    ops(
        &mut obs,
        &run,
        rt,
        &[
            ("kill TERM (stopped)", &["kill", id, "TERM"]),
            ("kill 0 (stopped)", &["kill", id, "0"]),
            ("start (stopped)", &["start", id]),
            ("delete (stopped)", &["delete", id]),
        ],
    );
    obs.insert("status after delete".into(), status(&run));
    // a created container: plain delete
    obs.insert(
        "create (2nd)".into(),
        op_result(&run.rt(rt, &["create", "--bundle", b, id])),
    );
    if let Some(p) = run.state(rt).and_then(|s| s["pid"].as_i64()) {
        run.pids.push(p as i32);
    }
    ops(
        &mut obs,
        &run,
        rt,
        &[
            ("kill 0 (created)", &["kill", id, "0"]),
            ("delete (created)", &["delete", id]),
        ],
    );
    obs.insert("status after delete (created)".into(), status(&run));
    obs.insert("leftovers".into(), leftovers(&run));
    run.cleanup(rt);
    obs
}

#[test]
fn differential_lifecycle_operations() {
    if !require_root("differential_lifecycle_operations") {
        return;
    }
    let rts = runtimes();
    let allow = allow_list();
    let per: Vec<(&str, Map<String, Value>)> =
        rts.iter().map(|rt| (rt.name, lifecycle_ops(rt))).collect();
    let husk = &per[0].1;
    let mut report = String::from("# differential report: lifecycle operations\n\n");
    for (k, v) in husk {
        report.push_str(&format!("- husk `{k}`: {v}\n"));
    }
    let mut failures = Vec::new();
    let mut reference_leaks = Vec::new();
    if husk["leftovers"] != "none" {
        failures.push(format!("husk left behind {}", husk["leftovers"]));
    }
    for (name, obs) in &per[1..] {
        for (k, a) in husk {
            let b = obs.get(k);
            if Some(a) == b {
                continue;
            }
            let line = format!(
                "lifecycle-ops / {name} / `{k}`: husk {a} vs {name} {}",
                b.map(|v| v.to_string()).unwrap_or("<absent>".into())
            );
            if reference_leak(k, Some(a)) {
                reference_leaks.push(line.clone());
                report.push_str(&format!(
                    "- reference leak (not a husk difference): {line}\n"
                ));
            } else if allowed(&allow, "lifecycle-ops", name, k) {
                report.push_str(&format!("- explained: {line}\n"));
            } else {
                report.push_str(&format!("- UNEXPLAINED: {line}\n"));
                failures.push(line);
            }
        }
    }
    let rp = Path::new(MANIFEST_DIR).join("target/differential-ops-report.md");
    let _ = std::fs::write(&rp, &report);
    report_reference_leaks(&reference_leaks);
    assert!(
        failures.is_empty(),
        "{} lifecycle differences neither fixed nor listed in docs/differential.md:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
