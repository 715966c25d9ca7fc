//! Attaching a container made by husk to networks.
//!
//! Layout under the network run dir:
//! * `attachments/ID/NETWORK.json`: one record per (container, network), written BEFORE the
//!   namespace is pinned and before CNI ADD runs (phase `adding`), so a husk killed at any moment
//!   leaves a record that `gc` turns into a DEL; it holds the conflist and capability arguments
//!   the ADD used, and the result once the ADD succeeded (phase `attached`).
//! * `netns/ID`: the container's network namespace pinned by a bind mount, so the namespace (and
//!   with it the veth and the addresses) outlives the container's processes until the DEL ran.
//! * `.lock`: a flock serialising every change to records and pins.

use super::cni::{self, Env};
use super::dns::{self, HostsFile, Peer};
use super::ports::{self, PortMapping};
use super::{find, lock_dir, mkdir, native, Dirs, Source};
use crate::container::{status_of, Global};
use crate::state::{self, Status, Store};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Adding,
    Attached,
    Deleting,
}

/// What made an attachment (and so undoes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The conflist's CNI plugins (every record written before the native driver existed).
    #[default]
    Plugins,
    /// husk itself ([`super::native`]), for the bridge lists husk writes.
    Native,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub container: String,
    pub network: String,
    /// The `--root` the container lives in.
    pub root: PathBuf,
    pub pid: i32,
    pub pid_start_time: u64,
    pub netns: PathBuf,
    pub ifname: String,
    pub conflist: Value,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// (device, inode) of the network namespace the plugins ran in (the host side): DEL must
    /// run there too, never in another namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_netns: Option<(u64, u64)>,
    #[serde(default)]
    pub driver: Driver,
    /// What the other containers on this network call this one in their hosts files (its id,
    /// its hostname, its aliases); empty on the default network, which gives no names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The hosts file husk keeps for the container (`husk up`'s), rewritten whenever a
    /// container joins or leaves a network it is on; none for a bundle of the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostsFile>,
    /// The `[::1]` proxies of its published ports (dual stack: [`super::proxy`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<super::proxy::Proxy>,
}

impl Attachment {
    fn runtime_config(&self) -> Value {
        json!({ "portMappings": self.ports })
    }

    fn env<'a>(&'a self, dirs: &'a Dirs) -> Env<'a> {
        Env {
            network: &self.network,
            container_id: &self.container,
            netns: &self.netns,
            ifname: &self.ifname,
            args: "IgnoreUnknown=1",
            path: &dirs.cni_path,
            timeout: dirs.timeout,
        }
    }

    fn target(&self) -> native::Target<'_> {
        native::Target {
            network: &self.network,
            container: &self.container,
            ifname: &self.ifname,
            netns: &self.netns,
            ports: &self.ports,
            cni_version: self.conflist["cniVersion"].as_str().unwrap_or("1.0.0"),
        }
    }

    /// The native driver's plan of the recorded conflist.
    fn plan(&self) -> Result<native::Plan> {
        native::plan(&self.conflist).with_context(|| {
            format!(
                "container {}: the attachment to network {} was made natively but its recorded \
                 conflist is not one the native driver can undo",
                self.container, self.network
            )
        })
    }

    /// The container's addresses on this network, from the ADD result, without their prefix.
    fn addresses(&self) -> Vec<IpAddr> {
        self.ips()
            .iter()
            .filter_map(|a| a.split('/').next()?.parse().ok())
            .collect()
    }

    /// The container's addresses on this network, from the ADD result.
    pub fn ips(&self) -> Vec<String> {
        self.result
            .as_ref()
            .and_then(|r| r["ips"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["address"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn container_dir(dirs: &Dirs, id: &str) -> PathBuf {
    dirs.run.join("attachments").join(id)
}

fn record_path(dirs: &Dirs, id: &str, network: &str) -> PathBuf {
    container_dir(dirs, id).join(format!("{network}.json"))
}

fn pin_path(dirs: &Dirs, id: &str) -> PathBuf {
    dirs.run.join("netns").join(id)
}

fn save(dirs: &Dirs, a: &Attachment) -> Result<()> {
    mkdir(&container_dir(dirs, &a.container), 0o700)?;
    let data = serde_json::to_vec_pretty(a)?;
    let p = record_path(dirs, &a.container, &a.network);
    super::keep::hold(&p);
    state::write_atomic(&p, &data, 0o600)
}

/// Every record (unreadable ones are reported, not skipped silently).
pub fn records(dirs: &Dirs) -> Result<Vec<Attachment>> {
    let base = dirs.run.join("attachments");
    let mut out = Vec::new();
    let rd = match fs::read_dir(&base) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", base.display())),
    };
    let mut dirs_: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    dirs_.sort();
    for d in dirs_ {
        let mut files: Vec<PathBuf> = fs::read_dir(&d)
            .with_context(|| format!("read {}", d.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let data = fs::read(&f).with_context(|| format!("read {}", f.display()))?;
            let a: Attachment = serde_json::from_slice(&data)
                .with_context(|| format!("malformed attachment record {}", f.display()))?;
            out.push(a);
        }
    }
    Ok(out)
}

/// The containers attached to `network`.
pub fn records_of_network(dirs: &Dirs, network: &str) -> Result<Vec<String>> {
    Ok(records(dirs)?
        .into_iter()
        .filter(|a| a.network == network)
        .map(|a| a.container)
        .collect())
}

fn ns_inode(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Bind-mount `/proc/PID/ns/net` on the pin (once per container), checking that the pinned
/// namespace is still that of the process started at `start_time`.
fn pin(dirs: &Dirs, id: &str, pid: i32, start_time: u64) -> Result<PathBuf> {
    let p = pin_path(dirs, id);
    let src = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if ns_inode(&p).is_some() && ns_inode(&p) == ns_inode(&src) {
        return Ok(p);
    }
    mkdir(p.parent().expect("pin has a parent"), 0o755)?;
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("create {}", p.display()))?;
    nix::mount::mount(
        Some(&src),
        &p,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        let _ = fs::remove_file(&p);
        anyhow::anyhow!("pin {} on {}: {}", src.display(), p.display(), e.desc())
    })?;
    if state::process_start_time(pid) != Some(start_time) {
        unpin(dirs, id)?;
        bail!("container {id} exited while its network namespace was being pinned");
    }
    Ok(p)
}

/// nsfs's magic (statfs f_type): what a pin is once its bind mount is in place.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A pin file without its mount (husk killed between creating the file and mounting on it)
/// is removed: plugins accept a CNI_NETNS that does not exist on DEL, not one that is a plain
/// file.
fn drop_unmounted_pin(dirs: &Dirs, id: &str) -> Result<()> {
    let p = pin_path(dirs, id);
    match nix::sys::statfs::statfs(&p) {
        Ok(st) if st.filesystem_type().0 != NSFS_MAGIC => {
            fs::remove_file(&p).with_context(|| format!("remove the unmounted pin {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// Unmount and remove the pin (nothing to do when there is none).
fn unpin(dirs: &Dirs, id: &str) -> Result<()> {
    let p = pin_path(dirs, id);
    loop {
        match nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => continue, // a pin stacked twice by a race: take every layer off
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
            Err(e) => bail!("unmount {}: {}", p.display(), e.desc()),
        }
    }
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", p.display())),
    }
}

/// What `attach` takes beyond the network and the container.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub ports: Vec<PortMapping>,
    /// Interface name in the container (default: the first free ethN).
    pub ifname: Option<String>,
    /// More names for the container on this network (`--network-alias`), beside its id.
    pub aliases: Vec<String>,
    /// The hosts file husk keeps for the container: written with its address and the other
    /// containers of the network, and kept so as they come and go.
    pub hosts: Option<HostsFile>,
}

/// Whether containers on `network` know each other by name: every network but the default
/// one, as Docker's default bridge and podman's default network give no names and their
/// user-defined networks do.
pub fn gives_names(network: &str) -> bool {
    network != super::DEFAULT_NETWORK
}

/// The names a container has on a network: its id, its hostname, its aliases (each once).
fn names_of(network: &str, id: &str, o: &AttachOptions) -> Result<Vec<String>> {
    for a in &o.aliases {
        dns::check_alias("network alias", a)?;
    }
    if !gives_names(network) {
        if let Some(a) = o.aliases.first() {
            bail!(
                "network alias {a:?}: network {network} (the default network) gives no names; \
                 aliases need a network of husk network create"
            );
        }
        return Ok(Vec::new());
    }
    let mut names = vec![id.to_string()];
    for n in o.hosts.iter().map(|h| &h.hostname).chain(o.aliases.iter()) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    Ok(names)
}

/// Attach container `id` (of `g`'s store) to `network`: record, pin, then the native driver's
/// add, or loopback up and CNI ADD.
pub fn attach(
    g: &Global,
    dirs: &Dirs,
    network: &str,
    id: &str,
    o: &AttachOptions,
) -> Result<Attachment> {
    state::validate_id(id)?;
    let _keep = super::keep::Scope::enter();
    let net = find(dirs, network)?;
    // (aliases checked before anything is locked or made)
    names_of(&net.name, id, o)?;
    let _lock = lock_dir(&dirs.run)?;
    let st = g
        .store
        .load(id)
        .with_context(|| format!("network {network}: attach"))?;
    match status_of(g, &st) {
        Status::Created | Status::Running | Status::Paused => {}
        s => bail!(
            "container {id} is {}, not running: cannot attach it to network {network}",
            s.as_str()
        ),
    }
    let ns = PathBuf::from(format!("/proc/{}/ns/net", st.pid));
    if ns_inode(&ns).is_none() {
        bail!("container {id}: cannot read {}", ns.display());
    }
    if ns_inode(&ns) == ns_inode(Path::new("/proc/self/ns/net")) {
        bail!("container {id} has no network namespace of its own: cannot attach it to network {network}");
    }
    // husk's own bridge lists are attached natively unless the plugins are asked for
    let driver =
        if dirs.native && net.source == Source::Husk && native::plan(&net.conflist).is_some() {
            Driver::Native
        } else {
            Driver::Plugins
        };
    if driver == Driver::Plugins {
        // every plugin must exist before anything runs (a DEL could not undo a half-run list)
        for ty in net
            .plugin_types()
            .iter()
            .map(String::as_str)
            .chain(["loopback"])
        {
            cni::find_plugin(&net.name, ty, &dirs.cni_path)?;
        }
    }
    // records of an earlier container with this id (it was deleted and made again): release
    for mut stale in records(dirs)?
        .into_iter()
        .filter(|a| a.container == id && (a.pid != st.pid || a.pid_start_time != st.pid_start_time))
    {
        release(dirs, &mut stale).with_context(|| {
            format!("container {id}: release the attachments of its previous run")
        })?;
    }
    let all = records(dirs)?;
    // a container of husk up attached to one more network with husk network attach: the hosts
    // file its first attach recorded is kept the same way
    let hosts = o.hosts.clone().or_else(|| {
        all.iter()
            .filter(|a| a.container == id)
            .find_map(|a| a.hosts.clone())
    });
    let names = names_of(
        &net.name,
        id,
        &AttachOptions {
            hosts: hosts.clone(),
            ..o.clone()
        },
    )?;
    if all
        .iter()
        .any(|a| a.container == id && a.network == network)
    {
        bail!("container {id} is already attached to network {network}");
    }
    let dual_stack = net.subnet6.is_some();
    for (i, m) in o.ports.iter().enumerate() {
        // an IPv6 host address needs IPv6 on the network (a list whose addresses husk cannot
        // read is left to its plugins)
        if net.subnet.is_some() {
            ports::check_family(network, m, dual_stack)?;
        }
        if let Some(other) = o.ports[..i].iter().find(|x| ports::clash(x, m)) {
            bail!("network {network}: host port {m} clashes with {other}");
        }
        for a in &all {
            if let Some(other) = a.ports.iter().find(|x| ports::clash(x, m)) {
                bail!(
                    "network {network}: host port {m} is already published by container {} ({other})",
                    a.container
                );
            }
        }
        ports::check_free(network, m, dual_stack)?;
    }
    let ifname = match &o.ifname {
        Some(n) => {
            if !crate::sys::netlink::valid_ifname(n) {
                bail!("interface name {n:?}: expected 1 to 15 bytes without '/', ':' or spaces");
            }
            if all.iter().any(|a| a.container == id && &a.ifname == n) {
                bail!("container {id} already has interface {n}");
            }
            n.clone()
        }
        None => (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !all.iter().any(|a| a.container == id && &a.ifname == n))
            .expect("an unused ethN"),
    };
    let mut a = Attachment {
        container: id.to_string(),
        network: net.name.clone(),
        root: g.store.root.clone(),
        pid: st.pid,
        pid_start_time: st.pid_start_time,
        netns: pin_path(dirs, id),
        ifname,
        conflist: net.conflist.clone(),
        ports: o.ports.clone(),
        phase: Phase::Adding,
        result: None,
        host_netns: ns_inode(Path::new("/proc/self/ns/net")),
        driver,
        names,
        hosts,
        proxies: Vec::new(),
    };
    save(dirs, &a)?;
    let added = (|| -> Result<Value> {
        pin(dirs, id, st.pid, st.pid_start_time)?;
        match a.driver {
            Driver::Native => native::add(&a.plan()?, &a.target()),
            Driver::Plugins => {
                loopback_up(dirs, &a)?;
                cni::add_list(&a.conflist, &a.runtime_config(), &a.env(dirs))
            }
        }
    })();
    match added {
        Ok(r) => {
            a.result = Some(r);
            // the IPv6 loopback, which the kernel cannot DNAT, through a proxy
            let proxied = start_proxies(dirs, &mut a);
            a.phase = Phase::Attached;
            let written = proxied
                .and_then(|()| save(dirs, &a))
                .and_then(|()| refresh_hosts(dirs, &a));
            if let Err(e) = written {
                if let Err(d) = release(dirs, &mut a) {
                    return Err(e.context(format!("undoing the attach failed too: {d:#}")));
                }
                return Err(e);
            }
            Ok(a)
        }
        Err(e) => {
            // undo every plugin (DEL of the list); a failed undo keeps the record for gc
            if let Err(d) = release(dirs, &mut a) {
                return Err(e.context(format!("undoing the attach failed too: {d:#}")));
            }
            Err(e)
        }
    }
}

/// The `[::1]` proxies of a dual-stack attachment's published ports, recorded in `a` as each
/// starts (so a failure's release ends those already running). Through the CNI plugins the
/// proxied ports get the guard that keeps portmap's DNAT off `::1` ([`native::nft::loopback_guard_batch`]);
/// where it cannot be made, those proxies are ended and the attach goes on with a warning
/// naming the ports (`[::1]` then does not answer them).
fn start_proxies(dirs: &Dirs, a: &mut Attachment) -> Result<()> {
    let Some(ip6) = a.addresses().into_iter().find_map(|i| match i {
        IpAddr::V6(v6) => Some(v6),
        IpAddr::V4(_) => None,
    }) else {
        return Ok(());
    };
    let record = record_path(dirs, &a.container, &a.network);
    let ports = a.ports.clone();
    let mut proxied = Vec::new();
    for m in super::proxy::wanted(&ports) {
        if let Some(p) = super::proxy::start(&a.network, &record, m, ip6)? {
            a.proxies.push(p);
            proxied.push(m);
            crate::fault::step("network attach: proxy started");
        }
    }
    if a.driver == Driver::Plugins && !proxied.is_empty() {
        let guarded = native::nft::loopback_guard_batch(&a.target().table(), &proxied)
            .and_then(|b| native::nft::apply(&a.network, &b));
        if let Err(e) = guarded {
            for p in a.proxies.drain(..) {
                super::proxy::stop(&p);
            }
            let list: Vec<String> = proxied.iter().map(|m| m.to_string()).collect();
            crate::logging::warn(&format!(
                "network {}: ports {}: [::1] does not answer them: portmap DNATs the IPv6 \
                 loopback, whose replies the kernel drops, and keeping it for a proxy failed: \
                 {e:#}",
                a.network,
                list.join(", ")
            ));
        } else {
            crate::fault::step("network attach: [::1] guard made");
        }
    }
    Ok(())
}

/// True when a release must remove the `[::1]` guard of an attachment made through the
/// plugins: it has proxies, or it never finished (a guard may have been made before the
/// proxies were recorded).
fn may_have_guard(a: &Attachment) -> bool {
    a.driver == Driver::Plugins
        && !super::proxy::wanted(&a.ports).is_empty()
        && (a.phase == Phase::Adding || !a.proxies.is_empty())
}

/// Bring the container's `lo` up with the loopback plugin. It is not part of a network's list:
/// its DEL sets `lo` down, which must not happen when one of several networks is detached.
fn loopback_up(dirs: &Dirs, a: &Attachment) -> Result<()> {
    let conf = json!({"cniVersion": "1.0.0", "name": "husk-loopback", "type": "loopback"});
    let mut env = a.env(dirs);
    env.ifname = "lo";
    cni::exec("ADD", "loopback", &conf, &env).map(drop)
}

/// Remove the record, and the pin when it was the container's last.
fn forget(dirs: &Dirs, a: &Attachment) -> Result<()> {
    let p = record_path(dirs, &a.container, &a.network);
    super::keep::hold(&p);
    match fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", p.display())),
    }
    let d = container_dir(dirs, &a.container);
    let left: Vec<PathBuf> = fs::read_dir(&d)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    // no record left (a temp file of a record write that was killed is no record)
    if !left
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "json"))
    {
        unpin(dirs, &a.container)?;
        for p in left {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_dir(&d);
    }
    Ok(())
}

/// DEL for one record (the plugins' or the native driver's), then forget it. A failed DEL keeps the record (phase `deleting`) so
/// the next detach or gc tries again.
fn release(dirs: &Dirs, a: &mut Attachment) -> Result<()> {
    if !same_host_ns(a) {
        bail!(
            "container {}: its attachment to network {} was made from another network namespace; \
             detach it (or run husk network gc) from that one",
            a.container,
            a.network
        );
    }
    let guard = may_have_guard(a);
    a.phase = Phase::Deleting;
    save(dirs, a)?;
    for p in &a.proxies {
        super::proxy::stop(p);
    }
    if guard {
        let table = a.target().table();
        // (a namespace whose nf_tables cannot even be asked has no guard to remove)
        if native::nft::exists6(&table).unwrap_or(false) {
            native::nft::apply(&a.network, &native::nft::delete_batch6(&table))?;
        }
    }
    drop_unmounted_pin(dirs, &a.container)?;
    match a.driver {
        Driver::Native => native::del(&a.plan()?, &a.target())?,
        Driver::Plugins => cni::del_list(
            &a.conflist,
            &a.runtime_config(),
            a.result.as_ref(),
            &a.env(dirs),
        )?,
    }
    forget(dirs, a)?;
    if let Err(e) = refresh_hosts(dirs, a) {
        // the container's own file (its peers' are only warned about)
        crate::logging::warn(&format!(
            "container {}: after leaving network {}: {e:#}",
            a.container, a.network
        ));
    }
    Ok(())
}

/// After `changed` was attached (recorded `attached`) or released (its record gone): write
/// again, from the records, the hosts files husk keeps of its container and, when its network
/// gives names, of every other container on that network. Every caller holds the run dir's
/// lock, so the records read are the latest and the writes of two changes never cross; each
/// file is also written under its own flock. An error writing the container's own file is
/// returned; one for another container's is reported as a warning, so a peer's broken bundle
/// never fails this container's attach or release.
fn refresh_hosts(dirs: &Dirs, changed: &Attachment) -> Result<()> {
    if changed.hosts.is_none() && changed.names.is_empty() {
        return Ok(());
    }
    let all = records(dirs)?;
    let spec_of = |id: &str| {
        all.iter()
            .filter(|a| a.container == id)
            .find_map(|a| a.hosts.clone())
    };
    let mut own = None;
    if let Some(h) = spec_of(&changed.container).or_else(|| changed.hosts.clone()) {
        own = Some(write_hosts(&all, &changed.container, &h));
    }
    if !changed.names.is_empty() {
        let mut done: Vec<&str> = vec![&changed.container];
        for a in all.iter().filter(|a| a.network == changed.network) {
            if done.contains(&a.container.as_str()) {
                continue;
            }
            done.push(&a.container);
            if let Some(h) = spec_of(&a.container) {
                if let Err(e) = write_hosts(&all, &a.container, &h) {
                    crate::logging::warn(&format!(
                        "container {}: its hosts file, after {} {} network {}: {e:#}",
                        a.container,
                        changed.container,
                        if changed.phase == Phase::Attached {
                            "joined"
                        } else {
                            "left"
                        },
                        changed.network
                    ));
                }
            }
        }
    }
    own.unwrap_or(Ok(()))
}

/// Write container `id`'s hosts file `h` from the records `all`: its addresses on every
/// network under its hostname and its names, its `--add-host` entries, then the addresses and
/// names of every other container attached to a network of its that gives names.
fn write_hosts(all: &[Attachment], id: &str, h: &HostsFile) -> Result<()> {
    let mine: Vec<&Attachment> = all
        .iter()
        .filter(|a| a.container == id && a.phase == Phase::Attached)
        .collect();
    let ips: Vec<IpAddr> = mine.iter().flat_map(|a| a.addresses()).collect();
    let mut own_names: Vec<String> = Vec::new();
    for n in mine.iter().flat_map(|a| a.names.iter()) {
        if *n != h.hostname && !own_names.contains(n) {
            own_names.push(n.clone());
        }
    }
    let mut peers = Vec::new();
    for m in mine.iter().filter(|m| !m.names.is_empty()) {
        for p in all.iter().filter(|p| {
            p.network == m.network
                && p.container != id
                && p.phase == Phase::Attached
                && !p.names.is_empty()
        }) {
            peers.extend(p.addresses().into_iter().map(|ip| Peer {
                ip,
                names: p.names.clone(),
            }));
        }
    }
    dns::rewrite_in_place(&h.path, || {
        dns::hosts_with_peers(h, &own_names, &ips, &peers)
    })
    .map(drop)
}

/// Detach container `id` from `network`.
pub fn detach(dirs: &Dirs, network: &str, id: &str) -> Result<()> {
    state::validate_id(id)?;
    super::check_name(network)?;
    let _keep = super::keep::Scope::enter();
    let _lock = lock_dir(&dirs.run)?;
    let p = record_path(dirs, id, network);
    let data = match fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("container {id} is not attached to network {network}")
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
    };
    let mut a: Attachment = serde_json::from_slice(&data)
        .with_context(|| format!("malformed attachment record {}", p.display()))?;
    release(dirs, &mut a)
}

/// CHECK of an attachment (CNI CHECK, or the native driver's own).
pub fn check(dirs: &Dirs, network: &str, id: &str) -> Result<()> {
    super::check_name(network)?;
    let a = records(dirs)?
        .into_iter()
        .find(|a| a.container == id && a.network == network)
        .with_context(|| format!("container {id} is not attached to network {network}"))?;
    let r = a.result.as_ref().with_context(|| {
        format!("container {id}: the attach to network {network} did not finish")
    })?;
    match a.driver {
        Driver::Native => native::check(&a.plan()?, &a.target(), r)?,
        Driver::Plugins => {
            cni::check_list(&a.conflist, &a.runtime_config(), r, &a.env(dirs))?;
            let table = a.target().table();
            if !a.proxies.is_empty() && !native::nft::exists6(&table)? {
                bail!(
                    "network {network}: nftables table ip6 {table} (which keeps [::1] for the \
                     proxies of container {id}) is missing"
                );
            }
        }
    }
    for p in &a.proxies {
        if !super::proxy::running(p) {
            bail!(
                "network {network}: the proxy of {} (pid {}) of container {id} is gone",
                p.listen,
                p.pid
            );
        }
    }
    Ok(())
}

/// True when the calling process is in the network namespace the record's plugins ran in.
fn same_host_ns(a: &Attachment) -> bool {
    a.host_netns.is_none() || ns_inode(Path::new("/proc/self/ns/net")) == a.host_netns
}

/// True when the container a record was made for is gone: no state, or another process.
fn container_gone(a: &Attachment) -> bool {
    let store = Store::new(&a.root);
    match store.load(&a.container) {
        Ok(st) => {
            st.pid != a.pid
                || st.pid_start_time != a.pid_start_time
                || state::process_start_time(st.pid) != Some(st.pid_start_time)
        }
        Err(_) => true,
    }
}

/// Release the attachments whose container is gone and those an attach left unfinished (husk
/// killed mid-attach: the lock is free, so no attach is running), then remove pins that no
/// record holds. With `network`, only that network's attachments. Returns what was released.
pub fn gc(dirs: &Dirs, network: Option<&str>) -> Result<Vec<(String, String)>> {
    let _keep = super::keep::Scope::enter();
    let _lock = lock_dir(&dirs.run)?;
    let mut done = Vec::new();
    let mut first_err: Option<anyhow::Error> = None;
    for mut a in records(dirs)? {
        if network.is_some_and(|n| n != a.network) {
            continue;
        }
        if !same_host_ns(&a) || (a.phase == Phase::Attached && !container_gone(&a)) {
            continue;
        }
        match release(dirs, &mut a) {
            Ok(()) => done.push((a.network.clone(), a.container.clone())),
            Err(e) => {
                first_err.get_or_insert(e.context(format!("container {}", a.container)));
            }
        }
    }
    let held: Vec<String> = records(dirs)?.into_iter().map(|a| a.container).collect();
    // a container's directory without a record: an attach killed after making it and before
    // its record was in place (maybe holding the record's temp file)
    if let Ok(rd) = fs::read_dir(dirs.run.join("attachments")) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !held.contains(&id) {
                let d = e.path();
                for f in fs::read_dir(&d).into_iter().flatten().flatten() {
                    let _ = fs::remove_file(f.path());
                }
                fs::remove_dir(&d).with_context(|| format!("remove {}", d.display()))?;
            }
        }
    }
    if let Ok(rd) = fs::read_dir(dirs.run.join("netns")) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !held.contains(&id) {
                unpin(dirs, &id)?;
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// After `husk delete`: release the attachments of container `id` of the store at `root`.
/// Costs one stat when the container has none (the common case).
pub fn release_container(root: &Path, id: &str) -> Result<()> {
    let dirs = Dirs::resolve(None, None, None, None)?;
    if state::validate_id(id).is_err() || !container_dir(&dirs, id).exists() {
        return Ok(());
    }
    let _keep = super::keep::Scope::enter();
    let _lock = lock_dir(&dirs.run)?;
    let mut first_err = None;
    for mut a in records(&dirs)? {
        if a.container != id || a.root != root {
            continue;
        }
        if !same_host_ns(&a) {
            crate::logging::warn(&format!(
                "container {id}: its attachment to network {} was made from another network \
                 namespace; left for husk network gc there",
                a.network
            ));
            continue;
        }
        if let Err(e) = release(&dirs, &mut a) {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        id: &str,
        network: &str,
        ip: &str,
        names: &[&str],
        hosts: Option<&Path>,
    ) -> Attachment {
        Attachment {
            container: id.into(),
            network: network.into(),
            root: PathBuf::from("/run/husk"),
            pid: 1,
            pid_start_time: 1,
            netns: PathBuf::from("/nonexistent"),
            ifname: "eth0".into(),
            conflist: json!({}),
            ports: Vec::new(),
            phase: Phase::Attached,
            result: Some(json!({"ips": [{"address": format!("{ip}/24")}]})),
            host_netns: None,
            driver: Driver::Native,
            names: names.iter().map(|n| n.to_string()).collect(),
            hosts: hosts.map(|p| HostsFile {
                path: p.to_path_buf(),
                hostname: id.into(),
                extra_hosts: Vec::new(),
            }),
            proxies: Vec::new(),
        }
    }

    #[test]
    fn names_on_a_network() {
        let o = AttachOptions {
            aliases: vec!["db".into(), "web".into()],
            hosts: Some(HostsFile {
                path: PathBuf::from("/x"),
                hostname: "web".into(),
                extra_hosts: Vec::new(),
            }),
            ..Default::default()
        };
        assert_eq!(names_of("mynet", "a", &o).unwrap(), ["a", "web", "db"]);
        // the default network gives none, and refuses aliases
        assert!(names_of(
            crate::network::DEFAULT_NETWORK,
            "a",
            &AttachOptions::default()
        )
        .unwrap()
        .is_empty());
        let e = format!(
            "{:#}",
            names_of(crate::network::DEFAULT_NETWORK, "a", &o).unwrap_err()
        );
        assert!(e.contains("\"db\"") && e.contains("default network"), "{e}");
        let bad = AttachOptions {
            aliases: vec!["a b".into()],
            ..Default::default()
        };
        assert!(format!("{:#}", names_of("mynet", "a", &bad).unwrap_err()).contains("a b"));
    }

    #[test]
    fn hosts_file_from_the_records() {
        let d = tempfile::tempdir().unwrap();
        let fa = d.path().join("a");
        fs::write(&fa, "old\n").unwrap();
        let mut adding = record("e", "mynet", "10.1.0.6", &["e"], None);
        adding.phase = Phase::Adding;
        let all = vec![
            record("a", "mynet", "10.1.0.2", &["a", "al"], Some(&fa)),
            record("a", "husk", "10.88.0.2", &[], Some(&fa)),
            record("b", "mynet", "10.1.0.3", &["b"], None),
            // on the default network with a: no names
            record("c", "husk", "10.88.0.3", &[], None),
            // on another network
            record("d", "other", "10.2.0.4", &["d"], None),
            // not attached yet
            adding,
        ];
        write_hosts(&all, "a", all[0].hosts.as_ref().unwrap()).unwrap();
        let t = fs::read_to_string(&fa).unwrap();
        assert!(
            t.ends_with("10.1.0.2\ta al\n10.88.0.2\ta al\n10.1.0.3\tb\n"),
            "{t}"
        );
    }
}
