//! `exec --cgroup [CONTROLLERS:]PATH`: run the exec'd process in an existing sub-cgroup of the
//! container's cgroup (runc ≥ 1.1). `PATH` alone (only one `--cgroup` then) applies to every
//! hierarchy; `cpu,memory:PATH` to the hierarchies of those controllers (cgroup v1 only: v2 has
//! one hierarchy). The path is relative to the container's cgroup and may not climb out of it;
//! the sub-cgroup must exist (nothing is created).

use crate::cgroups::util::{parse_mountinfo, CgroupMount};
use crate::cgroups::CgroupState;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `--cgroup` values as runc reads them: controller ("" = every hierarchy) → sub path.
pub fn parse(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        let parts: Vec<&str> = a.splitn(3, ':').collect();
        match parts[..] {
            [path] => {
                if args.len() != 1 {
                    bail!("--cgroup {a:?}: missing <controller>: prefix (a path without one must be the only --cgroup)");
                }
                out.insert(String::new(), sub_path(a, path)?);
            }
            [ctrls, path] => {
                let sub = sub_path(a, path)?;
                for c in ctrls.split(',') {
                    if c.is_empty() {
                        bail!("--cgroup {a:?}: empty <controller> prefix");
                    }
                    if out.insert(c.to_string(), sub.clone()).is_some() {
                        bail!("--cgroup: controller {c} given more than once");
                    }
                }
            }
            _ => bail!("--cgroup {a:?}: expected [<controller>[,<controller>...]:]<path>"),
        }
    }
    Ok(out)
}

/// The path below the container's cgroup, lexically cleaned; `..` may not climb above it.
fn sub_path(arg: &str, p: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    bail!("--cgroup {arg:?}: {p:?} is not a sub-cgroup of the container's cgroup");
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The directories (on the host) the exec'd process moves into: for each cgroup hierarchy of
/// the container that a `--cgroup` value applies to, the container's directory there plus the
/// sub path. Errors name the value and the directory.
pub fn target_dirs(st: &CgroupState, subs: &BTreeMap<String, String>) -> Result<Vec<PathBuf>> {
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    if st.driver == crate::cgroups::NoCgroup::DRIVER {
        bail!("--cgroup: the container has no cgroup of its own (rootless without a cgroup)");
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let mounts: Vec<CgroupMount> = parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.mountpoint.starts_with(crate::cgroups::util::CGROUP_ROOT))
        .collect();
    let unified = mounts
        .iter()
        .any(|m| m.v2 && m.mountpoint == Path::new(crate::cgroups::util::CGROUP_ROOT));
    let mut dirs = Vec::new();
    let all = subs.get("");
    for (ctrl, _) in subs.iter().filter(|(c, _)| !c.is_empty()) {
        if unified {
            bail!("--cgroup {ctrl}:...: cgroup v2 has a single hierarchy; give the path without a controller");
        }
        if !mounts.iter().any(|m| m.controllers.contains(ctrl)) {
            bail!("--cgroup {ctrl}:...: no cgroup v1 hierarchy of controller {ctrl:?} is mounted");
        }
    }
    for m in &mounts {
        let key = m.controllers.join(",");
        let sub = match all {
            Some(s) => s,
            None => match m.controllers.iter().find_map(|c| subs.get(c)) {
                Some(s) => s,
                None => continue,
            },
        };
        let path = st.paths.get(&key).unwrap_or(&st.path);
        // the container's path is relative to the hierarchy's root; a mount of a subtree
        // (field 4 of mountinfo not "/") shows only what lies below its root
        let Some(rel) = strip_root(path, &m.root) else {
            continue;
        };
        let base = crate::cgroups::util::join_under(&m.mountpoint, &rel);
        if !base.is_dir() {
            // a hierarchy in which the container has no cgroup (e.g. one husk does not manage)
            if all.is_none() {
                bail!(
                    "--cgroup {key}:{sub}: the container has no cgroup in this hierarchy ({} does not exist)",
                    base.display()
                );
            }
            continue;
        }
        let dir = if sub.is_empty() { base } else { base.join(sub) };
        if !dir.is_dir() {
            bail!(
                "--cgroup: sub-cgroup {sub:?} does not exist ({} is not a directory; exec does not create it)",
                dir.display()
            );
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

fn strip_root(path: &str, root: &str) -> Option<String> {
    if root == "/" || root.is_empty() {
        return Some(path.to_string());
    }
    let rest = path.strip_prefix(root)?;
    if rest.is_empty() || rest.starts_with('/') {
        Some(rest.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn forms() {
        let m = parse(&v(&["sub/x"])).unwrap();
        assert_eq!(m.get(""), Some(&"sub/x".to_string()));
        let m = parse(&v(&["cpu,memory:a", "pids:/b/./c/"])).unwrap();
        assert_eq!(m.get("cpu"), Some(&"a".to_string()));
        assert_eq!(m.get("memory"), Some(&"a".to_string()));
        assert_eq!(m.get("pids"), Some(&"b/c".to_string()));
        assert_eq!(
            parse(&v(&["a/../b"])).unwrap().get(""),
            Some(&"b".to_string())
        );
    }

    #[test]
    fn refused() {
        for bad in [
            &["a", "b"][..],
            &["cpu:a", "b"],
            &["a:b:c"],
            &[":a"],
            &["cpu,:a"],
            &["cpu:a", "cpu:b"],
            &["../x"],
            &["a/../../x"],
            &["cpu:.."],
        ] {
            assert!(parse(&v(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subtree_mounts() {
        assert_eq!(strip_root("/a/b", "/").as_deref(), Some("/a/b"));
        assert_eq!(
            strip_root("/docker/x/c", "/docker/x").as_deref(),
            Some("/c")
        );
        assert_eq!(strip_root("/dockerx/c", "/docker"), None);
    }
}
