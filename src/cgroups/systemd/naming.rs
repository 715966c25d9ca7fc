//! Naming and placement of the systemd driver's unit: runc's `slice:prefix:name` cgroupsPath
//! form, the unit name (`prefix-name.scope`, or a `.slice` unit of its own), and the cgroup
//! path that follows from the slice (`ExpandSlice`), below the manager's own cgroup for the
//! user's systemd instance.

use anyhow::{anyhow, bail, Context, Result};

pub const DEFAULT_SLICE: &str = "system.slice";
/// The default slice in the user's systemd instance (rootless), as runc.
pub const DEFAULT_USER_SLICE: &str = "user.slice";
pub const DEFAULT_PREFIX: &str = "husk";

/// runc's `ExpandSlice`: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", "-.slice" -> "/".
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad =
        || anyhow!("invalid slice name {slice:?}: expected NAME.slice, dash-separated, no '/'");
    let name = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') {
        return Err(bad());
    }
    if name == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for comp in name.split('-') {
        if comp.is_empty() {
            return Err(bad());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(comp);
        path.push_str(".slice");
        prefix.push_str(comp);
        prefix.push('-');
    }
    Ok(path)
}

/// Where the container's cgroup goes: the parent slice, the unit name, and the cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub slice: String,
    pub unit: String,
    pub path: String,
}

impl Placement {
    /// A slice unit of its own (a cgroupsPath name ending in ".slice"), not a scope.
    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }
}

/// runc's specconv + `getUnitName`: cgroupsPath "slice:prefix:name" (absent or empty ->
/// "system.slice:husk:<id>"; an empty slice means system.slice); a name ending in ".slice" is a
/// slice unit itself, otherwise the unit is the scope "prefix-name.scope".
pub fn placement(cgroups_path: Option<&str>, id: &str) -> Result<Placement> {
    placement_in(cgroups_path, id, DEFAULT_SLICE)
}

/// [`placement`] with another default slice (`user.slice` in the user's manager). The path is
/// relative to the manager's cgroup.
pub fn placement_in(
    cgroups_path: Option<&str>,
    id: &str,
    default_slice: &str,
) -> Result<Placement> {
    let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => (
            default_slice.to_string(),
            DEFAULT_PREFIX.to_string(),
            id.to_string(),
        ),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            if parts.len() != 3 {
                bail!(
                    "linux.cgroupsPath {p:?}: expected the form \"slice:prefix:name\" for \
                     systemd cgroups"
                );
            }
            let slice = if parts[0].is_empty() {
                default_slice
            } else {
                parts[0]
            };
            (
                slice.to_string(),
                parts[1].to_string(),
                parts[2].to_string(),
            )
        }
    };
    if name.is_empty() {
        bail!("linux.cgroupsPath: empty unit name (and no container id)");
    }
    if name.contains('/') || prefix.contains('/') {
        bail!("linux.cgroupsPath: prefix and name must not contain '/'");
    }
    let slice_path = expand_slice(&slice).context("linux.cgroupsPath")?;
    let (unit, path) = if name.ends_with(".slice") {
        // a slice unit is placed by its own name
        (
            name.clone(),
            expand_slice(&name).context("linux.cgroupsPath")?,
        )
    } else {
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        let p = if slice_path == "/" {
            format!("/{unit}")
        } else {
            format!("{slice_path}/{unit}")
        };
        (unit, p)
    };
    Ok(Placement { slice, unit, path })
}

/// `path` (relative to a manager's cgroup) below that cgroup `root`.
pub fn below(root: &str, path: &str) -> String {
    match (root.trim_end_matches('/'), path) {
        ("", p) => p.to_string(),
        (r, "/") => r.to_string(),
        (r, p) => format!("{r}{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.scope",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placements() {
        let p = placement(None, "ctr").unwrap();
        assert_eq!(p.slice, "system.slice");
        assert_eq!(p.unit, "husk-ctr.scope");
        assert_eq!(p.path, "/system.slice/husk-ctr.scope");
        assert_eq!(placement(Some(""), "ctr").unwrap(), p);
        let p = placement(Some("machine-x.slice:docker:abc"), "ctr").unwrap();
        assert_eq!(p.unit, "docker-abc.scope");
        assert_eq!(p.path, "/machine.slice/machine-x.slice/docker-abc.scope");
        let p = placement(Some(":husk:abc"), "ctr").unwrap();
        assert_eq!(p.path, "/system.slice/husk-abc.scope");
        let p = placement(Some("system.slice:p:my-pod.slice"), "ctr").unwrap();
        assert_eq!(p.unit, "my-pod.slice");
        assert_eq!(p.path, "/my.slice/my-pod.slice");
        let p = placement(Some("-.slice:p:n"), "ctr").unwrap();
        assert_eq!(p.path, "/p-n.scope");
        assert!(placement(Some("/a/b"), "x").is_err());
        assert!(placement(Some("a:b"), "x").is_err());
        assert!(placement(Some("bad:p:n"), "x").is_err());
    }

    #[test]
    fn user_manager_paths() {
        let p = placement_in(None, "ctr", DEFAULT_USER_SLICE).unwrap();
        assert_eq!(p.slice, "user.slice");
        assert_eq!(p.path, "/user.slice/husk-ctr.scope");
        let root = "/user.slice/user-1000.slice/user@1000.service";
        assert_eq!(
            below(root, &p.path),
            "/user.slice/user-1000.slice/user@1000.service/user.slice/husk-ctr.scope"
        );
        // rootless podman's cgroupsPath
        let p = placement_in(Some("user.slice:libpod:abc"), "x", DEFAULT_USER_SLICE).unwrap();
        assert_eq!(p.unit, "libpod-abc.scope");
        assert_eq!(
            below(root, &p.path),
            format!("{root}/user.slice/libpod-abc.scope")
        );
        let p = placement_in(Some(":p:n"), "x", DEFAULT_USER_SLICE).unwrap();
        assert_eq!(p.path, "/user.slice/p-n.scope");
        assert_eq!(below("/", "/a.scope"), "/a.scope");
        assert_eq!(below(root, "/"), root);
    }
}
