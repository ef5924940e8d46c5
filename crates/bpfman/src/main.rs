//! The `bpfman` binary: CLI (embedded or remote) and the daemon.

mod args;
mod cli;
mod ops;
mod remote;
mod render;
mod serve;
mod server;

use std::process::ExitCode;

use clap::Parser;

use bpfman_manager::{Code, Config, ListFilter, Manager, ManagerError};
use cli::{Cli, Command, GetSub, ListSub, LoadCommand};
use ops::Ops;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Serve(_)));
    match run(cli) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line to act on; any detail (a verifier log) follows, marked.
            let mut lines = e.message.lines();
            eprintln!("Error: {}", lines.next().unwrap_or_default());
            for l in lines {
                eprintln!("  | {l}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BPFMAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn bad(e: bpfman_core::CoreError) -> ManagerError {
    ManagerError::from(e)
}

fn run(cli: Cli) -> Result<String, ManagerError> {
    let out = cli.output;
    let backend: Box<dyn Ops> = match (&cli.command, &cli.socket) {
        (Command::Serve(a), _) => {
            serve::serve(&cli.runtime_dir, a)?;
            return Ok(String::new());
        }
        (Command::Health { socket }, _) => return serve::health(socket),
        (_, Some(sock)) => Box::new(remote::Remote::connect(sock)?),
        (_, None) => Box::new(Manager::open(Config::new(&cli.runtime_dir))?),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| ManagerError::internal(format!("cannot read the current directory: {e}")))?;
    Ok(match cli.command {
        Command::Load(LoadCommand::File(a)) => {
            let spec = args::load_file_spec(&a, &cwd).map_err(bad)?;
            render::program_details(out, &backend.load(spec)?, false)
        }
        Command::Load(LoadCommand::Image(_)) => {
            return Err(ManagerError::new(
                Code::Unimplemented,
                "loading from OCI images is not supported yet: use `bpfman load file`",
            ));
        }
        Command::Unload { id } => {
            backend.unload(id)?;
            render::done(out, "Unloaded program", id)
        }
        Command::Attach(a) => {
            let (spec, md) = args::attach_spec(&a).map_err(bad)?;
            render::link(out, &backend.attach(a.id, spec, md)?)
        }
        Command::Detach { link_id } => {
            backend.detach(link_id)?;
            render::done(out, "Detached link", link_id)
        }
        Command::List(l) => match l.sub {
            Some(ListSub::Links { program_id }) => {
                render::links(out, &backend.list_links(program_id)?)
            }
            None => {
                let kind = l
                    .program_type
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(bad)?;
                let f = ListFilter {
                    kind,
                    kernel_type: None,
                    selector: args::selector(&l.selector).map_err(bad)?,
                    all: l.all,
                };
                render::programs(out, &backend.list(&f)?)
            }
        },
        Command::Get(g) => match (g.sub, g.id) {
            (Some(GetSub::Link { id }), _) => render::link(out, &backend.get_link(id)?),
            (None, Some(id)) => render::program_details(out, &[backend.get(id)?], true),
            (None, None) => {
                return Err(ManagerError::invalid(
                    "get needs a program id, or `get link ID`",
                ));
            }
        },
        Command::Gc { prune } => render::gc(out, &backend.gc(prune)?, prune),
        Command::Serve(_) | Command::Health { .. } => unreachable!("handled above"),
    })
}
