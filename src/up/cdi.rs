//! CDI devices for `husk up --device VENDOR/CLASS=NAME`: the Container Device Interface as
//! podman and containerd implement it (the reference library `container-device-interface`'s
//! `pkg/cdi`). Spec files (`*.json`, `*.yaml`) are read from `/etc/cdi` then `/var/run/cdi`, or
//! from each `--cdi-spec-dir` in order (podman's flag); a device found in several directories
//! is the one of the later directory, and two files of one directory describing the same
//! device make that device unusable (the library's conflict rule). A requested device brings
//! its spec's `containerEdits` once along with its own.
//!
//! The same three steps as `flags.rs`: [`parse_name`] checks a name alone, [`resolve`] reads the
//! spec files and the host's device nodes (creates nothing), [`apply`] edits the config.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The spec directories when no `--cdi-spec-dir` is given (the library's defaults: static
/// specs, then generated ones).
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// The CDI versions whose files are read (the library's known versions).
const VERSIONS: [&str; 8] = [
    "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
];

/// The OCI hooks a spec may add to.
const HOOK_NAMES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// `husk up`'s CDI flag.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct CdiFlags {
    /// A directory of CDI spec files, instead of /etc/cdi and /var/run/cdi; repeatable (a
    /// device in several of them is taken from the last).
    #[arg(long = "cdi-spec-dir", value_name = "DIR")]
    pub cdi_spec_dir: Vec<PathBuf>,
}

/// A device's fully qualified name, `VENDOR/CLASS=NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    pub vendor: String,
    pub class: String,
    pub name: String,
}

impl Name {
    /// `VENDOR/CLASS`, the spec's `kind`.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.vendor, self.class)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.name)
    }
}

/// The CDI devices asked for, and where to look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub names: Vec<Name>,
    pub dirs: Vec<PathBuf>,
}

/// Whether a `--device` value is meant as a CDI name: host paths are absolute, CDI names are
/// `VENDOR/CLASS=NAME` (the library's `ParseDevice` split).
pub fn is_name(s: &str) -> bool {
    !s.starts_with('/') && s.contains('=')
}

/// The CDI names among `--device` values and the directories to search.
pub fn parse(devices: &[String], f: &CdiFlags) -> Result<Request> {
    let mut r = Request {
        dirs: if f.cdi_spec_dir.is_empty() {
            DEFAULT_SPEC_DIRS.iter().map(PathBuf::from).collect()
        } else {
            f.cdi_spec_dir.clone()
        },
        names: Vec::new(),
    };
    for d in r.dirs.iter() {
        if !d.is_absolute() {
            bail!(
                "--cdi-spec-dir {}: expected an absolute directory",
                d.display()
            );
        }
    }
    for d in devices.iter().filter(|d| is_name(d)) {
        let n = parse_name(d)?;
        if !r.names.contains(&n) {
            r.names.push(n);
        }
    }
    Ok(r)
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A vendor or class: a letter first, a letter or digit last, `_`, `-`, `.` between.
fn check_vendor_or_class(what: &str, s: &str) -> Result<(), String> {
    let first = s.chars().next().ok_or(format!("empty {what}"))?;
    if !first.is_ascii_alphabetic() {
        return Err(format!("{what} {s:?} must start with a letter"));
    }
    if !s.chars().last().is_some_and(alnum) {
        return Err(format!("{what} {s:?} must end with a letter or digit"));
    }
    if let Some(c) = s.chars().find(|&c| !(alnum(c) || "_-.".contains(c))) {
        return Err(format!("invalid character {c:?} in {what} {s:?}"));
    }
    Ok(())
}

/// A device name: a letter or digit first and last, `_`, `-`, `.`, `:` between.
fn check_device_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty device name".into());
    }
    if !s.chars().next().is_some_and(alnum) || !s.chars().last().is_some_and(alnum) {
        return Err(format!(
            "device name {s:?} must start and end with a letter or digit"
        ));
    }
    if let Some(c) = s.chars().find(|&c| !(alnum(c) || "_-.:".contains(c))) {
        return Err(format!("invalid character {c:?} in device name {s:?}"));
    }
    Ok(())
}

/// `VENDOR/CLASS` into its two parts, checked.
fn parse_kind(kind: &str) -> Result<(String, String), String> {
    let (v, c) = kind
        .split_once('/')
        .ok_or(format!("kind {kind:?} is not VENDOR/CLASS"))?;
    check_vendor_or_class("vendor", v)?;
    check_vendor_or_class("class", c)?;
    Ok((v.to_string(), c.to_string()))
}

/// `VENDOR/CLASS=NAME`, checked as the library's `ParseQualifiedName`.
pub fn parse_name(s: &str) -> Result<Name> {
    let bad = |why: String| {
        anyhow::anyhow!("--device {s:?}: not a CDI device name VENDOR/CLASS=NAME ({why})")
    };
    let (kind, name) = s.split_once('=').ok_or_else(|| bad("no '='".into()))?;
    let (vendor, class) = parse_kind(kind).map_err(bad)?;
    check_device_name(name).map_err(bad)?;
    Ok(Name {
        vendor,
        class,
        name: name.to_string(),
    })
}

// ---- the spec file ----

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecFile {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    devices: Vec<DeviceSpec>,
    #[serde(default)]
    container_edits: ContainerEdits,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeviceSpec {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    container_edits: ContainerEdits,
}

/// A spec's or a device's `containerEdits`.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerEdits {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default, alias = "additionalGIDs")]
    pub additional_gids: Vec<u32>,
    #[serde(default)]
    pub net_devices: Vec<NetDevice>,
    /// Refused when used: husk has no resctrl support.
    #[serde(default)]
    pub intel_rdt: Option<Value>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceNode {
    /// The node's path in the container.
    pub path: String,
    #[serde(default)]
    pub host_path: Option<String>,
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
    #[serde(default)]
    pub major: Option<i64>,
    #[serde(default)]
    pub minor: Option<i64>,
    #[serde(default)]
    pub file_mode: Option<u32>,
    /// cgroup access: of r, w, m; `none` for no rule's access ("" or absent: rwm).
    #[serde(default)]
    pub permissions: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub timeout: Option<i64>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetDevice {
    pub host_interface_name: String,
    pub name: String,
}

fn check_env(what: &str, env: &[String]) -> Result<()> {
    for e in env {
        if e.find('=').unwrap_or(0) == 0 {
            bail!("{what}: environment entry {e:?} is not KEY=VALUE");
        }
    }
    Ok(())
}

impl ContainerEdits {
    /// The library's `ContainerEdits.Validate`, plus absolute container paths.
    fn validate(&self) -> Result<()> {
        check_env("env", &self.env)?;
        for d in &self.device_nodes {
            if !d.path.starts_with('/') {
                bail!("deviceNodes: path {:?} must be absolute", d.path);
            }
            if let Some(t) = &d.typ {
                if !["", "b", "c", "u", "p"].contains(&t.as_str()) {
                    bail!("deviceNodes {:?}: type {t:?} must be b, c, u or p", d.path);
                }
            }
            if d.major.is_some_and(|m| m < 0) || d.minor.is_some_and(|m| m < 0) {
                bail!("deviceNodes {:?}: negative device number", d.path);
            }
            if let Some(p) = &d.permissions {
                if p != "none" && !p.chars().all(|c| "rwm".contains(c)) {
                    bail!(
                        "deviceNodes {:?}: permissions {p:?} must be made of r, w and m (or none)",
                        d.path
                    );
                }
            }
        }
        for h in &self.hooks {
            if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
                bail!(
                    "hooks: hookName {:?} is none of {}",
                    h.hook_name,
                    HOOK_NAMES.join(", ")
                );
            }
            if h.path.is_empty() {
                bail!("hooks: a {} hook without a path", h.hook_name);
            }
            check_env(&format!("hooks: the {} hook's env", h.hook_name), &h.env)?;
            if h.timeout.is_some_and(|t| t <= 0) {
                bail!("hooks: the {} hook's timeout must be above 0", h.hook_name);
            }
        }
        for m in &self.mounts {
            if m.host_path.is_empty() {
                bail!("mounts: an empty hostPath (to {:?})", m.container_path);
            }
            if !m.container_path.starts_with('/') {
                bail!(
                    "mounts: containerPath {:?} must be absolute",
                    m.container_path
                );
            }
        }
        for n in &self.net_devices {
            if n.host_interface_name.is_empty() || n.name.is_empty() {
                bail!("netDevices: hostInterfaceName and name must both be given");
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        *self == ContainerEdits::default()
    }

    fn append(&mut self, o: &ContainerEdits) {
        self.env.extend(o.env.iter().cloned());
        self.device_nodes.extend(o.device_nodes.iter().cloned());
        self.hooks.extend(o.hooks.iter().cloned());
        self.mounts.extend(o.mounts.iter().cloned());
        self.additional_gids
            .extend(o.additional_gids.iter().copied());
        self.net_devices.extend(o.net_devices.iter().cloned());
        if o.intel_rdt.is_some() {
            self.intel_rdt = o.intel_rdt.clone();
        }
    }
}

/// One spec file, read and checked.
#[derive(Debug, Clone)]
struct Spec {
    path: PathBuf,
    priority: usize,
    kind: String,
    edits: ContainerEdits,
    devices: Vec<(String, ContainerEdits)>,
}

/// A YAML document as the JSON value it stands for (sigs.k8s.io/yaml's conversion, which the
/// library reads its files with): mappings with scalar keys, sequences, scalars.
fn yaml_to_json(y: &yaml_rust2::Yaml, depth: usize) -> Result<Value> {
    use yaml_rust2::Yaml;
    if depth > 64 {
        bail!("nested deeper than 64 levels");
    }
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => json!(b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => {
            let f: f64 = r
                .parse()
                .map_err(|_| anyhow::anyhow!("not a number: {r:?}"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| anyhow::anyhow!("not a finite number: {r:?}"))?
        }
        Yaml::String(s) => json!(s),
        Yaml::Array(a) => Value::Array(
            a.iter()
                .map(|v| yaml_to_json(v, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    _ => bail!("a mapping key that is not a scalar"),
                };
                if m.insert(key.clone(), yaml_to_json(v, depth + 1)?).is_some() {
                    bail!("the key {key:?} appears twice");
                }
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => bail!("an alias that does not resolve"),
        Yaml::BadValue => bail!("a value that cannot be read"),
    })
}

/// The text of a spec file as JSON (`.json`) or YAML (`.yaml`), decoded strictly (unknown
/// fields are errors, as the library's `UnmarshalStrict`).
fn decode(text: &str, yaml: bool) -> Result<SpecFile> {
    let v: Value = if yaml {
        let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| anyhow::anyhow!(e))?;
        match docs.as_slice() {
            [d] => yaml_to_json(d, 0)?,
            [] => bail!("no YAML document"),
            _ => bail!("more than one YAML document"),
        }
    } else {
        serde_json::from_str(text)?
    };
    Ok(serde_path_to_error::deserialize(v)?)
}

/// A spec file's contents, checked as the library's `Spec.validate` (version, kind, edits,
/// devices: at least one, names unique, each with edits).
fn check_spec(raw: SpecFile, path: &Path, priority: usize) -> Result<Spec> {
    if !VERSIONS.contains(&raw.cdi_version.as_str()) {
        bail!(
            "cdiVersion {:?} is none of {}",
            raw.cdi_version,
            VERSIONS.join(", ")
        );
    }
    parse_kind(&raw.kind).map_err(|e| anyhow::anyhow!("kind: {e}"))?;
    raw.container_edits.validate().context("containerEdits")?;
    let mut devices: Vec<(String, ContainerEdits)> = Vec::new();
    for d in raw.devices {
        check_device_name(&d.name).map_err(|e| anyhow::anyhow!("devices: {e}"))?;
        if devices.iter().any(|(n, _)| *n == d.name) {
            bail!("devices: {:?} is described twice", d.name);
        }
        if d.container_edits.is_empty() {
            bail!("devices: {:?} has no containerEdits", d.name);
        }
        d.container_edits
            .validate()
            .with_context(|| format!("devices: {:?}: containerEdits", d.name))?;
        devices.push((d.name, d.container_edits));
    }
    if devices.is_empty() {
        bail!("no devices");
    }
    Ok(Spec {
        path: path.to_path_buf(),
        priority,
        kind: raw.kind,
        edits: raw.container_edits,
        devices,
    })
}

/// Every spec in `dirs` (files ending in `.json` or `.yaml`, subdirectories skipped, a missing
/// directory is no error), and the error of each file that could not be read.
fn load(dirs: &[PathBuf]) -> (Vec<Spec>, Vec<String>) {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for (priority, dir) in dirs.iter().enumerate() {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let yaml = match path.extension().and_then(|x| x.to_str()) {
                Some("json") => false,
                Some("yaml") => true,
                _ => continue,
            };
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let r = std::fs::read_to_string(&path)
                .map_err(anyhow::Error::from)
                .and_then(|t| decode(&t, yaml))
                .and_then(|raw| check_spec(raw, &path, priority));
            match r {
                Ok(s) => specs.push(s),
                Err(e) => errors.push(format!("{}: {e:#}", path.display())),
            }
        }
    }
    (specs, errors)
}

/// Each qualified device name to its (spec, device) index: a later directory wins, two files of
/// one directory make the name a conflict (named in the second map).
type Registry = (
    BTreeMap<String, (usize, usize)>,
    HashMap<String, (PathBuf, PathBuf)>,
);

fn registry(specs: &[Spec]) -> Registry {
    let mut devices: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut conflicts = HashMap::new();
    for (si, s) in specs.iter().enumerate() {
        for (di, (name, _)) in s.devices.iter().enumerate() {
            let q = format!("{}={name}", s.kind);
            if let Some(&(oi, _)) = devices.get(&q) {
                let o = &specs[oi];
                if o.priority == s.priority {
                    conflicts.insert(q.clone(), (o.path.clone(), s.path.clone()));
                    continue;
                }
            }
            devices.insert(q, (si, di));
        }
    }
    for q in conflicts.keys() {
        devices.remove(q);
    }
    (devices, conflicts)
}

/// A device node with its host side found (the library's `fillMissingInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub typ: String,
    pub major: i64,
    pub minor: i64,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The cgroup rule's access ("" for `none`); only for b and c.
    pub access: String,
}

/// What the requested devices do to the config, their host side found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edits {
    pub env: Vec<String>,
    pub nodes: Vec<Node>,
    pub mounts: Vec<Mount>,
    pub hooks: Vec<Hook>,
    pub additional_gids: Vec<u32>,
    pub net_devices: Vec<NetDevice>,
}

/// Type, major and minor of the node at `host` (not followed if a symlink, as the library).
fn host_node(host: &str) -> std::io::Result<(String, i64, i64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::symlink_metadata(host)?;
    let ft = md.file_type();
    let t = if ft.is_block_device() {
        "b"
    } else if ft.is_char_device() {
        "c"
    } else if ft.is_fifo() {
        "p"
    } else {
        return Err(std::io::Error::other("not a device node"));
    };
    let r = md.rdev();
    Ok((
        t.to_string(),
        nix::sys::stat::major(r) as i64,
        nix::sys::stat::minor(r) as i64,
    ))
}

fn fill_node(d: &DeviceNode) -> Result<Node> {
    let host = d.host_path.clone().unwrap_or_else(|| d.path.clone());
    let host = if host.is_empty() {
        d.path.clone()
    } else {
        host
    };
    let mut typ = d.typ.clone().unwrap_or_default();
    let mut major = d.major.unwrap_or(0);
    let mut minor = d.minor.unwrap_or(0);
    if typ.is_empty() || (major == 0 && typ != "p") {
        let (t, ma, mi) = host_node(&host)
            .with_context(|| format!("deviceNodes {:?}: the host device {host}", d.path))?;
        // "u" is an unbuffered character device: the host shows it as "c"
        let same = typ == t || (typ == "u" && t == "c");
        if typ.is_empty() {
            typ = t;
        } else if !same {
            bail!(
                "deviceNodes {:?}: type {typ:?}, but the host device {host} is of type {t:?}",
                d.path
            );
        }
        if major == 0 && typ != "p" {
            major = ma;
            minor = mi;
        }
    }
    let access = match d.permissions.as_deref() {
        None | Some("") => "rwm".to_string(),
        Some("none") => String::new(),
        Some(p) => p.to_string(),
    };
    Ok(Node {
        path: d.path.clone(),
        typ,
        major,
        minor,
        file_mode: d.file_mode,
        uid: d.uid,
        gid: d.gid,
        access,
    })
}

fn is_bind(m: &Mount) -> bool {
    m.typ.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// The devices of `r` from the spec files: their edits merged (each spec's own once, before
/// its first device's), device nodes completed from the host, bind sources checked. Reads,
/// creates nothing. No names: nothing is read.
pub fn resolve(r: &Request) -> Result<Edits> {
    if r.names.is_empty() {
        return Ok(Edits::default());
    }
    let (specs, errors) = load(&r.dirs);
    let (devices, conflicts) = registry(&specs);
    let dirs = r
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut merged = ContainerEdits::default();
    let mut specs_used: Vec<usize> = Vec::new();
    let mut used = Vec::new();
    for n in &r.names {
        let q = n.to_string();
        let mut found: Vec<(usize, usize)> = devices.get(&q).copied().into_iter().collect();
        if found.is_empty() && n.name == "all" {
            // no device named "all": every device of the kind
            let prefix = format!("{}=", n.kind());
            found = devices
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| *v)
                .collect();
        }
        if found.is_empty() {
            let mut msg = if let Some((a, b)) = conflicts.get(&q) {
                format!(
                    "--device {q}: the CDI device is described by both {} and {} (one \
                     directory may describe a device once)",
                    a.display(),
                    b.display()
                )
            } else {
                format!("--device {q}: no CDI spec in {dirs} describes this device")
            };
            let kinds: Vec<String> = specs
                .iter()
                .filter(|s| s.kind == n.kind())
                .flat_map(|s| s.devices.iter().map(|(d, _)| d.clone()))
                .collect();
            if !kinds.is_empty() && !conflicts.contains_key(&q) {
                msg.push_str(&format!(" ({} has: {})", n.kind(), kinds.join(", ")));
            }
            for e in &errors {
                msg.push_str(&format!("; spec file not read: {e}"));
            }
            bail!(msg);
        }
        for (si, di) in found {
            if used.contains(&(si, di)) {
                continue;
            }
            used.push((si, di));
            if !specs_used.contains(&si) {
                specs_used.push(si);
                merged.append(&specs[si].edits);
            }
            merged.append(&specs[si].devices[di].1);
        }
    }
    let what = || {
        let names: Vec<String> = r.names.iter().map(Name::to_string).collect();
        format!("--device {}", names.join(", "))
    };
    if merged.intel_rdt.is_some() {
        bail!(
            "{}: the CDI spec asks for intelRdt, and husk has no Intel RDT (resctrl) support",
            what()
        );
    }
    let mut out = Edits {
        env: merged.env,
        mounts: merged.mounts,
        hooks: merged.hooks,
        additional_gids: merged.additional_gids,
        net_devices: merged.net_devices,
        nodes: Vec::new(),
    };
    for d in &merged.device_nodes {
        out.nodes
            .push(fill_node(d).with_context(|| format!("{}: CDI", what()))?);
    }
    for m in out.mounts.iter().filter(|m| is_bind(m)) {
        if std::fs::symlink_metadata(&m.host_path).is_err() {
            bail!(
                "{}: CDI mount to {}: the host path {} does not exist",
                what(),
                m.container_path,
                m.host_path
            );
        }
    }
    Ok(out)
}

/// `/a/b/` → number of separators of the cleaned path (the library's mount ordering).
fn mount_depth(p: &str) -> usize {
    let clean: PathBuf = Path::new(p).components().collect();
    clean.to_string_lossy().matches('/').count()
}

/// Edit the config as the library's `ContainerEdits.Apply`: environment entries replace those
/// of the same key, device nodes and mounts replace those at the same path (the mounts then
/// sorted, stably, parents first), hooks and additional groups are added.
pub fn apply(spec: &mut Value, e: &Edits) {
    if *e == Edits::default() {
        return;
    }
    if !e.env.is_empty() {
        let mut env: Vec<Value> = spec["process"]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for kv in &e.env {
            let key = kv.split('=').next().unwrap_or("");
            env.retain(|o| {
                o.as_str()
                    .is_none_or(|s| s.split('=').next().unwrap_or("") != key)
            });
            env.push(json!(kv));
        }
        spec["process"]["env"] = Value::Array(env);
    }
    if !e.nodes.is_empty() {
        let uid = spec["process"]["user"]["uid"].as_u64().unwrap_or(0);
        let gid = spec["process"]["user"]["gid"].as_u64().unwrap_or(0);
        let (mut devs, mut rules) = device_lists(spec);
        for n in &e.nodes {
            let mut d = json!({"path": n.path, "type": n.typ, "major": n.major, "minor": n.minor});
            if let Some(m) = n.file_mode {
                d["fileMode"] = json!(m);
            }
            // the process's ids for a node without its own, as the library does
            match n.uid {
                Some(u) => d["uid"] = json!(u),
                None if uid > 0 => d["uid"] = json!(uid),
                None => {}
            }
            match n.gid {
                Some(g) => d["gid"] = json!(g),
                None if gid > 0 => d["gid"] = json!(gid),
                None => {}
            }
            add_device(&mut devs, d);
            if n.typ == "b" || n.typ == "c" {
                rules.push(json!({"allow": true, "type": n.typ, "major": n.major,
                                  "minor": n.minor, "access": n.access}));
            }
        }
        spec["linux"]["devices"] = Value::Array(devs);
        spec["linux"]["resources"]["devices"] = Value::Array(rules);
    }
    for n in &e.net_devices {
        spec["linux"]["netDevices"][&n.host_interface_name] = json!({"name": n.name});
    }
    if !e.mounts.is_empty() {
        let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
        for m in &e.mounts {
            mounts.retain(|o| o["destination"] != m.container_path.as_str());
            let mut v = json!({"destination": m.container_path, "source": m.host_path});
            if let Some(t) = m.typ.as_deref().filter(|t| !t.is_empty()) {
                v["type"] = json!(t);
            }
            if !m.options.is_empty() {
                v["options"] = json!(m.options);
            }
            mounts.push(v);
        }
        mounts.sort_by_key(|m| mount_depth(m["destination"].as_str().unwrap_or("")));
        spec["mounts"] = Value::Array(mounts);
    }
    for h in &e.hooks {
        let mut v = json!({"path": h.path});
        if !h.args.is_empty() {
            v["args"] = json!(h.args);
        }
        if !h.env.is_empty() {
            v["env"] = json!(h.env);
        }
        if let Some(t) = h.timeout {
            v["timeout"] = json!(t);
        }
        let list = &mut spec["hooks"][&h.hook_name];
        match list.as_array_mut() {
            Some(a) => a.push(v),
            None => *list = json!([v]),
        }
    }
    if !e.additional_gids.is_empty() {
        let mut gids: Vec<Value> = spec["process"]["user"]["additionalGids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for &g in &e.additional_gids {
            if g != 0 && !gids.contains(&json!(g)) {
                gids.push(json!(g));
            }
        }
        spec["process"]["user"]["additionalGids"] = Value::Array(gids);
    }
}

/// The spec's device nodes (for CDI's edits and `flags::apply`'s `--device`) (`linux.devices`) and device cgroup rules
/// (`linux.resources.devices`), copied out to be edited.
pub(super) fn device_lists(spec: &Value) -> (Vec<Value>, Vec<Value>) {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    (
        list(&spec["linux"]["devices"]),
        list(&spec["linux"]["resources"]["devices"]),
    )
}

/// The device node `d` added to `devs`, in place of one at the same path.
pub(super) fn add_device(devs: &mut Vec<Value>, d: Value) {
    devs.retain(|o| o["path"] != d["path"]);
    devs.push(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn names() {
        let n = parse_name("nvidia.com/gpu=0").unwrap();
        assert_eq!(
            (n.vendor.as_str(), n.class.as_str(), n.name.as_str()),
            ("nvidia.com", "gpu", "0")
        );
        assert_eq!(n.kind(), "nvidia.com/gpu");
        assert_eq!(n.to_string(), "nvidia.com/gpu=0");
        assert_eq!(
            parse_name("a.b-c_d/x.y=GPU-1:mig.2").unwrap().name,
            "GPU-1:mig.2"
        );
        crate::up::flags::assert_refused(
            "--device",
            &[
                ("vendor.com=x", "not VENDOR/CLASS"),
                ("vendor.com/=x", "empty class"),
                ("1vendor/c=x", "must start with a letter"),
                ("vendor-/c=x", "must end with a letter or digit"),
                ("ven dor/c=x", "invalid character ' '"),
                ("vendor/c/d=x", "invalid character '/'"),
                ("vendor/c=", "empty device name"),
                ("vendor/c=-x", "must start and end"),
                ("vendor/c=a b", "invalid character ' '"),
            ],
            parse_name,
        );
        assert!(is_name("vendor.com/class=x"));
        assert!(is_name("bad=x"));
        assert!(!is_name("/dev/null"));
        assert!(!is_name("/dev/a=b"));
        assert!(!is_name("relative"));
    }

    #[test]
    fn request_dirs_and_names() {
        let devs: Vec<String> = ["/dev/fuse", "a.com/b=c", "a.com/b=c", "a.com/b=d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = parse(&devs, &CdiFlags::default()).unwrap();
        assert_eq!(
            r.dirs,
            vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")]
        );
        let names: Vec<String> = r.names.iter().map(Name::to_string).collect();
        assert_eq!(names, ["a.com/b=c", "a.com/b=d"], "deduplicated, in order");
        let f = CdiFlags {
            cdi_spec_dir: vec!["/x".into(), "/y".into()],
        };
        assert_eq!(
            parse(&[], &f).unwrap().dirs,
            vec![PathBuf::from("/x"), PathBuf::from("/y")]
        );
        let f = CdiFlags {
            cdi_spec_dir: vec!["rel".into()],
        };
        assert!(err(parse(&[], &f)).contains("--cdi-spec-dir rel: expected an absolute"));
    }

    const JSON: &str = r#"{
        "cdiVersion": "0.6.0", "kind": "test.example/dev",
        "containerEdits": {"env": ["SPEC=1"]},
        "devices": [
            {"name": "nul", "containerEdits": {
                "env": ["DEV=nul"],
                "deviceNodes": [{"path": "/dev/cdi-null", "hostPath": "/dev/null",
                                 "permissions": "rw", "fileMode": 438}],
                "mounts": [{"hostPath": "/tmp", "containerPath": "/mnt/t",
                            "type": "bind", "options": ["rbind", "ro"]}],
                "hooks": [{"hookName": "createContainer", "path": "/bin/true",
                           "args": ["true", "x"], "timeout": 5}],
                "additionalGids": [5, 0]}},
            {"name": "zero", "containerEdits": {"deviceNodes": [{"path": "/dev/zero"}]}}
        ]}"#;

    const YAML: &str = r#"
cdiVersion: "0.6.0"
kind: test.example/dev
containerEdits:
  env: ["SPEC=1"]
devices:
  - name: nul
    containerEdits:
      env:
        - DEV=nul
      deviceNodes:
        - path: /dev/cdi-null
          hostPath: /dev/null
          permissions: rw
          fileMode: 438
      mounts:
        - hostPath: /tmp
          containerPath: /mnt/t
          type: bind
          options: [rbind, ro]
      hooks:
        - hookName: createContainer
          path: /bin/true
          args: ["true", x]
          timeout: 5
      additionalGids: [5, 0]
  - name: zero
    containerEdits:
      deviceNodes:
        - path: /dev/zero
"#;

    #[test]
    fn json_and_yaml_read_alike() {
        let j = decode(JSON, false).unwrap();
        let y = decode(YAML, true).unwrap();
        assert_eq!(format!("{j:?}"), format!("{y:?}"));
        assert_eq!(j.devices.len(), 2);
        let n = &j.devices[0].container_edits.device_nodes[0];
        assert_eq!(n.host_path.as_deref(), Some("/dev/null"));
        assert_eq!(n.file_mode, Some(438));
        assert_eq!(j.devices[0].container_edits.additional_gids, [5, 0]);
        // YAML 1.2: 0o666 is octal, 0666 decimal
        let mode = |m: &str| {
            let y = decode(
                &YAML.replace("fileMode: 438", &format!("fileMode: {m}")),
                true,
            );
            y.unwrap().devices[0].container_edits.device_nodes[0].file_mode
        };
        assert_eq!(mode("0o666"), Some(0o666));
        assert_eq!(mode("0666"), Some(666));
        // strict: an unknown field, a duplicate key, two documents, not a mapping
        assert!(err(decode(&JSON.replace("\"kind\"", "\"knd\""), false)).contains("knd"));
        assert!(err(decode(
            &YAML.replace("path: /bin/true", "pth: /bin/true"),
            true
        ))
        .contains("pth"));
        assert!(err(decode("kind: a/b\nkind: a/c\n", true)).contains("duplicated key"));
        assert!(err(decode("a: 1\n---\nb: 2\n", true)).contains("more than one"));
        assert!(decode("[1, 2]", true).is_err());
        assert!(decode("key: [unclosed", true).is_err());
    }

    #[test]
    fn spec_checks() {
        let p = Path::new("/x/a.json");
        let check = |s: &str| check_spec(decode(s, false).unwrap(), p, 0).map(|_| ());
        check(JSON).unwrap();
        for (from, to, want) in [
            ("\"0.6.0\"", "\"9.9.9\"", "cdiVersion \"9.9.9\""),
            ("test.example/dev", "test.example", "kind"),
            ("\"name\": \"zero\"", "\"name\": \"nul\"", "described twice"),
            (
                "\"name\": \"zero\"",
                "\"name\": \"ze ro\"",
                "invalid character",
            ),
            ("\"DEV=nul\"", "\"=nul\"", "not KEY=VALUE"),
            (
                "\"permissions\": \"rw\"",
                "\"permissions\": \"rx\"",
                "permissions \"rx\"",
            ),
            ("\"/dev/cdi-null\"", "\"dev/cdi-null\"", "must be absolute"),
            (
                "\"createContainer\"",
                "\"preStart\"",
                "hookName \"preStart\"",
            ),
            ("\"timeout\": 5", "\"timeout\": 0", "timeout"),
            (
                "\"containerPath\": \"/mnt/t\"",
                "\"containerPath\": \"\"",
                "containerPath",
            ),
            (
                "{\"deviceNodes\": [{\"path\": \"/dev/zero\"}]}",
                "{}",
                "no containerEdits",
            ),
        ] {
            let s = JSON.replace(from, to);
            assert_ne!(s, JSON, "{from}");
            let e = err(check(&s));
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
        let e = err(check(
            r#"{"cdiVersion": "1.0.0", "kind": "a.b/c", "devices": []}"#,
        ));
        assert!(e.contains("no devices"), "{e}");
    }

    fn spec_dirs(files: &[(&str, &str, &str)]) -> (tempfile::TempDir, Vec<PathBuf>) {
        let t = tempfile::tempdir().unwrap();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (dir, name, text) in files {
            let d = t.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), text).unwrap();
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        (t, dirs)
    }

    fn req(dirs: &[PathBuf], names: &[&str]) -> Request {
        Request {
            dirs: dirs.to_vec(),
            names: names.iter().map(|n| parse_name(n).unwrap()).collect(),
        }
    }

    fn one(kind: &str, name: &str, env: &str) -> String {
        format!(
            r#"{{"cdiVersion": "0.5.0", "kind": "{kind}",
                 "devices": [{{"name": "{name}", "containerEdits": {{"env": ["{env}"]}}}}]}}"#
        )
    }

    #[test]
    fn resolve_merges_spec_and_device_edits() {
        let (_t, dirs) = spec_dirs(&[("a", "dev.yaml", YAML), ("a", "notes.txt", "ignored")]);
        let e = resolve(&req(&dirs, &["test.example/dev=nul"])).unwrap();
        assert_eq!(e.env, ["SPEC=1", "DEV=nul"], "the spec's edits first, once");
        assert_eq!(
            e.nodes,
            [Node {
                path: "/dev/cdi-null".into(),
                typ: "c".into(),
                major: 1,
                minor: 3,
                file_mode: Some(438),
                uid: None,
                gid: None,
                access: "rw".into(),
            }]
        );
        assert_eq!(e.mounts[0].container_path, "/mnt/t");
        assert_eq!(e.hooks[0].hook_name, "createContainer");
        assert_eq!(e.additional_gids, [5, 0]);
        // both devices: the spec's edits still once; "all" means each of the kind
        for names in [
            &["test.example/dev=nul", "test.example/dev=zero"][..],
            &["test.example/dev=all"][..],
        ] {
            let e = resolve(&req(&dirs, names)).unwrap();
            assert_eq!(e.env, ["SPEC=1", "DEV=nul"], "{names:?}");
            let nodes: Vec<(&str, i64, i64, &str)> = e
                .nodes
                .iter()
                .map(|n| (n.path.as_str(), n.major, n.minor, n.access.as_str()))
                .collect();
            assert_eq!(
                nodes,
                [("/dev/cdi-null", 1, 3, "rw"), ("/dev/zero", 1, 5, "rwm")]
            );
        }
        // no names: nothing is read, not even a missing directory
        let e = resolve(&req(&[PathBuf::from("/no/such/dir")], &[])).unwrap();
        assert_eq!(e, Edits::default());
    }

    #[test]
    fn a_device_named_all_is_taken_as_it_is() {
        let s = r#"{"cdiVersion": "0.5.0", "kind": "v.com/c", "devices": [
            {"name": "all", "containerEdits": {"env": ["ALL=1"]}},
            {"name": "one", "containerEdits": {"env": ["ONE=1"]}}]}"#;
        let (_t, dirs) = spec_dirs(&[("a", "s.json", s)]);
        assert_eq!(
            resolve(&req(&dirs, &["v.com/c=all"])).unwrap().env,
            ["ALL=1"]
        );
    }

    #[test]
    fn later_directories_win_and_one_directory_may_not_conflict() {
        let (_t, dirs) = spec_dirs(&[
            ("etc", "a.json", &one("v.com/c", "d", "FROM=etc")),
            ("run", "a.yaml", &one("v.com/c", "d", "FROM=run")),
        ]);
        assert_eq!(
            resolve(&req(&dirs, &["v.com/c=d"])).unwrap().env,
            ["FROM=run"]
        );
        let rev: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
        assert_eq!(
            resolve(&req(&rev, &["v.com/c=d"])).unwrap().env,
            ["FROM=etc"]
        );
        let (_t, dirs) = spec_dirs(&[
            ("etc", "a.json", &one("v.com/c", "d", "X=1")),
            ("etc", "b.json", &one("v.com/c", "d", "X=2")),
            ("etc", "c.json", &one("v.com/c", "other", "X=3")),
        ]);
        let e = err(resolve(&req(&dirs, &["v.com/c=d"])));
        assert!(e.contains("--device v.com/c=d") && e.contains("a.json") && e.contains("b.json"));
        // the conflict spoils only that device
        assert_eq!(
            resolve(&req(&dirs, &["v.com/c=other"])).unwrap().env,
            ["X=3"]
        );
    }

    #[test]
    fn unknown_devices_and_bad_files_are_named() {
        let (t, mut dirs) = spec_dirs(&[
            ("a", "good.json", &one("v.com/c", "d", "X=1")),
            ("a", "bad.yaml", "cdiVersion: [\n"),
        ]);
        dirs.push(t.path().join("missing"));
        let e = err(resolve(&req(&dirs, &["v.com/c=nope"])));
        let shown = format!("{}, {}", dirs[0].display(), dirs[1].display());
        assert!(e.contains("--device v.com/c=nope: no CDI spec in"), "{e}");
        assert!(e.contains(&shown), "the directories searched: {e}");
        assert!(e.contains("v.com/c has: d"), "{e}");
        assert!(
            e.contains("bad.yaml"),
            "the file that could not be read: {e}"
        );
        // a bad file does not spoil the good one
        assert_eq!(resolve(&req(&dirs, &["v.com/c=d"])).unwrap().env, ["X=1"]);
        assert!(err(resolve(&req(&dirs, &["other.com/c=d"]))).contains("other.com/c=d"));
    }

    #[test]
    fn host_side_errors() {
        let with = |edits: &str| {
            format!(
                r#"{{"cdiVersion": "0.6.0", "kind": "v.com/c",
                     "devices": [{{"name": "d", "containerEdits": {edits}}}]}}"#
            )
        };
        for (edits, want) in [
            (
                r#"{"deviceNodes": [{"path": "/dev/x", "hostPath": "/no/such"}]}"#,
                "/no/such",
            ),
            (
                r#"{"deviceNodes": [{"path": "/dev/x", "hostPath": "/etc/hostname"}]}"#,
                "not a device node",
            ),
            (
                r#"{"deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/null", "type": "b"}]}"#,
                "of type \"c\"",
            ),
            (
                r#"{"mounts": [{"hostPath": "/no/such", "containerPath": "/m", "options": ["bind"]}]}"#,
                "the host path /no/such does not exist",
            ),
            (r#"{"intelRdt": {"closID": "x"}}"#, "intelRdt"),
        ] {
            let (_t, dirs) = spec_dirs(&[("a", "s.json", &with(edits))]);
            let e = err(resolve(&req(&dirs, &["v.com/c=d"])));
            assert!(
                e.contains("--device v.com/c=d") && e.contains(want),
                "{edits}: {e}"
            );
        }
        // given type and numbers are taken without the host
        let (_t, dirs) = spec_dirs(&[(
            "a",
            "s.json",
            &with(
                r#"{"deviceNodes": [{"path": "/dev/x", "hostPath": "/no/such", "type": "b",
                                 "major": 8, "minor": 1, "permissions": "none"}]}"#,
            ),
        )]);
        let e = resolve(&req(&dirs, &["v.com/c=d"])).unwrap();
        assert_eq!(
            (
                e.nodes[0].major,
                e.nodes[0].minor,
                e.nodes[0].access.as_str()
            ),
            (8, 1, "")
        );
    }

    #[test]
    fn apply_edits() {
        let mut spec = json!({
            "process": {"env": ["PATH=/bin", "A=old"], "user": {"uid": 1000, "gid": 1000}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
                {"destination": "/m", "type": "tmpfs", "source": "old"},
            ],
            "linux": {"devices": [{"path": "/dev/x", "type": "c", "major": 9, "minor": 9}],
                      "resources": {"devices": [{"allow": false, "access": "rwm"}]}},
            "hooks": {"poststop": [{"path": "/old"}]},
        });
        let e = Edits {
            env: vec!["A=new".into(), "B=1".into()],
            nodes: vec![
                Node {
                    path: "/dev/x".into(),
                    typ: "c".into(),
                    major: 1,
                    minor: 3,
                    file_mode: Some(0o600),
                    uid: None,
                    gid: Some(7),
                    access: "rw".into(),
                },
                Node {
                    path: "/dev/f".into(),
                    typ: "p".into(),
                    major: 0,
                    minor: 0,
                    file_mode: None,
                    uid: Some(0),
                    gid: None,
                    access: "rwm".into(),
                },
            ],
            mounts: vec![
                Mount {
                    host_path: "/h/deep".into(),
                    container_path: "/a/b/c".into(),
                    typ: None,
                    options: vec!["bind".into()],
                },
                Mount {
                    host_path: "/h".into(),
                    container_path: "/m".into(),
                    typ: Some("bind".into()),
                    options: vec![],
                },
            ],
            hooks: vec![
                Hook {
                    hook_name: "poststop".into(),
                    path: "/new".into(),
                    ..Default::default()
                },
                Hook {
                    hook_name: "createRuntime".into(),
                    path: "/h".into(),
                    args: vec!["h".into()],
                    env: vec!["K=V".into()],
                    timeout: Some(3),
                },
            ],
            additional_gids: vec![0, 5, 5],
            net_devices: vec![NetDevice {
                host_interface_name: "eth9".into(),
                name: "net0".into(),
            }],
        };
        apply(&mut spec, &e);
        assert_eq!(spec["process"]["env"], json!(["PATH=/bin", "A=new", "B=1"]));
        assert_eq!(
            spec["linux"]["devices"],
            json!([
                {"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600,
                 "uid": 1000, "gid": 7},
                {"path": "/dev/f", "type": "p", "major": 0, "minor": 0, "uid": 0, "gid": 1000},
            ])
        );
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"},
                   {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}])
        );
        let dests: Vec<&str> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            ["/proc", "/m", "/dev/shm", "/a/b/c"],
            "replaced, parents first"
        );
        assert_eq!(
            spec["mounts"][1],
            json!({"destination": "/m", "source": "/h", "type": "bind"})
        );
        assert_eq!(
            spec["mounts"][3],
            json!({"destination": "/a/b/c", "source": "/h/deep",
                                             "options": ["bind"]})
        );
        assert_eq!(
            spec["hooks"]["poststop"],
            json!([{"path": "/old"}, {"path": "/new"}])
        );
        assert_eq!(
            spec["hooks"]["createRuntime"],
            json!([{"path": "/h", "args": ["h"], "env": ["K=V"], "timeout": 3}])
        );
        assert_eq!(spec["process"]["user"]["additionalGids"], json!([5]));
        assert_eq!(
            spec["linux"]["netDevices"],
            json!({"eth9": {"name": "net0"}})
        );
        // no edits: the config is untouched
        let before = spec.clone();
        apply(&mut spec, &Edits::default());
        assert_eq!(spec, before);
    }
}
