//! Networks for husk's containers, through CNI (a companion to the runtime: it reads the
//! runtime's state, the runtime never calls it).
//!
//! * A network is a CNI conflist. husk writes its own into the network config dir (default
//!   `/etc/husk/networks`, `--network-dir` or `HUSK_NETWORK_DIR`): a bridge with host-local IPAM,
//!   portmap and firewall, as nerdctl's default. Conflists in the CNI config dir (default
//!   `/etc/cni/net.d`, `HUSK_CNI_CONFIG_DIR`) are usable by name and run through their plugins
//!   unchanged; husk never edits or removes them.
//! * What is attached to what lives in the network run dir (default `/run/husk-network`,
//!   `--network-run-dir` or `HUSK_NETWORK_RUN_DIR`, a tmpfs so a reboot forgets it together with
//!   the containers): see [`attach`].
//! * Plugins are looked up in `CNI_PATH` (default `/usr/lib/cni:/opt/cni/bin`).

pub mod attach;
pub mod cli;
pub mod cni;
pub mod dns;
pub mod keep;
pub mod native;
pub mod ports;
pub mod proxy;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The network used when none is named and created on first use.
pub const DEFAULT_NETWORK: &str = "husk";

/// Where networks, attachments and plugins are.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// husk's own conflists.
    pub config: PathBuf,
    /// The standard CNI config dir (read only).
    pub cni_config: PathBuf,
    /// Attachment records, pinned network namespaces, host-local allocations.
    pub run: PathBuf,
    /// Plugin search path.
    pub cni_path: Vec<PathBuf>,
    /// How long one plugin may run.
    pub timeout: Duration,
    /// Attach husk's own bridge lists natively (`HUSK_NETWORK_DRIVER`, `native` by default;
    /// `plugins` runs their CNI plugins instead).
    pub native: bool,
}

impl Dirs {
    /// The defaults, overridden by the environment, overridden by explicit flags.
    pub fn resolve(
        config: Option<PathBuf>,
        run: Option<PathBuf>,
        cni_path: Option<String>,
        timeout_secs: Option<u64>,
    ) -> Result<Dirs> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let timeout = match timeout_secs {
            Some(t) => t,
            None => match std::env::var("HUSK_CNI_TIMEOUT") {
                Ok(v) if !v.is_empty() => v.parse().with_context(|| {
                    format!("HUSK_CNI_TIMEOUT={v}: expected a number of seconds")
                })?,
                _ => 60,
            },
        };
        if timeout == 0 {
            bail!("plugin timeout: expected at least 1 second, got 0");
        }
        let native = match std::env::var("HUSK_NETWORK_DRIVER") {
            Ok(v) if v == "plugins" => false,
            Ok(v) if v.is_empty() || v == "native" => true,
            Ok(v) => bail!("HUSK_NETWORK_DRIVER={v}: expected native or plugins"),
            Err(_) => true,
        };
        let path = cni_path
            .or_else(|| std::env::var("CNI_PATH").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "/usr/lib/cni:/opt/cni/bin".into());
        Ok(Dirs {
            config: config
                .or_else(|| env("HUSK_NETWORK_DIR").map(PathBuf::from))
                .unwrap_or_else(|| "/etc/husk/networks".into()),
            cni_config: env("HUSK_CNI_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/etc/cni/net.d".into()),
            run: run
                .or_else(|| env("HUSK_NETWORK_RUN_DIR").map(PathBuf::from))
                .unwrap_or_else(|| "/run/husk-network".into()),
            cni_path: std::env::split_paths(&path).collect(),
            timeout: Duration::from_secs(timeout),
            native,
        })
    }

    /// host-local's data dir for the networks husk creates.
    pub fn ipam_dir(&self) -> PathBuf {
        self.run.join("ipam")
    }
}

pub(crate) fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .with_context(|| format!("create {}", p.display()))
}

/// An exclusive flock on `dir/.lock` (made 0755 when missing), held until dropped.
pub(crate) fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    crate::state::lock_dir(dir, 0o755, true)
}

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// `a.b.c.d/n` with no host bits set.
    pub fn parse(s: &str) -> Result<Ipv4Net> {
        let (a, p) = s
            .split_once('/')
            .with_context(|| format!("subnet {s:?}: expected an IPv4 CIDR such as 10.89.0.0/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .with_context(|| format!("subnet {s:?}: {a:?} is not an IPv4 address"))?;
        let prefix: u8 =
            p.parse().ok().filter(|n| *n <= 32).with_context(|| {
                format!("subnet {s:?}: prefix {p:?} is not a number from 0 to 32")
            })?;
        let n = Ipv4Net { addr, prefix };
        if n.network() != addr {
            bail!(
                "subnet {s:?}: host bits are set (the subnet is {}/{prefix})",
                n.network()
            );
        }
        Ok(n)
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }
    pub fn overlaps(&self, o: &Ipv4Net) -> bool {
        self.contains(o.network()) || o.contains(self.network())
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv6 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Net {
    /// `x:y::/n` with no host bits set and room for hosts (a prefix from 1 to 126).
    pub fn parse(s: &str) -> Result<Ipv6Net> {
        let (a, p) = s
            .split_once('/')
            .with_context(|| format!("subnet {s:?}: expected an IPv6 CIDR such as fd00:1::/64"))?;
        let addr: Ipv6Addr = a
            .parse()
            .with_context(|| format!("subnet {s:?}: {a:?} is not an IPv6 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|n| (1..=126).contains(n))
            .with_context(|| format!("subnet {s:?}: prefix {p:?} is not a number from 1 to 126"))?;
        let n = Ipv6Net { addr, prefix };
        if n.network() != addr {
            bail!(
                "subnet {s:?}: host bits are set (the subnet is {}/{prefix})",
                n.network()
            );
        }
        Ok(n)
    }

    pub fn mask(&self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix)
        }
    }
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }
    /// The subnet's last address (IPv6 has no broadcast: host-local hands it out).
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !self.mask())
    }
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.network())
    }
    pub fn overlaps(&self, o: &Ipv6Net) -> bool {
        self.contains(o.network()) || o.contains(self.network())
    }
}

impl std::fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The IPv4 routes of the calling process's network namespace (`/proc/net/route`), default
/// routes left out: (device, destination).
pub fn routes() -> Result<Vec<(String, Ipv4Net)>> {
    let text = fs::read_to_string("/proc/net/route").context("read /proc/net/route")?;
    Ok(parse_routes(&text))
}

fn parse_routes(text: &str) -> Vec<(String, Ipv4Net)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // the file prints the network-order bytes as a native u32
        let dst = u32::from_be_bytes(dst.to_ne_bytes());
        let mask = u32::from_be_bytes(mask.to_ne_bytes());
        let prefix = mask.count_ones() as u8;
        if prefix == 0 {
            continue;
        }
        out.push((
            f[0].to_string(),
            Ipv4Net {
                addr: Ipv4Addr::from(dst & mask),
                prefix,
            },
        ));
    }
    out
}

/// The IPv6 routes of the calling process's network namespace (`/proc/net/ipv6_route`):
/// (device, destination), leaving out default routes, the local table's (its own addresses,
/// anycast) and multicast. None where IPv6 is off (the file is missing).
pub fn routes6() -> Result<Vec<(String, Ipv6Net)>> {
    match fs::read_to_string("/proc/net/ipv6_route") {
        Ok(text) => Ok(parse_routes6(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).context("read /proc/net/ipv6_route"),
    }
}

fn parse_routes6(text: &str) -> Vec<(String, Ipv6Net)> {
    const RTF_ANYCAST: u32 = 0x0010_0000;
    const RTF_LOCAL: u32 = 0x8000_0000;
    let multicast = Ipv6Net {
        addr: Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        prefix: 8,
    };
    let mut out = Vec::new();
    for (dst, prefix, flags, dev) in text.lines().filter_map(route6_line) {
        if prefix == 0 || prefix > 128 || flags & (RTF_ANYCAST | RTF_LOCAL) != 0 {
            continue;
        }
        let mut net = Ipv6Net {
            addr: Ipv6Addr::from(dst),
            prefix,
        };
        net.addr = net.network();
        if multicast.contains(net.addr) {
            continue;
        }
        out.push((dev.to_string(), net));
    }
    out
}

/// One line of `/proc/net/ipv6_route`: (destination, prefix length, flags, device).
fn route6_line(line: &str) -> Option<(u128, u8, u32, &str)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    Some((
        u128::from_str_radix(f[0], 16).ok()?,
        u8::from_str_radix(f[1], 16).ok()?,
        u32::from_str_radix(f[8], 16).ok()?,
        f[9],
    ))
}

/// The devices of the usable IPv6 default routes of `/proc/net/ipv6_route`'s text: up, not
/// rejecting (`unreachable`), not out of `lo`.
pub fn default_route6_devices(text: &str) -> Vec<&str> {
    const RTF_UP: u32 = 0x1;
    const RTF_REJECT: u32 = 0x200;
    text.lines()
        .filter_map(route6_line)
        .filter(|&(dst, prefix, flags, dev)| {
            dst == 0 && prefix == 0 && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && dev != "lo"
        })
        .map(|r| r.3)
        .collect()
}

/// Where a network is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Husk,
    Cni,
}

/// A network: its conflist and what husk reads out of it.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub path: PathBuf,
    pub source: Source,
    pub conflist: Value,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 subnet of a dual-stack network, and its gateway.
    pub subnet6: Option<(Ipv6Net, Ipv6Addr)>,
    /// Every subnet of the conflist's IPAM (each range of each range set, or the single
    /// `subnet`), either family, in the conflist's order, each with its gateway (given, else
    /// host-local's: the subnet's first address): what `ls` and `inspect` show.
    pub subnets: Vec<(String, IpAddr)>,
    pub bridge: Option<String>,
    pub internal: bool,
}

impl Network {
    pub fn plugin_types(&self) -> Vec<String> {
        self.conflist["plugins"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p["type"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host-local data dir of this network (where its allocations are), when it has one.
    pub fn ipam_data_dir(&self) -> Option<PathBuf> {
        for p in self.conflist["plugins"].as_array()? {
            if p["ipam"]["type"] == "host-local" {
                let base = p["ipam"]["dataDir"]
                    .as_str()
                    .unwrap_or("/var/lib/cni/networks");
                return Some(Path::new(base).join(&self.name));
            }
        }
        None
    }
}

/// Parse a conflist (or a single-plugin `.conf`, wrapped as libcni does) from `path`.
pub fn parse_conflist(path: &Path, data: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(data)
        .with_context(|| format!("malformed conflist {}", path.display()))?;
    let Some(obj) = v.as_object() else {
        bail!(
            "malformed conflist {}: expected a JSON object",
            path.display()
        );
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        bail!("malformed conflist {}: \"name\" is missing", path.display());
    }
    let list = if obj.contains_key("plugins") {
        v.clone()
    } else if obj.contains_key("type") {
        // a single plugin config
        json!({"cniVersion": obj.get("cniVersion").cloned().unwrap_or(json!("0.3.1")),
               "name": name, "plugins": [v.clone()]})
    } else {
        bail!(
            "malformed conflist {}: neither \"plugins\" nor \"type\" is set",
            path.display()
        );
    };
    let Some(plugins) = list["plugins"].as_array().filter(|a| !a.is_empty()) else {
        bail!(
            "malformed conflist {} (network {name}): \"plugins\" must be a non-empty array",
            path.display()
        );
    };
    for (i, p) in plugins.iter().enumerate() {
        if p["type"]
            .as_str()
            .is_none_or(|t| t.is_empty() || t.contains('/'))
        {
            bail!(
                "malformed conflist {} (network {name}): plugins[{i}].type must be a plugin name",
                path.display()
            );
        }
    }
    if list["cniVersion"].as_str().is_none() {
        bail!(
            "malformed conflist {} (network {name}): \"cniVersion\" must be a string",
            path.display()
        );
    }
    Ok(list)
}

fn describe(name: String, path: PathBuf, source: Source, conflist: Value) -> Network {
    let mut n = Network {
        name,
        path,
        source,
        subnet: None,
        gateway: None,
        subnet6: None,
        subnets: Vec::new(),
        bridge: None,
        internal: false,
        conflist,
    };
    if let Some(ps) = n.conflist["plugins"].as_array() {
        for p in ps {
            if p["type"] == "bridge" {
                n.bridge = Some(p["bridge"].as_str().unwrap_or("cni0").to_string());
                n.internal = p["ipMasq"] != true;
            }
            let ipam = &p["ipam"];
            let ranges: Vec<&Value> = match ipam["ranges"].as_array() {
                Some(sets) => sets.iter().filter_map(Value::as_array).flatten().collect(),
                None => vec![ipam],
            };
            for r in ranges {
                let Some(sub) = r["subnet"].as_str() else {
                    continue;
                };
                let gw = r["gateway"].as_str().and_then(|g| g.parse::<IpAddr>().ok());
                let one = if let Ok(v4) = Ipv4Net::parse(sub) {
                    let first = Ipv4Addr::from(u32::from(v4.network()) + 1);
                    (v4.to_string(), gw.unwrap_or(IpAddr::V4(first)))
                } else if let Ok(v6) = Ipv6Net::parse(sub) {
                    let first = Ipv6Addr::from(u128::from(v6.network()) + 1);
                    (v6.to_string(), gw.unwrap_or(IpAddr::V6(first)))
                } else {
                    continue;
                };
                if !n.subnets.contains(&one) {
                    n.subnets.push(one);
                }
            }
            let r = &ipam["ranges"][0][0];
            let (s, g) = if r.is_object() {
                (&r["subnet"], &r["gateway"])
            } else {
                (&ipam["subnet"], &ipam["gateway"])
            };
            if let Some(s) = s.as_str().and_then(|s| Ipv4Net::parse(s).ok()) {
                n.subnet.get_or_insert(s);
            }
            if let Some(g) = g.as_str().and_then(|g| g.parse().ok()) {
                n.gateway.get_or_insert(g);
            }
            // a second range set: IPv6 (dual stack)
            let r6 = &ipam["ranges"][1][0];
            if let Some(s6) = r6["subnet"].as_str().and_then(|s| Ipv6Net::parse(s).ok()) {
                let g6 = r6["gateway"]
                    .as_str()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or_else(|| Ipv6Addr::from(u128::from(s6.network()) + 1));
                n.subnet6.get_or_insert((s6, g6));
            }
        }
    }
    if n.gateway.is_none() {
        n.gateway = n.subnet.map(|s| Ipv4Addr::from(u32::from(s.network()) + 1));
    }
    n
}

/// Every network, husk's first. A malformed file in husk's dir is an error; one in the CNI
/// dir is skipped by `list` (as libcni does) but reported by `find` when named.
pub fn list(dirs: &Dirs) -> Result<Vec<Network>> {
    let mut out: Vec<Network> = Vec::new();
    for (dir, source) in [
        (&dirs.config, Source::Husk),
        (&dirs.cni_config, Source::Cni),
    ] {
        let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
        };
        files.sort();
        for f in files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "conflist" | "conf" | "json") {
                continue;
            }
            let data = fs::read(&f).with_context(|| format!("read {}", f.display()))?;
            let v = match parse_conflist(&f, &data) {
                Ok(v) => v,
                Err(e) if source == Source::Cni => {
                    crate::logging::warn(&format!("{e:#}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let name = v["name"].as_str().unwrap_or_default().to_string();
            if out.iter().any(|n| n.name == name) {
                continue; // the first definition wins, as in libcni's sorted lookup
            }
            out.push(describe(name, f, source, v));
        }
    }
    Ok(out)
}

/// The network named `name`; the default network is created on first use.
pub fn find(dirs: &Dirs, name: &str) -> Result<Network> {
    check_name(name)?;
    if let Some(n) = list(dirs)?.into_iter().find(|n| n.name == name) {
        return Ok(n);
    }
    // a malformed file that would carry the name: say so rather than "not found"
    for dir in [&dirs.config, &dirs.cni_config] {
        for ext in ["conflist", "conf", "json"] {
            let f = dir.join(format!("{name}.{ext}"));
            if let Ok(data) = fs::read(&f) {
                parse_conflist(&f, &data)?;
            }
        }
    }
    if name == DEFAULT_NETWORK {
        return match create(dirs, &CreateOptions::named(name)) {
            Ok(n) => Ok(n),
            // another husk created it meanwhile
            Err(e) => list(dirs)?.into_iter().find(|n| n.name == name).ok_or(e),
        };
    }
    bail!(
        "network {name} not found (looked in {} and {})",
        dirs.config.display(),
        dirs.cni_config.display()
    )
}

/// What `network create` takes.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    /// `--ipv6`: dual stack, with this IPv6 subnet (`--subnet` of an IPv6 CIDR).
    pub ipv6: bool,
    pub subnet6: Option<String>,
}

impl CreateOptions {
    pub fn named(name: &str) -> CreateOptions {
        CreateOptions {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// The CNI spec's rule for network names (`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`): checked wherever a
/// name is looked up, since it becomes a path component.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!("network name {name:?}: expected [a-zA-Z0-9_.-], starting with a letter or digit");
    }
    Ok(())
}

/// Docker's rule for network names, bounded: what `create` accepts.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = check_name(name).is_ok() && name.len() <= 64;
    if !ok {
        bail!("network name {name:?}: expected 1 to 64 of [a-zA-Z0-9_.-], starting with a letter or digit");
    }
    Ok(())
}

/// Create a bridge network in husk's config dir.
pub fn create(dirs: &Dirs, o: &CreateOptions) -> Result<Network> {
    validate_name(&o.name)?;
    let _lock = lock_dir(&dirs.config)?;
    let existing = list(dirs)?;
    if let Some(n) = existing.iter().find(|n| n.name == o.name) {
        bail!("network {} already exists ({})", o.name, n.path.display());
    }
    let routes = routes()?;
    let subnet = match &o.subnet {
        Some(s) => {
            let s = Ipv4Net::parse(s).with_context(|| format!("network {}", o.name))?;
            if s.prefix > 30 {
                bail!("network {}: subnet {s} is too small (at most /30)", o.name);
            }
            if let Some(n) = existing
                .iter()
                .find(|n| n.subnet.is_some_and(|x| x.overlaps(&s)))
            {
                bail!(
                    "network {}: subnet {s} overlaps network {} ({})",
                    o.name,
                    n.name,
                    n.subnet.unwrap()
                );
            }
            if let Some((dev, r)) = routes.iter().find(|(_, r)| r.overlaps(&s)) {
                bail!(
                    "network {}: subnet {s} overlaps the route to {r} on {dev}",
                    o.name
                );
            }
            s
        }
        None => pick_subnet(&o.name, &existing, &routes)?,
    };
    let gateway = match &o.gateway {
        Some(g) => {
            let ip: Ipv4Addr = g.parse().with_context(|| {
                format!("network {}: gateway {g:?} is not an IPv4 address", o.name)
            })?;
            if !subnet.contains(ip) || ip == subnet.network() || ip == subnet.broadcast() {
                bail!(
                    "network {}: gateway {ip} is not a host address of subnet {subnet}",
                    o.name
                );
            }
            ip
        }
        None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
    };
    let v6 = match (o.ipv6, &o.subnet6) {
        (false, None) => None,
        (false, Some(s)) => bail!(
            "network {}: --subnet {s} is an IPv6 subnet: add --ipv6 for a dual-stack network",
            o.name
        ),
        (true, None) => {
            let s = pick_subnet6(&o.name, &existing, &routes6()?, random_global_id)?;
            Some((s, Ipv6Addr::from(u128::from(s.network()) + 1)))
        }
        (true, Some(s)) => {
            let s = Ipv6Net::parse(s).with_context(|| format!("network {}", o.name))?;
            if let Some((n, x)) = existing
                .iter()
                .find_map(|n| n.subnet6.filter(|x| x.0.overlaps(&s)).map(|x| (n, x.0)))
            {
                bail!(
                    "network {}: subnet {s} overlaps network {} ({x})",
                    o.name,
                    n.name
                );
            }
            if let Some((dev, r)) = routes6()?.iter().find(|(_, r)| r.overlaps(&s)) {
                bail!(
                    "network {}: subnet {s} overlaps the route to {r} on {dev}",
                    o.name
                );
            }
            Some((s, Ipv6Addr::from(u128::from(s.network()) + 1)))
        }
    };
    let bridge = pick_bridge(&existing)?;
    let mut ranges = vec![json!([{"subnet": subnet.to_string(), "gateway": gateway.to_string()}])];
    if let Some((s, g)) = v6 {
        ranges.push(json!([{"subnet": s.to_string(), "gateway": g.to_string()}]));
    }
    let mut ipam = json!({
        "type": "host-local",
        "ranges": ranges,
        "dataDir": dirs.ipam_dir().to_string_lossy(),
    });
    if !o.internal {
        ipam["routes"] = match v6 {
            None => json!([{"dst": "0.0.0.0/0"}]),
            Some(_) => json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]),
        };
    }
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": o.name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": !o.internal,
             "hairpinMode": true, "ipam": ipam},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"},
        ],
    });
    let path = dirs.config.join(format!("{}.conflist", o.name));
    let mut data = serde_json::to_vec_pretty(&conflist)?;
    data.push(b'\n');
    crate::state::write_atomic(&path, &data, 0o644)?;
    Ok(describe(o.name.clone(), path, Source::Husk, conflist))
}

/// The first free subnet: the default network prefers 10.88.0.0/16 (podman's), every network
/// then takes a /24 of 10.89.0.0/16, skipping those that overlap another network or a route
/// of this network namespace.
fn pick_subnet(name: &str, existing: &[Network], routes: &[(String, Ipv4Net)]) -> Result<Ipv4Net> {
    let free = |s: &Ipv4Net| {
        !existing
            .iter()
            .any(|n| n.subnet.is_some_and(|x| x.overlaps(s)))
            && !routes.iter().any(|(_, r)| r.overlaps(s))
    };
    let mut candidates = Vec::new();
    if name == DEFAULT_NETWORK {
        candidates.push(Ipv4Net {
            addr: Ipv4Addr::new(10, 88, 0, 0),
            prefix: 16,
        });
    }
    candidates.extend((0..=255u8).map(|i| Ipv4Net {
        addr: Ipv4Addr::new(10, 89, i, 0),
        prefix: 24,
    }));
    candidates.into_iter().find(free).with_context(|| {
        format!("network {name}: no free subnet left in 10.89.0.0/16; give one with --subnet")
    })
}

/// An IPv6 subnet for `--ipv6` without one, as podman picks it: a unique local /64
/// (`fdXX:XXXX:XXXX:XXXX::/64`, RFC 4193, the 56 bits after `fd` from `random`) that overlaps
/// no other network and no route of this network namespace; a few draws, then an error.
fn pick_subnet6(
    name: &str,
    existing: &[Network],
    routes: &[(String, Ipv6Net)],
    mut random: impl FnMut() -> Result<[u8; 8]>,
) -> Result<Ipv6Net> {
    for _ in 0..64 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&random()?);
        b[0] = 0xfd;
        let s = Ipv6Net {
            addr: Ipv6Addr::from(b),
            prefix: 64,
        };
        let taken = existing
            .iter()
            .any(|n| n.subnet6.is_some_and(|x| x.0.overlaps(&s)))
            || routes.iter().any(|(_, r)| r.overlaps(&s));
        if !taken {
            return Ok(s);
        }
    }
    bail!("network {name}: no free IPv6 subnet found in fd00::/8; give one with --subnet")
}

/// Eight random bytes (the kernel's).
fn random_global_id() -> Result<[u8; 8]> {
    use std::io::Read;
    let mut b = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom")?;
    Ok(b)
}

/// `huskN`, the lowest N no network and no link uses.
fn pick_bridge(existing: &[Network]) -> Result<String> {
    let mut sock = crate::sys::netlink::Socket::new()?;
    for i in 0..10000 {
        let b = format!("husk{i}");
        if existing.iter().any(|n| n.bridge.as_deref() == Some(&b)) {
            continue;
        }
        if sock.link_index(&b).is_ok() {
            continue;
        }
        return Ok(b);
    }
    bail!("no free bridge name husk0..husk9999")
}

/// Remove a husk network that nothing is attached to: its file, its bridge (in the calling
/// network namespace) and its host-local allocations.
pub fn remove(dirs: &Dirs, name: &str) -> Result<()> {
    let n = list(dirs)?
        .into_iter()
        .find(|n| n.name == name)
        .with_context(|| format!("network {name} not found"))?;
    if n.source != Source::Husk {
        bail!(
            "network {name} is defined by {}, which husk does not manage: remove that file instead",
            n.path.display()
        );
    }
    attach::gc(dirs, Some(name))?;
    let _lock = lock_dir(&dirs.run)?;
    let users = attach::records_of_network(dirs, name)?;
    if !users.is_empty() {
        bail!(
            "network {name} is in use by container(s) {}: detach them first",
            users.join(", ")
        );
    }
    if let Some(b) = &n.bridge {
        let mut sock = crate::sys::netlink::Socket::new()?;
        if let Ok(idx) = sock.link_index(b) {
            sock.del_link(idx)
                .map_err(|e| anyhow::anyhow!("network {name}: delete bridge {b}: {}", e.desc()))?;
        }
    }
    if let Some(d) = n.ipam_data_dir() {
        match fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", d.display())),
        }
    }
    fs::remove_file(&n.path).with_context(|| format!("remove {}", n.path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_parsing() {
        let s = Ipv4Net::parse("10.89.3.0/24").unwrap();
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 3, 255));
        assert!(s.contains(Ipv4Addr::new(10, 89, 3, 7)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 4, 7)));
        for bad in [
            "10.89.3.0",
            "10.89.3.1/24",
            "10.89.3.0/33",
            "x/24",
            "10.89.3.0/x",
        ] {
            let e = format!("{:#}", Ipv4Net::parse(bad).unwrap_err());
            assert!(e.contains(bad), "{e}");
        }
        let a = Ipv4Net::parse("10.0.0.0/8").unwrap();
        assert!(a.overlaps(&s) && s.overlaps(&a));
        assert!(!s.overlaps(&Ipv4Net::parse("10.89.4.0/24").unwrap()));
    }

    #[test]
    fn proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_routes(text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1.to_string(), "192.168.2.0/24");
    }

    #[test]
    fn proc_net_ipv6_route() {
        // a namespace with a ULA /64 and a default route on eth0: the local table's own
        // addresses, the multicast route and the null entry are left out
        let text = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
fd000000000000000000000000000000 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 00100001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
fd000000000000890000000000000000 40 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";
        let r: Vec<String> = parse_routes6(text)
            .iter()
            .map(|(d, n)| format!("{n} {d}"))
            .collect();
        assert_eq!(
            r,
            ["fd00::/64 eth0", "fe80::/64 eth0", "fd00:0:0:89::/64 eth0"]
        );
    }

    #[test]
    fn ipv6_subnet_choice() {
        let n6 = |s: &str| Ipv6Net::parse(s).unwrap();
        // the random bytes become the 56 bits after fd: a unique local /64
        let mut draws = vec![[0xab, 1, 2, 3, 4, 5, 6, 7]].into_iter();
        let s = pick_subnet6("n", &[], &[], || Ok(draws.next().unwrap())).unwrap();
        assert_eq!(s.to_string(), "fd01:203:405:607::/64");
        // a draw that overlaps another network or a route is drawn again
        let mut other = describe(
            "old".into(),
            "/x".into(),
            Source::Husk,
            json!({"plugins": []}),
        );
        other.subnet6 = Some((
            n6("fd01:203:405:607::/64"),
            "fd01:203:405:607::1".parse().unwrap(),
        ));
        let routes = vec![("eth0".to_string(), n6("fd11::/16"))];
        let mut draws = vec![
            [0, 1, 2, 3, 4, 5, 6, 7],
            [0, 0x11, 9, 9, 9, 9, 9, 9],
            [0, 0x12, 0, 0, 0, 0, 0, 1],
        ]
        .into_iter();
        let s = pick_subnet6("n", &[other.clone()], &routes, || Ok(draws.next().unwrap())).unwrap();
        assert_eq!(s.to_string(), "fd12:0:0:1::/64");
        assert_eq!(
            s.to_string(),
            Ipv6Net::parse(&s.to_string()).unwrap().to_string()
        );
        // nothing free: an error naming the network and the way out
        let all = vec![("eth0".to_string(), n6("fd00::/8"))];
        let e = pick_subnet6("n", &[], &all, || Ok([7; 8]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("network n") && e.contains("--subnet"), "{e}");
        // real draws are unique local /64s
        let s = pick_subnet6("n", &[], &[], random_global_id).unwrap();
        assert_eq!((s.addr.octets()[0], s.prefix), (0xfd, 64));
        assert_eq!(s.network(), s.addr);
    }

    #[test]
    fn network_names() {
        for ok in ["a", "net-1", "x.y_z"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-a", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        for bad in ["", "..", "../x", ".hidden", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conflist_forms() {
        let p = Path::new("/x.conf");
        let v = parse_conflist(p, br#"{"cniVersion":"0.4.0","name":"n","type":"bridge"}"#).unwrap();
        assert_eq!(v["plugins"][0]["type"], "bridge");
        for bad in [
            &b"{"[..],
            br#"{"name":"n"}"#,
            br#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#,
            br#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"../x"}]}"#,
        ] {
            let e = format!("{:#}", parse_conflist(p, bad).unwrap_err());
            assert!(e.contains("/x.conf"), "{e}");
        }
    }
}
