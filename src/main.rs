//! husk's entry point: parse the command line, set up logging, run the command, map errors to
//! exit codes (0 success, 1 error; `run` passes the container's status through).

use husk::cli::{normalize_args, Cli, Command, RuntimeCommand as R};
use husk::container::{self, Global};
use husk::state::Store;
use std::io::Write;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SPEC_VERSION: &str = "1.3.0";

fn main() {
    // `husk up --init`'s pid 1 (`init-reaper`, hidden): its command taken raw, before any
    // parsing, and nothing else of husk run
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "init-reaper")
    {
        let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some(command) = husk::cli::init_reaper_command(&raw) {
            std::process::exit(husk::up::init::run(&command));
        }
    }
    quiet_backtraces();
    // a detached container's monitor (`husk up -d`), exec'd fresh by `husk up`, and the
    // same monitor idling (its pump), exec'd fresh by itself
    if let Some(a) = std::env::args_os().nth(1) {
        let main = if a == husk::up::monitor::SUBCOMMAND {
            Some(husk::up::monitor::exec_main as fn(&[std::ffi::OsString]) -> Option<i32>)
        } else if a == husk::up::monitor::PUMP_SUBCOMMAND {
            Some(husk::up::monitor::pump_main as fn(&[std::ffi::OsString]) -> Option<i32>)
        } else {
            None
        };
        if let Some(main) = main {
            let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
            if let Some(code) = main(&raw) {
                std::process::exit(code);
            }
        }
    }
    let args = normalize_args(std::env::args());
    let cli = match husk::cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                log_usage_error(&args, &e);
            }
            e.exit()
        }
    };
    if cli.global.version {
        let v = format!(
            "husk version {VERSION}\ncommit: {}\nspec: {SPEC_VERSION}",
            env!("HUSK_COMMIT")
        );
        if let Err(e) = husk::output::line(&v) {
            eprintln!("husk: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = husk::logging::init(
        cli.global.log.clone(),
        &cli.global.log_format,
        cli.global.debug,
    ) {
        eprintln!("husk: {e:#}");
        std::process::exit(1);
    }
    match dispatch(cli) {
        Ok(code) => {
            husk::logging::finish();
            let _ = std::io::stdout().flush();
            std::process::exit(code)
        }
        Err(e) => {
            husk::logging::error(&format!("{e:#}"));
            std::process::exit(1);
        }
    }
}

/// A command line clap refused still gets its one error line in `--log` (callers read the log,
/// not stderr): the global log flags are picked out of the raw arguments.
fn log_usage_error(args: &[String], e: &clap::Error) {
    let value = |name: &str| {
        let eq = format!("{name}=");
        args.iter().enumerate().find_map(|(i, a)| {
            if a == name {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix(&eq).map(String::from)
            }
        })
    };
    let Some(log) = value("--log") else { return };
    let format = value("--log-format").unwrap_or_else(|| "text".into());
    if husk::logging::init(Some(log.into()), &format, false).is_ok() {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid command line");
        let first = first.trim_start_matches("error: ");
        husk::logging::emit_only("error", first);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let rootless_spec = cli.global.rootless.as_deref() == Some("true");
    let criu = cli.global.criu.clone().unwrap_or_else(|| "criu".into());
    let root = cli
        .global
        .root
        .clone()
        .unwrap_or_else(husk::rootless::default_root);
    // As in runc, the value is read (and refused when invalid) only where it matters: making a
    // container, and delete's clean-up of a half-created one.
    let reads_rootless = matches!(
        cli.command,
        Some(
            Command::Runtime(R::Create(_) | R::Run(_) | R::Restore(_) | R::Delete { .. })
                | Command::Up(_)
                | Command::Rm(_)
                | Command::Restart(_)
        )
    );
    let g = Global {
        store: Store::new(&root),
        systemd_cgroup: cli.global.systemd_cgroup,
        rootless: if reads_rootless {
            husk::rootless::Mode::parse(cli.global.rootless.as_deref())?
        } else {
            husk::rootless::Mode::No
        },
    };
    let Some(cmd) = cli.command else {
        anyhow::bail!("no command given (try --help)");
    };
    match cmd {
        Command::Runtime(r) => return runtime_command(&g, r, &criu, rootless_spec),
        Command::Image(a) => return image_command(a),
        Command::Network(a) => husk::network::cli::run(&g, a)?,
        Command::Up(a) => return up_command(&g, *a),
        Command::Rm(a) => {
            let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
            husk::up::rm(&g, &dir, &a.names, a.force)?
        }
        Command::Logs(a) => {
            let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let o = husk::up::logs::LogsOptions {
                follow: a.follow,
                tail: husk::up::logs::parse_tail(&a.tail)?,
                since: a
                    .since
                    .as_deref()
                    .map(|s| {
                        husk::up::logs::parse_since(s, (now.as_secs() as i64, now.subsec_nanos()))
                    })
                    .transpose()?,
                timestamps: a.timestamps,
            };
            husk::up::logs(&dir, &a.name, &o)?
        }
        Command::Stop(a) => {
            let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
            for n in &a.names {
                husk::up::monitor::stop(&g, &dir, n, a.timeout)?;
                husk::output::line(n)?;
            }
        }
        Command::Restart(a) => {
            let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
            for n in &a.names {
                husk::up::monitor::restart(&g, &dir, n, a.timeout)?;
                husk::output::line(n)?;
            }
        }
        Command::Attach(a) => {
            let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
            let o = husk::up::attach::AttachOptions {
                no_stdin: a.no_stdin,
                sig_proxy: a.sig_proxy,
                detach_keys: match &a.detach_keys {
                    Some(k) => husk::up::attach::parse_detach_keys(k)?,
                    None => husk::up::attach::DEFAULT_DETACH_KEYS.to_vec(),
                },
            };
            return husk::up::attach::attach(&g, &dir, &a.name, &o);
        }
        Command::Volume(a) => {
            let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
            husk::up::volume::run(&dir, a.command)?
        }
    }
    Ok(0)
}

/// runc's verbs.
fn runtime_command(g: &Global, r: R, criu: &str, rootless_spec: bool) -> anyhow::Result<i32> {
    match r {
        R::Create(a) => container::create(g, &a.into())?,
        R::Start { id } => container::start(g, &id)?,
        R::Run(a) => return container::run(g, &a.into()),
        R::State { id } => container::state(g, &id)?,
        R::Kill { all, id, signal } => container::kill(g, &id, signal.as_deref(), all)?,
        R::Delete { force, id } => {
            container::delete(g, &id, force)?;
            // attachments made by `husk network attach`: one stat when there are none
            if let Err(e) = husk::network::attach::release_container(&g.store.root, &id) {
                husk::logging::warn(&format!("{e:#} (left for husk network gc)"));
            }
        }
        R::List { format, quiet } => container::list(g, &format, quiet)?,
        R::Pause { id } => container::pause(g, &id)?,
        R::Resume { id } => container::resume(g, &id)?,
        R::Ps {
            format,
            id,
            ps_args,
        } => container::ps(g, &id, &format, &ps_args)?,
        R::Events {
            stats,
            interval,
            id,
        } => container::events(g, &id, stats, &interval)?,
        R::Update { flags, id } => container::update(g, &id, &flags.into())?,
        R::Features => container::features(criu)?,
        R::Exec(a) => return Ok(container::exec(g, &a.into())),
        R::Checkpoint(a) => container::checkpoint(g, &a.into(), criu)?,
        R::Restore(a) => return container::restore(g, &a.into(), criu),
        R::Spec { bundle } => {
            let dir = bundle.unwrap_or_else(|| ".".into());
            let path = dir.join("config.json");
            if path.exists() {
                anyhow::bail!("File {} exists. Remove it first", path.display());
            }
            std::fs::write(&path, husk::spec::default_spec_json(rootless_spec))
                .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
        }
    }
    Ok(0)
}

/// `husk up …`: docker run's flags onto `husk::up`.
fn up_command(g: &Global, a: husk::cli::up::UpArgs) -> anyhow::Result<i32> {
    use husk::up::{NetworkMode, PullPolicy, UpOptions};
    let (image, command) = a.image_and_command();
    let o = UpOptions {
        image,
        command,
        entrypoint: a.entrypoint,
        name: a.name,
        rm: a.rm,
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        hostname: a.hostname,
        network: match &a.network {
            Some(n) => NetworkMode::parse(n)?,
            None => NetworkMode::default_for_caller(),
        },
        network_aliases: a.network_alias,
        publish: a.publish,
        publish_all: a.publish_all,
        pull: PullPolicy::parse(&a.pull)?,
        read_only: a.read_only,
        tty: a.tty,
        interactive: a.interactive,
        init: a.init,
        userns: husk::up::userns::parse(&a.userns)?,
        pull_options: Some(husk::image::PullOptions {
            registry: a.conn.options(None)?,
            platform: husk::image::PlatformSpec::of_flag(a.platform.as_deref())?,
            progress: husk::image::progress::Mode::decide(None, a.quiet)?,
            all_platforms: false,
            unpack: None,
            snapshots: true,
        }),
        detach: a.detach,
        restart: a.restart,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
        config: a.config,
        log: husk::up::logs::LogConfig::parse(a.log_driver.as_deref(), &a.log_opt)?,
    };
    let dir = a.store.unwrap_or_else(husk::image::store::default_dir);
    husk::up::up(g, &dir, &o)
}

/// `husk image …`: the image companion (it never runs for the runtime's own commands).
fn image_command(a: husk::cli::image::ImageArgs) -> anyhow::Result<i32> {
    use husk::cli::image::ImageCommand as C;
    use husk::image::{self, store::Store};
    let dir = a.store.unwrap_or_else(image::store::default_dir);
    match a.command {
        C::Pull {
            conn,
            creds,
            platform,
            all_platforms,
            unpack,
            quiet,
            progress,
            reference,
        } => {
            let opts = image::PullOptions {
                registry: conn.options(creds.as_deref())?,
                platform: image::PlatformSpec::of_flag(platform.as_deref())?,
                progress: image::progress::Mode::decide(progress.as_deref(), quiet)?,
                all_platforms,
                unpack,
                snapshots: false,
            };
            let digest = Store::with_store(&dir, false, |s| image::pull(s, &reference, &opts))?;
            // json: the digest is in the stream's last event
            if opts.progress != image::progress::Mode::Json {
                println!("{digest}");
            }
        }
        C::Ls { format, quiet } => {
            image::list(Store::open_existing(&dir, false)?.as_ref(), &format, quiet)?
        }
        C::Inspect { reference } => {
            let v = image::inspect(&Store::open_for(&dir, false, &reference)?, &reference)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        C::Tag { source, target } => {
            println!(
                "{}",
                image::tag(&Store::open_for(&dir, false, &source)?, &source, &target)?
            )
        }
        C::Rm { references } => {
            let first = references.first().map_or("", String::as_str);
            for n in image::remove(&Store::open_for(&dir, true, first)?, &references)? {
                println!("{n}");
            }
        }
        C::Unshare { command } => return image::userns::unshare(&command),
        C::Unpack {
            reference,
            dir: bundle,
        } => image::unpack(
            &Store::open_for(&dir, false, &reference)?,
            &reference,
            &bundle,
        )?,
        C::Push {
            conn,
            creds,
            chunk_size,
            quiet,
            progress,
            source,
            destination,
        } => {
            let opts = image::push::PushOptions {
                registry: conn.options(creds.as_deref())?,
                chunk_size,
                progress: image::progress::Mode::decide(progress.as_deref(), quiet)?,
            };
            let store = Store::open_for(&dir, false, &source)?;
            let digest = image::push::push(&store, &source, destination.as_deref(), &opts)?;
            if opts.progress != image::progress::Mode::Json {
                println!("{digest}");
            }
        }
        C::Login {
            username,
            password,
            password_stdin,
            conn,
            registry,
        } => {
            let opts = conn.options(None)?;
            let file =
                husk::registry::login::login(&registry, username, password, password_stdin, &opts)?;
            println!("Login Succeeded (credentials in {})", file.display());
        }
        C::Export { reference, file } => image::archive::export(
            &Store::open_for(&dir, false, &reference)?,
            &reference,
            &file,
        )?,
        C::Import {
            platform,
            all_platforms,
            quiet,
            progress,
            file,
            reference,
        } => {
            let platform = image::PlatformSpec::of_flag(platform.as_deref())?;
            let mode = image::progress::Mode::decide(progress.as_deref(), quiet)?;
            let imported = Store::with_store(&dir, false, |s| {
                image::archive::import(
                    s,
                    &file,
                    reference.as_deref(),
                    &platform,
                    all_platforms,
                    mode,
                )
            })?;
            // json: the names and digests are in the stream's image events
            if mode != image::progress::Mode::Json {
                for (name, digest) in imported {
                    println!("{name} {digest}");
                }
            }
        }
        C::Prune => {
            let r = match Store::open_existing(&dir, true)? {
                Some(s) => image::collect_garbage(&s)?,
                None => Default::default(),
            };
            // user namespace ranges of husk up runs killed before their bundle was made
            husk::up::userns::collect(&dir)?;
            println!(
                "removed {} unreferenced blobs ({} bytes), {} unused layer snapshots and {} \
                 bytes of temp files: {} bytes freed",
                r.blobs,
                r.blob_bytes,
                r.snapshots,
                r.tmp_bytes,
                r.blob_bytes + r.snapshot_bytes + r.tmp_bytes
            );
        }
        C::Logout { registry } => {
            let file = husk::registry::login::logout(&registry)?;
            println!(
                "Removed the credentials for {registry} from {}",
                file.display()
            );
        }
    }
    Ok(0)
}

/// husk prints its errors without backtraces (`{:#}`), but anyhow captures one with every
/// error when `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` asks for them, as a developer's shell or a
/// CI often does: a millisecond each in this static binary, whose first unwind sorts every frame
/// description (`kill ID 9` of an exited init, which containerd's shim sends each pod, is such an
/// error), and an unwinder lock a forked child of a threaded process could wait on forever. std
/// decides once per process whether to capture: decided "no" here, before any thread exists, and
/// the environment hooks, plugins and helpers inherit is left as it was.
fn quiet_backtraces() {
    const VAR: &str = "RUST_LIB_BACKTRACE";
    let before = std::env::var_os(VAR);
    std::env::set_var(VAR, "0");
    let _ = std::backtrace::Backtrace::capture();
    match before {
        Some(v) => std::env::set_var(VAR, v),
        None => std::env::remove_var(VAR),
    }
}
