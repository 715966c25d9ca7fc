//! The `image` section: a cold pull + unpack of the same images from a loopback registry by
//! `husk image`, `podman pull` and `skopeo copy` + `umoci unpack`, tools alternating round by
//! round, each round from an empty store, next to the machine's floor measured in the same run.
//!
//! Setup, all local: Debian's `docker-registry` on 127.0.0.1 (its data in the benchmark's temp
//! dir, ended by pid), OCI layouts written here and pushed with `skopeo copy`:
//! - `small`: the busybox test rootfs as one layer (gzip);
//! - `big`: BENCH_IMAGE_MB (600) MiB of files in four layers (each 4 KiB block half random,
//!   half a copy of that half: about 2:1 compressible) plus the test rootfs, pushed once with
//!   gzip layers (skopeo compresses) and once with zstd layers (compressed here, level 3).
//!
//! With `BENCH_IMAGE_ROOTFS=debootstrap` the big images' data layers are instead copies of a
//! Debian root (`debootstrap --variant=minbase bookworm` from `BENCH_DEBIAN_MIRROR`, default
//! deb.debian.org; made once and kept as a tar in `target/bench/cache/`), one copy per layer
//! under `debN/`, as many as come nearest BENCH_IMAGE_MB (at least one): thousands of small
//! files, the case of real distribution images.
//!
//! Every tool works on a tmpfs mounted in the benchmark's private mount namespace (store,
//! unpacked rootfs and TMPDIR), emptied after each round. Per tool and round: wall time,
//! user+sys CPU (wait4 rusage of the tool's process tree, through the small launcher of the
//! rss section, which also gives the peak RSS of the largest process), and the KiB the store
//! holds afterwards (`du`). The floor: in-process, one pass per layer: HTTP GET of the blob
//! from the registry, sha256, decompression (flate2 / zstd, the crates husk uses) and tar
//! extraction onto the same tmpfs; its CPU from getrusage of the benchmark.
//!
//! A missing tool is left out with the reason; a tool that fails is dropped with its error.
//! Nothing here fails the benchmark: a broken setup becomes a note.

use super::{env_usize, measurement_table, ms, Bench, Row, RSS_LAUNCH};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        // by pid: the registry this section started
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unmounts the section's tmpfs (and anything a tool left mounted under it) on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        umount_under(&self.0, true);
    }
}

/// podman's lock file is POSIX shm whatever its roots: removed on drop if this run created it.
const PODMAN_LOCK: &str = "/dev/shm/libpod_lock";

struct PodmanLock(bool);

impl Drop for PodmanLock {
    fn drop(&mut self) {
        if !self.0 {
            let _ = std::fs::remove_file(PODMAN_LOCK);
        }
    }
}

/// Unmount every mount at or below `dir` (deepest first); `dir` itself only if `this`.
pub(crate) fn umount_under(dir: &Path, this: bool) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut pts: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| {
            let p = Path::new(p);
            p.starts_with(dir) && (this || p != dir)
        })
        .collect();
    pts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in pts {
        let Ok(c) = std::ffi::CString::new(p) else {
            continue;
        };
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn start_registry(dir: &Path, bin: &Path) -> Result<Registry, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let port = free_port();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("config.yml"), cfg).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("log")).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start docker-registry: {e}"))?;
    let r = Registry { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("docker-registry did not listen on {port} in 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(r)
}

/// A writer into a file that hashes what it writes.
struct HashFile {
    f: std::io::BufWriter<std::fs::File>,
    h: Sha256,
    n: u64,
}

impl Write for HashFile {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.f.write(b)?;
        self.h.update(&b[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.f.flush()
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A blob written into `layout/blobs/sha256/` by `fill`: (digest, size).
fn blob(
    layout: &Path,
    fill: impl FnOnce(&mut HashFile) -> std::io::Result<()>,
) -> std::io::Result<(String, u64)> {
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join("tmp");
    let mut w = HashFile {
        f: std::io::BufWriter::new(std::fs::File::create(&tmp)?),
        h: Sha256::new(),
        n: 0,
    };
    fill(&mut w)?;
    w.flush()?;
    let d = hex(&w.h.finalize());
    std::fs::rename(&tmp, dir.join(&d))?;
    Ok((format!("sha256:{d}"), w.n))
}

/// `n` bytes, each 4 KiB block half xorshift noise and half a copy of it.
fn fill_data(w: &mut impl Write, mut n: usize, seed: &mut u64) -> std::io::Result<()> {
    let mut block = [0u8; 4096];
    while n > 0 {
        for c in block[..2048].chunks_mut(8) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            c.copy_from_slice(&seed.to_le_bytes());
        }
        let (a, b) = block.split_at_mut(2048);
        b.copy_from_slice(a);
        let k = n.min(4096);
        w.write_all(&block[..k])?;
        n -= k;
    }
    Ok(())
}

/// The cached Debian root (a tar of `debootstrap --variant=minbase bookworm`), made on first
/// use in `cache` (the debootstrap itself in `work`, removed after).
fn debian_root(cache: &Path, work: &Path) -> Result<PathBuf, String> {
    let tar_path = cache.join("debootstrap-bookworm-minbase.tar");
    if tar_path.is_file() {
        return Ok(tar_path);
    }
    let bin = which("debootstrap")
        .ok_or("BENCH_IMAGE_ROOTFS=debootstrap: `debootstrap` is not installed (make deps)")?;
    let mirror = std::env::var("BENCH_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let dir = work.join("debootstrap");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("bench: image: debootstrap bookworm (minbase) from {mirror}, once");
    let o = Command::new(bin)
        .args(["--variant=minbase", "bookworm"])
        .arg(&dir)
        .arg(&mirror)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("debootstrap: {e}"))?;
    if !o.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(format!(
            "debootstrap from {mirror} failed: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    std::fs::create_dir_all(cache).map_err(|e| e.to_string())?;
    let tmp = tar_path.with_extension("tmp");
    let o = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&dir)
        .args(["-cf"])
        .arg(&tmp)
        .arg(".")
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !o.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "tar of the Debian root: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    std::fs::rename(&tmp, &tar_path).map_err(|e| e.to_string())?;
    Ok(tar_path)
}

/// The entries of the tar at `src` written to `t` under `prefix/` (hardlink targets too;
/// symlink targets as they are).
fn append_under<W: Write>(
    t: &mut tar::Builder<W>,
    src: &Path,
    prefix: &str,
) -> std::io::Result<()> {
    // `./x` becomes `prefix/x`, `./` itself `prefix`
    let under = |p: &Path| -> PathBuf {
        let rel: PathBuf = p
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        Path::new(prefix).join(rel)
    };
    let mut a = tar::Archive::new(std::io::BufReader::new(std::fs::File::open(src)?));
    for e in a.entries()? {
        let mut e = e?;
        let path = under(&e.path()?);
        let mut h = e.header().clone();
        match h.entry_type() {
            tar::EntryType::Link => {
                let target = under(&e.link_name()?.unwrap_or_default());
                t.append_link(&mut h, &path, &target)?;
            }
            tar::EntryType::Symlink => {
                let target = e.link_name()?.unwrap_or_default().into_owned();
                t.append_link(&mut h, &path, &target)?;
            }
            _ => t.append_data(&mut h, &path, &mut e)?,
        }
    }
    Ok(())
}

/// A GNU tar header of `kind`, `mode` and `size`, owned by root, mtime 0.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// An OCI layout at `layout` with one image tagged `tag`: the test rootfs as a layer, and
/// `data_mib` MiB of generated files in four more layers (or, with `debian` = (tar, copies),
/// that many copies of the Debian root, one a layer). Layers uncompressed (skopeo
/// compresses them with gzip on push) or, with `zstd_layers`, compressed here with zstd
/// (skopeo 1.9 pushes gzip whatever `--dest-compress-format` says).
fn write_layout(
    layout: &Path,
    tag: &str,
    rootfs: &Path,
    data_mib: usize,
    zstd_layers: bool,
    debian: Option<(&Path, usize)>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(layout)?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    // The zstd image's layers each hold one more small file, so that no layer has the
    // uncompressed content (diff_id) of a gzip image's: skopeo's blob-info cache, which
    // outlives a run, would otherwise push the zstd image with the gzip layers the registry
    // already has (it did: a "zstd" row measured gzip layers).
    let mark = |t: &mut tar::Builder<&mut HashFile>| -> std::io::Result<()> {
        if !zstd_layers {
            return Ok(());
        }
        let mut h = header(tar::EntryType::Regular, 0o644, 5);
        t.append_data(&mut h, ".husk-bench-zstd", &b"zstd\n"[..])
    };
    let mut layers = Vec::new();
    layers.push(blob(layout, |w| {
        let mut t = tar::Builder::new(w);
        t.follow_symlinks(false);
        t.append_dir_all(".", rootfs)?;
        mark(&mut t)?;
        t.finish()
    })?);
    if let Some((tree, copies)) = debian {
        for l in 0..copies {
            layers.push(blob(layout, |w| {
                let mut t = tar::Builder::new(w);
                append_under(&mut t, tree, &format!("deb{l}"))?;
                mark(&mut t)?;
                t.finish()
            })?);
        }
    }
    let per_layer = data_mib.div_ceil(4);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = if debian.is_some() { 0 } else { data_mib };
    for l in 0..4 {
        let mib = per_layer.min(left);
        left -= mib;
        if mib == 0 {
            break;
        }
        layers.push(blob(layout, |w| {
            let mut t = tar::Builder::new(w);
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            t.append_data(&mut h, format!("data{l}/"), std::io::empty())?;
            // files of 4 MiB (the last one smaller)
            let mut rest = mib << 20;
            let mut i = 0;
            while rest > 0 {
                let sz = rest.min(4 << 20);
                let mut buf = Vec::with_capacity(sz);
                fill_data(&mut buf, sz, &mut seed)?;
                let mut h = header(tar::EntryType::Regular, 0o644, sz as u64);
                t.append_data(&mut h, format!("data{l}/f{i:04}"), &buf[..])?;
                rest -= sz;
                i += 1;
            }
            mark(&mut t)?;
            t.finish()
        })?);
    }
    // zstd: the layers compressed here (level 3, zstd's default), pushed as they are
    let mut media = "application/vnd.oci.image.layer.v1.tar";
    let mut blobs: Vec<(String, u64)> = layers.clone();
    if zstd_layers {
        media = "application/vnd.oci.image.layer.v1.tar+zstd";
        blobs.clear();
        for (d, _) in &layers {
            let src = layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"));
            blobs.push(blob(layout, |w| {
                let mut e = zstd::Encoder::new(w, 3)?;
                std::io::copy(&mut std::fs::File::open(&src)?, &mut e)?;
                e.finish().map(drop)
            })?);
            std::fs::remove_file(&src)?;
        }
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.0.clone()).collect::<Vec<_>>()},
    });
    let cfg = blob(layout, |w| w.write_all(&serde_json::to_vec(&config)?))?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.0, "size": cfg.1},
        "layers": blobs.iter().map(|(d, n)| serde_json::json!({
            "mediaType": media, "digest": d, "size": n
        })).collect::<Vec<_>>(),
    });
    let m = blob(layout, |w| w.write_all(&serde_json::to_vec(&manifest)?))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m.0, "size": m.1,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)
}

/// One measured command: wall ms, user+sys CPU ms, peak RSS KiB (largest process).
struct Sample {
    wall: f64,
    cpu: f64,
    rss: f64,
}

/// Run `argv` through the benchmark's RSS launcher (a fresh small process that wait4s the
/// tool and writes its ru_maxrss); the launcher is wait4ed here for the tree's CPU time.
#[allow(clippy::zombie_processes)]
fn launch(
    argv: &[String],
    env: &[(&str, PathBuf)],
    tmpdir: &Path,
    log: &Path,
) -> Result<Sample, String> {
    let out = log.with_extension("maxrss");
    let t = Instant::now();
    let child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(RSS_LAUNCH, &out)
        .env("TMPDIR", tmpdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: rusage is a valid out buffer; the pid is our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall = ms(t.elapsed());
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    let rss = std::fs::read_to_string(&out)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok());
    let _ = std::fs::remove_file(&out);
    if r <= 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let err = std::fs::read_to_string(log).unwrap_or_default();
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("`{}` failed: {last}", argv.join(" ")));
    }
    Ok(Sample {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        rss: rss.unwrap_or(0.0),
    })
}

fn du_kib(p: &Path) -> f64 {
    Command::new("du")
        .arg("-sk")
        .arg(p)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

fn empty_dir(d: &Path) {
    umount_under(d, false);
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// A cold pull + unpack by `tool` of `reference` into `work` (empty): the summed sample of
/// its steps (RSS: the larger) and the KiB its store holds afterwards.
fn cold(
    tool: &str,
    bins: &std::collections::HashMap<&str, PathBuf>,
    conf: &Path,
    reference: &str,
    work: &Path,
) -> Result<(Sample, f64), String> {
    let store = work.join("store");
    let dir = work.join("bundle");
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let log = work.join("log");
    let p = |k: &str| bins[k].to_string_lossy().into_owned();
    let s = |x: &Path| x.to_string_lossy().into_owned();
    if tool == "ctr" {
        return cold_ctr(bins, reference, work);
    }
    let steps: Vec<Vec<String>> = match tool {
        // one pass: each layer applied to the bundle while it downloads
        "husk" => vec![vec![
            p("husk"),
            "image".into(),
            "pull".into(),
            "-q".into(),
            "--store".into(),
            s(&store),
            "--unpack".into(),
            s(&dir),
            reference.into(),
        ]],
        "podman" => vec![vec![
            p("podman"),
            "--root".into(),
            s(&store.join("root")),
            "--runroot".into(),
            s(&store.join("run")),
            "--tmpdir".into(),
            s(&tmp),
            "--storage-driver".into(),
            "overlay".into(),
            "--events-backend".into(),
            "none".into(),
            "pull".into(),
            "-q".into(),
            "--tls-verify=false".into(),
            reference.into(),
        ]],
        _ => vec![
            vec![
                p("skopeo"),
                "copy".into(),
                "-q".into(),
                "--src-tls-verify=false".into(),
                format!("docker://{reference}"),
                format!("oci:{}:img", s(&store)),
            ],
            vec![
                p("umoci"),
                "unpack".into(),
                "--image".into(),
                format!("{}:img", s(&store)),
                s(&dir),
            ],
        ],
    };
    let mut tot = Sample {
        wall: 0.0,
        cpu: 0.0,
        rss: 0.0,
    };
    // podman: private config files (no system storage.conf, registries or events log)
    let env: Vec<(&str, PathBuf)> = if tool == "podman" {
        vec![
            ("CONTAINERS_CONF", conf.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF", conf.join("storage.conf")),
            ("CONTAINERS_REGISTRIES_CONF", conf.join("registries.conf")),
        ]
    } else {
        Vec::new()
    };
    for st in &steps {
        let x = launch(st, &env, &tmp, &log)?;
        tot.wall += x.wall;
        tot.cpu += x.cpu;
        tot.rss = tot.rss.max(x.rss);
    }
    let stored = if tool == "podman" {
        du_kib(&store.join("root"))
    } else {
        du_kib(&store)
    };
    Ok((tot, stored))
}

/// (user+sys CPU ms, VmHWM KiB) of a live process of ours.
fn proc_usage(pid: u32) -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // after the name: state (not a number, skipped), then fields 4..; utime and stime are 14, 15
    let cpu = match (f.get(10), f.get(11)) {
        (Some(u), Some(s)) => (u + s) * 1e3 / hz,
        _ => 0.0,
    };
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    (cpu, hwm)
}

/// ctr: a fresh private containerd per round (its root and state on the tmpfs, started before
/// the clock), then `ctr image pull --plain-http` (fetch, and unpack into overlayfs
/// snapshots). The fetch runs in ctr, the unpack in the daemon: CPU is ctr's tree plus the
/// daemon's during the pull, peak RSS the larger of ctr's and the daemon's high-water mark.
fn cold_ctr(
    bins: &std::collections::HashMap<&str, PathBuf>,
    reference: &str,
    work: &Path,
) -> Result<(Sample, f64), String> {
    let cd = work.join("store");
    let tmp = work.join("tmp");
    for d in ["root", "state", "opt"] {
        std::fs::create_dir_all(cd.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let sock = cd.join("containerd.sock");
    let cfg = format!(
        "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n\
         [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{0}/opt\"\n",
        cd.display(),
        sock.display()
    );
    std::fs::write(cd.join("config.toml"), cfg).map_err(|e| e.to_string())?;
    struct Daemon(Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            // SIGTERM by pid, SIGKILL after 10 s
            // SAFETY: kill on the pid of our own child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if self.0.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let d = Daemon(
        Command::new(&bins["containerd"])
            .arg("--config")
            .arg(cd.join("config.toml"))
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start containerd: {e}"))?,
    );
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("private containerd did not come up in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (c0, _) = proc_usage(d.0.id());
    let argv: Vec<String> = vec![
        bins["ctr"].to_string_lossy().into_owned(),
        "--address".into(),
        sock.to_string_lossy().into_owned(),
        "--namespace".into(),
        "bench".into(),
        "image".into(),
        "pull".into(),
        "--plain-http".into(),
        reference.into(),
    ];
    let mut x = launch(&argv, &[], &tmp, &work.join("log"))?;
    let (c1, hwm) = proc_usage(d.0.id());
    x.cpu += c1 - c0;
    x.rss = x.rss.max(hwm);
    drop(d);
    Ok((x, du_kib(&cd.join("root"))))
}

/// Reads through, hashing.
struct HashRead<R> {
    r: R,
    h: Sha256,
    n: u64,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(b)?;
        self.h.update(&b[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// The floor: manifest, config and every layer fetched from the registry in one pass each
/// (GET → sha256 → decompress → untar into `dir`). (wall ms, CPU ms, compressed bytes).
fn floor(host: &str, repo: &str, tag: &str, dir: &Path) -> Result<(f64, f64, u64, String), String> {
    let cpu = || {
        // SAFETY: getrusage with a valid out buffer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    let (c0, t) = (cpu(), Instant::now());
    let e = |e: &dyn std::fmt::Display| format!("floor: {e}");
    let m: serde_json::Value = ureq::get(&format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .set(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.v2+json",
        )
        .call()
        .map_err(|x| e(&x))?
        .into_string()
        .map_err(|x| e(&x))
        .and_then(|t| serde_json::from_str(&t).map_err(|x| e(&x)))?;
    let fetch = |d: &str| -> Result<HashRead<Box<dyn Read + Send + Sync>>, String> {
        Ok(HashRead {
            r: ureq::get(&format!("http://{host}/v2/{repo}/blobs/{d}"))
                .call()
                .map_err(|x| e(&x))?
                .into_reader(),
            h: Sha256::new(),
            n: 0,
        })
    };
    let check = |r: &HashRead<_>, d: &str| {
        if format!("sha256:{}", hex(&r.h.clone().finalize())) == d {
            Ok(())
        } else {
            Err(format!("floor: digest mismatch for {d}"))
        }
    };
    let cd = m["config"]["digest"].as_str().unwrap_or_default();
    let mut r = fetch(cd)?;
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|x| e(&x))?;
    check(&r, cd)?;
    let mut bytes = r.n;
    let mut types: Vec<&str> = Vec::new();
    for l in m["layers"].as_array().into_iter().flatten() {
        let d = l["digest"].as_str().unwrap_or_default();
        let mt = l["mediaType"].as_str().unwrap_or_default();
        if !types.contains(&mt) {
            types.push(mt);
        }
        let mut r = fetch(d)?;
        {
            let dec: Box<dyn Read + '_> = if mt.ends_with("zstd") {
                Box::new(zstd::Decoder::new(&mut r).map_err(|x| e(&x))?)
            } else {
                Box::new(flate2::read::MultiGzDecoder::new(&mut r))
            };
            let mut a = tar::Archive::new(dec);
            a.set_preserve_permissions(true);
            a.set_overwrite(true);
            a.unpack(dir).map_err(|x| e(&x))?;
            // what follows the tar's end still belongs to the blob
            std::io::copy(&mut a.into_inner(), &mut std::io::sink()).map_err(|x| e(&x))?;
        }
        std::io::copy(&mut r, &mut std::io::sink()).map_err(|x| e(&x))?;
        check(&r, d)?;
        bytes += r.n;
    }
    Ok((ms(t.elapsed()), cpu() - c0, bytes, types.join(", ")))
}

/// Measure the section; returns its markdown (a table of its own, with its notes).
pub fn measure(b: &Bench, notes: &mut Vec<String>) -> String {
    match measure_inner(b) {
        Ok(md) => md,
        Err(why) => {
            eprintln!("bench: image: left out: {why}");
            notes.push(format!("image section left out: {why}"));
            String::new()
        }
    }
}

fn measure_inner(b: &Bench) -> Result<String, String> {
    let runs = env_usize("BENCH_IMAGE_RUNS", 3).max(1);
    let warmup = env_usize("BENCH_IMAGE_WARMUP", 1).min(1);
    let big_mib = env_usize("BENCH_IMAGE_MB", 600).max(1);
    let husk = b
        .rts
        .iter()
        .find(|r| r.name == "husk")
        .map(|r| r.bin.clone())
        .ok_or("husk is not among the runtimes measured")?;
    let reg_bin = which("docker-registry")
        .ok_or("`docker-registry` is not installed (Debian package docker-registry)")?;
    let skopeo = which("skopeo").ok_or("`skopeo` is not installed (needed to push the images)")?;
    let mut notes: Vec<String> = Vec::new();
    let mut bins: std::collections::HashMap<&str, PathBuf> = Default::default();
    bins.insert("husk", husk);
    bins.insert("skopeo", skopeo);
    let mut tools: Vec<&str> = vec!["husk"];
    match which("podman") {
        Some(p) => {
            bins.insert("podman", p);
            tools.push("podman");
        }
        None => notes.push("podman: not installed, left out".into()),
    }
    match which("umoci") {
        Some(p) => {
            bins.insert("umoci", p);
            tools.push("skopeo+umoci");
        }
        None => notes.push("skopeo+umoci: umoci not installed, left out".into()),
    }
    match (which("ctr"), which("containerd")) {
        (Some(c), Some(d)) => {
            bins.insert("ctr", c);
            bins.insert("containerd", d);
            tools.push("ctr");
        }
        _ => notes.push("ctr: ctr or containerd not installed, left out".into()),
    }
    let base = b.base.join("image");
    let fs = base.join("tmpfs");
    std::fs::create_dir_all(&fs).map_err(|e| e.to_string())?;
    let size = format!("size={}m,mode=700", 4 * big_mib + 1024);
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let fsc =
        std::ffi::CString::new(fs.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: mount with valid C strings; the benchmark is in its own mount namespace.
    let r = unsafe {
        libc::mount(
            c("husk-bench-image").as_ptr(),
            fsc.as_ptr(),
            c("tmpfs").as_ptr(),
            0,
            c(&size).as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount a tmpfs at {}: {}",
            fs.display(),
            std::io::Error::last_os_error()
        ));
    }
    let _fs_guard = Tmpfs(fs.clone());
    let _lock = PodmanLock(Path::new(PODMAN_LOCK).exists());
    let conf = base.join("podman-conf");
    std::fs::create_dir_all(&conf).map_err(|e| e.to_string())?;
    std::fs::write(
        conf.join("containers.conf"),
        "[engine]\nevents_logger = \"none\"\n",
    )
    .and_then(|()| {
        std::fs::write(
            conf.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/store/root\"\n\
                 runroot = \"{0}/store/run\"\n",
                fs.display()
            ),
        )
    })
    .and_then(|()| {
        std::fs::write(
            conf.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
    })
    .map_err(|e| e.to_string())?;

    eprintln!("bench: image: registry and images ({big_mib} MiB)");
    let reg = start_registry(&base.join("registry"), &reg_bin)?;
    let host = format!("127.0.0.1:{}", reg.port);
    let small_l = base.join("small-layout");
    let big_l = base.join("big-layout");
    let zst_l = base.join("zstd-layout");
    // BENCH_IMAGE_ROOTFS=debootstrap: the big images are copies of a Debian root
    let debian = match std::env::var("BENCH_IMAGE_ROOTFS").as_deref() {
        Ok("debootstrap") => {
            let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/cache");
            let tree = debian_root(&cache, &base)?;
            // the root's unpacked size, from its tar (headers and padding included)
            let mib = std::fs::metadata(&tree).map_err(|e| e.to_string())?.len() >> 20;
            let copies = ((big_mib as f64 / mib.max(1) as f64).round() as usize).max(1);
            Some((tree, copies, mib))
        }
        Ok("") | Err(_) => None,
        Ok(other) => {
            return Err(format!(
                "BENCH_IMAGE_ROOTFS={other:?}: expected `debootstrap` or nothing"
            ))
        }
    };
    let deb = debian.as_ref().map(|(t, n, _)| (t.as_path(), *n));
    write_layout(&small_l, "t", &b.rootfs, 0, false, None)
        .map_err(|e| format!("write small image: {e}"))?;
    write_layout(&big_l, "t", &b.rootfs, big_mib, false, deb)
        .map_err(|e| format!("write big image: {e}"))?;
    write_layout(&zst_l, "t", &b.rootfs, big_mib, true, deb)
        .map_err(|e| format!("write big zstd image: {e}"))?;
    let images = [
        ("small", "gzip", &small_l),
        ("big", "gzip", &big_l),
        ("big", "zstd", &zst_l),
    ];
    for (name, comp, layout) in &images {
        let mut c = Command::new(&bins["skopeo"]);
        c.args(["copy", "-q", "--dest-tls-verify=false", "--format", "oci"]);
        if *comp == "gzip" {
            c.args(["--dest-compress", "--dest-compress-format", "gzip"]);
        }
        let o = c
            .arg(format!("oci:{}:t", layout.display()))
            .arg(format!("docker://{host}/bench/{name}:{comp}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("skopeo: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "skopeo push of {name}:{comp}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    // the layouts are in the registry now
    let _ = std::fs::remove_dir_all(&small_l);
    let _ = std::fs::remove_dir_all(&big_l);
    let _ = std::fs::remove_dir_all(&zst_l);

    let mut rows: Vec<Row> = Vec::new();
    for (name, comp, _) in &images {
        let reference = format!("{host}/bench/{name}:{comp}");
        let label = if *name == "small" {
            "small image (busybox test rootfs, 1 layer, gzip)".to_string()
        } else {
            match &debian {
                Some((_, n, mib)) => format!(
                    "Debian minbase ×{n} image ({n} × {mib} MiB of small files, {} layers, {comp})",
                    n + 1
                ),
                None => format!("{big_mib} MiB image (5 layers, {comp})"),
            }
        };
        eprintln!("bench: image: {label}: {warmup} warm-up + {runs} rounds");
        let mut cols: Vec<&str> = tools.clone();
        cols.push("floor");
        let mut wall: Vec<(String, Vec<f64>)> =
            cols.iter().map(|t| (t.to_string(), vec![])).collect();
        let mut cpu = wall.clone();
        let mut rss = wall.clone();
        let mut stored = wall.clone();
        let mut warm = vec![("husk".to_string(), Vec::new())];
        let mut fetched = 0;
        let mut types = String::new();
        let mut failed: Vec<&str> = Vec::new();
        for round in 0..warmup + runs {
            let keep = round >= warmup;
            for (k, tool) in cols.iter().enumerate() {
                if failed.contains(tool) {
                    continue;
                }
                empty_dir(&fs);
                if *tool == "floor" {
                    let dir = fs.join("rootfs");
                    let _ = std::fs::create_dir_all(&dir);
                    match floor(&host, &format!("bench/{name}"), comp, &dir) {
                        Ok((w, c, n, t)) if keep => {
                            wall[k].1.push(w);
                            cpu[k].1.push(c);
                            fetched = n;
                            types = t;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            notes.push(format!("floor, {label}: {e}"));
                            failed.push(*tool);
                        }
                    }
                    continue;
                }
                match cold(tool, &bins, &conf, &reference, &fs) {
                    Ok((s, kib)) => {
                        if keep {
                            wall[k].1.push(s.wall);
                            cpu[k].1.push(s.cpu);
                            rss[k].1.push(s.rss);
                            stored[k].1.push(kib);
                        }
                        // warm: the layers are in the store; pull again, unpack anew
                        if *tool == "husk" && keep {
                            let _ = std::fs::remove_dir_all(fs.join("bundle"));
                            if let Ok((w, _)) = cold(tool, &bins, &conf, &reference, &fs) {
                                warm[0].1.push(w.wall);
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("bench: image: {tool}: {e}");
                        notes.push(format!("{tool}, {label}: left out, {e}"));
                        failed.push(*tool);
                    }
                }
            }
        }
        empty_dir(&fs);
        let mib = |v: Vec<(String, Vec<f64>)>| {
            v.into_iter()
                .map(|(k, x)| (k, x.into_iter().map(|y| y / 1024.0).collect()))
                .collect()
        };
        let row = |what: String, unit: &'static str, vals| Row {
            what,
            unit,
            vals,
            note: String::new(),
        };
        rows.push(row(format!("{label}: cold pull + unpack"), "ms", wall));
        rows.push(row(format!("{label}: user+sys CPU"), "ms", cpu));
        rows.push(row(format!("{label}: peak RSS"), "MiB", mib(rss)));
        rows.push(row(
            format!("{label}: store afterwards"),
            "MiB",
            mib(stored),
        ));
        rows.push(row(
            format!("{label}: warm (layers stored) pull + unpack"),
            "ms",
            warm,
        ));
        notes.push(format!(
            "{label}: {:.1} MiB fetched from the registry (config and layers as stored there), \
             layers {types}",
            fetched as f64 / 1048576.0
        ));
    }
    drop(reg);
    let _ = std::fs::remove_dir_all(base.join("registry"));
    Ok(table(&rows, &tools, warmup, runs, &notes))
}

fn table(rows: &[Row], tools: &[&str], warmup: usize, runs: usize, notes: &[String]) -> String {
    let mut md = format!(
        "\n#### Image pull + unpack from a loopback registry\n\n\
         Cold: every round from an empty store on a tmpfs; tools alternate round by round \
         ({warmup} warm-up, {runs} measured). husk: `husk image pull --unpack DIR` (each layer \
         applied to the bundle while it downloads into the store); \
         podman: `podman pull` (overlay storage under its own --root/--runroot, which applies \
         the layers as it pulls); skopeo+umoci: `skopeo copy docker://… oci:…` + `umoci \
         unpack`; ctr: `ctr image pull --plain-http` into a private containerd; floor: in-process GET + sha256 + decompression + tar extraction of each \
         layer in one pass (flate2 / zstd). Values: min / **median** / max; ratios are husk's \
         median over the other's.\n\n"
    );
    let cols: Vec<(&str, &str)> = tools.iter().chain(&["floor"]).map(|c| (*c, *c)).collect();
    md.push_str(&measurement_table(rows, &cols, 2));
    md.push_str(
        "\n- CPU: user+sys of the whole process tree (wait4 rusage); the floor's from \
         getrusage of the benchmark process. Peak RSS: ru_maxrss of the largest process, from \
         a small fresh launcher (summed steps: the larger). Store afterwards: `du` of husk's \
         store (compressed blobs), podman's --root (applied layers), skopeo's OCI layout \
         (compressed blobs); the unpacked rootfs is not counted.",
    );
    md.push_str(
        "\n- The warm row: `husk image pull --unpack` again with every blob stored, into a new \
         directory (the layers applied from the store).",
    );
    md.push_str(
        "\n- ctr: a fresh private containerd per round (root and state on the tmpfs, started \
         before the clock; overlayfs snapshotter), `ctr image pull --plain-http` (fetch in ctr, \
         unpack into snapshots in the daemon). CPU: ctr's tree plus the daemon's during the \
         pull (/proc stat); peak RSS: the larger of ctr's and the daemon's VmHWM (which \
         includes its start-up); store: `du` of its root (content and snapshots).",
    );
    for n in notes {
        md.push_str(&format!("\n- {n}"));
    }
    md.push('\n');
    md
}
