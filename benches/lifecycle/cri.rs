//! The `cri` section: Kubernetes' path through containerd's CRI plugin. `integration/cri.sh`
//! starts a private containerd (CRI on, every runtime of the benchmark registered as a handler,
//! CNI inside a network namespace of its own) and its client times, handler by handler in turn,
//! a one-container pod's whole life and ExecSync of /bin/true.

use super::{Bench, Row};
use std::path::Path;
use std::process::{Command, Stdio};

pub fn measure(b: &Bench, runs: usize, warmup: usize, notes: &mut Vec<String>) -> Vec<Row> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pairs: Vec<String> = b
        .rts
        .iter()
        .map(|r| format!("{}={}", r.name, r.bin.display()))
        .collect();
    eprintln!("bench: cri: a private containerd with the CRI plugin, {runs} pods per runtime");
    let mut cmd = Command::new("bash");
    cmd.arg(manifest.join("integration/cri.sh"));
    // the script's own checks are of the husk being measured, not of a debug build
    if let Some(h) = b.rts.iter().find(|r| r.name == "husk") {
        cmd.env("HUSK_BIN", &h.bin);
    }
    let out = cmd
        // its temp dir (containerd's root and state, the pods' logs) where the other
        // sections keep theirs
        .env("TMPDIR", &b.base)
        .env("CRI_BENCH_RUNTIMES", pairs.join(","))
        .env("CRI_BENCH_RUNS", runs.to_string())
        .env("CRI_BENCH_WARMUP", warmup.to_string())
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            notes.push(format!(
                "cri section failed to start integration/cri.sh: {e}."
            ));
            return Vec::new();
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pod: Vec<(String, Vec<f64>)> = b.rts.iter().map(|r| (r.name.clone(), vec![])).collect();
    let mut exec = pod.clone();
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("bench dropped ") {
            let h = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            match dropped.iter_mut().find(|(n, _)| *n == h) {
                Some((_, k)) => *k += 1,
                None => dropped.push((h, 1)),
            }
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() != 4 || f[0] != "bench" {
            continue;
        }
        let Ok(ms) = f[3].parse::<f64>() else {
            continue;
        };
        let set = if f[1] == "pod" { &mut pod } else { &mut exec };
        if let Some((_, v)) = set.iter_mut().find(|(n, _)| n == f[2]) {
            v.push(ms);
        }
    }
    if !out.status.success() || pod.iter().any(|(_, v)| v.is_empty()) {
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        eprintln!("bench: cri: FAILED: {}", tail.join(" | "));
        notes.push("cri section failed (see `make cri` for the reason).".into());
        return Vec::new();
    }
    if !dropped.is_empty() {
        let per: Vec<String> = dropped.iter().map(|(h, k)| format!("{h} {k}")).collect();
        notes.push(format!(
            "cri: pods whose StopPodSandbox failed with \"ttrpc: closed\" (containerd 1.6's \
             shim went away while killing the pod's exiting /bin/true container; seen under \
             every runtime) were stopped again, removed and left out of the pod row: {}.",
            per.join(", ")
        ));
    }
    vec![
        Row {
            what: "CRI: RunPodSandbox + CreateContainer + StartContainer + StopPodSandbox + \
                   RemovePodSandbox of a one-container pod"
                .into(),
            unit: "ms",
            vals: pod,
            note: "containerd 1.6's CRI plugin and runc shim with each runtime as a handler; \
                   CNI bridge + host-local in the bench's own network namespace"
                .into(),
        },
        Row {
            what: "CRI: ExecSync of /bin/true into a running container".into(),
            unit: "ms",
            vals: exec,
            note: "same containerd; one pod per runtime".into(),
        },
    ]
}
