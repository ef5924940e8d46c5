//! The `bpfman` binary: CLI (embedded or remote) and the daemon.

mod args;
mod auth;
mod cli;
mod logging;
mod metrics;
mod nolibs;
mod ops;
mod pretty;
mod remote;
mod render;
mod serve;
mod server;
mod top;
mod trim;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use bpfman_core::model::ProgramView;
use bpfman_manager::image;
use bpfman_manager::{Config, ListFilter, Manager, ManagerError};
use cli::{Cli, Command, GetSub, ImageCommand, ListSub, LoadCommand, TopCommand};
use ops::Ops;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let daemon = matches!(cli.command, TopCommand::Run(Command::Serve(_)));
    if !daemon {
        one_shot_heap();
    }
    logging::init(daemon);
    match run(cli) {
        Ok(printed) => print(printed),
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

/// Heap settings for a process that runs one command and exits (the daemon
/// keeps glibc's defaults and trims when quiet, see `trim`). By default glibc
/// grows the heap 128 KiB at a time and gives back any free top over 128 KiB;
/// a `list` of a thousand programs then faulted the same pages in again. Here
/// the heap grows in 8 MiB steps of address space (pages are faulted in only
/// when touched) and is never shrunk before exit.
fn one_shot_heap() {
    // SAFETY: mallopt only sets glibc malloc parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// What a command prints when it succeeds.
enum Printed {
    /// Text rendered in memory.
    Text(String),
    /// `list`: rendered by [`print`] straight to stdout.
    Programs(cli::Output, Vec<ProgramView>),
}

/// Writes a command's output to stdout. A reader that has gone away (`| head`)
/// ends the command quietly, as with other CLI tools; other write errors fail it.
fn print(printed: Printed) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let res = match &printed {
        Printed::Text(s) => stdout.write_all(s.as_bytes()),
        Printed::Programs(out, list) => {
            let mut w = std::io::BufWriter::with_capacity(64 << 10, &mut stdout);
            render::programs_to(*out, list, &mut w).and_then(|()| w.flush())
        }
    }
    .and_then(|()| stdout.flush());
    // The process ends next: freeing a thousand views one allocation at a
    // time cost about 0.5 ms of a 10 ms `list`, for nothing.
    std::mem::forget(printed);
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bad(e: bpfman_core::CoreError) -> ManagerError {
    ManagerError::from(e)
}

fn run(cli: Cli) -> Result<Printed, ManagerError> {
    let out = cli.output;
    let command = match cli.command {
        TopCommand::Health { socket } => return serve::health(&socket).map(Printed::Text),
        TopCommand::Run(c) => c,
    };
    let backend: Box<dyn Ops> = match (&command, &cli.socket) {
        (Command::Serve(a), _) => {
            serve::serve(&cli.runtime_dir, a)?;
            return Ok(Printed::Text(String::new()));
        }
        // Image commands touch only the registry and the cache: no daemon.
        (Command::Image(c), _) => return image_command(out, c).map(Printed::Text),
        (_, Some(sock)) => Box::new(remote::Remote::connect(sock)?),
        (_, None) => Box::new(Manager::open(Config::new(&cli.runtime_dir))?),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| ManagerError::internal(format!("cannot read the current directory: {e}")))?;
    Ok(Printed::Text(match command {
        Command::Load(LoadCommand::File(a)) => {
            let spec = args::load_file_spec(&a, &cwd).map_err(bad)?;
            render::program_details(out, &backend.load(spec)?, false)
        }
        Command::Load(LoadCommand::Image(a)) => {
            let spec = args::load_image_spec(&a).map_err(bad)?;
            render::program_details(out, &backend.load(spec)?, false)
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
                return Ok(Printed::Programs(out, backend.list(&f)?));
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
        Command::Top(a) => top::run(out, backend.as_ref(), &a)?,
        Command::Serve(_) | Command::Image(_) => {
            unreachable!("handled above")
        }
    }))
}

/// `bpfman image ...`, with the settings and signing policy of bpfman.toml.
fn image_command(out: cli::Output, c: &ImageCommand) -> Result<String, ManagerError> {
    let cfg = image::image_config_from_env()?;
    Ok(match c {
        ImageCommand::Pull(a) => {
            let reference = args::image_ref(a).map_err(bad)?;
            let auth = args::registry_auth(a.pull.registry_auth.as_deref()).map_err(bad)?;
            let img = image::pull_image(
                &cfg,
                &reference,
                args::pull_policy(a.pull.pull_policy.as_deref()).map_err(bad)?,
                auth.as_ref(),
            )?;
            render::pulled_image(out, &img)
        }
        ImageCommand::Inspect(a) => {
            let reference = args::image_ref(a).map_err(bad)?;
            let auth = args::registry_auth(a.pull.registry_auth.as_deref()).map_err(bad)?;
            let info = image::inspect_image(
                &cfg,
                &reference,
                args::pull_policy(a.pull.pull_policy.as_deref()).map_err(bad)?,
                auth.as_ref(),
            )?;
            render::image_info(out, &info)
        }
        ImageCommand::Build(a) => {
            let req = args::image_build_request(a).map_err(bad)?;
            render::built_image(out, &image::build_image(&cfg, &req)?)
        }
        ImageCommand::Prune { all } => render::pruned(out, &image::prune_images(&cfg, *all)?),
    })
}
