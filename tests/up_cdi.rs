//! `husk up --device VENDOR/CLASS=NAME`: a CDI spec (YAML) in a directory of the test's own
//! (`--cdi-spec-dir`) describes /dev/null as `test.example/dev=nul` under another path, with an
//! environment entry and a bind mount; each edit is seen from inside the container. An unknown
//! device and a malformed name are refused by name, and nothing is left.
mod common;
use common::images::sha;
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

const IMAGE: &str = "husk-cdi-test";
const REF: &str = "docker.io/library/husk-cdi-test:latest";

/// A temp dir with a store holding the test rootfs as one image, and the runtime's `--root`.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix(&format!("husk-test-cdi-{tag}-"))
            .tempdir_in("/tmp")
            .unwrap();
        let store = dir.path().join("store");
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", testroot()).unwrap();
        let layer = b.into_inner().unwrap();
        let cfg = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin:/sbin"], "Cmd": ["/probe"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(&cfg), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(&layer), "size": layer.len()}],
        }))
        .unwrap();
        let blobs = store.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        for b in [&layer, &cfg, &manifest] {
            std::fs::write(blobs.join(&sha(b)[7..]), b).unwrap();
        }
        std::fs::write(
            store.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let idx = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": REF}
        }]});
        std::fs::write(store.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
        Env { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn husk(&self, args: &[&str]) -> Output {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(self.dir.path().join("root")).args(args);
        run_timeout(&mut c, Duration::from_secs(60))
    }

    fn up(&self, args: &[&str]) -> Output {
        let store = self.store();
        let mut a = vec!["up", "--store", store.to_str().unwrap(), "--pull", "never"];
        a.extend_from_slice(args);
        self.husk(&a)
    }

    fn containers(&self) -> Vec<String> {
        let o = self.husk(&["list", "-q"]);
        text(&o.stdout).lines().map(str::to_string).collect()
    }

    /// No state, no bundle, no volume, no mount left.
    fn assert_clean(&self, what: &str) {
        assert!(self.containers().is_empty(), "{what}: state left");
        for sub in ["containers", "volumes"] {
            let left: Vec<_> = std::fs::read_dir(self.store().join(sub))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n != ".lock")
                .collect();
            assert!(left.is_empty(), "{what}: {sub} left: {left:?}");
        }
        let mounts = mounts_under(self.dir.path());
        assert!(mounts.is_empty(), "{what}: mounts left: {mounts:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = self.husk(&["delete", "-f", &id]);
        }
        for m in mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn need_root(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if is_runc() || is_crun() {
        skip(
            test,
            "husk up is husk's own command (the runtime under test is not husk)",
        );
        return false;
    }
    true
}

#[test]
fn up_cdi_device_edits_reach_the_container() {
    if !need_root("up_cdi_device_edits_reach_the_container") {
        return;
    }
    let e = Env::new("edits");
    let specs = e.dir.path().join("cdi");
    let share = e.dir.path().join("share");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("hello"), "from the host\n").unwrap();
    std::fs::write(
        specs.join("test.yaml"),
        format!(
            "cdiVersion: \"0.6.0\"\n\
             kind: test.example/dev\n\
             containerEdits:\n  env: [CDI_SPEC=spec]\n\
             devices:\n\
             - name: nul\n  containerEdits:\n\
             \x20   env: [CDI_DEV=nul]\n\
             \x20   deviceNodes:\n\
             \x20   - path: /dev/cdi-null\n      hostPath: /dev/null\n      permissions: rw\n\
             \x20   mounts:\n\
             \x20   - hostPath: {}\n      containerPath: /mnt/cdi\n      type: bind\n\
             \x20     options: [rbind, ro]\n\
             - name: other\n  containerEdits:\n    env: [CDI_OTHER=1]\n",
            share.display()
        ),
    )
    .unwrap();
    let script = "stat -c '%F %t:%T' /dev/cdi-null; echo \"$CDI_SPEC $CDI_DEV ${CDI_OTHER:-none}\"; \
                  cat /mnt/cdi/hello; grep ' /mnt/cdi ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
                  echo x > /dev/cdi-null && echo written; test -e /dev/null.cdi || echo alone";
    let o = e.up(&[
        "--rm",
        "--cdi-spec-dir",
        specs.to_str().unwrap(),
        "--device",
        "test.example/dev=nul",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert!(
        o.status.success(),
        "up: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "character special file 1:3",
            "spec nul none",
            "from the host",
            "ro",
            "written",
            "alone"
        ],
        "stderr: {}",
        text(&o.stderr)
    );
    e.assert_clean("after up --rm with a CDI device");
}

#[test]
fn up_cdi_unknown_device_is_refused_by_name_and_leaves_nothing() {
    if !need_root("up_cdi_unknown_device_is_refused_by_name_and_leaves_nothing") {
        return;
    }
    let e = Env::new("bad");
    let specs = e.dir.path().join("cdi");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("test.json"),
        r#"{"cdiVersion": "0.6.0", "kind": "test.example/dev",
            "devices": [{"name": "nul", "containerEdits": {"env": ["A=1"]}}]}"#,
    )
    .unwrap();
    let dir = specs.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--cdi-spec-dir", dir, "--device", "test.example/dev=nope"],
            &["test.example/dev=nope", dir, "test.example/dev has: nul"],
        ),
        (
            &["--device", "test.example/dev=nope"],
            &["test.example/dev=nope", "/etc/cdi, /var/run/cdi"],
        ),
        (
            &["--cdi-spec-dir", dir, "--device", "test example/dev=x"],
            &["test example/dev=x", "not a CDI device name"],
        ),
        (
            &[
                "--cdi-spec-dir",
                "relative",
                "--device",
                "test.example/dev=nul",
            ],
            &["--cdi-spec-dir relative"],
        ),
    ];
    for (flags, wants) in cases {
        let mut a = vec!["--rm"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[IMAGE, "true"]);
        let o = e.up(&a);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{flags:?} succeeded");
        for w in *wants {
            assert!(
                err.contains(w),
                "{flags:?}: the error must name {w:?}: {err}"
            );
        }
        e.assert_clean(&format!("after {flags:?}"));
    }
}
