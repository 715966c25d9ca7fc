//! `husk up IMAGE [COMMAND…]`: `docker run` in one command — the image pulled when missing,
//! unpacked into a bundle of the container's own (`STORE/containers/ID`), its config changed as
//! the flags ask, and run in the foreground with the runtime's `run` (signals forwarded, the
//! terminal proxied, the exit status passed through), or with `-d` under a monitor of its own
//! (`monitor.rs`; its log: `logs.rs`). `husk rm NAME` removes such a container: its state, its
//! bundle and its network attachments.
//!
//! A companion: it stands on the runtime library (`container::run` with `RunOptions`) and the
//! image layer (`image::pull`, `image::unpack_with`); no runtime module knows it.

use crate::container::{CreateOptions, Global, RunOptions};
use crate::image::{self, store::Store, ConfigOverrides};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub mod apparmor;
pub mod attach;
pub mod attach_sock;
pub mod cdi;
pub mod flags;
pub mod init;
pub mod logs;
pub mod monitor;
pub mod seccomp;
pub mod usernet;
pub mod userns;
pub mod volume;

/// When to pull the image (`--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull when the store does not have it (Docker's default).
    #[default]
    Missing,
    Always,
    Never,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Result<PullPolicy> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => bail!("--pull {s:?}: expected missing, always or never"),
        }
    }
}

/// The container's network (`--network`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A network namespace of its own with only loopback.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A network namespace of its own attached to this network: one of `husk network create`,
    /// a CNI conflist, or the default network (created on first use).
    Named(String),
    /// A network namespace of its own networked by a helper process of the caller's, pasta or
    /// slirp4netns (`None`: pasta when installed, else slirp4netns), as rootless podman's.
    UserMode(Option<usernet::Helper>),
}

/// Whether the caller has root in the initial user namespace (what husk's networks need).
pub(crate) fn caller_is_root() -> bool {
    nix::unistd::geteuid().is_root() && !crate::rootless::in_user_namespace()
}

impl NetworkMode {
    /// `--network VALUE`. `bridge` and `default` are docker run's names of its default network,
    /// husk's default network (`husk`, created on first use); for a caller without root, the
    /// user-mode network of pasta or slirp4netns (podman's names, also accepted as such).
    pub fn parse(s: &str) -> Result<NetworkMode> {
        match s {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            "pasta" => Ok(NetworkMode::UserMode(Some(usernet::Helper::Pasta))),
            "slirp4netns" => Ok(NetworkMode::UserMode(Some(usernet::Helper::Slirp4netns))),
            "bridge" | "default" => Ok(NetworkMode::default_for_caller()),
            "" => bail!(
                "--network \"\": expected none, host, bridge (the default network) or a network's \
                 name"
            ),
            name => Ok(NetworkMode::Named(name.to_string())),
        }
    }

    /// The network of a container when `--network` is not given: as docker run, the default
    /// bridge network (husk's default network, created on first use); for a caller without
    /// root in the initial user namespace, as rootless podman, pasta or slirp4netns.
    pub fn default_for_caller() -> NetworkMode {
        if caller_is_root() {
            NetworkMode::Named(crate::network::DEFAULT_NETWORK.to_string())
        } else {
            NetworkMode::UserMode(None)
        }
    }
}

/// `--network-alias`: host names, and only on a network whose containers know each other by
/// name (docker run refuses them outside user-defined networks too).
fn check_network_aliases(o: &UpOptions) -> Result<()> {
    let Some(first) = o.network_aliases.first() else {
        return Ok(());
    };
    for a in &o.network_aliases {
        crate::network::dns::check_alias("--network-alias", a)?;
    }
    match &o.network {
        NetworkMode::Named(n) if crate::network::attach::gives_names(n) => Ok(()),
        NetworkMode::Named(n) => bail!(
            "--network-alias {first:?}: network {n} is husk's default network, which gives no \
             names; aliases need a network of husk network create"
        ),
        NetworkMode::None | NetworkMode::Host | NetworkMode::UserMode(_) => bail!(
            "--network-alias {first:?}: aliases need a network of husk network create \
             (--network NAME)"
        ),
    }
}

/// What `husk up` was asked for.
#[derive(Default)]
pub struct UpOptions {
    pub image: String,
    /// COMMAND [ARG…]: replaces the image's Cmd.
    pub command: Vec<String>,
    /// Replaces the image's Entrypoint ("" clears it).
    pub entrypoint: Option<String>,
    /// The container's name (its id); generated when absent.
    pub name: Option<String>,
    /// Remove the container and its bundle when it exits.
    pub rm: bool,
    /// KEY=VALUE, or KEY to take the value from husk's own environment.
    pub env: Vec<String>,
    /// Files of KEY=VALUE lines (`#` comments and blank lines skipped).
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub network: NetworkMode,
    /// `--network-alias`: more names on the network, for its other containers.
    pub network_aliases: Vec<String>,
    /// Published ports (`-p [ip:]hostPort:containerPort[/proto]`), on a named network only.
    pub publish: Vec<String>,
    /// `-P`: every port the image exposes, each on a free host port.
    pub publish_all: bool,
    pub pull: PullPolicy,
    pub read_only: bool,
    /// A terminal for the process (`-t`).
    pub tty: bool,
    /// Keep stdin open (`-i`); without it the container reads /dev/null, as with docker run.
    pub interactive: bool,
    /// Run the command under husk's own init as pid 1 (`--init`: forwards signals, reaps).
    pub init: bool,
    /// `--userns`: host, or auto with the size of its id range.
    pub userns: userns::Mode,
    /// Options for a pull.
    pub pull_options: Option<image::PullOptions>,
    // -d and what goes with it (`monitor.rs`)
    /// Run under a monitor of its own and return once the container runs, printing its id.
    pub detach: bool,
    /// `--restart` no, on-failure[:N], always, unless-stopped ("" is no).
    pub restart: String,
    /// `--stop-signal`: the signal `husk stop` sends first.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `husk stop` waits before SIGKILL.
    pub stop_timeout: Option<u64>,
    /// Volumes, resources, capabilities, security options, names, labels, devices.
    pub config: flags::ConfigFlags,
    /// `--log-driver` and `--log-opt` (the log of `-d`, and of `husk restart`).
    pub log: logs::LogConfig,
}

/// The environment entries of `-e` and `--env-file`, in order, as Docker reads them.
pub fn environment(o: &UpOptions) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in &o.env_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--env-file {}: cannot read it", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(e) = env_entry(line)
                .with_context(|| format!("--env-file {} line {}", f.display(), n + 1))?
            {
                out.push(e);
            }
        }
    }
    for e in &o.env {
        if let Some(e) = env_entry(e).with_context(|| format!("-e {e:?}"))? {
            out.push(e);
        }
    }
    Ok(out)
}

/// `KEY=VALUE` as given; `KEY` alone takes husk's own value, and is left out when husk has none.
fn env_entry(e: &str) -> Result<Option<String>> {
    let key = e.split('=').next().unwrap_or("");
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("{e:?} is not KEY=VALUE (the name must be non-empty, without spaces)");
    }
    if e.contains('=') {
        return Ok(Some(e.to_string()));
    }
    Ok(std::env::var(key).ok().map(|v| format!("{key}={v}")))
}

/// A new container id: 64 hex digits from the kernel's random pool, as Docker's.
fn new_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom for a container id")?;
    Ok(crate::registry::reference::hex(&b))
}

/// Where `up` keeps the bundle of container `id`.
pub fn bundle_dir(store: &Path, id: &str) -> PathBuf {
    store.join("containers").join(id)
}

/// Run `o.image` as a new container in the foreground; returns the exit code for husk.
pub fn up(g: &Global, store_dir: &Path, o: &UpOptions) -> Result<i32> {
    let id = match &o.name {
        Some(n) => n.clone(),
        None => new_id()?,
    };
    crate::state::validate_id(&id).with_context(|| format!("--name {id:?}"))?;
    if g.store.dir(&id).exists() {
        bail!("--name {id:?}: a container of that name exists (husk rm {id})");
    }
    if let Some(w) = &o.workdir {
        if !w.starts_with('/') {
            bail!("-w {w:?}: the working directory must be an absolute path");
        }
    }
    let env = environment(o)?;
    monitor::check(o)?;
    check_network_aliases(o)?;
    let cfg = flags::parse(&o.config)?;
    userns::check(o.userns, "--userns auto")?;
    // keep-id and nomap: the caller's subordinate ids and the tools, before anything is made
    let mapped = userns::rootless_layout(o.userns)?;
    let mut facts = flags::resolve(&cfg, store_dir)?;
    // husk's default AppArmor profile, loaded before anything is made
    apparmor::ensure_for_profile(facts.apparmor.as_deref())?;
    let mut ports = Vec::new();
    for p in &o.publish {
        ports.extend(crate::network::ports::parse(p).with_context(|| format!("-p {p:?}"))?);
    }
    // pasta or slirp4netns: found before anything is made
    let helper = match &o.network {
        NetworkMode::UserMode(asked) => Some(usernet::choose("--network", *asked)?),
        _ => None,
    };
    let net = match &o.network {
        NetworkMode::Named(n) => Some((crate::network::Dirs::resolve(None, None, None, None)?, n)),
        NetworkMode::UserMode(_) => None,
        _ if !ports.is_empty() || o.publish_all => bail!(
            "-p/-P: publishing ports needs a network (the default one, --network NAME, pasta or \
             slirp4netns), not \
             --network {}",
            if o.network == NetworkMode::Host {
                "host"
            } else {
                "none"
            }
        ),
        _ => None,
    };
    // a store that is not there yet is made by the pull, and only if that succeeds
    let have = Store::open_existing(store_dir, false)?
        .is_some_and(|s| image::lookup(&s, &o.image).is_ok());
    match (o.pull, have) {
        (PullPolicy::Never, false) => bail!(
            "image {} is not in the store {} and --pull is never",
            o.image,
            store_dir.display()
        ),
        (PullPolicy::Always, _) | (PullPolicy::Missing, false) => {
            let Some(p) = &o.pull_options else {
                bail!("image {}: pulling needs registry options", o.image);
            };
            Store::with_store(store_dir, false, |s| image::pull(s, &o.image, p))?;
        }
        _ => {}
    }
    // the network, before anything is made: an unknown one is refused here, the default one is
    // made on first use, and a dual-stack one keeps the host's IPv6 resolvers (as Docker's)
    let ipv6 = match &net {
        Some((dirs, n)) => crate::network::find(dirs, n)?.subnet6.is_some(),
        None => false,
    };
    let store = Store::open(store_dir, false)?;
    let bundle = bundle_dir(store_dir, &id);
    let taken = || {
        anyhow!(
            "--name {id:?}: {} exists (a container of that name was not removed: husk rm {id})",
            bundle.display()
        )
    };
    if bundle.exists() {
        return Err(taken());
    }
    let over = ConfigOverrides {
        entrypoint: o.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        cmd: (!o.command.is_empty()).then(|| o.command.clone()),
        env,
        working_dir: o.workdir.clone(),
        // keep-id: the caller's ids unless -u says (podman's; the image's USER gives way)
        user: o
            .user
            .clone()
            .or_else(|| mapped.as_ref().and_then(userns::keep_id_user)),
    };
    if !o.interactive {
        // the container's stdin is husk's: docker run without -i gives it none
        let null = std::fs::File::open("/dev/null").context("open /dev/null")?;
        nix::unistd::dup2_stdin(&null).context("stdin from /dev/null")?;
    }
    std::fs::create_dir_all(bundle.parent().unwrap_or(store_dir))
        .with_context(|| format!("create {}", bundle.display()))?;
    // the name is claimed by making its bundle directory: of two `husk up --name X` at once,
    // one makes it and the other stops here, before it could remove anything of the first's
    match std::fs::create_dir(&bundle) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(taken()),
        Err(e) => return Err(e).with_context(|| format!("create {}", bundle.display())),
    }
    // a foreground --rm on a network: one keeper for the attach, the run and the detach
    // (network::keep::Scope)
    let _keep = (o.rm && !o.detach && net.is_some()).then(crate::network::keep::Scope::enter);
    let result = (|| {
        let ids = match o.userns {
            userns::Mode::Host | userns::Mode::KeepId { .. } | userns::Mode::NoMap => None,
            userns::Mode::Auto { size } => {
                let flag = "--userns auto";
                let size = match size {
                    Some(n) => n,
                    None => userns::estimate(image::highest_id(&store, &o.image)?, flag)?,
                };
                Some(userns::allocate(store_dir, &id, size, flag)?)
            }
        };
        let idmap = ids.map(|a| image::snapshot::IdMap {
            uid_map: a.uid_map(),
            gid_map: a.gid_map(),
            root_uid: a.uid.start,
            root_gid: a.gid.start,
        });
        let image = image_config(&store, &o.image)?;
        match &mapped {
            // unpacked in the container's own user namespace: the image's owners are its ids
            Some(l) => {
                let workdir = over
                    .working_dir
                    .clone()
                    .or_else(|| image.working_dir().clone())
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| "/".to_string());
                let targets: Vec<String> = facts.mounts.iter().map(|m| m.target.clone()).collect();
                let entry = userns::caller_entry(l, &workdir, &targets);
                image::unpack_mapped(&store, &o.image, &bundle, &over, l, entry.as_ref())?;
                userns::save_maps(&bundle, l)?;
            }
            None => image::unpack_mounted(&store, &o.image, &bundle, &over, idmap.as_ref())?,
        }
        let volumes = image.volumes().clone().unwrap_or_default();
        drop(store);
        flags::image_volumes(
            &cfg,
            &mut facts,
            store_dir,
            &volumes,
            &bundle.join("rootfs"),
        )?;
        // what the image and the flags said (Docker's own defaults give way to them)
        let mut given_env: Vec<String> = image.env().clone().unwrap_or_default();
        given_env.extend(over.env.iter().cloned());
        let user = over
            .user
            .clone()
            .or_else(|| image.user().clone())
            .unwrap_or_default();
        let given = Given {
            env: &given_env,
            user: &user,
        };
        let cgroups = cgroups_path(store_dir, &id, g.systemd_cgroup);
        let (exposed, hostname) = edit_config(
            &bundle,
            &id,
            &cgroups,
            o,
            &cfg,
            &facts,
            &given,
            Ids {
                auto: ids.as_ref(),
                mapped: mapped.as_ref().map(|l| (l, o.userns)),
            },
            ipv6,
            &helper
                .as_ref()
                .map(|h| h.0.dns_forwarders())
                .unwrap_or_default(),
        )?;
        monitor::set_stop_signal(&bundle.join("config.json"), o.stop_signal.as_deref())?;
        if !facts.volumes.is_empty() {
            // after config.json names them: husk volume prune sees them in use from here on
            let _lock = flags::lock_volumes(store_dir, false)?;
            let new: Vec<PathBuf> = facts
                .volumes
                .iter()
                .map(|(d, _)| d.clone())
                .filter(|d| !d.exists())
                .collect();
            flags::create_volumes(&facts)?;
            match &mapped {
                // the image's files keep their owners: copied as root of the container's ids
                Some(l) => {
                    let user = process_user(&bundle)?;
                    image::userns::run_mapped(l, || {
                        flags::populate_volumes(&facts, &bundle.join("rootfs"))?;
                        userns::own_new_volumes_mapped(&new, l, user)
                    })?;
                }
                None => flags::populate_volumes(&facts, &bundle.join("rootfs"))?,
            }
            if let Some(a) = &ids {
                userns::own_new_volumes(&new, a)?;
            }
        }
        let mut ports = ports.clone();
        if o.publish_all {
            for e in &exposed {
                let m = free_mapping(e).with_context(|| format!("-P: exposed port {e:?}"))?;
                eprintln!("husk up: published {m}");
                ports.push(m);
            }
        }
        let mon = monitor_config(
            o,
            &id,
            Attached {
                network: net.as_ref().map(|n| n.1.clone()),
                ports: &ports,
                hostname: &hostname,
                extra_hosts: &cfg.extra_hosts,
                aliases: &o.network_aliases,
                user_network: helper.as_ref().map(|h| h.0),
            },
            flags::anonymous_volumes(&facts),
        );
        if o.detach {
            monitor::launch(g, store_dir, &mon)?;
            crate::output::line(&id)?;
            return Ok(0);
        }
        // for husk stop's grace time, and husk restart (which runs it detached)
        monitor::save_config(&bundle, &mon)?;
        let run = RunOptions {
            create: CreateOptions {
                id: id.clone(),
                bundle: bundle.clone(),
                ..Default::default()
            },
            detach: false,
            keep: !o.rm,
        };
        // pasta or slirp4netns in namespaces made for the container before it is created
        let mut holder = match &helper {
            Some((h, bin)) => match usernet::prepare(&bundle, *h, bin, &ports) {
                Ok(holder) => Some(holder),
                Err(e) => {
                    let _ = usernet::stop(&bundle);
                    return Err(e);
                }
            },
            None => None,
        };
        let ran = crate::container::run_with(g, &run, &mut |_| {
            // the container is in them now
            drop(holder.take());
            if let Some((dirs, name)) = &net {
                // (the attach writes the hosts file it has bound: its addresses, the network's
                // other containers)
                let a = flags::attach_options(
                    &bundle,
                    &ports,
                    &hostname,
                    &cfg.extra_hosts,
                    &o.network_aliases,
                );
                crate::network::attach::attach(g, dirs, name, &id, &a)?;
                if o.rm {
                    // the detach after the exit finds its keeper started (the attach's, kept
                    // by the scope above, or one started now while the container runs)
                    crate::network::keep::prestart();
                }
            }
            Ok(())
        });
        // the container has exited (or was never started): its helper goes with it
        let stopped = usernet::stop(&bundle);
        let code = ran?;
        stopped?;
        Ok(code)
    })();
    let gone = !g.store.dir(&id).exists();
    // (-d: the monitor removes it at the exit)
    if (o.rm && !o.detach) || (result.is_err() && gone) {
        // its network attachments (none without --network NAME: one stat)
        let released = crate::network::attach::release_container(&g.store.root, &id);
        remove_bundle(&bundle)?;
        released?;
        flags::remove_anonymous_volumes(&flags::anonymous_volumes(&facts))?;
    }
    result
}

/// The image's config (its `config` part: Env, User, Volumes, …), from the store.
fn image_config(store: &Store, text: &str) -> Result<oci_spec::image::Config> {
    let (name, d) = image::lookup(store, text)?;
    let manifest = store.read_manifest(d.digest().as_ref())?;
    let bytes = store.read_blob(manifest.config().digest().as_ref(), image::MAX_CONFIG)?;
    let cfg: oci_spec::image::ImageConfiguration = serde_json::from_slice(&bytes)
        .with_context(|| format!("{name}: parse the image config"))?;
    Ok(cfg.config().clone().unwrap_or_default())
}

/// What a monitor of the container runs (`-d`, or `husk restart` later).
/// What a monitor attaches the container to, and the names its `/etc/hosts` gets after each
/// attach.
struct Attached<'a> {
    network: Option<String>,
    ports: &'a [crate::network::ports::PortMapping],
    hostname: &'a str,
    extra_hosts: &'a [(String, std::net::IpAddr)],
    aliases: &'a [String],
    user_network: Option<usernet::Helper>,
}

fn monitor_config(
    o: &UpOptions,
    id: &str,
    net: Attached<'_>,
    anonymous_volumes: Vec<std::path::PathBuf>,
) -> monitor::Config {
    monitor::Config {
        id: id.to_string(),
        rm: o.rm,
        restart: o.restart.clone(),
        stop_timeout: o.stop_timeout,
        network: net.network,
        ports: net.ports.to_vec(),
        tty: o.tty,
        interactive: o.interactive,
        hostname: net.hostname.to_string(),
        extra_hosts: net.extra_hosts.to_vec(),
        network_aliases: net.aliases.to_vec(),
        user_network: net.user_network,
        anonymous_volumes,
        log: o.log,
    }
}

/// `husk logs NAME`: the json-file log of a container of `husk up -d`.
pub fn logs(store_dir: &Path, id: &str, o: &logs::LogsOptions) -> Result<()> {
    crate::state::validate_id(id)?;
    let bundle = bundle_dir(store_dir, id);
    if !bundle.exists() {
        bail!("{id}: no such container");
    }
    if monitor::load_config(&bundle).is_ok_and(|c| c.log.driver == logs::Driver::None) {
        bail!("{id}: its log driver is none (--log-driver none): no log is kept");
    }
    let path = logs::log_path(&bundle, id);
    if logs::files(&path).is_empty() {
        bail!("{id}: no logs (only a container of husk up -d keeps them)");
    }
    logs::print(&path, o, &|| monitor::active(&bundle), &mut logs::Stdio)
}

/// The container's own user namespace, if any: `--userns auto`'s range, or `keep-id`'s and
/// `nomap`'s layout of the caller's subordinate ids.
struct Ids<'a> {
    auto: Option<&'a userns::Allocation>,
    mapped: Option<(&'a image::userns::Layout, userns::Mode)>,
}

/// `process.user`'s uid and gid in the bundle's config.json.
fn process_user(bundle: &Path) -> Result<(u32, u32)> {
    let path = bundle.join("config.json");
    let v: Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
    )
    .with_context(|| format!("parse {}", path.display()))?;
    let id = |k: &str| {
        v["process"]["user"][k]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
    };
    Ok((id("uid").unwrap_or(0), id("gid").unwrap_or(0)))
}

/// What the image and the flags asked for, where Docker's defaults give way to it: the
/// environment of the image's Env, `-e` and `--env-file`, and the user (`-u`, else the image's).
struct Given<'a> {
    env: &'a [String],
    user: &'a str,
}

/// The flags that are runtime settings rather than image config: hostname, network, read-only
/// root, terminal, and those of [`flags`] (with the container's /etc/hosts, /etc/resolv.conf
/// and /etc/hostname written into the bundle).
/// Returns the ports the image exposes (`80/tcp`, …) and the container's hostname: `-h`, else
/// as Docker the first 12 characters of the id (of the name with `--name`, which is the id
/// here), else with `--network host` the host's.
#[allow(clippy::too_many_arguments)]
fn edit_config(
    bundle: &Path,
    id: &str,
    cgroups_path: &str,
    o: &UpOptions,
    cfg: &flags::Config,
    facts: &flags::HostFacts,
    given: &Given<'_>,
    ids: Ids<'_>,
    ipv6: bool,
    dns_forwarders: &[String],
) -> Result<(Vec<String>, String)> {
    let Ids { auto: ids, mapped } = ids;
    let path = &bundle.join("config.json");
    let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut v: Value =
        serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))?;
    if let Some(a) = ids {
        // first: Docker's defaults below differ in a user namespace
        userns::apply(&mut v, a);
    }
    match &o.hostname {
        Some(h) => v["hostname"] = json!(h),
        None if o.network != NetworkMode::Host => v["hostname"] = json!(default_hostname(id)),
        None => {}
    }
    if o.network != NetworkMode::Host {
        // a rootless config (a caller without root) has none: every other mode has its own
        if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
            if !ns.iter().any(|n| n["type"] == "network") {
                ns.push(json!({"type": "network"}));
            }
        }
    }
    if o.network == NetworkMode::Host {
        if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
        // the host's name, as docker run --network host
        if o.hostname.is_none() {
            if let Some(o) = v.as_object_mut() {
                o.remove("hostname");
            }
            if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "uts");
            }
        }
    }
    // a caller without root may not make a cgroup: as a rootless runc or podman with cgroupfs,
    // its container stays in its caller's cgroup (and limits are refused by the runtime)
    let may_make_cgroup = caller_is_root();
    if may_make_cgroup && v["linux"]["cgroupsPath"].as_str().is_none_or(str::is_empty) {
        v["linux"]["cgroupsPath"] = json!(cgroups_path);
    }
    if o.read_only {
        v["root"]["readonly"] = json!(true);
    }
    if o.tty {
        v["process"]["terminal"] = json!(true);
    }
    let exposed = v["annotations"][crate::image::config::EXPOSED_PORTS]
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let host_network = o.network == NetworkMode::Host;
    let hostname = match v["hostname"].as_str() {
        Some(h) => h.to_string(),
        None => nix::unistd::gethostname()
            .context("the host's name")?
            .to_string_lossy()
            .into_owned(),
    };
    docker_process(&mut v, o.tty, &hostname, given);
    if let Some(a) = ids {
        userns::check_user(&v["process"]["user"], a, given.user)?;
    }
    if let Some((l, mode)) = mapped {
        userns::check_mapped_user(&v["process"]["user"], l, mode, given.user)?;
    }
    flags::docker_defaults(&mut v, !host_network);
    if o.init {
        // among the default mounts, before the flags' and the /etc files (Docker's place)
        init::install(bundle, &mut v)?;
    }
    let names = flags::write_names(bundle, cfg, &hostname, host_network, ipv6, dns_forwarders)?;
    flags::apply(&mut v, cfg, facts, &names);
    let user_ns = v["linux"]["namespaces"]
        .as_array()
        .is_some_and(|ns| ns.iter().any(|n| n["type"] == "user"));
    if user_ns {
        // in a user namespace (`--userns auto`, keep-id, nomap, a caller without root, a
        // rootful one's) the runtime binds device nodes instead of making them, and a
        // bind at /dev/ptmx (--privileged's host devices) would keep it from pointing /dev/ptmx
        // at the container's pts instance, as it does in every container
        if let Some(devs) = v["linux"]["devices"].as_array_mut() {
            devs.retain(|d| d["path"] != "/dev/ptmx");
        }
    }
    if o.read_only {
        // moby's NetworkMounts: the container's resolv.conf, hostname and hosts are read-only
        // with a read-only root (unless a flag mounted something there itself)
        if let Some(ms) = v["mounts"].as_array_mut() {
            for m in ms.iter_mut() {
                let ours = names
                    .iter()
                    .any(|(d, src)| m["destination"] == *d && m["source"] == json!(src));
                if let (true, Some(opts)) = (ours, m["options"].as_array_mut()) {
                    opts.push(json!("ro"));
                }
            }
        }
    }
    let out = serde_json::to_vec_pretty(&v)?;
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))?;
    Ok((exposed, hostname))
}

/// The cgroup of a container `husk up` makes: named after the container and the store, so two
/// stores that hold containers of one name (each store's names are unique, not the machine's)
/// never meet in one cgroup. Relative to the caller's cgroup as runc's default `<id>` is; with
/// the systemd driver the scope `husk-<store tag>-<id>.scope` in the default slice. Docker's
/// equivalent is `/docker/<id>` with ids unique on the machine.
fn cgroups_path(store_dir: &Path, id: &str, systemd: bool) -> String {
    let store = std::fs::canonicalize(store_dir).unwrap_or_else(|_| store_dir.to_path_buf());
    let digest = crate::registry::reference::sha256_digest(store.as_os_str().as_encoded_bytes());
    let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
    let tag = &hex[..hex.len().min(8)];
    if systemd {
        format!(":husk:{tag}-{id}")
    } else {
        format!("husk-{tag}-{id}")
    }
}

/// The process as moby makes it (`CreateDaemonEnvironment`, `getUser`): `HOSTNAME` set to the
/// container's hostname and `TERM=xterm` only with `-t`, each unless the image or a flag sets
/// it; the supplementary groups are the primary group, then (only when the user names no group)
/// the groups of the image's /etc/group that list the user.
fn docker_process(v: &mut Value, tty: bool, hostname: &str, given: &Given<'_>) {
    let given_key = |k: &str| given.env.iter().any(|e| e.split('=').next() == Some(k));
    let mut env: Vec<Value> = v["process"]["env"].as_array().cloned().unwrap_or_default();
    if !tty && !given_key("TERM") {
        env.retain(|e| !e.as_str().is_some_and(|e| e.starts_with("TERM=")));
    }
    if !given_key("HOSTNAME") {
        env.retain(|e| !e.as_str().is_some_and(|e| e.starts_with("HOSTNAME=")));
        // after PATH, where Docker's daemon environment puts it
        let at = env
            .iter()
            .position(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=")))
            .map_or(0, |i| i + 1);
        env.insert(at, json!(format!("HOSTNAME={hostname}")));
    }
    v["process"]["env"] = Value::Array(env);
    let user = &mut v["process"]["user"];
    let gid = user["gid"].as_u64().unwrap_or(0);
    let named_group = given
        .user
        .split_once(':')
        .is_some_and(|(_, g)| !g.is_empty());
    let mut gids = vec![json!(gid)];
    if !named_group {
        // (the image layer's list leaves the primary group out: it comes first here)
        gids.extend(
            user["additionalGids"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    user["additionalGids"] = Value::Array(gids);
}

/// Docker's hostname for a container without `-h`: the first 12 characters of its id (ids are
/// ASCII, see `state::validate_id`).
fn default_hostname(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `-P` for one exposed port (`80/tcp`, `53/udp`, `80`): a host port the kernel says is free
/// now (as Docker, from the ephemeral range), mapped to it.
fn free_mapping(exposed: &str) -> Result<crate::network::ports::PortMapping> {
    let (port, proto) = exposed.split_once('/').unwrap_or((exposed, "tcp"));
    let container_port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("{port:?} is not a port number from 1 to 65535"))?;
    let any = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let host_port = match proto {
        "tcp" => std::net::TcpListener::bind(any)?.local_addr()?.port(),
        "udp" => std::net::UdpSocket::bind(any)?.local_addr()?.port(),
        _ => bail!("protocol {proto:?}: -P publishes tcp and udp ports"),
    };
    Ok(crate::network::ports::PortMapping {
        host_port,
        container_port,
        protocol: proto.to_string(),
        host_ip: None,
    })
}

/// Remove a bundle `up` made: its rootfs may hold anything the image had, read-only
/// directories included.
fn remove_bundle(bundle: &Path) -> Result<()> {
    // an overlay rootfs first: removing through the mount would empty the upper dir by
    // whiteouts and leave the mount
    image::release_rootfs(bundle)?;
    remove_tree(bundle).with_context(|| format!("remove the bundle {}", bundle.display()))?;
    // its user namespace range, with the bundle that held it (bundles are STORE/containers/ID)
    if let (Some(store), Some(id)) = (
        bundle.parent().and_then(Path::parent),
        bundle.file_name().and_then(|n| n.to_str()),
    ) {
        userns::release(store, id)?;
    }
    Ok(())
}

/// Remove the directory tree `dir` (gone already is fine): directories without write
/// permission for their owner are opened up. A caller without root whose tree holds files of
/// its subordinate ids (a rootfs or a volume of `--userns keep-id|nomap`, in directories of
/// theirs) removes what is left as root of a user namespace that maps them all (as `husk image
/// unshare` would), since it may not remove them as itself.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let plain = || -> std::io::Result<()> {
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        if gone(std::fs::remove_dir_all(dir)).is_ok() {
            return Ok(());
        }
        // a directory without write permission for its owner: open it up and retry
        make_writable(dir);
        gone(std::fs::remove_dir_all(dir))
    };
    let e = match plain() {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let denied = matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM));
    if !denied || nix::unistd::geteuid().is_root() {
        return Err(e.into());
    }
    let layout = image::userns::layout_of_caller().map_err(|why| {
        anyhow!(
            "{e} (files of other ids, as a container of --userns keep-id or nomap leaves: \
             removing them needs your subordinate ids, but {why})"
        )
    })?;
    image::userns::run_mapped(&layout, || plain().map_err(Into::into))
        .context("as root of your subordinate ids")
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&e.path());
        }
    }
}

/// `husk rm [-f] NAME…`: a container `up` made — its state (killed first with `-f`), its bundle,
/// its network attachments. A name with no bundle of `up`'s is refused: `husk delete` is for
/// bundles someone else made.
pub fn rm(g: &Global, store_dir: &Path, names: &[String], force: bool) -> Result<()> {
    for id in names {
        crate::state::validate_id(id)?;
        let bundle = bundle_dir(store_dir, id);
        let has_state = g.store.dir(id).exists();
        if !bundle.exists() {
            if has_state {
                bail!(
                    "{id}: not a container of husk up (its bundle is not under {}); use husk \
                     delete",
                    store_dir.join("containers").display()
                );
            }
            bail!("{id}: no such container");
        }
        monitor::before_rm(g, &bundle, id, force)?;
        if has_state {
            crate::container::delete(g, id, force)?;
        }
        usernet::stop(&bundle)?;
        crate::network::attach::release_container(&g.store.root, id)?;
        remove_bundle(&bundle)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_names_store_and_container() {
        let a = cgroups_path(Path::new("/nonexistent/store-a"), "web", false);
        let b = cgroups_path(Path::new("/nonexistent/store-b"), "web", false);
        assert!(
            a.starts_with("husk-") && a.ends_with("-web") && a.len() == 17,
            "{a}"
        );
        assert_ne!(a, b);
        let s = cgroups_path(Path::new("/nonexistent/store-a"), "web", true);
        assert_eq!(s, format!(":{}", a.replacen('-', ":", 1)));
        // a valid systemd placement: husk-<tag>-web.scope in the default slice
        let p = crate::cgroups::systemd::naming::placement(Some(&s), "web").unwrap();
        assert_eq!(p.unit, format!("{a}.scope"));
    }

    #[test]
    fn policies_and_modes() {
        assert_eq!(PullPolicy::parse("never").unwrap(), PullPolicy::Never);
        assert!(PullPolicy::parse("sometimes")
            .unwrap_err()
            .to_string()
            .contains("--pull"));
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        // docker run's names of its default network are husk's default network
        for d in ["bridge", "default", crate::network::DEFAULT_NETWORK] {
            assert_eq!(
                NetworkMode::parse(d).unwrap(),
                NetworkMode::Named(crate::network::DEFAULT_NETWORK.into())
            );
        }
        assert_eq!(
            NetworkMode::parse("web").unwrap(),
            NetworkMode::Named("web".into())
        );
        assert_eq!(
            NetworkMode::parse("pasta").unwrap(),
            NetworkMode::UserMode(Some(usernet::Helper::Pasta))
        );
        assert_eq!(
            NetworkMode::parse("slirp4netns").unwrap(),
            NetworkMode::UserMode(Some(usernet::Helper::Slirp4netns))
        );
        assert!(NetworkMode::parse("")
            .unwrap_err()
            .to_string()
            .contains("--network"));
    }

    /// Without --network: the default network for root, pasta or slirp4netns for a caller
    /// without root (in a child that drops to nobody's uid).
    #[test]
    fn default_network_by_caller() {
        if !crate::security::test_support::is_root() || crate::rootless::in_user_namespace() {
            eprintln!(
                "skipping default_network_by_caller: needs root in the initial user namespace"
            );
            return;
        }
        assert_eq!(
            NetworkMode::default_for_caller(),
            NetworkMode::Named(crate::network::DEFAULT_NETWORK.into())
        );
        crate::security::test_support::in_child(
            concat!(module_path!(), "::default_network_by_caller"),
            || {
                let nobody = nix::unistd::Uid::from_raw(65534);
                nix::unistd::setresuid(nobody, nobody, nobody)?;
                let mode = NetworkMode::default_for_caller();
                anyhow::ensure!(mode == NetworkMode::UserMode(None), "{mode:?}");
                // docker run's name of its default network is the same for that caller
                let bridge = NetworkMode::parse("bridge")?;
                anyhow::ensure!(bridge == NetworkMode::UserMode(None), "{bridge:?}");
                Ok(())
            },
        );
    }

    /// moby's daemon environment and getUser: HOSTNAME, TERM only with a terminal, the
    /// image's or a flag's value kept; the primary group first, memberships only when the user
    /// names no group.
    #[test]
    fn process_as_docker() {
        let spec = |gids: Value| {
            json!({"process": {
                "env": ["PATH=/bin", "TERM=xterm", "HOME=/root"],
                "user": {"uid": 1000, "gid": 1000, "additionalGids": gids}}})
        };
        let none: &[String] = &[];
        let mut v = spec(json!([1001]));
        docker_process(
            &mut v,
            false,
            "box",
            &Given {
                env: none,
                user: "user",
            },
        );
        assert_eq!(
            v["process"]["env"],
            json!(["PATH=/bin", "HOSTNAME=box", "HOME=/root"])
        );
        assert_eq!(v["process"]["user"]["additionalGids"], json!([1000, 1001]));
        let mut v = spec(json!([1001]));
        docker_process(
            &mut v,
            true,
            "box",
            &Given {
                env: none,
                user: "user:1000",
            },
        );
        assert_eq!(
            v["process"]["env"],
            json!(["PATH=/bin", "HOSTNAME=box", "TERM=xterm", "HOME=/root"])
        );
        assert_eq!(v["process"]["user"]["additionalGids"], json!([1000]));
        // the image's TERM (the spec holds it after the merge) and a HOSTNAME of -e stay
        let given = ["TERM=xterm".to_string(), "HOSTNAME=mine".to_string()];
        let mut v = spec(Value::Null);
        v["process"]["env"] = json!(["PATH=/bin", "TERM=xterm", "HOSTNAME=mine"]);
        docker_process(
            &mut v,
            false,
            "box",
            &Given {
                env: &given,
                user: "",
            },
        );
        assert_eq!(
            v["process"]["env"],
            json!(["PATH=/bin", "TERM=xterm", "HOSTNAME=mine"])
        );
        assert_eq!(v["process"]["user"]["additionalGids"], json!([1000]));
    }

    #[test]
    fn env_entries() {
        std::env::set_var("HUSK_UP_TEST_VALUE", "v1");
        assert_eq!(env_entry("A=b=c").unwrap(), Some("A=b=c".into()));
        assert_eq!(
            env_entry("HUSK_UP_TEST_VALUE").unwrap(),
            Some("HUSK_UP_TEST_VALUE=v1".into())
        );
        assert_eq!(env_entry("HUSK_UP_SURELY_UNSET_42").unwrap(), None);
        assert!(env_entry("=x").is_err());
        assert!(env_entry("A B=x").is_err());
    }

    #[test]
    fn hostname_is_the_ids_first_12_characters() {
        let id = new_id().unwrap();
        assert_eq!(default_hostname(&id), &id[..12]);
        assert_eq!(default_hostname("web"), "web");
        assert_eq!(default_hostname("a-rather-long-name"), "a-rather-lon");
    }

    #[test]
    fn ids_are_64_hex() {
        let a = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id().unwrap());
    }
}
