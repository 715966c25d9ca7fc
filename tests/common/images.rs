//! What the image tests share: husk's `image` command run against a store, checks of a store's
//! consistency, hashing and gzip of test data, and Debian's docker-registry started on a free
//! loopback port with its own storage (htpasswd and TLS optional, its access log kept).

use super::*;
use flate2::write::GzEncoder;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_LAYER_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

pub fn need_husk(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if is_runc() || is_crun() {
        skip(
            test,
            "`image` is husk's own command; nothing to validate against runc or crun",
        );
        return false;
    }
    true
}

pub fn need_tools(test: &str, tools: &[&str]) -> bool {
    if !need_husk(test) {
        return false;
    }
    for t in tools {
        let arg = if *t == "htpasswd" { "-h" } else { "--version" };
        if Command::new(t).arg(arg).output().is_err() {
            skip(test, &format!("{t} is not installed (make deps)"));
            return false;
        }
    }
    true
}

pub fn sha(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    let mut s = String::from("sha256:");
    for x in h.iter() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn tmpdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("husk-img-{tag}-"))
        .tempdir()
        .unwrap()
}

/// `husk image --store STORE ARGS…` with extra environment (`None`: removed) and stdin.
pub fn husk_with(
    store: &Path,
    args: &[&str],
    env: &[(&str, Option<&Path>)],
    stdin: Option<&str>,
) -> Output {
    let mut c = Command::new(runtime());
    c.arg("image").arg("--store").arg(store).args(args);
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let Some(input) = stdin else {
        return run_timeout(&mut c, Duration::from_secs(120));
    };
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let pid = child.id() as i32;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // by pid: the husk we started
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter.join().unwrap()
}

pub fn husk(store: &Path, args: &[&str]) -> Output {
    husk_with(store, args, &[], None)
}

pub fn check_ok(o: Output, args: &[&str]) -> (String, String) {
    assert!(
        o.status.success(),
        "husk image {args:?} failed: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    (text(&o.stdout), text(&o.stderr))
}

pub fn husk_ok(store: &Path, args: &[&str]) -> String {
    check_ok(husk(store, args), args).0
}

/// stdout and stderr of a husk command that must succeed.
pub fn husk_ok2(store: &Path, args: &[&str]) -> (String, String) {
    check_ok(husk(store, args), args)
}

pub fn check_err(o: Output, args: &[&str]) -> String {
    assert_eq!(
        code(&o.status),
        1,
        "husk image {args:?} should fail with 1: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    // the log line quotes the message: its own quotes come escaped
    text(&o.stderr).replace("\\\"", "\"")
}

pub fn husk_err(store: &Path, args: &[&str]) -> String {
    check_err(husk(store, args), args)
}

pub fn run_ok(cmd: &mut Command) -> String {
    let o = run_timeout(cmd, Duration::from_secs(120));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    text(&o.stdout)
}

/// The store holds nothing half-written: `entries` index entries, no temp files, and every
/// blob's content matches its name. A store that is not there at all (a first pull or import that failed removes the store it
/// made) holds nothing, which is consistent for `entries` 0.
pub fn assert_store_consistent(store: &Path, entries: usize) {
    if entries == 0 && !store.exists() {
        return;
    }
    let idx: Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), entries, "{idx}");
    for e in std::fs::read_dir(store.join("tmp")).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".partial"), "temp file left: {n}");
        assert!(!n.starts_with("import"), "import staging left: {n}");
    }
    for e in std::fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            sha(&data),
            format!("sha256:{}", e.file_name().to_string_lossy()),
            "blob content does not match its name"
        );
    }
}

/// The blobs in `store` (none where there is no store).
pub fn blob_count(store: &Path) -> usize {
    if !store.exists() {
        return 0;
    }
    std::fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .count()
}

// ---------------------------------------------------------------------------------------------
// Debian's docker-registry on a loopback port, its access log kept

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Registry::start_with(htpasswd, None)
    }

    /// With `tls` (certificate, key, CA of the client certificates it requires): HTTPS only.
    pub fn start_with(
        htpasswd: Option<(&str, &str)>,
        tls: Option<(&Path, &Path, Option<&Path>)>,
    ) -> Registry {
        let dir = tmpdir("registry");
        let port = free_port();
        let mut auth = String::new();
        if let Some((user, pass)) = htpasswd {
            let file = dir.path().join("htpasswd");
            run_ok(
                Command::new("htpasswd")
                    .args(["-Bbc"])
                    .arg(&file)
                    .args([user, pass]),
            );
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                file.display()
            );
        }
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{tls}{auth}",
            dir.path().join("data").display(),
            tls = tls
                .map(|(c, k, cas)| format!(
                    "  tls:\n    certificate: {}\n    key: {}\n{}",
                    c.display(),
                    k.display(),
                    cas.map(|p| format!("    clientcas:\n      - {}\n", p.display()))
                        .unwrap_or_default()
                ))
                .unwrap_or_default(),
        );
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy oci:LAYOUT:TAG docker://HOST/REPO`.
    pub fn skopeo_push(
        &self,
        layout: &Path,
        tag: &str,
        repo: &str,
        format: Option<&str>,
        creds: Option<&str>,
    ) {
        let mut c = Command::new("skopeo");
        c.args(["copy", "--dest-tls-verify=false"]);
        if let Some(f) = format {
            c.args(["--format", f]);
        }
        if let Some(cr) = creds {
            c.args(["--dest-creds", cr]);
        }
        c.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}", self.host()));
        run_ok(&mut c);
    }

    /// The access log's request lines so far: (method, path).
    pub fn requests(&self) -> Vec<(String, String)> {
        std::thread::sleep(Duration::from_millis(200));
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap();
        log.lines()
            .filter_map(|l| {
                let q = l.split('"').nth(1)?;
                let mut w = q.split_whitespace();
                let (m, p) = (w.next()?, w.next()?);
                Some((m.to_string(), p.to_string()))
            })
            .collect()
    }

    /// `skopeo inspect --raw`: the manifest the registry serves for `repo_ref`.
    pub fn raw_manifest(&self, repo_ref: &str, creds: Option<&str>) -> Vec<u8> {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(cr) = creds {
            c.args(["--creds", cr]);
        }
        c.arg(format!("docker://{}/{repo_ref}", self.host()));
        let o = run_timeout(&mut c, Duration::from_secs(60));
        assert!(o.status.success(), "{}", text(&o.stderr));
        o.stdout
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // by pid: the registry we started
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` bytes that do not compress (a layer this size stays this size gzipped): xorshift64
/// from `seed`, any seed (0 too).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
