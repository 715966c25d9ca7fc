//! `husk up` and `husk rm`: docker run's flags, mapped onto `husk::up`'s options.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Print help (`-h` is --hostname, as in docker run).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The image store [default: $HUSK_STORE, else /var/lib/husk for root, else
    /// $XDG_DATA_HOME/husk].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Remove the container and its bundle when it exits.
    #[arg(long)]
    pub rm: bool,
    /// The container's name [default: a generated id].
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass husk's own); repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Read environment variables from a file of KEY=VALUE lines; repeatable.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory in the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// user[:group], names or ids, resolved in the image.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Replace the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The container's hostname.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// none (loopback only), host, bridge (the default network, `husk`), or a network's name;
    /// without it the default network, as docker run (loopback only for a caller without root).
    #[arg(long)]
    pub network: Option<String>,
    /// Another name the container has on its network, in the /etc/hosts of the network's
    /// other containers; repeatable (not with none, host or the default network).
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// Publish a port: [ip:]hostPort:containerPort[/tcp|udp|sctp] (on a network, not none/host;
    /// an IPv6 ip in brackets: [::1]:8080:80); repeatable.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port (printed on stderr).
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// missing, always or never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Print nothing of the image's pull (docker run's `-q`).
    #[arg(short, long)]
    pub quiet: bool,
    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Keep stdin open (the container's stdin is husk's in the foreground).
    #[arg(short, long)]
    pub interactive: bool,
    /// Run an init as the container's pid 1 (husk's own, bound read-only at /sbin/husk-init):
    /// it forwards signals to the command and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// The user namespace: host (none of its own, the default); as root auto[:size=N] (a free
    /// range of the subordinate ids /etc/subuid and /etc/subgid give the user `containers`, or
    /// $HUSK_SUBID_USER; N defaults to the image's highest id + 1, at least 1024); as a user
    /// keep-id[:uid=U,gid=G] (your uid and gid kept inside, or at U and G, your subordinate ids
    /// around them; the process runs as you unless -u says) or nomap (your subordinate ids
    /// alone, your own ids not mapped).
    #[arg(long, default_value = "host")]
    pub userns: String,
    /// How to reach the registry when the image is pulled.
    #[command(flatten)]
    pub conn: super::image::RegistryArgs,
    /// Container configuration: volumes, resources, capabilities, security, names, devices.
    #[command(flatten)]
    pub config: crate::up::flags::ConfigFlags,
    /// OS/ARCH[/VARIANT] to pull [default: the host's].
    #[arg(long)]
    pub platform: Option<String>,
    /// The image (busybox, registry.example:5000/app:1.4, app@sha256:…), then the command and
    /// its arguments, which replace the image's Cmd. Everything after the image belongs to the
    /// command, flags included (`husk up busybox ls -v` passes -v to ls), as with docker run.
    #[arg(
        value_name = "IMAGE [COMMAND [ARG...]]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_command: Vec<String>,
    // -d and what goes with it
    /// Run in the background under a monitor of its own (logs, restarts); print the id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// no, on-failure[:max-retries], always or unless-stopped (with -d).
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// The signal husk stop sends first [default: the image's, else SIGTERM].
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds husk stop waits for the container before SIGKILL [default: 10].
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// The log of -d: json-file (the default) or none (no log is kept).
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// A json-file log option: max-size=SIZE (rotate at SIZE: 10m, 500k, 1g; default 10m) or
    /// max-file=N (keep N files; default 3); repeatable.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The image store the containers' bundles are under (as for `husk up`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The image store the containers' bundles are under (as for `husk up`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Keep printing new lines until the container is done.
    #[arg(short, long)]
    pub follow: bool,
    /// The last N lines only (or all).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Lines since a time: RFC 3339, a Unix time, or a duration back from now (10m, 1h30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Prefix each line with the time it was logged.
    #[arg(short, long)]
    pub timestamps: bool,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The image store the containers' bundles are under (as for `husk up`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Do not attach husk's stdin (to a container started with -i).
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Pass the signals husk attach gets on to the container (not with a terminal: there
    /// Ctrl-C is input).
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The keys that detach from a container with a terminal [default: ctrl-p,ctrl-q].
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// The image store the containers' bundles are under (as for `husk up`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Seconds to wait after the stop signal before SIGKILL [default: --stop-timeout, else
    /// 10].
    #[arg(short = 't', long = "timeout", visible_alias = "time")]
    pub timeout: Option<u64>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

impl UpArgs {
    /// The image and the command after it (clap requires the image).
    pub fn image_and_command(&self) -> (String, Vec<String>) {
        let mut v = self.image_and_command.clone();
        let image = if v.is_empty() {
            String::new()
        } else {
            v.remove(0)
        };
        (image, v)
    }
}
