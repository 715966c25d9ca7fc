//! One parser per /proc text format the runtime reads: `mountinfo` (with the kernel's octal
//! escapes undone), `/proc/PID/cgroup`, the start time in `/proc/PID/stat`, and `uid_map` /
//! `gid_map`. Pure functions over the text: the callers read the files (each in its own way:
//! the hardened procfs root, a plain read, a read inside the container) and decide what to do
//! with a line that does not parse, which these parsers skip.

use std::path::PathBuf;

/// One line of `/proc/PID/mountinfo` (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount's root inside its filesystem (field 4), unescaped.
    pub root: String,
    /// Where it is mounted (field 5), unescaped.
    pub mount_point: PathBuf,
    /// The per-mount options (field 6: `rw,nosuid,relatime`).
    pub options: String,
    /// The optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`).
    pub optional: Vec<String>,
    pub fstype: String,
    /// The mount source, unescaped.
    pub source: String,
    /// The superblock options (`rw,cpu,cpuacct`, `rw,size=65536k`).
    pub super_options: String,
}

impl MountInfo {
    /// The mount is a peer of a shared group (propagates mount events).
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
}

/// Every well-formed line of a mountinfo text, in order (parents before their submounts).
pub fn mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(mountinfo_line).collect()
}

fn mountinfo_line(line: &str) -> Option<MountInfo> {
    let (pre, post) = line.split_once(" - ")?;
    let mut f = pre.split(' ');
    let (_id, _parent, _dev) = (f.next()?, f.next()?, f.next()?);
    let root = unescape_octal(f.next()?);
    let mount_point = PathBuf::from(unescape_octal(f.next()?));
    let options = f.next()?.to_string();
    let optional = f.filter(|o| !o.is_empty()).map(str::to_string).collect();
    let mut p = post.split(' ');
    let fstype = p.next().filter(|t| !t.is_empty())?.to_string();
    let source = unescape_octal(p.next().unwrap_or(""));
    let super_options = p.next().unwrap_or("").to_string();
    Some(MountInfo {
        root,
        mount_point,
        options,
        optional,
        fstype,
        source,
        super_options,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/PID/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// The v1 controllers (`["cpu", "cpuacct"]`, `["name=systemd"]`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub path: String,
}

impl CgroupLine {
    /// The controller list as the file spells it (`cpu,cpuacct`).
    pub fn controller_list(&self) -> String {
        self.controllers.join(",")
    }
}

/// Every well-formed line of a `/proc/PID/cgroup` text, in order.
pub fn proc_cgroup(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let controllers = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            Some(CgroupLine {
                controllers,
                path: path.to_string(),
            })
        })
        .collect()
}

/// The start time (field 22, clock ticks since boot) in a `/proc/PID/stat` line; `None` for a
/// zombie, a dead task or a line that does not parse.
pub fn stat_start_time(stat: &str) -> Option<u64> {
    // The comm field may contain spaces and parentheses: split after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // rest starts at field 3 (state); starttime is field 22.
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The id in the parent user namespace that `id` maps to, from a `uid_map`/`gid_map` text
/// ("inside outside count" lines); `None` when it is not mapped.
pub fn id_to_parent(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (id >= inside && id - inside < count)
            .then(|| u32::try_from(outside + (id - inside)).ok())
            .flatten()
    })
}

/// The map of the initial user namespace: every id to itself (`0 0 4294967295`).
pub fn is_identity_map(map: &str) -> bool {
    let f: Vec<&str> = map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
40 25 0:40 /sub /mnt/with\\040space rw master:3 - tmpfs my\\134src rw,size=64k
bad line
41 25 0:41 / /x rw -
";

    #[test]
    fn mountinfo_fields_and_escapes() {
        let m = mountinfo(MI);
        assert_eq!(m.len(), 5, "{m:#?}");
        assert_eq!(m[0].fstype, "proc");
        assert!(m[0].is_shared());
        assert_eq!(m[2].super_options, "rw,cpu,cpuacct");
        assert_eq!(m[3].fstype, "cgroup2");
        let t = &m[4];
        assert_eq!(t.root, "/sub");
        assert_eq!(t.mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(t.source, "my\\src");
        assert_eq!(t.optional, vec!["master:3"]);
        assert!(!t.is_shared());
        assert_eq!(unescape_octal("a\\134b\\011c\\12"), "a\\b\tc\\12");
    }

    #[test]
    fn cgroup_lines() {
        let c = proc_cgroup("9:name=systemd:/\n2:cpu,cpuacct:/a/b:c\n0::/user.slice\nnonsense\n");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].controllers, vec!["name=systemd"]);
        assert_eq!(c[1].controller_list(), "cpu,cpuacct");
        assert_eq!(c[1].path, "/a/b:c", "a path may hold ':'");
        assert!(c[2].controllers.is_empty());
        assert_eq!(c[2].path, "/user.slice");
    }

    #[test]
    fn start_time() {
        let l = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(stat_start_time(l), Some(12345));
        assert_eq!(stat_start_time(&l.replace(") S ", ") Z ")), None);
        assert_eq!(stat_start_time("42 (x) S 1"), None);
        assert_eq!(stat_start_time(""), None);
    }

    #[test]
    fn id_maps() {
        let m = "         0     100000      65536\n     65536       1000          1\n";
        assert_eq!(id_to_parent(m, 0), Some(100000));
        assert_eq!(id_to_parent(m, 65535), Some(165535));
        assert_eq!(id_to_parent(m, 65536), Some(1000));
        assert_eq!(id_to_parent(m, 65537), None);
        assert_eq!(id_to_parent("0 4294967295 2\n", 1), None, "past u32");
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map(m));
    }
}
