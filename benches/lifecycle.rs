//! Lifecycle benchmark: `RUNTIME run` (create + start + wait + delete) of `/bin/true` from the
//! busybox test rootfs, for husk, crun and runc on identical bundles, alternating runtimes run
//! by run. Writes target/bench/report.md.
//!
//! Env: BENCH_RUNS (default 50), BENCH_WARMUP (default 5), BENCH_HUSK (default
//! target/release/husk), BENCH_RUNTIMES (comma list of name=path to override the set).
//!
//! crun refuses a cgroup v1 "hybrid" host (it wants no controllers on the v2 mount), so on such a
//! host EVERY runtime is started identically through
//! `unshare -m sh -c 'mount -t tmpfs ... /sys/fs/cgroup/unified && exec "$0" "$@"' RUNTIME ...`;
//! the wrapper's own cost is measured separately and reported.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Hide the (empty) v2 hierarchy of a hybrid host under a throw-away tmpfs in a private mount
/// namespace. Not `umount`: crun then writes its "unified" cgroup dirs into the host's
/// /sys/fs/cgroup tmpfs, hidden under the real mount, where they would outlive the run.
const WRAP: &str = "mount -t tmpfs -o size=1m,mode=755 husk-bench-nounified /sys/fs/cgroup/unified && exec \"$0\" \"$@\"";

struct Rt {
    name: String,
    bin: PathBuf,
    work: PathBuf,
    samples: Vec<Duration>,
    error: Option<String>,
    version: String,
}

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn cgroup_mode() -> &'static str {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2 (unified)"
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        "v1 hybrid (v1 controllers + empty v2 at /sys/fs/cgroup/unified)"
    } else {
        "v1 (legacy)"
    }
}

fn hybrid() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && Path::new("/sys/fs/cgroup/unified").exists()
}

fn cmd_for(wrap: bool, bin: &Path) -> Command {
    if wrap {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", WRAP]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn sh_out(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn stats(v: &[Duration]) -> (f64, f64, f64, f64) {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = ms.len();
    let med = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    (ms[0], med, ms[n - 1], ms.iter().sum::<f64>() / n as f64)
}

fn main() {
    // `cargo bench` passes --bench; accept and ignore libtest-style flags.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("lifecycle bench: SKIP, needs root to run containers");
        return;
    }
    let runs = env_usize("BENCH_RUNS", 50);
    let warmup = env_usize("BENCH_WARMUP", 5);
    let testroot = std::env::var_os("HUSK_TESTROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/testroot/rootfs"));
    if !testroot.join("bin/true").exists() {
        let st = Command::new("make")
            .args(["-C", manifest.to_str().unwrap(), "testroot"])
            .status()
            .expect("make testroot");
        assert!(st.success(), "make testroot failed");
    }
    let husk = std::env::var_os("BENCH_HUSK")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/release/husk"));
    let mut cands: Vec<(String, PathBuf)> = match std::env::var("BENCH_RUNTIMES") {
        Ok(list) => list
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect(),
        Err(_) => vec![
            ("husk".into(), husk),
            ("crun".into(), PathBuf::from("/usr/bin/crun")),
            ("runc".into(), PathBuf::from("/usr/sbin/runc")),
        ],
    };
    cands.retain(|(n, p)| {
        let ok = p.is_file();
        if !ok {
            eprintln!(
                "lifecycle bench: {n} not installed at {}, skipped",
                p.display()
            );
        }
        ok
    });
    let wrap = hybrid();
    let base = tempfile::Builder::new()
        .prefix("husk-bench-")
        .tempdir()
        .expect("tempdir");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest.join("spec-fixtures/default/config.json")).unwrap(),
    )
    .unwrap();

    let mut rts: Vec<Rt> = Vec::new();
    for (name, bin) in cands {
        let work = base.path().join(&name);
        std::fs::create_dir_all(work.join("bundle")).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&testroot)
            .arg(work.join("bundle/rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let version = Command::new(&bin)
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        rts.push(Rt {
            name,
            bin,
            work,
            samples: Vec::new(),
            error: None,
            version,
        });
    }

    let write_config = |rt: &Rt, args: &[&str]| {
        let mut c = config.clone();
        c["process"]["args"] = args.iter().map(|s| serde_json::Value::from(*s)).collect();
        std::fs::write(
            rt.work.join("bundle/config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    };
    let run_once = |rt: &Rt, id: &str, capture: bool| -> (Duration, bool, String) {
        let mut c = cmd_for(wrap, &rt.bin);
        c.arg("--root")
            .arg(rt.work.join("root"))
            .args(["run", "--bundle"])
            .arg(rt.work.join("bundle"))
            .arg(id)
            .stdin(Stdio::null());
        if capture {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let t = Instant::now();
        let o = c.output().expect("spawn runtime");
        let d = t.elapsed();
        // make sure nothing is left between runs, outside the timing
        let _ = cmd_for(wrap, &rt.bin)
            .arg("--root")
            .arg(rt.work.join("root"))
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (d, o.status.success(), out)
    };

    // Correctness gate: a runtime that does not really run the container is not timed.
    for rt in rts.iter_mut() {
        write_config(rt, &["/bin/sh", "-c", "echo bench-container-ran"]);
        let (_, ok, out) = run_once(
            rt,
            &format!("hb-check-{}-{}", rt.name, std::process::id()),
            true,
        );
        if !ok || !out.contains("bench-container-ran") {
            rt.error = Some(format!(
                "did not run the container (exit ok={ok}): {}",
                out.lines().last().unwrap_or("")
            ));
            eprintln!(
                "lifecycle bench: {} excluded: {}",
                rt.name,
                rt.error.as_ref().unwrap()
            );
        }
        write_config(rt, &["/bin/true"]);
    }
    let active: Vec<usize> = (0..rts.len()).filter(|&i| rts[i].error.is_none()).collect();

    // wrapper overhead: the same unshare+sh+umount+exec around /bin/true
    let mut wrap_samples = Vec::new();
    if wrap {
        for i in 0..(warmup + runs) {
            let t = Instant::now();
            let _ = cmd_for(true, Path::new("/bin/true")).status();
            if i >= warmup {
                wrap_samples.push(t.elapsed());
            }
        }
    }

    eprintln!(
        "lifecycle bench: {} runs + {} warm-up per runtime, alternating {:?}",
        runs,
        warmup,
        active
            .iter()
            .map(|&i| rts[i].name.as_str())
            .collect::<Vec<_>>()
    );
    for i in 0..(warmup + runs) {
        // rotate the order each round so no runtime always goes first
        for k in 0..active.len() {
            let idx = active[(i + k) % active.len()];
            let id = format!("hb-{}-{}-{}", rts[idx].name, std::process::id(), i);
            let (d, ok, _) = run_once(&rts[idx], &id, false);
            if !ok && rts[idx].error.is_none() {
                rts[idx].error = Some(format!("run {i} failed"));
            }
            if i >= warmup {
                rts[idx].samples.push(d);
            }
        }
    }

    // report
    let mut md = String::new();
    md.push_str("# husk lifecycle benchmark\n\n");
    md.push_str(&format!(
        "`RUNTIME run` of `/bin/true` (create + start + wait + delete) from the busybox test rootfs, \
         identical bundles (spec-fixtures/default), each runtime with its own `--root`, \
         runtimes alternated run by run (order rotated each round), {warmup} warm-up rounds, {runs} timed runs each.\n\n"
    ));
    md.push_str("## Host\n\n");
    md.push_str(&format!("- kernel: {}\n", sh_out("uname -srm")));
    md.push_str(&format!("- cgroup mode: {}\n", cgroup_mode()));
    md.push_str(&format!("- CPUs: {}\n", sh_out("nproc")));
    for rt in &rts {
        md.push_str(&format!(
            "- {}: `{}` — {}\n",
            rt.name,
            rt.bin.display(),
            if rt.version.is_empty() {
                "(no --version)"
            } else {
                &rt.version
            }
        ));
    }
    if wrap {
        let (mn, med, mx, _) = stats(&wrap_samples);
        md.push_str(&format!(
            "\nThis host is cgroup v1 hybrid, which crun refuses; so EVERY runtime was started the same way, \
             in a private mount namespace with /sys/fs/cgroup/unified hidden under an empty tmpfs: \
             `unshare -m sh -c '{WRAP}' RUNTIME ...`. That wrapper alone (around /bin/true) costs \
             min {mn:.2} / median {med:.2} / max {mx:.2} ms and is included in every number below.\n"
        ));
    }
    md.push_str("\n## Results (milliseconds)\n\n| runtime | min | median | mean | max | runs |\n|---|---:|---:|---:|---:|---:|\n");
    for rt in &rts {
        if rt.samples.is_empty() || rt.error.is_some() {
            md.push_str(&format!(
                "| {} | – | – | – | – | {} |\n",
                rt.name,
                rt.error.as_deref().unwrap_or("no samples")
            ));
            continue;
        }
        let (mn, med, mx, mean) = stats(&rt.samples);
        md.push_str(&format!(
            "| {} | {mn:.2} | {med:.2} | {mean:.2} | {mx:.2} | {} |\n",
            rt.name,
            rt.samples.len()
        ));
    }
    let med_of = |n: &str| {
        rts.iter()
            .find(|r| r.name == n && r.error.is_none() && !r.samples.is_empty())
            .map(|r| stats(&r.samples).1)
    };
    if let Some(h) = med_of("husk") {
        md.push_str("\n## Ratios (median husk / median other; below 1 means husk is faster)\n\n");
        for other in ["crun", "runc"] {
            if let Some(o) = med_of(other) {
                md.push_str(&format!("- husk/{other}: {:.3}\n", h / o));
            }
        }
    } else if let (Some(c), Some(r)) = (med_of("crun"), med_of("runc")) {
        md.push_str(&format!(
            "\nhusk was not measured (see above). crun/runc median ratio: {:.3}\n",
            c / r
        ));
    }
    let out_dir = manifest.join("target/bench");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("report.md"), &md).unwrap();
    println!("{md}");
    eprintln!(
        "lifecycle bench: wrote {}",
        out_dir.join("report.md").display()
    );
}
