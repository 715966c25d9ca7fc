//! A small blocking D-Bus client: just enough to talk to systemd's manager object.
//!
//! Why not a crate: husk must stay single-threaded until it clones the container, and the
//! maintained pure-Rust D-Bus stacks (zbus, including its `blocking` API) run their connection
//! on an executor thread; dbus-rs links libdbus (C). The protocol subset systemd needs is small:
//! SASL `AUTH EXTERNAL`, method calls, their replies/errors, and the `JobRemoved` signal. So
//! this is a hand-written client over a unix socket, as runc talks to `/run/systemd/private`
//! (through go-systemd/godbus) when running as root.
//!
//! Which socket and which systemd instance (the system's, or the user's for rootless
//! containers) is the systemd driver's policy, in `systemd/bus.rs`; this is the wire protocol
//! and a client over a connected socket.
//!
//! Marshalling follows the D-Bus specification, little-endian only, for the types systemd's
//! interface uses: `y b u i t x s o g`, arrays, structs and variants.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A D-Bus value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    Str(String),
    ObjPath(String),
    Sig(String),
    /// Element signature, elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::U32(_) => "u".into(),
            Value::I32(_) => "i".into(),
            Value::U64(_) => "t".into(),
            Value::I64(_) => "x".into(),
            Value::Str(_) => "s".into(),
            Value::ObjPath(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(e, _) => format!("a{e}"),
            Value::Struct(v) => {
                format!("({})", v.iter().map(|x| x.signature()).collect::<String>())
            }
            Value::Variant(_) => "v".into(),
        }
    }
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjPath(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }
}

/// A systemd unit property: name and variant value (`(sv)`).
pub fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::str(name), Value::Variant(Box::new(v))])
}

/// `a(sv)` from properties built with [`prop`].
pub fn props(v: Vec<Value>) -> Value {
    Value::Array("(sv)".into(), v)
}

fn align_of(sig_first: u8) -> usize {
    match sig_first {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // t x d ( {
    }
}

/// Appends marshalled values to a buffer whose offset 0 is 8-aligned in the message.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, a: usize) {
        while self.buf.len() % a != 0 {
            self.buf.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(*b as u32),
            Value::U32(x) => self.u32(*x),
            Value::I32(x) => self.u32(*x as u32),
            Value::U64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::I64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Str(s) | Value::ObjPath(s) => {
                self.u32(s.len() as u32);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Array(elem, items) => {
                self.pad(4);
                let len_at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                self.pad(align_of(elem.as_bytes()[0]));
                let start = self.buf.len();
                for i in items {
                    self.value(i);
                }
                let n = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&n.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f);
                }
            }
            Value::Variant(inner) => {
                self.value(&Value::Sig(inner.signature()));
                self.value(inner);
            }
        }
    }
}

/// Length of the first complete type in `sig`.
fn single_type_len(sig: &[u8]) -> Result<usize> {
    match sig.first() {
        None => bail!("empty D-Bus signature"),
        Some(b'a') => Ok(1 + single_type_len(&sig[1..])?),
        Some(b'(') | Some(b'{') => {
            let mut i = 1;
            while i < sig.len() && sig[i] != b')' && sig[i] != b'}' {
                i += single_type_len(&sig[i..])?;
            }
            if i >= sig.len() {
                bail!("unterminated struct in D-Bus signature");
            }
            Ok(i + 1)
        }
        Some(_) => Ok(1),
    }
}

/// Splits a signature into its complete types.
pub fn split_sig(sig: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = sig;
    while !rest.is_empty() {
        let n = single_type_len(rest.as_bytes())?;
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    Ok(out)
}

/// Reads marshalled values; `base` is the absolute offset of `buf[0]` for alignment.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    fn align(&mut self, a: usize) {
        self.pos = self.pos.div_ceil(a) * a;
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.pos + n > self.buf.len() {
            bail!("truncated D-Bus message");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4);
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        self.align(8);
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let s = self.take(n + 1)?;
        String::from_utf8(s[..n].to_vec()).map_err(|_| anyhow!("invalid UTF-8 in D-Bus string"))
    }
    fn sig(&mut self) -> Result<String> {
        let n = self.take(1)?[0] as usize;
        let s = self.take(n + 1)?;
        String::from_utf8(s[..n].to_vec()).map_err(|_| anyhow!("invalid D-Bus signature"))
    }
    /// One value of the single complete type `sig`.
    pub fn value(&mut self, sig: &str) -> Result<Value> {
        let b = sig.as_bytes();
        Ok(match b[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'n' | b'q' => {
                self.align(2);
                let b = self.take(2)?;
                Value::U32(u32::from(u16::from_le_bytes([b[0], b[1]])))
            }
            b'h' => Value::U32(self.u32()?),
            b'd' => Value::U64(self.u64()?),
            b'b' => Value::Bool(self.u32()? != 0),
            b'u' => Value::U32(self.u32()?),
            b'i' => Value::I32(self.u32()? as i32),
            b't' => Value::U64(self.u64()?),
            b'x' => Value::I64(self.u64()? as i64),
            b's' => Value::Str(self.string()?),
            b'o' => Value::ObjPath(self.string()?),
            b'g' => Value::Sig(self.sig()?),
            b'v' => {
                let s = self.sig()?;
                if split_sig(&s)?.len() != 1 {
                    bail!("D-Bus variant signature {s:?} is not one type");
                }
                Value::Variant(Box::new(self.value(&s)?))
            }
            b'a' => {
                let n = self.u32()? as usize;
                let elem = &sig[1..];
                self.align(align_of(elem.as_bytes()[0]));
                let end = self.pos + n;
                if end > self.buf.len() {
                    bail!("truncated D-Bus array");
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                self.align(8);
                let inner = &sig[1..sig.len() - 1];
                let mut f = Vec::new();
                for t in split_sig(inner)? {
                    f.push(self.value(t)?);
                }
                Value::Struct(f)
            }
            c => bail!("unsupported D-Bus type {:?}", c as char),
        })
    }
}

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A received (or to be sent) message.
#[derive(Debug, Default, Clone)]
pub struct Message {
    pub kind: u8,
    #[cfg(test)]
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub body: Vec<Value>,
}

/// Header flag: the caller does not want a reply.
pub const NO_REPLY_EXPECTED: u8 = 1;

/// Marshals a method call.
pub fn encode_call(
    serial: u32,
    dest: Option<&str>,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    encode_call_flags(serial, 0, dest, path, iface, member, args)
}

/// [`encode_call`] with header flags.
pub fn encode_call_flags(
    serial: u32,
    flags: u8,
    dest: Option<&str>,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Writer::default();
    let mut sig = String::new();
    for a in args {
        body.value(a);
        sig.push_str(&a.signature());
    }
    let mut fields = vec![
        Value::Struct(vec![
            Value::Byte(1),
            Value::Variant(Box::new(Value::ObjPath(path.into()))),
        ]),
        Value::Struct(vec![
            Value::Byte(2),
            Value::Variant(Box::new(Value::str(iface))),
        ]),
        Value::Struct(vec![
            Value::Byte(3),
            Value::Variant(Box::new(Value::str(member))),
        ]),
    ];
    if let Some(d) = dest {
        fields.push(Value::Struct(vec![
            Value::Byte(6),
            Value::Variant(Box::new(Value::str(d))),
        ]));
    }
    if !sig.is_empty() {
        fields.push(Value::Struct(vec![
            Value::Byte(8),
            Value::Variant(Box::new(Value::Sig(sig))),
        ]));
    }
    let mut w = Writer::default();
    w.buf.extend_from_slice(&[b'l', METHOD_CALL, flags, 1]);
    w.buf
        .extend_from_slice(&(body.buf.len() as u32).to_le_bytes());
    w.buf.extend_from_slice(&serial.to_le_bytes());
    w.value(&Value::Array("(yv)".into(), fields));
    w.pad(8);
    w.buf.extend_from_slice(&body.buf);
    w.buf
}

/// Total length of the message starting with this 16-byte fixed header.
fn message_len(hdr: &[u8; 16]) -> Result<usize> {
    if hdr[0] != b'l' {
        bail!("big-endian D-Bus messages are not supported");
    }
    let body = u32::from_le_bytes(hdr[4..8].try_into().unwrap()) as usize;
    let fields = u32::from_le_bytes(hdr[12..16].try_into().unwrap()) as usize;
    let n = (16 + fields).div_ceil(8) * 8 + body;
    if n > 128 << 20 {
        bail!("D-Bus message too long ({n} bytes)");
    }
    Ok(n)
}

/// Parses one complete message.
pub fn decode(buf: &[u8]) -> Result<Message> {
    let mut r = Reader::new(buf);
    let hdr = r.take(16)?;
    let mut m = Message {
        kind: hdr[1],
        #[cfg(test)]
        serial: u32::from_le_bytes(hdr[8..12].try_into().unwrap()),
        ..Default::default()
    };
    let body_len = u32::from_le_bytes(hdr[4..8].try_into().unwrap()) as usize;
    r.pos = 12;
    let fields = r.value("a(yv)")?;
    let mut sig = String::new();
    if let Value::Array(_, items) = fields {
        for f in items {
            let Value::Struct(f) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1)) else {
                continue;
            };
            let s = v.as_str().map(str::to_string);
            match code {
                1 => m.path = s,
                2 => m.interface = s,
                3 => m.member = s,
                4 => m.error_name = s,
                5 => {
                    if let Value::U32(x) = **v {
                        m.reply_serial = Some(x)
                    }
                }
                6 => m.destination = s,
                8 => sig = s.unwrap_or_default(),
                _ => {}
            }
        }
    }
    r.align(8);
    let start = r.pos;
    if start + body_len > buf.len() {
        bail!("truncated D-Bus message body");
    }
    let mut br = Reader::new(&buf[start..start + body_len]);
    for t in split_sig(&sig)? {
        m.body.push(br.value(t)?);
    }
    Ok(m)
}

/// A connection to systemd (peer-to-peer on /run/systemd/private, or via the system bus).
pub struct Conn {
    sock: UnixStream,
    serial: u32,
    on_bus: bool,
    /// Signals received while waiting for a reply.
    pending: Vec<Message>,
}

pub const SYSTEMD_DEST: &str = "org.freedesktop.systemd1";
pub const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
pub const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";

/// The D-Bus error of a failed call, with its name kept for callers that test it.
#[derive(Debug)]
pub struct CallError {
    pub name: String,
    pub message: String,
}
impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}
impl std::error::Error for CallError {}

impl Conn {
    /// A connection over `sock`, to systemd directly (`on_bus` false: its private socket) or
    /// through a bus daemon. Authenticates (SASL EXTERNAL) as `uid`; on a bus, says Hello and
    /// subscribes to systemd's job signals.
    pub fn open(mut sock: UnixStream, on_bus: bool, uid: u32) -> Result<Conn> {
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        let uid = uid.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .context("D-Bus authentication")?;
        let line = read_line(&mut sock)?;
        if !line.starts_with("OK ") {
            bail!("D-Bus authentication refused: {line:?}");
        }
        sock.write_all(b"BEGIN\r\n")
            .context("D-Bus authentication")?;
        let mut c = Conn {
            sock,
            serial: 0,
            on_bus,
            pending: Vec::new(),
        };
        if on_bus {
            c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
            c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                &[Value::str(
                    "type='signal',sender='org.freedesktop.systemd1',\
                     interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",
                )],
            )?;
        }
        // On the private socket systemd sends every signal unconditionally; on the bus it only
        // sends JobRemoved to subscribers.
        if on_bus {
            c.manager("Subscribe", &[])?;
        }
        Ok(c)
    }

    /// The next message, or None when `slice` passed without one (the deadline is an error).
    fn read_message(&mut self, deadline: Instant, slice: Duration) -> Result<Option<Message>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for systemd");
        }
        self.sock.set_read_timeout(Some(left.min(slice)))?;
        let mut hdr = [0u8; 16];
        // the first byte decides whether a message started; after it, read it whole
        match self.sock.read(&mut hdr[..1]) {
            Ok(0) => bail!("systemd closed the D-Bus connection"),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => bail!("reading from systemd's D-Bus socket: {e}"),
        }
        self.sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        self.sock
            .read_exact(&mut hdr[1..])
            .context("reading from systemd's D-Bus socket")?;
        let n = message_len(&hdr)?;
        let mut buf = vec![0u8; n];
        buf[..16].copy_from_slice(&hdr);
        self.sock
            .read_exact(&mut buf[16..])
            .context("reading from systemd's D-Bus socket")?;
        decode(&buf).map(Some)
    }

    /// A method call; returns the reply body. D-Bus errors come back as [`CallError`].
    pub fn call(
        &mut self,
        dest: Option<&str>,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>> {
        self.call_until(dest, path, iface, member, args, &|| false)
            .map(|r| r.unwrap_or_default())
    }

    /// [`Conn::call`] that gives up waiting (Ok(None)) once `done()` holds, checked every
    /// 100 ms while no message arrives.
    pub fn call_until(
        &mut self,
        dest: Option<&str>,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
        done: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<Value>>> {
        self.serial += 1;
        let serial = self.serial;
        let dest = if self.on_bus { dest } else { None };
        let msg = encode_call(serial, dest, path, iface, member, args);
        self.sock
            .write_all(&msg)
            .with_context(|| format!("sending {member} to systemd"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut poked = Instant::now();
        loop {
            let Some(m) = self.read_message(deadline, Duration::from_millis(100))? else {
                if done() {
                    return Ok(None);
                }
                // systemd 252 on its private socket sometimes leaves a call that arrived right
                // behind BEGIN unprocessed until more data comes in (seen in the guest: the
                // call took effect only when the connection closed). A Peer.Ping without
                // reply wakes it up.
                if poked.elapsed() >= Duration::from_millis(300) {
                    poked = Instant::now();
                    self.poke()?;
                }
                continue;
            };
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(Some(m.body)),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m
                        .body
                        .first()
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string();
                    return Err(CallError {
                        name: m.error_name.unwrap_or_default(),
                        message,
                    }
                    .into());
                }
                SIGNAL => self.pending.push(m),
                _ => {}
            }
        }
    }

    /// org.freedesktop.DBus.Peer.Ping, no reply expected.
    fn poke(&mut self) -> Result<()> {
        self.serial += 1;
        let dest = if self.on_bus {
            Some(SYSTEMD_DEST)
        } else {
            None
        };
        let msg = encode_call_flags(
            self.serial,
            NO_REPLY_EXPECTED,
            dest,
            SYSTEMD_PATH,
            "org.freedesktop.DBus.Peer",
            "Ping",
            &[],
        );
        self.sock.write_all(&msg).context("sending Ping to systemd")
    }

    /// A call on systemd's Manager interface.
    pub fn manager(&mut self, member: &str, args: &[Value]) -> Result<Vec<Value>> {
        self.call(
            Some(SYSTEMD_DEST),
            SYSTEMD_PATH,
            MANAGER_IFACE,
            member,
            args,
        )
    }

    /// A property of systemd's manager object (org.freedesktop.DBus.Properties.Get), unwrapped
    /// from its variant.
    pub fn manager_property(&mut self, name: &str) -> Result<Value> {
        let r = self.call(
            Some(SYSTEMD_DEST),
            SYSTEMD_PATH,
            "org.freedesktop.DBus.Properties",
            "Get",
            &[Value::str(MANAGER_IFACE), Value::str(name)],
        )?;
        match r.into_iter().next() {
            Some(Value::Variant(v)) => Ok(*v),
            other => bail!("systemd's {name} property: unexpected reply {other:?}"),
        }
    }

    /// Waits for the `JobRemoved` signal of `job` (an object path); returns its result
    /// ("done", "failed", "timeout", ...), or "done" once `done()` holds (checked every 100 ms
    /// while nothing arrives).
    pub fn wait_job(
        &mut self,
        job: &str,
        timeout: Duration,
        done: &dyn Fn() -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|m| job_removed(m, job).is_some())
            {
                let m = self.pending.remove(i);
                self.pending
                    .retain(|m| m.member.as_deref() != Some("JobRemoved"));
                return Ok(job_removed(&m, job).unwrap_or_default());
            }
            let m = self
                .read_message(deadline, Duration::from_millis(100))
                .with_context(|| format!("waiting for systemd job {job}"))?;
            match m {
                Some(m) if m.kind == SIGNAL => self.pending.push(m),
                Some(_) => {}
                None if done() => return Ok("done".into()),
                None => {}
            }
        }
    }
}

/// A unix socket address from a D-Bus server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddr {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl BusAddr {
    /// A stream connected to the socket.
    pub fn connect(&self) -> std::io::Result<UnixStream> {
        match self {
            BusAddr::Path(p) => UnixStream::connect(p),
            BusAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let a = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                UnixStream::connect_addr(&a)
            }
        }
    }
}

/// The unix socket of a D-Bus address such as `unix:path=/run/user/1000/bus,guid=...`: the
/// first `;`-separated entry with the unix transport and a `path=` or `abstract=` key (values
/// %-escaped as the specification says).
pub fn parse_bus_address(addr: &str) -> Result<BusAddr> {
    for entry in addr.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some(keys) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in keys.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "path" => {
                    use std::os::unix::ffi::OsStringExt;
                    let p = std::ffi::OsString::from_vec(unescape_bus_value(v)?);
                    return Ok(BusAddr::Path(p.into()));
                }
                "abstract" => return Ok(BusAddr::Abstract(unescape_bus_value(v)?)),
                _ => {}
            }
        }
    }
    bail!("no unix:path= or unix:abstract= socket in D-Bus address {addr:?}")
}

fn unescape_bus_value(v: &str) -> Result<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("bad %-escape in D-Bus address value {v:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        bail!("empty D-Bus address value");
    }
    Ok(out)
}

/// JobRemoved(u id, o job, s unit, s result) for `job`: the result.
fn job_removed(m: &Message, job: &str) -> Option<String> {
    if m.member.as_deref() != Some("JobRemoved") {
        return None;
    }
    match m.body.as_slice() {
        [_, Value::ObjPath(j), _, Value::Str(res)] if j == job => Some(res.clone()),
        _ => None,
    }
}

fn read_line(s: &mut UnixStream) -> Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        if out.len() > 4096 {
            bail!("D-Bus authentication line too long");
        }
        let n = s.read(&mut b).context("D-Bus authentication")?;
        if n == 0 {
            bail!("D-Bus peer closed the connection during authentication");
        }
        out.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&out).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut w = Writer::default();
        w.value(v);
        w.buf
    }

    #[test]
    fn basic_types() {
        assert_eq!(enc(&Value::Byte(7)), [7]);
        assert_eq!(enc(&Value::Bool(true)), [1, 0, 0, 0]);
        assert_eq!(enc(&Value::U64(0x0102)), [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(&Value::str("ab")), [2, 0, 0, 0, b'a', b'b', 0]);
        assert_eq!(enc(&Value::Sig("as".into())), [2, b'a', b's', 0]);
        // variant: signature then aligned value
        assert_eq!(
            enc(&Value::Variant(Box::new(Value::U64(1)))),
            [1, b't', 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn arrays_pad_to_element_alignment() {
        // au [1,2]: length 8, elements
        assert_eq!(
            enc(&Value::Array(
                "u".into(),
                vec![Value::U32(1), Value::U32(2)]
            )),
            [8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]
        );
        // at [] : length 0, then padding to 8 which is not counted
        assert_eq!(
            enc(&Value::Array("t".into(), vec![])),
            [0, 0, 0, 0, 0, 0, 0, 0]
        );
        // ay
        assert_eq!(
            enc(&Value::Array("y".into(), vec![Value::Byte(3)])),
            [1, 0, 0, 0, 3]
        );
        // a(sv) with one ("Delegate", <true>)
        let p = props(vec![prop("Delegate", Value::Bool(true))]);
        // length 20 (offsets 8..28), padding 4..8 to the struct's 8-alignment not counted
        let mut want = vec![20, 0, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(&[8, 0, 0, 0]);
        want.extend_from_slice(b"Delegate\0"); // ends at 21
        want.extend_from_slice(&[1, b'b', 0]); // signature "b", ends at 24
        want.extend_from_slice(&[1, 0, 0, 0]); // true, 4-aligned at 24
        assert_eq!(enc(&p), want);
    }

    // The Hello call every libdbus client sends first (serial 1; fields path, interface,
    // member, destination; fields array length 0x6d = 'm'), as it appears in protocol traces:
    const HELLO: &[u8] = b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x6d\x00\x00\x00\
\x01\x01o\x00\x15\x00\x00\x00/org/freedesktop/DBus\x00\x00\x00\
\x02\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00\
\x03\x01s\x00\x05\x00\x00\x00Hello\x00\x00\x00\
\x06\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00";

    #[test]
    fn hello_bytes() {
        let m = encode_call(
            1,
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        );
        assert_eq!(m, HELLO);
        let d = decode(&m).unwrap();
        assert_eq!(d.kind, METHOD_CALL);
        assert_eq!(d.member.as_deref(), Some("Hello"));
        assert_eq!(d.path.as_deref(), Some("/org/freedesktop/DBus"));
    }

    #[test]
    fn start_transient_unit_roundtrip() {
        let args = vec![
            Value::str("husk-x.scope"),
            Value::str("replace"),
            props(vec![
                prop("Description", Value::str("husk container x")),
                prop("Delegate", Value::Bool(true)),
                prop("PIDs", Value::Array("u".into(), vec![Value::U32(42)])),
                prop("MemoryMax", Value::U64(67108864)),
                prop(
                    "AllowedCPUs",
                    Value::Array("y".into(), vec![Value::Byte(3)]),
                ),
            ]),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let sig: String = args.iter().map(|a| a.signature()).collect();
        assert_eq!(sig, "ssa(sv)a(sa(sv))");
        let m = encode_call(
            5,
            None,
            SYSTEMD_PATH,
            MANAGER_IFACE,
            "StartTransientUnit",
            &args,
        );
        assert_eq!(m.len(), message_len(m[..16].try_into().unwrap()).unwrap());
        let d = decode(&m).unwrap();
        assert_eq!(d.serial, 5);
        assert_eq!(d.body, args);
    }

    #[test]
    fn signal_decode() {
        // a JobRemoved signal built by hand: header fields path/interface/member/signature
        let body = [
            Value::U32(7),
            Value::ObjPath("/org/freedesktop/systemd1/job/7".into()),
            Value::str("husk-x.scope"),
            Value::str("done"),
        ];
        let mut m = encode_call(9, None, SYSTEMD_PATH, MANAGER_IFACE, "JobRemoved", &body);
        m[1] = SIGNAL;
        let d = decode(&m).unwrap();
        assert_eq!(
            job_removed(&d, "/org/freedesktop/systemd1/job/7").as_deref(),
            Some("done")
        );
        assert_eq!(job_removed(&d, "/org/freedesktop/systemd1/job/8"), None);
    }

    // Captured with strace in the systemd 252 guest (husk delete of an already-gone scope):
    // the StopUnit call husk sent, which systemd parsed, and systemd's error reply.
    const STOP_UNIT: &[u8] = b"l\x01\x00\x01 \x00\x00\x00\x01\x00\x00\x00x\x00\x00\x00\x01\x01o\x00\x19\x00\x00\x00/org/freedesktop/systemd1\x00\x00\x00\x00\x00\x00\x00\x02\x01s\x00 \x00\x00\x00org.freedesktop.systemd1.Manager\x00\x00\x00\x00\x00\x00\x00\x00\x03\x01s\x00\x08\x00\x00\x00StopUnit\x00\x00\x00\x00\x00\x00\x00\x00\x08\x01g\x00\x02ss\x00\x0d\x00\x00\x00husk-d1.scope\x00\x00\x00\x07\x00\x00\x00replace\x00";
    const NO_SUCH_UNIT: &[u8] = b"l\x03\x01\x01#\x00\x00\x00\x01\x00\x00\x00g\x00\x00\x00\x05\x01u\x00\x01\x00\x00\x00\x04\x01s\x00#\x00\x00\x00org.freedesktop.systemd1.NoSuchUnit\x00\x00\x00\x00\x00\x07\x01s\x00\x18\x00\x00\x00org.freedesktop.systemd1\x00\x00\x00\x00\x00\x00\x00\x00\x08\x01g\x00\x01s\x00\x00\x1e\x00\x00\x00Unit husk-d1.scope not loaded.\x00";

    #[test]
    fn real_systemd_exchange() {
        let m = encode_call(
            1,
            None,
            SYSTEMD_PATH,
            MANAGER_IFACE,
            "StopUnit",
            &[Value::str("husk-d1.scope"), Value::str("replace")],
        );
        assert_eq!(m, STOP_UNIT);
        let hdr: [u8; 16] = NO_SUCH_UNIT[..16].try_into().unwrap();
        assert_eq!(message_len(&hdr).unwrap(), NO_SUCH_UNIT.len());
        let d = decode(NO_SUCH_UNIT).unwrap();
        assert_eq!(d.kind, ERROR);
        assert_eq!(d.reply_serial, Some(1));
        assert_eq!(
            d.error_name.as_deref(),
            Some("org.freedesktop.systemd1.NoSuchUnit")
        );
        assert_eq!(d.body, [Value::str("Unit husk-d1.scope not loaded.")]);
    }

    #[test]
    fn bus_addresses() {
        let p = |s: &str| BusAddr::Path(s.into());
        assert_eq!(
            parse_bus_address("unix:path=/run/user/1000/bus").unwrap(),
            p("/run/user/1000/bus")
        );
        assert_eq!(
            parse_bus_address("unix:path=/run/user/1000/bus,guid=0123abcd").unwrap(),
            p("/run/user/1000/bus")
        );
        assert_eq!(
            parse_bus_address("unix:guid=x,path=/tmp/a%20b%2c").unwrap(),
            p("/tmp/a b,")
        );
        assert_eq!(
            parse_bus_address("tcp:host=x,port=1;unix:abstract=/tmp/dbus-XYZ").unwrap(),
            BusAddr::Abstract(b"/tmp/dbus-XYZ".to_vec())
        );
        for bad in [
            "",
            "tcp:host=x,port=1",
            "unix:tmpdir=/tmp",
            "unix:path=%zz",
            "unix:path=",
        ] {
            assert!(parse_bus_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(
            split_sig("ssa(sv)a(sa(sv))").unwrap(),
            ["s", "s", "a(sv)", "a(sa(sv))"]
        );
        assert!(split_sig("a(s").is_err());
    }
}
