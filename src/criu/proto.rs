//! The few protobuf messages of CRIU's RPC interface (`images/rpc.proto`) that husk needs,
//! encoded and decoded by hand: `criu_req` with `criu_opts` out, `criu_resp` in. Field numbers
//! are CRIU's; proto2 with every field written explicitly when set.
//!
//! Wire format: a field is a varint key `(number << 3) | wire_type`; wire type 0 is a varint
//! (bool, int32, uint32, enum; a negative int32 is sign-extended to 10 bytes), wire type 2 is a
//! length-delimited string or nested message.

use anyhow::{bail, Result};

/// `criu_req_type`: CRIU's whole enum (rpc.proto), of which husk sends a few.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    Version = 10,
}

/// `criu_cg_mode`: CRIU's whole enum (rpc.proto); `--manage-cgroups-mode` names four.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgMode {
    Ignore = 0,
    CgNone = 1,
    Props = 2,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

impl CgMode {
    /// runc's `--manage-cgroups-mode` values.
    pub fn parse(s: &str) -> Result<CgMode> {
        Ok(match s {
            "soft" => CgMode::Soft,
            "full" => CgMode::Full,
            "strict" => CgMode::Strict,
            "ignore" => CgMode::Ignore,
            other => bail!(
                "--manage-cgroups-mode: invalid value {other:?} (expected soft, full, strict or ignore)"
            ),
        })
    }
}

/// `criu_page_server_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageServer {
    pub address: String,
    pub port: i32,
}

/// `criu_opts`: the subset runc sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opts {
    pub images_dir_fd: i32,
    pub pid: Option<i32>,
    pub leave_running: Option<bool>,
    pub evasive_devices: Option<bool>,
    pub ext_unix_sk: Option<bool>,
    pub tcp_established: Option<bool>,
    pub shell_job: Option<bool>,
    pub file_locks: Option<bool>,
    pub log_level: Option<i32>,
    pub log_file: Option<String>,
    pub ps: Option<PageServer>,
    pub notify_scripts: Option<bool>,
    pub root: Option<String>,
    pub parent_img: Option<String>,
    pub track_mem: Option<bool>,
    pub auto_dedup: Option<bool>,
    pub work_dir_fd: Option<i32>,
    pub link_remap: Option<bool>,
    /// `ext_mnt`: (key, val) pairs.
    pub ext_mnt: Vec<(String, String)>,
    pub manage_cgroups: Option<bool>,
    /// `cg_root`: (controller or None for all / v2, path).
    pub cg_root: Vec<(Option<String>, String)>,
    pub rst_sibling: Option<bool>,
    /// `inherit_fd`: (key, fd).
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<CgMode>,
    pub external: Vec<String>,
    pub empty_ns: Option<u32>,
    /// `join_ns`: (namespace name, nsfs file).
    pub join_ns: Vec<(String, String)>,
    pub freeze_cgroup: Option<String>,
    pub tcp_skip_in_flight: Option<bool>,
    pub lazy_pages: Option<bool>,
    pub status_fd: Option<i32>,
    pub orphan_pts_master: Option<bool>,
    pub config_file: Option<String>,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

/// `criu_req`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub typ: ReqType,
    pub opts: Option<Opts>,
    pub notify_success: Option<bool>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

fn put_u64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    put_varint(out, v);
}

/// int32 and enums: negative values are sign-extended to 64 bits (10 bytes), as protobuf does.
fn put_i32(out: &mut Vec<u8>, field: u32, v: i32) {
    put_u64(out, field, v as i64 as u64);
}

fn put_bool(out: &mut Vec<u8>, field: u32, v: bool) {
    put_u64(out, field, v as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn opt_bool(out: &mut Vec<u8>, field: u32, v: Option<bool>) {
    if let Some(v) = v {
        put_bool(out, field, v);
    }
}

fn opt_i32(out: &mut Vec<u8>, field: u32, v: Option<i32>) {
    if let Some(v) = v {
        put_i32(out, field, v);
    }
}

fn opt_str(out: &mut Vec<u8>, field: u32, v: &Option<String>) {
    if let Some(v) = v {
        put_bytes(out, field, v.as_bytes());
    }
}

impl Opts {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        put_i32(&mut o, 1, self.images_dir_fd);
        opt_i32(&mut o, 2, self.pid);
        opt_bool(&mut o, 3, self.leave_running);
        opt_bool(&mut o, 4, self.ext_unix_sk);
        opt_bool(&mut o, 5, self.tcp_established);
        opt_bool(&mut o, 6, self.evasive_devices);
        opt_bool(&mut o, 7, self.shell_job);
        opt_bool(&mut o, 8, self.file_locks);
        opt_i32(&mut o, 9, self.log_level);
        opt_str(&mut o, 10, &self.log_file);
        if let Some(ps) = &self.ps {
            let mut m = Vec::new();
            put_bytes(&mut m, 1, ps.address.as_bytes());
            put_i32(&mut m, 2, ps.port);
            put_bytes(&mut o, 11, &m);
        }
        opt_bool(&mut o, 12, self.notify_scripts);
        opt_str(&mut o, 13, &self.root);
        opt_str(&mut o, 14, &self.parent_img);
        opt_bool(&mut o, 15, self.track_mem);
        opt_bool(&mut o, 16, self.auto_dedup);
        opt_i32(&mut o, 17, self.work_dir_fd);
        opt_bool(&mut o, 18, self.link_remap);
        for (k, v) in &self.ext_mnt {
            let mut m = Vec::new();
            put_bytes(&mut m, 1, k.as_bytes());
            put_bytes(&mut m, 2, v.as_bytes());
            put_bytes(&mut o, 23, &m);
        }
        opt_bool(&mut o, 24, self.manage_cgroups);
        for (ctrl, path) in &self.cg_root {
            let mut m = Vec::new();
            if let Some(c) = ctrl {
                put_bytes(&mut m, 1, c.as_bytes());
            }
            put_bytes(&mut m, 2, path.as_bytes());
            put_bytes(&mut o, 25, &m);
        }
        opt_bool(&mut o, 26, self.rst_sibling);
        for (k, fd) in &self.inherit_fd {
            let mut m = Vec::new();
            put_bytes(&mut m, 1, k.as_bytes());
            put_i32(&mut m, 2, *fd);
            put_bytes(&mut o, 27, &m);
        }
        if let Some(mode) = self.manage_cgroups_mode {
            put_i32(&mut o, 34, mode as i32);
        }
        for e in &self.external {
            put_bytes(&mut o, 37, e.as_bytes());
        }
        if let Some(v) = self.empty_ns {
            put_u64(&mut o, 38, v as u64);
        }
        for (ns, file) in &self.join_ns {
            let mut m = Vec::new();
            put_bytes(&mut m, 1, ns.as_bytes());
            put_bytes(&mut m, 2, file.as_bytes());
            put_bytes(&mut o, 39, &m);
        }
        opt_str(&mut o, 44, &self.freeze_cgroup);
        opt_bool(&mut o, 46, self.tcp_skip_in_flight);
        opt_bool(&mut o, 48, self.lazy_pages);
        opt_i32(&mut o, 49, self.status_fd);
        opt_bool(&mut o, 50, self.orphan_pts_master);
        opt_str(&mut o, 51, &self.config_file);
        opt_str(&mut o, 53, &self.lsm_profile);
        // Added after 3.17's rpc.proto was frozen in Debian 12; older CRIUs skip unknown fields.
        opt_str(&mut o, 63, &self.lsm_mount_context);
        o
    }
}

impl Req {
    pub fn new(typ: ReqType, opts: Option<Opts>) -> Req {
        Req {
            typ,
            opts,
            notify_success: None,
        }
    }

    /// The answer to a `NOTIFY` message.
    pub fn notify_ack() -> Req {
        Req {
            typ: ReqType::Notify,
            opts: None,
            notify_success: Some(true),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        put_i32(&mut o, 1, self.typ as i32);
        if let Some(opts) = &self.opts {
            put_bytes(&mut o, 2, &opts.encode());
        }
        opt_bool(&mut o, 3, self.notify_success);
        o
    }
}

/// `criu_resp`: the fields husk reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resp {
    pub typ: i64,
    pub success: bool,
    /// `dump.restored`.
    pub restored: Option<bool>,
    /// `restore.pid`.
    pub restore_pid: Option<i32>,
    /// `notify.script`, `notify.pid`.
    pub notify_script: Option<String>,
    pub notify_pid: Option<i32>,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
    pub status: Option<i32>,
    /// `version`: (major, minor, sublevel).
    pub version: Option<(i32, i32, i32)>,
}

enum Val<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Walk the fields of one message; unknown fields (including fixed32/64) are skipped.
fn fields(mut b: &[u8], mut f: impl FnMut(u32, Val) -> Result<()>) -> Result<()> {
    fn varint(b: &mut &[u8]) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&x, rest)) = b.split_first() else {
                bail!("criu_resp: truncated varint");
            };
            *b = rest;
            v |= ((x & 0x7f) as u64) << shift;
            if x & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("criu_resp: varint longer than 10 bytes")
    }
    while !b.is_empty() {
        let k = varint(&mut b)?;
        let (num, wire) = ((k >> 3) as u32, (k & 7) as u8);
        match wire {
            0 => {
                let v = varint(&mut b)?;
                f(num, Val::Varint(v))?;
            }
            2 => {
                let n = varint(&mut b)? as usize;
                if n > b.len() {
                    bail!("criu_resp: field {num} claims {n} bytes, {} left", b.len());
                }
                let (v, rest) = b.split_at(n);
                b = rest;
                f(num, Val::Bytes(v))?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if n > b.len() {
                    bail!("criu_resp: truncated fixed field {num}");
                }
                b = &b[n..];
            }
            w => bail!("criu_resp: field {num} has unsupported wire type {w}"),
        }
    }
    Ok(())
}

impl Resp {
    pub fn decode(b: &[u8]) -> Result<Resp> {
        let mut r = Resp::default();
        let mut have_type = false;
        fields(b, |num, v| {
            match (num, v) {
                (1, Val::Varint(x)) => {
                    r.typ = x as i64;
                    have_type = true;
                }
                (2, Val::Varint(x)) => r.success = x != 0,
                (3, Val::Bytes(m)) => fields(m, |n, v| {
                    if let (1, Val::Varint(x)) = (n, v) {
                        r.restored = Some(x != 0);
                    }
                    Ok(())
                })?,
                (4, Val::Bytes(m)) => fields(m, |n, v| {
                    if let (1, Val::Varint(x)) = (n, v) {
                        r.restore_pid = Some(x as i32);
                    }
                    Ok(())
                })?,
                (5, Val::Bytes(m)) => fields(m, |n, v| {
                    match (n, v) {
                        (1, Val::Bytes(s)) => {
                            r.notify_script = Some(String::from_utf8_lossy(s).into_owned())
                        }
                        (2, Val::Varint(x)) => r.notify_pid = Some(x as i32),
                        _ => {}
                    }
                    Ok(())
                })?,
                (7, Val::Varint(x)) => r.cr_errno = Some(x as i32),
                (9, Val::Bytes(s)) => r.cr_errmsg = Some(String::from_utf8_lossy(s).into_owned()),
                (10, Val::Bytes(m)) => {
                    let mut v = (0, 0, 0);
                    fields(m, |n, val| {
                        if let Val::Varint(x) = val {
                            match n {
                                1 => v.0 = x as i32,
                                2 => v.1 = x as i32,
                                4 => v.2 = x as i32,
                                _ => {}
                            }
                        }
                        Ok(())
                    })?;
                    r.version = Some(v);
                }
                (11, Val::Varint(x)) => r.status = Some(x as i32),
                _ => {}
            }
            Ok(())
        })?;
        if !have_type {
            bail!("criu_resp: required field `type` (1) missing");
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut o = Vec::new();
        put_varint(&mut o, 300);
        assert_eq!(o, [0xac, 0x02]);
        let mut o = Vec::new();
        put_i32(&mut o, 1, -1);
        assert_eq!(
            o,
            [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn notify_ack_bytes() {
        // type = NOTIFY (6), notify_success = true
        assert_eq!(Req::notify_ack().encode(), [0x08, 0x06, 0x18, 0x01]);
    }

    #[test]
    fn version_request_bytes() {
        assert_eq!(Req::new(ReqType::Version, None).encode(), [0x08, 0x0a]);
    }

    #[test]
    fn dump_request_bytes() {
        let opts = Opts {
            images_dir_fd: 5,
            pid: Some(1234),
            leave_running: Some(true),
            log_level: Some(4),
            log_file: Some("dump.log".into()),
            root: Some("/r".into()),
            ext_mnt: vec![("/data".into(), "/data".into())],
            cg_root: vec![(None, "/c".into())],
            manage_cgroups_mode: Some(CgMode::Soft),
            external: vec!["net[4026531840]:extRootNetNS".into()],
            orphan_pts_master: Some(true),
            ..Default::default()
        };
        let mut want_opts: Vec<u8> = vec![
            0x08, 0x05, // images_dir_fd = 5
            0x10, 0xd2, 0x09, // pid = 1234
            0x18, 0x01, // leave_running
            0x48, 0x04, // log_level = 4
            0x52, 0x08, // log_file, 8 bytes
        ];
        want_opts.extend_from_slice(b"dump.log");
        want_opts.extend_from_slice(&[0x6a, 0x02, b'/', b'r']); // root (13)
                                                                // ext_mnt (23): key 23<<3|2 = 186 = 0xba 0x01
        want_opts.extend_from_slice(&[0xba, 0x01, 0x0e, 0x0a, 0x05]);
        want_opts.extend_from_slice(b"/data");
        want_opts.extend_from_slice(&[0x12, 0x05]);
        want_opts.extend_from_slice(b"/data");
        // cg_root (25) with only path
        want_opts.extend_from_slice(&[0xca, 0x01, 0x04, 0x12, 0x02, b'/', b'c']);
        // manage_cgroups_mode (34) = SOFT: key 34<<3 = 272 = 0x90 0x02
        want_opts.extend_from_slice(&[0x90, 0x02, 0x03]);
        // external (37): key 37<<3|2 = 298 = 0xaa 0x02
        let ext = b"net[4026531840]:extRootNetNS";
        want_opts.extend_from_slice(&[0xaa, 0x02, ext.len() as u8]);
        want_opts.extend_from_slice(ext);
        // orphan_pts_master (50): key 400 = 0x90 0x03
        want_opts.extend_from_slice(&[0x90, 0x03, 0x01]);
        assert_eq!(opts.encode(), want_opts);

        let req = Req::new(ReqType::Dump, Some(opts)).encode();
        let mut want = vec![0x08, 0x01, 0x12, want_opts.len() as u8];
        want.extend_from_slice(&want_opts);
        assert_eq!(req, want);
    }

    #[test]
    fn restore_request_fields() {
        let opts = Opts {
            images_dir_fd: 3,
            rst_sibling: Some(true),
            inherit_fd: vec![("pipe:[99]".into(), 1)],
            lsm_profile: Some("apparmor:x".into()),
            lsm_mount_context: Some("ctx".into()),
            evasive_devices: Some(true),
            link_remap: Some(true),
            tcp_skip_in_flight: Some(true),
            join_ns: vec![("ipc".into(), "/x".into())],
            config_file: Some("/c".into()),
            ..Default::default()
        };
        let b = opts.encode();
        // rst_sibling (26): key 208 = 0xd0 0x01
        assert!(b.windows(3).any(|w| w == [0xd0, 0x01, 0x01]));
        // inherit_fd (27): key 218 = 0xda 0x01, then {key "pipe:[99]", fd 1}
        let mut inh = vec![0xda, 0x01, 0x0d, 0x0a, 0x09];
        inh.extend_from_slice(b"pipe:[99]");
        inh.extend_from_slice(&[0x10, 0x01]);
        assert!(b.windows(inh.len()).any(|w| w == inh.as_slice()));
        // link_remap (18): key 144 = 0x90 0x01; tcp_skip_in_flight (46): key 368 = 0xf0 0x02
        assert!(b.windows(3).any(|w| w == [0x90, 0x01, 0x01]), "link_remap");
        assert!(
            b.windows(3).any(|w| w == [0xf0, 0x02, 0x01]),
            "tcp_skip_in_flight"
        );
        // evasive_devices (6)
        assert!(b.windows(2).any(|w| w == [0x30, 0x01]));
        // join_ns (39): key 314 = 0xba 0x02, {ns "ipc", ns_file "/x"}
        let mut j = vec![0xba, 0x02, 0x09, 0x0a, 0x03];
        j.extend_from_slice(b"ipc");
        j.extend_from_slice(&[0x12, 0x02, b'/', b'x']);
        assert!(b.windows(j.len()).any(|w| w == j.as_slice()), "join_ns");
        // config_file (51): key 410 = 0x9a 0x03
        assert!(
            b.windows(4).any(|w| w == [0x9a, 0x03, 0x02, b'/']),
            "config_file"
        );
        // lsm_profile (53): key 426 = 0xaa 0x03; lsm_mount_context (63): key 506 = 0xfa 0x03
        assert!(b.windows(2).any(|w| w == [0xaa, 0x03]));
        assert!(b.windows(5).any(|w| w == [0xfa, 0x03, 0x03, b'c', b't']));
    }

    #[test]
    fn decode_failure_response() {
        // type DUMP, success false, cr_errno 2, cr_errmsg "boom", and an unknown fixed32 field
        let mut b = vec![0x08, 0x01, 0x10, 0x00, 0x38, 0x02, 0x4a, 0x04];
        b.extend_from_slice(b"boom");
        b.extend_from_slice(&[0x7d, 1, 2, 3, 4]); // field 15, fixed32
        let r = Resp::decode(&b).unwrap();
        assert_eq!(r.typ, 1);
        assert!(!r.success);
        assert_eq!(r.cr_errno, Some(2));
        assert_eq!(r.cr_errmsg.as_deref(), Some("boom"));
    }

    #[test]
    fn decode_notify_and_restore() {
        // type NOTIFY, success, notify {script "post-restore", pid 42}
        let mut n = vec![0x0a, 0x0c];
        n.extend_from_slice(b"post-restore");
        n.extend_from_slice(&[0x10, 42]);
        let mut b = vec![0x08, 0x06, 0x10, 0x01, 0x2a, n.len() as u8];
        b.extend_from_slice(&n);
        let r = Resp::decode(&b).unwrap();
        assert_eq!(r.typ, ReqType::Notify as i64);
        assert_eq!(r.notify_script.as_deref(), Some("post-restore"));
        assert_eq!(r.notify_pid, Some(42));
        let r = Resp::decode(&[0x08, 0x02, 0x10, 0x01, 0x22, 0x02, 0x08, 0x07]).unwrap();
        assert_eq!(r.restore_pid, Some(7));
        let r = Resp::decode(&[
            0x08, 0x0a, 0x10, 0x01, 0x52, 0x06, 0x08, 3, 0x10, 17, 0x20, 1,
        ])
        .unwrap();
        assert_eq!(r.version, Some((3, 17, 1)));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(Resp::decode(&[0x10, 0x01]).is_err(), "no type");
        assert!(Resp::decode(&[0x08]).is_err(), "truncated varint");
        assert!(
            Resp::decode(&[0x08, 0x01, 0x4a, 0x09, b'x']).is_err(),
            "short string"
        );
    }

    #[test]
    fn cg_modes() {
        assert_eq!(CgMode::parse("strict").unwrap(), CgMode::Strict);
        let e = CgMode::parse("bogus").unwrap_err().to_string();
        assert!(
            e.contains("--manage-cgroups-mode") && e.contains("bogus"),
            "{e}"
        );
    }
}
