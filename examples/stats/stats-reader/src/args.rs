//! Command-line parsing, hand-rolled to keep the pod binary small.

use std::path::PathBuf;
use std::time::Duration;

/// Where the map is looked for when neither `--map` nor `STATS_MAP` is given:
/// the pod manifest mounts the CSI volume at `/bpf`.
pub const DEFAULT_MAP: &str = "/bpf/stats_map";

/// Environment variable that overrides [`DEFAULT_MAP`] (`--map` wins over it).
pub const MAP_ENV: &str = "STATS_MAP";

/// Default time between two printed lines.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The help text printed by `--help`.
pub const USAGE: &str = "\
Usage: stats-reader [--map PATH] [--count K] [--interval-ms MS]

Prints key 0 of a pinned BPF map (u32 key, u64 value) once per interval.

Options:
  --map PATH         pinned map to read (default: $STATS_MAP, else /bpf/stats_map)
  --count K          stop after K lines (default: run until killed)
  --interval-ms MS   time between lines in milliseconds (default: 1000)
  -h, --help         print this help
  -V, --version      print the version
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read the map.
    Run(Options),
    /// Print [`USAGE`] and exit successfully.
    Help,
    /// Print the version and exit successfully.
    Version,
}

/// Options of a normal run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Path of the pinned map.
    pub map: PathBuf,
    /// Number of lines to print; `None` runs until the process is killed.
    pub count: Option<u64>,
    /// Sleep between two lines.
    pub interval: Duration,
}

/// A command line that cannot be used; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An option that this program does not know.
    #[error("unknown argument '{0}' (see --help)")]
    Unknown(String),
    /// An option given last, without its value.
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    /// A value that does not parse as what the option needs.
    #[error("invalid value '{value}' for {option}: {reason}")]
    InvalidValue {
        /// The option.
        option: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// Parses the arguments (without the program name). `env_map` is the value
/// of [`MAP_ENV`], passed in so parsing stays a pure function.
pub fn parse<I>(args: I, env_map: Option<String>) -> Result<Command, ArgsError>
where
    I: IntoIterator<Item = String>,
{
    let mut map: Option<PathBuf> = None;
    let mut count = None;
    let mut interval = DEFAULT_INTERVAL;
    let mut args = args.into_iter();

    while let Some(arg) = args.next() {
        // Accept both `--opt value` and `--opt=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |option: &'static str| -> Result<String, ArgsError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or(ArgsError::MissingValue(option)),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--map" => {
                let v = value("--map")?;
                if v.is_empty() {
                    return Err(ArgsError::InvalidValue {
                        option: "--map",
                        value: v,
                        reason: "the path is empty",
                    });
                }
                map = Some(PathBuf::from(v));
            }
            "--count" => {
                let v = value("--count")?;
                count = Some(parse_positive("--count", v)?);
            }
            "--interval-ms" => {
                let v = value("--interval-ms")?;
                interval = Duration::from_millis(parse_positive("--interval-ms", v)?);
            }
            _ => return Err(ArgsError::Unknown(arg)),
        }
    }

    let map = map
        .or_else(|| env_map.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MAP));
    Ok(Command::Run(Options {
        map,
        count,
        interval,
    }))
}

fn parse_positive(option: &'static str, value: String) -> Result<u64, ArgsError> {
    match value.parse::<u64>() {
        Ok(0) => Err(ArgsError::InvalidValue {
            option,
            value,
            reason: "must be at least 1",
        }),
        Ok(n) => Ok(n),
        Err(_) => Err(ArgsError::InvalidValue {
            option,
            value,
            reason: "not a whole number",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str], env: Option<&str>) -> Result<Command, ArgsError> {
        parse(args.iter().map(|s| s.to_string()), env.map(str::to_string))
    }

    fn run(args: &[&str], env: Option<&str>) -> Options {
        match p(args, env) {
            Ok(Command::Run(o)) => o,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[], None);
        assert_eq!(o.map, PathBuf::from(DEFAULT_MAP));
        assert_eq!(o.count, None);
        assert_eq!(o.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn env_overrides_default_and_flag_overrides_env() {
        assert_eq!(run(&[], Some("/x/m")).map, PathBuf::from("/x/m"));
        assert_eq!(run(&["--map", "/y"], Some("/x/m")).map, PathBuf::from("/y"));
        // An empty variable is treated as unset, not as the empty path.
        assert_eq!(run(&[], Some("")).map, PathBuf::from(DEFAULT_MAP));
    }

    #[test]
    fn both_value_forms() {
        let o = run(&["--map=/a", "--count", "3", "--interval-ms=50"], None);
        assert_eq!(o.map, PathBuf::from("/a"));
        assert_eq!(o.count, Some(3));
        assert_eq!(o.interval, Duration::from_millis(50));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--count", "2", "-h"], None), Ok(Command::Help));
        assert_eq!(p(&["--version"], None), Ok(Command::Version));
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&["--bogus"], None),
            Err(ArgsError::Unknown("--bogus".into()))
        );
        assert_eq!(
            p(&["--count"], None),
            Err(ArgsError::MissingValue("--count"))
        );
        assert!(matches!(
            p(&["--count", "0"], None),
            Err(ArgsError::InvalidValue {
                option: "--count",
                ..
            })
        ));
        assert!(matches!(
            p(&["--interval-ms", "fast"], None),
            Err(ArgsError::InvalidValue {
                option: "--interval-ms",
                ..
            })
        ));
        assert!(matches!(
            p(&["--map="], None),
            Err(ArgsError::InvalidValue {
                option: "--map",
                ..
            })
        ));
        let msg = p(&["--count", "-1"], None).unwrap_err().to_string();
        assert_eq!(msg, "invalid value '-1' for --count: not a whole number");
    }
}
