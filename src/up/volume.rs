//! `husk volume ls|inspect|rm|prune`: the volumes of `husk up -v NAME:…` (and anonymous ones,
//! `-v /path`), each a directory `STORE/volumes/NAME/_data`. A volume is in use while a
//! container's bundle under `STORE/containers` mounts it; such a volume is never removed.

use super::flags::{lock_volumes, valid_volume_name, ANONYMOUS_MARK};
use crate::output;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct VolumeArgs {
    /// The image store the volumes are under (as for `husk up`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: VolumeCommand,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// List the volumes.
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Print the volumes as JSON (name, mount point, creation time, users).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    Rm {
        /// No error for a volume that does not exist.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (all unused ones with --all).
    Prune {
        #[arg(short, long)]
        all: bool,
    },
}

fn dir(store: &Path) -> PathBuf {
    store.join("volumes")
}

/// The volume names, sorted.
pub fn list(store: &Path) -> Result<Vec<String>> {
    entries(store, true)
}

/// The names of the directories under `STORE/volumes` that have a `_data` (volumes) or, with
/// `complete` false, that lack one (what a `husk up` killed while it made a volume left),
/// sorted.
fn entries(store: &Path, complete: bool) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir(store)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir(store).display())),
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| valid_volume_name(n))
        .filter(|n| dir(store).join(n).join("_data").is_dir() == complete)
        .collect();
    out.sort();
    Ok(out)
}

/// The containers (bundles of `husk up`) whose config mounts volume `name`.
pub fn users(store: &Path, name: &str) -> Result<Vec<String>> {
    let data = dir(store).join(name).join("_data");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(store.join("containers")) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let cfg = e.path().join("config.json");
        let Ok(text) = std::fs::read(&cfg) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not JSON", cfg.display()))?;
        let uses = v["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["source"].as_str().map(Path::new) == Some(data.as_path()));
        if uses {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn check_name(name: &str) -> Result<()> {
    if !valid_volume_name(name) {
        bail!("{name:?} is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
    }
    Ok(())
}

fn exists(store: &Path, name: &str) -> bool {
    dir(store).join(name).join("_data").is_dir()
}

/// Bytes of the files under `p` (symlinks not followed).
fn size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| size(&e.path()))
        .sum::<u64>()
}

/// `inspect`: one JSON object per volume, in Docker's field names.
pub fn inspect(store: &Path, names: &[String]) -> Result<Value> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for n in names {
        check_name(n)?;
        if !exists(store, n) {
            bail!("{n}: no such volume");
        }
        let d = dir(store).join(n);
        let md = std::fs::metadata(&d).with_context(|| format!("stat {}", d.display()))?;
        out.push(json!({
            "Name": n,
            "Driver": "local",
            "Mountpoint": d.join("_data"),
            "CreatedAt": crate::sys::time::rfc3339(md.ctime(), md.ctime_nsec() as u32),
            "Scope": "local",
            "Anonymous": d.join(ANONYMOUS_MARK).exists(),
            "UsedBy": users(store, n)?,
        }));
    }
    Ok(Value::Array(out))
}

/// `rm`: each volume, unless a container uses it.
pub fn rm(store: &Path, names: &[String], force: bool) -> Result<()> {
    for n in names {
        check_name(n)?;
    }
    let _lock = if dir(store).exists() {
        Some(lock_volumes(store, true)?)
    } else {
        None
    };
    for n in names {
        check_name(n)?;
        if !exists(store, n) {
            if force {
                continue;
            }
            bail!("{n}: no such volume");
        }
        let u = users(store, n)?;
        if !u.is_empty() {
            bail!(
                "volume {n} is in use by container(s) {} (husk rm them first)",
                u.join(", ")
            );
        }
        let d = dir(store).join(n);
        super::remove_tree(&d).with_context(|| format!("remove {}", d.display()))?;
    }
    Ok(())
}

/// `prune`: the unused anonymous volumes (every unused one with `all`); their names and the
/// bytes freed.
pub fn prune(store: &Path, all: bool) -> Result<(Vec<String>, u64)> {
    let mut removed = Vec::new();
    let mut bytes = 0;
    if !dir(store).exists() {
        return Ok((removed, bytes));
    }
    let _lock = lock_volumes(store, true)?;
    // without `_data`: the remains of a `husk up` killed while it made a volume (they are made
    // under the shared lock, so none is being made now), nothing of anybody's in them
    for n in entries(store, false)? {
        let d = dir(store).join(&n);
        super::remove_tree(&d).with_context(|| format!("remove {}", d.display()))?;
    }
    for n in list(store)? {
        let d = dir(store).join(&n);
        if !all && !d.join(ANONYMOUS_MARK).exists() {
            continue;
        }
        if !users(store, &n)?.is_empty() {
            continue;
        }
        bytes += size(&d);
        super::remove_tree(&d).with_context(|| format!("remove {}", d.display()))?;
        removed.push(n);
    }
    Ok((removed, bytes))
}

/// `husk volume …`.
pub fn run(store: &Path, a: VolumeCommand) -> Result<()> {
    match a {
        VolumeCommand::Ls { quiet, format } => {
            let names = list(store)?;
            match (format.as_str(), quiet) {
                (_, true) => {
                    for n in names {
                        output::line(&n)?;
                    }
                }
                ("table", false) => {
                    output::line("DRIVER    VOLUME NAME")?;
                    for n in names {
                        output::line(&format!("local     {n}"))?;
                    }
                }
                ("json", false) => {
                    output::line(&serde_json::to_string_pretty(&inspect(store, &names)?)?)?;
                }
                (f, false) => bail!("--format {f:?}: expected table or json"),
            }
        }
        VolumeCommand::Inspect { names } => {
            output::line(&serde_json::to_string_pretty(&inspect(store, &names)?)?)?;
        }
        VolumeCommand::Rm { force, names } => {
            rm(store, &names, force)?;
            for n in names {
                output::line(&n)?;
            }
        }
        VolumeCommand::Prune { all } => {
            let (names, bytes) = prune(store, all)?;
            for n in names {
                output::line(&n)?;
            }
            output::line(&format!("Total reclaimed space: {bytes} B"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(store: &Path, name: &str, anonymous: bool, file: &[u8]) {
        let d = dir(store).join(name);
        std::fs::create_dir_all(d.join("_data")).unwrap();
        std::fs::write(d.join("_data/f"), file).unwrap();
        if anonymous {
            std::fs::write(d.join(ANONYMOUS_MARK), "").unwrap();
        }
    }

    fn container(store: &Path, id: &str, volume: &str) {
        let c = store.join("containers").join(id);
        std::fs::create_dir_all(&c).unwrap();
        let src = dir(store).join(volume).join("_data");
        let cfg = json!({"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                                    {"destination": "/v", "type": "bind", "source": src}]});
        std::fs::write(c.join("config.json"), cfg.to_string()).unwrap();
    }

    #[test]
    fn ls_inspect_rm_prune() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        assert!(list(s).unwrap().is_empty());
        volume(s, "data", false, b"12345");
        volume(s, "used", false, b"");
        volume(s, "anon1", true, b"123");
        volume(s, "anon2", true, b"");
        container(s, "c1", "used");
        container(s, "c2", "anon2");
        assert_eq!(list(s).unwrap(), ["anon1", "anon2", "data", "used"]);
        assert_eq!(users(s, "used").unwrap(), ["c1"]);
        let v = inspect(s, &["data".into(), "anon1".into()]).unwrap();
        assert_eq!(v[0]["Name"], "data");
        assert_eq!(v[0]["Anonymous"], false);
        assert_eq!(v[1]["Anonymous"], true);
        assert!(v[0]["Mountpoint"]
            .as_str()
            .unwrap()
            .ends_with("volumes/data/_data"));
        assert!(v[0]["CreatedAt"].as_str().unwrap().contains('T'));
        for (r, want) in [
            (inspect(s, &["nope".into()]), "nope: no such volume"),
            (inspect(s, &["../x".into()]), "not a volume name"),
        ] {
            assert!(format!("{:#}", r.unwrap_err()).contains(want));
        }
        // in use: refused, kept
        let e = format!("{:#}", rm(s, &["used".into()], false).unwrap_err());
        assert!(
            e.contains("volume used is in use by container(s) c1"),
            "{e}"
        );
        assert!(exists(s, "used"));
        assert!(rm(s, &["gone".into()], false).is_err());
        rm(s, &["gone".into()], true).unwrap();
        // prune: anonymous and unused only; --all: every unused one
        assert_eq!(prune(s, false).unwrap(), (vec!["anon1".to_string()], 3));
        assert_eq!(prune(s, true).unwrap(), (vec!["data".to_string()], 5));
        assert_eq!(list(s).unwrap(), ["anon2", "used"]);
        std::fs::remove_dir_all(s.join("containers/c1")).unwrap();
        rm(s, &["used".into()], false).unwrap();
        assert_eq!(list(s).unwrap(), ["anon2"]);
    }

    /// A volume without `_data` (a `husk up` killed after the volume's directory, before its
    /// `_data`, with or without the anonymous mark) is removed by prune without --all (not
    /// listed, as `ls` never shows it); a complete named one is kept.
    #[test]
    fn prune_removes_half_made_volumes() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        volume(s, "named", false, b"1");
        std::fs::create_dir_all(dir(s).join("bare")).unwrap();
        std::fs::create_dir_all(dir(s).join("marked")).unwrap();
        std::fs::write(dir(s).join("marked").join(ANONYMOUS_MARK), "").unwrap();
        assert!(prune(s, false).unwrap().0.is_empty());
        assert_eq!(list(s).unwrap(), ["named"]);
        assert!(
            entries(s, false).unwrap().is_empty(),
            "half-made volumes left"
        );
    }
}
