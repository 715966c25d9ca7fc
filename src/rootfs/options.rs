//! config.json `mounts[].options` → mount(2) flags, propagation, mount_setattr attributes, data.

use crate::sys::mount_api::{self as api, MountAttr};
use anyhow::{bail, Result};
use nix::mount::MsFlags;

/// The parsed form of one mount's `options` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (MS_BIND, MS_REC, MS_RDONLY, ...).
    pub flags: MsFlags,
    /// Flags an option explicitly turned off (`rw`, `suid`, `dev`, ...): matters for a bind
    /// mount, which inherits the source mount's flags.
    pub cleared: MsFlags,
    /// Propagation changes, in the order given (each MS_SHARED/SLAVE/PRIVATE/UNBINDABLE, maybe
    /// with MS_REC).
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...) applied with mount_setattr(AT_RECURSIVE).
    pub rec_attr: MountAttr,
    /// Filesystem-specific data, comma separated (`mode=755,size=65536k`).
    pub data: String,
    /// `tmpcopyup`: copy the directory's previous contents into the new tmpfs.
    pub tmpcopyup: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true), recursive): an id-mapped bind mount.
    pub idmap: Option<bool>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_attr: MountAttr::default(),
            data: String::new(),
            tmpcopyup: false,
            idmap: None,
        }
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
    pub fn is_recursive_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC)
    }
    /// The per-mount flags a bind mount needs applied after the bind (runc remounts when any flag
    /// beyond BIND/REC/REMOUNT is present); as mount_setattr attributes.
    pub fn bind_attr(&self) -> MountAttr {
        let (mut set, mut clr) = (0u64, 0u64);
        for (ms, attr) in [
            (MsFlags::MS_RDONLY, api::MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, api::MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, api::MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, api::MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NODIRATIME, api::MOUNT_ATTR_NODIRATIME),
        ] {
            if self.flags.contains(ms) {
                set |= attr;
            } else if self.cleared.contains(ms) {
                clr |= attr;
            }
        }
        // atime is a 3-way mode in mount_setattr: setting one means clearing the field.
        if self.flags.contains(MsFlags::MS_NOATIME) {
            set |= api::MOUNT_ATTR_NOATIME;
            clr |= api::MOUNT_ATTR__ATIME;
        } else if self.flags.contains(MsFlags::MS_STRICTATIME) {
            set |= api::MOUNT_ATTR_STRICTATIME;
            clr |= api::MOUNT_ATTR__ATIME;
        } else if self.flags.contains(MsFlags::MS_RELATIME)
            || self
                .cleared
                .intersects(MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME)
        {
            clr |= api::MOUNT_ATTR__ATIME; // relatime is 0
        }
        MountAttr {
            set,
            clr,
            propagation: 0,
        }
    }
}

enum Kind {
    Set(MsFlags),
    Clear(MsFlags),
    Prop(MsFlags),
    /// (attr_set, attr_clr) for mount_setattr(AT_RECURSIVE)
    Rec(u64, u64),
    Nothing,
}

fn lookup(opt: &str) -> Option<Kind> {
    use Kind::*;
    type F = MsFlags;
    let atime = api::MOUNT_ATTR__ATIME;
    Some(match opt {
        "defaults" => Nothing,
        "ro" => Set(F::MS_RDONLY),
        "rw" => Clear(F::MS_RDONLY),
        "nosuid" => Set(F::MS_NOSUID),
        "suid" => Clear(F::MS_NOSUID),
        "nodev" => Set(F::MS_NODEV),
        "dev" => Clear(F::MS_NODEV),
        "noexec" => Set(F::MS_NOEXEC),
        "exec" => Clear(F::MS_NOEXEC),
        "sync" => Set(F::MS_SYNCHRONOUS),
        "async" => Clear(F::MS_SYNCHRONOUS),
        "dirsync" => Set(F::MS_DIRSYNC),
        "remount" => Set(F::MS_REMOUNT),
        "lazytime" => Set(F::MS_LAZYTIME),
        "nolazytime" => Clear(F::MS_LAZYTIME),
        "iversion" => Set(F::MS_I_VERSION),
        "noiversion" => Clear(F::MS_I_VERSION),
        "silent" => Set(F::MS_SILENT),
        "loud" => Clear(F::MS_SILENT),
        "mand" => Set(F::MS_MANDLOCK),
        "nomand" => Clear(F::MS_MANDLOCK),
        "noatime" => Set(F::MS_NOATIME),
        "atime" => Clear(F::MS_NOATIME),
        "nodiratime" => Set(F::MS_NODIRATIME),
        "diratime" => Clear(F::MS_NODIRATIME),
        "relatime" => Set(F::MS_RELATIME),
        "norelatime" => Clear(F::MS_RELATIME),
        "strictatime" => Set(F::MS_STRICTATIME),
        "nostrictatime" => Clear(F::MS_STRICTATIME),
        "nosymfollow" => Set(MS_NOSYMFOLLOW),
        "symfollow" => Clear(MS_NOSYMFOLLOW),
        "bind" => Set(F::MS_BIND),
        "rbind" => Set(F::MS_BIND.union(F::MS_REC)),
        "private" => Prop(F::MS_PRIVATE),
        "rprivate" => Prop(F::MS_PRIVATE.union(F::MS_REC)),
        "shared" => Prop(F::MS_SHARED),
        "rshared" => Prop(F::MS_SHARED.union(F::MS_REC)),
        "slave" => Prop(F::MS_SLAVE),
        "rslave" => Prop(F::MS_SLAVE.union(F::MS_REC)),
        "unbindable" => Prop(F::MS_UNBINDABLE),
        "runbindable" => Prop(F::MS_UNBINDABLE.union(F::MS_REC)),
        "rro" => Rec(api::MOUNT_ATTR_RDONLY, 0),
        "rrw" => Rec(0, api::MOUNT_ATTR_RDONLY),
        "rnosuid" => Rec(api::MOUNT_ATTR_NOSUID, 0),
        "rsuid" => Rec(0, api::MOUNT_ATTR_NOSUID),
        "rnodev" => Rec(api::MOUNT_ATTR_NODEV, 0),
        "rdev" => Rec(0, api::MOUNT_ATTR_NODEV),
        "rnoexec" => Rec(api::MOUNT_ATTR_NOEXEC, 0),
        "rexec" => Rec(0, api::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => Rec(api::MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => Rec(0, api::MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => Rec(api::MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => Rec(0, api::MOUNT_ATTR_NOSYMFOLLOW),
        "rnoatime" => Rec(api::MOUNT_ATTR_NOATIME, atime),
        "rstrictatime" => Rec(api::MOUNT_ATTR_STRICTATIME, atime),
        // relatime is the 0 value of the atime field; "turning off" noatime/strictatime/relatime
        // leaves the kernel default, relatime, just as mount(2) does.
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => {
            Rec(api::MOUNT_ATTR_RELATIME, atime)
        }
        _ => return None,
    })
}

/// Parse a mount's options. Unknown options become filesystem data, in order.
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> Result<MountOptions> {
    let mut out = MountOptions::default();
    for opt in options {
        let opt = opt.as_ref();
        match lookup(opt) {
            Some(Kind::Set(f)) => {
                out.flags |= f;
                out.cleared &= !f;
            }
            Some(Kind::Clear(f)) => {
                out.flags &= !f;
                out.cleared |= f;
            }
            Some(Kind::Prop(f)) => out.propagation.push(f),
            Some(Kind::Rec(set, clr)) => {
                let a = &mut out.rec_attr;
                if clr == api::MOUNT_ATTR__ATIME {
                    // atime is a 3-way field: the last mode named wins
                    a.set = (a.set & !api::MOUNT_ATTR__ATIME) | set;
                    a.clr |= api::MOUNT_ATTR__ATIME;
                } else {
                    // "rro" then "rrw": the later one wins
                    a.set = (a.set & !clr) | set;
                    a.clr = (a.clr & !set) | clr;
                }
            }
            Some(Kind::Nothing) => {}
            None if opt == "tmpcopyup" => out.tmpcopyup = true,
            // ridmap wins over idmap whatever the order: it asks for more
            None if opt == "idmap" => out.idmap = Some(out.idmap == Some(true)),
            None if opt == "ridmap" => out.idmap = Some(true),
            None if opt.is_empty() => {}
            None => {
                if !out.data.is_empty() {
                    out.data.push(',');
                }
                out.data.push_str(opt);
            }
        }
    }
    Ok(out)
}

/// `linux.rootfsPropagation` value → propagation flags.
pub fn parse_propagation(value: &str) -> Result<MsFlags> {
    match lookup(value) {
        Some(Kind::Prop(f)) => Ok(f),
        _ => bail!(
            "linux.rootfsPropagation {value:?}: expected one of shared, slave, private, \
             unbindable, rshared, rslave, rprivate, runbindable"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: &[&str]) -> MountOptions {
        parse_mount_options(o).unwrap()
    }

    #[test]
    fn flags_and_data() {
        let m = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(m.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(m.data, "mode=755,size=65536k");
        assert!(!m.is_bind());
        let m = p(&[
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
            "noexec",
            "nosuid",
        ]);
        assert_eq!(m.flags, MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID);
        assert_eq!(m.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    }

    #[test]
    fn later_option_wins() {
        let m = p(&["ro", "rw"]);
        assert!(!m.flags.contains(MsFlags::MS_RDONLY));
        assert!(m.cleared.contains(MsFlags::MS_RDONLY));
        let m = p(&["rw", "ro", "suid", "nosuid", "exec"]);
        assert_eq!(m.flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(m.cleared, MsFlags::MS_NOEXEC);
    }

    #[test]
    fn every_plain_flag() {
        let all = [
            ("ro", MsFlags::MS_RDONLY),
            ("nosuid", MsFlags::MS_NOSUID),
            ("nodev", MsFlags::MS_NODEV),
            ("noexec", MsFlags::MS_NOEXEC),
            ("sync", MsFlags::MS_SYNCHRONOUS),
            ("dirsync", MsFlags::MS_DIRSYNC),
            ("remount", MsFlags::MS_REMOUNT),
            ("mand", MsFlags::MS_MANDLOCK),
            ("noatime", MsFlags::MS_NOATIME),
            ("nodiratime", MsFlags::MS_NODIRATIME),
            ("relatime", MsFlags::MS_RELATIME),
            ("strictatime", MsFlags::MS_STRICTATIME),
            ("bind", MsFlags::MS_BIND),
        ];
        for (name, flag) in all {
            assert_eq!(p(&[name]).flags, flag, "{name}");
        }
        for (name, undo) in [
            ("rw", "ro"),
            ("suid", "nosuid"),
            ("dev", "nodev"),
            ("exec", "noexec"),
            ("async", "sync"),
            ("nomand", "mand"),
            ("atime", "noatime"),
            ("diratime", "nodiratime"),
            ("norelatime", "relatime"),
            ("nostrictatime", "strictatime"),
        ] {
            assert_eq!(
                p(&[undo, name]).flags,
                MsFlags::empty(),
                "{undo} then {name}"
            );
        }
        assert!(p(&["rbind"]).is_recursive_bind());
        assert!(p(&["bind"]).is_bind() && !p(&["bind"]).is_recursive_bind());
        assert_eq!(p(&["defaults"]), MountOptions::default());
    }

    #[test]
    fn propagation_in_order() {
        let m = p(&[
            "rbind",
            "rslave",
            "shared",
            "private",
            "unbindable",
            "runbindable",
        ]);
        assert_eq!(
            m.propagation,
            vec![
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_SHARED,
                MsFlags::MS_PRIVATE,
                MsFlags::MS_UNBINDABLE,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            ]
        );
        assert_eq!(m.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            parse_propagation("rprivate").unwrap(),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert!(parse_propagation("ro").is_err());
        assert!(parse_propagation("bogus")
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }

    #[test]
    fn recursive_attrs() {
        let m = p(&["rbind", "rro", "rnosuid", "rnodev", "rnoexec"]);
        assert_eq!(
            m.rec_attr.set,
            api::MOUNT_ATTR_RDONLY
                | api::MOUNT_ATTR_NOSUID
                | api::MOUNT_ATTR_NODEV
                | api::MOUNT_ATTR_NOEXEC
        );
        assert_eq!(m.rec_attr.clr, 0);
        assert!(
            m.flags == MsFlags::MS_BIND | MsFlags::MS_REC,
            "r* options are not mount(2) flags"
        );
        let m = p(&["rro", "rrw"]);
        assert_eq!(
            (m.rec_attr.set, m.rec_attr.clr),
            (0, api::MOUNT_ATTR_RDONLY)
        );
        let m = p(&["rrw", "rro"]);
        assert_eq!(
            (m.rec_attr.set, m.rec_attr.clr),
            (api::MOUNT_ATTR_RDONLY, 0)
        );
        let m = p(&["rsuid", "rdev", "rexec", "rdiratime"]);
        assert_eq!(
            m.rec_attr.clr,
            api::MOUNT_ATTR_NOSUID
                | api::MOUNT_ATTR_NODEV
                | api::MOUNT_ATTR_NOEXEC
                | api::MOUNT_ATTR_NODIRATIME
        );
        let m = p(&["rnoatime"]);
        assert_eq!(m.rec_attr.set, api::MOUNT_ATTR_NOATIME);
        assert_eq!(m.rec_attr.clr, api::MOUNT_ATTR__ATIME);
        let m = p(&["rnoatime", "rstrictatime"]);
        assert_eq!(m.rec_attr.set, api::MOUNT_ATTR_STRICTATIME);
        assert_eq!(m.rec_attr.clr, api::MOUNT_ATTR__ATIME);
        for o in ["ratime", "rrelatime", "rnorelatime", "rnostrictatime"] {
            let m = p(&["rstrictatime", o]);
            assert_eq!(
                (m.rec_attr.set, m.rec_attr.clr),
                (0, api::MOUNT_ATTR__ATIME),
                "{o}"
            );
        }
        let m = p(&["rnodiratime", "rnoatime"]);
        assert_eq!(
            m.rec_attr.set,
            api::MOUNT_ATTR_NODIRATIME | api::MOUNT_ATTR_NOATIME
        );
    }

    #[test]
    fn bind_attr_for_remount() {
        let a = p(&["bind", "ro", "nosuid"]).bind_attr();
        assert_eq!(a.set, api::MOUNT_ATTR_RDONLY | api::MOUNT_ATTR_NOSUID);
        assert_eq!(a.clr, 0);
        let a = p(&["bind", "rw", "exec"]).bind_attr();
        assert_eq!(a.set, 0);
        assert_eq!(a.clr, api::MOUNT_ATTR_RDONLY | api::MOUNT_ATTR_NOEXEC);
        assert!(p(&["rbind", "rprivate"]).bind_attr().is_empty());
        let a = p(&["bind", "noatime"]).bind_attr();
        assert_eq!(
            (a.set, a.clr),
            (api::MOUNT_ATTR_NOATIME, api::MOUNT_ATTR__ATIME)
        );
    }

    #[test]
    fn tmpcopyup_and_idmap() {
        let m = p(&["tmpcopyup", "mode=1777"]);
        assert!(m.tmpcopyup);
        assert_eq!(m.data, "mode=1777");
        assert_eq!(p(&["rbind"]).idmap, None);
        assert_eq!(p(&["rbind", "idmap"]).idmap, Some(false));
        assert_eq!(p(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(true));
        assert_eq!(p(&["bind", "idmap"]).data, "");
    }
}
