//! Man pages and shell completions generated from husk's clap definitions, so they never drift
//! from `--help`: `husk(8)` and one `husk-SUBCOMMAND(8)` per subcommand, and completion scripts
//! for bash, zsh and fish.
//!
//!     cargo run --example gen-docs -- OUT_DIR
//!
//! writes OUT_DIR/man/*.8 and OUT_DIR/completions/{husk.bash,_husk,husk.fish}.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn main() {
    let out = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => {
            eprintln!("usage: gen-docs OUT_DIR");
            std::process::exit(2);
        }
    };
    if let Err(e) = generate(&out) {
        eprintln!("gen-docs: {e}");
        std::process::exit(1);
    }
}

fn generate(out: &Path) -> std::io::Result<()> {
    let version: &'static str = env!("CARGO_PKG_VERSION");
    let mut cmd = husk::cli::Cli::command().version(version);
    // propagate the global flags (--root, --log, ...) into each subcommand's page
    cmd.build();
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    write_man(&man, "husk", cmd.clone())?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // `husk-create(8)`: the page's name is the command a reader types, joined by a dash,
        // as runc's and git's pages are named
        let name: &'static str = Box::leak(format!("husk-{}", sub.get_name()).into_boxed_str());
        let sub = sub
            .clone()
            .name(name)
            .bin_name(format!("husk {}", sub.get_name()));
        write_man(&man, name, sub)?;
    }
    let comp = out.join("completions");
    std::fs::create_dir_all(&comp)?;
    for (shell, file) in [
        (Shell::Bash, "husk.bash"),
        (Shell::Zsh, "_husk"),
        (Shell::Fish, "husk.fish"),
    ] {
        let mut f = std::fs::File::create(comp.join(file))?;
        clap_complete::generate(shell, &mut cmd.clone(), "husk", &mut f);
    }
    Ok(())
}

fn write_man(dir: &Path, name: &str, cmd: clap::Command) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .manual("husk manual")
        .source(format!("husk {}", env!("CARGO_PKG_VERSION")))
        .render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.8")), buf)
}
