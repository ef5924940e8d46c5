//! `stats-reader`: prints key 0 of a pinned BPF map once per interval.
//!
//! Runs unprivileged in the stats example pod: the CSI driver mounts a bpffs
//! holding `stats_map` at `/bpf`, and this program opens it read-only with
//! `bpf(BPF_OBJ_GET)`. Output lines look like `stats_map[0] = 1234`.

mod args;
mod bpf;

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use args::{ArgsError, Command, Options};
use bpf::{PinnedMap, ReadError};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Args(#[from] ArgsError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

fn main() -> ExitCode {
    let env_map = std::env::var(args::MAP_ENV).ok();
    let result = match args::parse(std::env::args().skip(1), env_map) {
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            Ok(())
        }
        Ok(Command::Version) => {
            println!("stats-reader {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Command::Run(opts)) => run(&opts, &mut io::stdout().lock()),
        Err(e) => Err(Error::Args(e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stats-reader: error: {e}");
            match e {
                Error::Args(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Opens the map once, then prints one line per interval until `count`
/// lines are out (or forever). The map is opened before the first line so a
/// wrong path fails at once, not after a sleep.
fn run(opts: &Options, out: &mut impl Write) -> Result<(), Error> {
    let map = PinnedMap::open(&opts.map)?;
    let label = label(&opts.map);
    // To stderr, so stdout carries only the counter lines scripts parse.
    let info = map.info();
    eprintln!(
        "stats-reader: reading {} (kernel map id {}, {} entries)",
        opts.map.display(),
        info.id,
        info.max_entries
    );
    let mut printed: u64 = 0;
    loop {
        let value = map.read_key0()?;
        let written = writeln!(out, "{}", line(&label, value)).and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            // The reader of our output went away (`| head -n 3`): done.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::Output(e)),
        }
        printed += 1;
        if opts.count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        std::thread::sleep(opts.interval);
    }
}

/// The name shown before `[0]`: the pin's file name, so a renamed map reads
/// naturally.
fn label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn line(label: &str, value: u64) -> String {
    format!("{label}[0] = {value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn line_format() {
        assert_eq!(
            line(&label(Path::new("/bpf/stats_map")), 42),
            "stats_map[0] = 42"
        );
        assert_eq!(label(Path::new("/")), "/");
    }

    #[test]
    fn run_reports_a_missing_map_before_printing() {
        let opts = Options {
            map: PathBuf::from("/nonexistent/stats_map"),
            count: Some(1),
            interval: Duration::from_millis(1),
        };
        let mut out = Vec::new();
        let e = run(&opts, &mut out).unwrap_err();
        assert!(out.is_empty());
        assert_eq!(
            e.to_string(),
            "no such file: /nonexistent/stats_map — is the CSI volume mounted?"
        );
    }
}
