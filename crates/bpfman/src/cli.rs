//! Command-line arguments (clap). Parsing only: no effects here.

use std::path::PathBuf;

use bpfman_core::ProgramKind;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// bpfman: load, attach and manage BPF programs; serve them over gRPC and CSI.
#[derive(Debug, Parser)]
#[command(name = "bpfman", version, about, propagate_version = true)]
pub struct Cli {
    /// Runtime directory (bpffs at <dir>/fs, store at <dir>/db/store.db).
    #[arg(
        long,
        global = true,
        env = "BPFMAN_RUNTIME_DIR",
        default_value = "/run/bpfman"
    )]
    pub runtime_dir: PathBuf,
    /// Send the command to the daemon on this socket instead of running it here.
    #[arg(long, global = true, env = "BPFMAN_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// Command.
    #[command(subcommand)]
    pub command: TopCommand,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// Stable JSON (see docs/json.md).
    Json,
}

/// Top-level commands: the deferred ones, then `health`.
///
/// Deferred (`defer = true`): clap builds a command's arguments only when
/// the command line selects it, instead of every command's at each start
/// (about a fifth of the instructions of `bpfman --version`). `health` stays
/// outside because of how clap propagates globals: it copies `--socket`
/// into each subcommand that has no argument of that id yet, which for a
/// deferred one is every one, and `health`'s `--listen` has the id `socket`
/// (so `health` takes no `--socket`; deferred, it would have both).
#[derive(Debug, Subcommand)]
// One value per process, parsed once: boxing `Run` would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum TopCommand {
    /// The commands clap builds on demand.
    #[command(flatten)]
    Run(Command),
    /// Check the daemon's health over its socket (exit 0 when serving).
    Health {
        /// Daemon socket.
        #[arg(long = "listen", default_value = "/run/bpfman-sock/bpfman.sock")]
        socket: PathBuf,
    },
}

/// Top-level commands but `health`.
///
/// The `Args` structs of these commands (and those they flatten, and their
/// nested subcommand enums) carry `//` comments, not doc comments: clap makes
/// such a doc comment the command's about, and with deferral it would be
/// applied after (and so replace) the variant's.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Load BPF programs.
    #[command(subcommand)]
    Load(LoadCommand),
    /// Unload a program (detaches its links, removes its pins and, when unused, its maps).
    Unload {
        /// Program id.
        id: u32,
    },
    /// Attach a loaded program.
    Attach(AttachArgs),
    /// Detach a link.
    Detach {
        /// Link id.
        link_id: u32,
    },
    /// List programs (or links: `list links`).
    List(ListArgs),
    /// Show one program (or a link: `get link ID`).
    Get(GetArgs),
    /// OCI bytecode images: pull, inspect, build, prune the cache.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Find (and with --prune remove) stale state.
    Gc {
        /// Remove what is found.
        #[arg(long)]
        prune: bool,
    },
    /// Live view of the managed programs by CPU time (q or Ctrl-C quits;
    /// `-o json` prints one sample).
    Top(TopArgs),
    /// Run the daemon: gRPC API and optionally the CSI node plugin.
    Serve(ServeArgs),
}

/// `load` subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum LoadCommand {
    /// Load from an ELF object file.
    File(LoadFileArgs),
    /// Load from an OCI image (pulled and verified first).
    Image(LoadImageArgs),
}

// Options shared by every load form.
#[derive(Debug, Args)]
pub struct LoadCommon {
    /// Metadata KEY=VALUE stored with every program (repeatable).
    #[arg(short = 'm', long = "metadata", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Global variable override NAME=HEX (repeatable).
    #[arg(short = 'g', long = "global-data", value_name = "NAME=HEX")]
    pub global_data: Vec<String>,
    /// Application name (sets metadata bpfman.io/application).
    #[arg(long)]
    pub application: Option<String>,
    /// Share the maps of this already-loaded program.
    #[arg(long, value_name = "ID")]
    pub map_owner_id: Option<u32>,
}

// `load file`.
#[derive(Debug, Args)]
pub struct LoadFileArgs {
    /// Object file, then the programs to load (none = every program).
    #[arg(value_name = "PATH [PROGRAM]...")]
    pub positional: Vec<String>,
    /// Object file (upstream form).
    #[arg(short = 'p', long = "path", value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Program as TYPE:NAME[:ATTACH_FN] (upstream form, repeatable).
    #[arg(long = "programs", value_name = "TYPE:NAME[:ATTACH_FN]")]
    pub programs: Vec<String>,
    #[command(flatten)]
    pub common: LoadCommon,
}

// `load image`.
#[derive(Debug, Args)]
pub struct LoadImageArgs {
    /// Image reference, e.g. quay.io/bpfman-bytecode/go-tracepoint-counter:latest.
    #[arg(short = 'i', long, value_name = "REF")]
    pub image_url: String,
    #[command(flatten)]
    pub pull: PullArgs,
    /// Programs to load (none = the ones the image's io.ebpf.programs label
    /// names, else every program of the object).
    #[arg(value_name = "PROGRAM")]
    pub positional: Vec<String>,
    /// Program as TYPE:NAME[:ATTACH_FN] (upstream form, repeatable).
    #[arg(long = "programs", value_name = "TYPE:NAME[:ATTACH_FN]")]
    pub programs: Vec<String>,
    #[command(flatten)]
    pub common: LoadCommon,
}

// How to reach the registry.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// When to contact the registry: Always, IfNotPresent (default) or Never.
    #[arg(short = 'p', long, value_name = "POLICY")]
    pub pull_policy: Option<String>,
    /// Registry credentials, base64 of USER:PASSWORD (default: the
    /// docker/podman auth files).
    #[arg(short = 'r', long, value_name = "BASE64")]
    pub registry_auth: Option<String>,
}

/// `image` subcommands: run in this process, even with --socket.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// Pull an image into the cache and verify it.
    Pull(ImageRefArgs),
    /// Show an image's digests, platforms and labels (without its layer).
    Inspect(ImageRefArgs),
    /// Build a bytecode image from a BPF object.
    Build(ImageBuildArgs),
    /// Shrink the image cache to its bound (or empty it with --all).
    Prune {
        /// Remove every cached image.
        #[arg(long)]
        all: bool,
    },
}

// An image reference and how to pull it.
#[derive(Debug, Args)]
pub struct ImageRefArgs {
    /// Image reference.
    #[arg(value_name = "REF", required_unless_present = "image_url")]
    pub reference: Option<String>,
    /// Image reference (upstream form).
    #[arg(short = 'i', long, value_name = "REF", conflicts_with = "reference")]
    pub image_url: Option<String>,
    #[command(flatten)]
    pub pull: PullArgs,
}

// `image build`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("dest").required(true).args(["oci_layout", "push"]))]
pub struct ImageBuildArgs {
    /// The BPF ELF object; repeat as OS/ARCH[/VARIANT]=PATH, one per
    /// platform, to build a multi-arch index.
    #[arg(
        short = 'b',
        long = "object",
        value_name = "[OS/ARCH=]PATH",
        required = true
    )]
    pub objects: Vec<String>,
    /// Program label NAME=TYPE (repeatable; default: every program of the
    /// object, typed by its ELF section).
    #[arg(long = "program", value_name = "NAME=TYPE")]
    pub programs: Vec<String>,
    /// Map label NAME=TYPE (repeatable).
    #[arg(long = "map", value_name = "NAME=TYPE")]
    pub maps: Vec<String>,
    /// Write to an OCI layout directory, under TAG (default latest).
    #[arg(long, value_name = "DIR[:TAG]")]
    pub oci_layout: Option<String>,
    /// Push to a registry, e.g. quay.io/me/stats:v1.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Sign with this PEM ECDSA P-256 private key (cosign-compatible).
    #[arg(long, value_name = "PEM")]
    pub sign_key: Option<PathBuf>,
    /// Registry credentials for --push, base64 of USER:PASSWORD.
    #[arg(short = 'r', long, value_name = "BASE64")]
    pub registry_auth: Option<String>,
    /// Platform os/arch[/variant] (default: this host's).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

// `attach ID TYPE ...`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Program id.
    pub id: u32,
    /// Attach type.
    #[arg(value_parser = program_kind_parser())]
    pub attach_type: ProgramKind,
    /// Tracepoint GROUP/NAME (default: from the program's ELF section).
    #[arg(long)]
    pub tracepoint: Option<String>,
    /// Function name (kprobe, uprobe).
    #[arg(short = 'f', long)]
    pub fn_name: Option<String>,
    /// Offset (kprobe, uprobe).
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Binary or library to probe (uprobe).
    #[arg(short = 't', long)]
    pub target: Option<String>,
    /// Only this process (uprobe).
    #[arg(long)]
    pub pid: Option<i32>,
    /// Container pid (recorded with the link).
    #[arg(long)]
    pub container_pid: Option<i32>,
    /// Interface (xdp, tc, tcx).
    #[arg(short = 'i', long)]
    pub iface: Option<String>,
    /// Direction, ingress or egress (tc, tcx); default from the section (`tc/ingress`, `tcx/egress`).
    #[arg(short = 'd', long)]
    pub direction: Option<String>,
    /// Priority 1..=1000, lower runs first (xdp, tc, tcx).
    #[arg(long, default_value_t = 1000)]
    pub priority: i32,
    /// Continue the chain after these actions (xdp, tc; repeatable).
    #[arg(long = "proceed-on")]
    pub proceed_on: Vec<String>,
    /// Network namespace file (xdp, tc, tcx).
    #[arg(short = 'n', long)]
    pub netns: Option<String>,
    /// XDP mode.
    #[arg(long, default_value = "native")]
    pub mode: String,
    /// Metadata KEY=VALUE stored with the link (repeatable).
    #[arg(short = 'm', long = "metadata", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
}

/// Parses a program kind by the names core gives them (one list, in core).
fn program_kind_parser() -> impl clap::builder::TypedValueParser<Value = ProgramKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ProgramKind::ALL.map(ProgramKind::as_str))
        .try_map(|s| s.parse::<ProgramKind>())
}

// `list`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ListArgs {
    /// Links instead of programs.
    #[command(subcommand)]
    pub sub: Option<ListSub>,
    /// Include programs bpfman did not load.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only this program type.
    #[arg(short = 't', long = "program-type")]
    pub program_type: Option<String>,
    /// Only programs carrying KEY=VALUE (repeatable, all must match).
    #[arg(short = 'm', long = "metadata-selector", value_name = "KEY=VALUE")]
    pub selector: Vec<String>,
}

// `list links`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ListSub {
    /// List links.
    Links {
        /// Only links of this program.
        #[arg(long)]
        program_id: Option<u32>,
    },
}

// `get`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GetArgs {
    /// Link instead of program.
    #[command(subcommand)]
    pub sub: Option<GetSub>,
    /// Program id.
    pub id: Option<u32>,
}

// `get link`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum GetSub {
    /// Show one link.
    Link {
        /// Link id.
        id: u32,
    },
}

// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC socket to listen on.
    #[arg(
        long,
        env = "BPFMAN_LISTEN",
        default_value = "/run/bpfman-sock/bpfman.sock"
    )]
    pub listen: PathBuf,
    /// Also serve the CSI node plugin.
    #[arg(long)]
    pub csi_support: bool,
    /// CSI socket.
    #[arg(
        long,
        env = "CSI_ENDPOINT",
        default_value = "/var/lib/kubelet/plugins/csi.go-bpfman.io/csi.sock"
    )]
    pub csi_endpoint: String,
    /// CSI driver name.
    #[arg(long, default_value = "csi.go-bpfman.io")]
    pub csi_driver_name: String,
    /// CSI node id (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_id: Option<String>,
    /// Kubelet pods directory: CSI target paths must lie under it.
    #[arg(long, default_value = "/var/lib/kubelet/pods")]
    pub pods_dir: PathBuf,
    /// Serve Prometheus metrics at /metrics on this address: HOST:PORT
    /// (e.g. 127.0.0.1:9090) or a Unix socket path. Off by default; while
    /// on, the kernel counts programs' run time (BPF_ENABLE_STATS).
    #[arg(long, env = "BPFMAN_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

// `top` options.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between samples.
    #[arg(long, short = 'd', default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many refreshes (default: until q or Ctrl-C; `-o json`: 1).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks (unique ids, valid defaults...) over every command,
    /// deferred ones included: a parse only builds the command it selects.
    #[test]
    fn clap_asserts_hold_for_every_command() {
        super::Cli::command().debug_assert();
    }
}
