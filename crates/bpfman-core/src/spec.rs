//! What a user asks for: load and attach specifications, validated purely.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ProgramId;
use crate::error::{CoreError, invalid};
use crate::kind::ProgramKind;
use crate::limits::{MAX_GLOBAL_DATA_BYTES, MAX_GLOBAL_DATA_ENTRIES, MAX_PROGRAMS_PER_LOAD};
use crate::metadata::{self, Metadata};
use crate::section::parse_section;

/// Where bytecode comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BytecodeSource {
    /// An ELF object on the node.
    File {
        /// Absolute path of the object.
        path: String,
    },
    /// An OCI image (reference and the digest it resolved to).
    Image {
        /// Image reference as given.
        url: String,
        /// Manifest digest, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
}

/// One program to load from the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRequest {
    /// Function name in the object.
    pub name: String,
    /// Kind, when the user gave one; otherwise taken from the ELF section.
    pub kind: Option<ProgramKind>,
    /// fentry/fexit target function, when given (else from the section).
    pub attach_fn: Option<String>,
}

/// Global variable overrides: name → raw bytes.
pub type GlobalData = BTreeMap<String, Vec<u8>>;

/// A load request: one object, one or more programs, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSpec {
    /// Where the object comes from.
    pub source: BytecodeSource,
    /// Programs to load; empty means every program the object holds.
    pub programs: Vec<ProgramRequest>,
    /// Labels stored with every program of the load.
    pub metadata: Metadata,
    /// Global variable overrides.
    pub global_data: GlobalData,
    /// Share the maps of this already-loaded program.
    pub map_owner_id: Option<ProgramId>,
    /// Image sources only: when to contact the registry (`Always`,
    /// `IfNotPresent` or `Never`, any case; default `IfNotPresent`).
    /// Transport only: never stored with the programs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Image sources only: registry credentials for this pull. Transport
    /// only: never stored, logged or shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_auth: Option<RegistryAuth>,
}

/// When to contact the registry for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always resolve the tag at the registry (blobs already cached are reused).
    Always,
    /// Use the cached image when the reference is cached; else pull.
    #[default]
    IfNotPresent,
    /// Only the cache; never the network.
    Never,
}

impl PullPolicy {
    /// Every policy.
    pub const ALL: [PullPolicy; 3] = [
        PullPolicy::Always,
        PullPolicy::IfNotPresent,
        PullPolicy::Never,
    ];

    /// `Always`, `IfNotPresent` or `Never` (the JSON spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = CoreError;

    /// `Always`, `IfNotPresent` or `Never`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PullPolicy::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                invalid(format!(
                    "pull policy '{s}' is not one of Always, IfNotPresent, Never"
                ))
            })
    }
}

impl Serialize for PullPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Any case, as the CLI and the JSON transport always accepted.
impl<'de> Deserialize<'de> for PullPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Registry credentials sent with a load request. `Debug` redacts the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl LoadSpec {
    /// Validates everything that can be checked without the system.
    pub fn validate(&self) -> Result<(), CoreError> {
        metadata::validate(&self.metadata)?;
        if self.programs.len() > MAX_PROGRAMS_PER_LOAD {
            return Err(invalid(format!(
                "{} programs named: at most {MAX_PROGRAMS_PER_LOAD} per load",
                self.programs.len()
            )));
        }
        if self.global_data.len() > MAX_GLOBAL_DATA_ENTRIES {
            return Err(invalid(format!(
                "{} global data variables: at most {MAX_GLOBAL_DATA_ENTRIES} per load",
                self.global_data.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.programs {
            validate_symbol("program name", &p.name)?;
            if !seen.insert(&p.name) {
                return Err(invalid(format!("program '{}' is named twice", p.name)));
            }
            if let Some(f) = &p.attach_fn {
                validate_symbol("attach function", f)?;
            }
        }
        for (name, bytes) in &self.global_data {
            validate_global_name(name)?;
            if bytes.is_empty() {
                return Err(invalid(format!("global data for '{name}' is empty")));
            }
            if bytes.len() > MAX_GLOBAL_DATA_BYTES {
                return Err(invalid(format!(
                    "global data for '{name}' is {} bytes: at most {MAX_GLOBAL_DATA_BYTES}",
                    bytes.len()
                )));
            }
        }
        match &self.source {
            BytecodeSource::File { path } => {
                if path.is_empty() {
                    return Err(invalid("bytecode path is empty"));
                }
                if self.pull_policy.is_some() || self.registry_auth.is_some() {
                    return Err(invalid(
                        "a pull policy and registry credentials apply to image bytecode only",
                    ));
                }
            }
            BytecodeSource::Image { url, .. } => {
                if url.trim().is_empty() {
                    return Err(invalid("image url is empty"));
                }
            }
        }
        if let Some(a) = &self.registry_auth
            && a.username.is_empty()
        {
            return Err(invalid("registry credentials have an empty user name"));
        }
        Ok(())
    }
}

/// Checks a C identifier-like symbol (program, function) name.
pub fn validate_symbol(what: &str, s: &str) -> Result<(), CoreError> {
    if s.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if s.len() > 255 {
        return Err(invalid(format!("{what} '{s}' is longer than 255 bytes")));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'))
    {
        return Err(invalid(format!(
            "{what} '{s}' may hold only letters, digits, '_', '.' and '$'"
        )));
    }
    Ok(())
}

fn validate_global_name(s: &str) -> Result<(), CoreError> {
    validate_symbol("global variable name", s)
}

/// Parses `NAME=HEX` (hex digits, even count, optional `0x`) into a global override.
pub fn parse_global(s: &str) -> Result<(String, Vec<u8>), CoreError> {
    let (name, hex) = s
        .split_once('=')
        .ok_or_else(|| invalid(format!("'{s}' is not NAME=HEX")))?;
    validate_global_name(name)?;
    let bytes = parse_hex(hex).map_err(|why| invalid(format!("global data '{name}': {why}")))?;
    Ok((name.to_string(), bytes))
}

/// Decodes a hex string (`0x` prefix allowed) into bytes.
pub fn parse_hex(hex: &str) -> Result<Vec<u8>, String> {
    let h = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    if h.is_empty() {
        return Err("hex value is empty".into());
    }
    if !h.len().is_multiple_of(2) {
        return Err(format!("hex value '{hex}' has an odd number of digits"));
    }
    // Byte-wise: slicing the str at odd offsets panics inside a multi-byte
    // character, and `from_str_radix` would take a sign ("+f").
    fn digit(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    h.as_bytes()
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!("'{hex}' is not hexadecimal")),
        })
        .collect()
}

/// Encodes bytes as lowercase hex (for display and JSON).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Driver (native) mode.
    #[default]
    Native,
    /// Generic (skb) mode.
    Skb,
}

impl XdpMode {
    /// `native` or `skb` (the JSON spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for XdpMode {
    type Err = CoreError;

    /// `native` (or `drv`) and `skb` (or `generic`), as the CLI accepts them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" | "drv" => Ok(XdpMode::Native),
            "skb" | "generic" => Ok(XdpMode::Skb),
            m => Err(invalid(format!("XDP mode '{m}' must be native or skb"))),
        }
    }
}

/// Traffic direction for TC and TCX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ingress hook.
    Ingress,
    /// Egress hook.
    Egress,
}

impl Direction {
    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "ingress" => Ok(Direction::Ingress),
            "egress" => Ok(Direction::Egress),
            _ => Err(invalid(format!(
                "direction '{s}' must be 'ingress' or 'egress'"
            ))),
        }
    }
}

/// Where and how to attach a program. Optional targets are filled from the
/// program's ELF section by [`AttachSpec::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AttachSpec {
    /// A tracepoint, `GROUP/NAME`.
    Tracepoint {
        /// `GROUP/NAME`; `None` = from the section.
        tracepoint: Option<String>,
    },
    /// kprobe or kretprobe.
    Kprobe {
        /// Kernel function; `None` = from the section.
        fn_name: Option<String>,
        /// Offset into the function.
        offset: u64,
        /// Return probe.
        retprobe: bool,
        /// Container pid recorded with the link.
        container_pid: Option<i32>,
    },
    /// uprobe or uretprobe.
    Uprobe {
        /// Binary or library.
        target: String,
        /// Symbol (may be absent when the offset alone locates the probe).
        fn_name: Option<String>,
        /// Offset (from the symbol, or from the start of the file).
        offset: u64,
        /// Only this process.
        pid: Option<i32>,
        /// Return probe.
        retprobe: bool,
        /// Container pid whose view of the target is used.
        container_pid: Option<i32>,
    },
    /// fentry: target fixed at load.
    Fentry,
    /// fexit: target fixed at load.
    Fexit,
    /// XDP through the dispatcher.
    Xdp {
        /// Interface name.
        iface: String,
        /// 1..=1000, lower runs first.
        priority: i32,
        /// Actions after which the chain continues.
        proceed_on: Vec<i32>,
        /// Network namespace file.
        netns: Option<String>,
        /// Attach mode.
        mode: XdpMode,
    },
    /// TC through the dispatcher.
    Tc {
        /// Interface name.
        iface: String,
        /// Hook direction; `None` = from the section (`tc/ingress`, `tcx/egress`…).
        direction: Option<Direction>,
        /// 1..=1000, lower runs first.
        priority: i32,
        /// Actions after which the chain continues.
        proceed_on: Vec<i32>,
        /// Network namespace file.
        netns: Option<String>,
    },
    /// TCX multi-attach.
    Tcx {
        /// Interface name.
        iface: String,
        /// Hook direction; `None` = from the section (`tc/ingress`, `tcx/egress`…).
        direction: Option<Direction>,
        /// 1..=1000, lower runs first.
        priority: i32,
        /// Network namespace file.
        netns: Option<String>,
    },
}

impl AttachSpec {
    /// The program kinds this attach type accepts.
    pub fn accepts(&self, kind: ProgramKind) -> bool {
        match self {
            AttachSpec::Tracepoint { .. } => kind == ProgramKind::Tracepoint,
            AttachSpec::Kprobe { .. } => {
                matches!(kind, ProgramKind::Kprobe | ProgramKind::Kretprobe)
            }
            AttachSpec::Uprobe { .. } => {
                matches!(kind, ProgramKind::Uprobe | ProgramKind::Uretprobe)
            }
            AttachSpec::Fentry => kind == ProgramKind::Fentry,
            AttachSpec::Fexit => kind == ProgramKind::Fexit,
            AttachSpec::Xdp { .. } => kind == ProgramKind::Xdp,
            // Both are SCHED_CLS programs: one object serves either hook.
            AttachSpec::Tc { .. } | AttachSpec::Tcx { .. } => {
                matches!(kind, ProgramKind::Tc | ProgramKind::Tcx)
            }
        }
    }

    /// Short name of the attach type.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttachSpec::Tracepoint { .. } => "tracepoint",
            AttachSpec::Kprobe {
                retprobe: false, ..
            } => "kprobe",
            AttachSpec::Kprobe { retprobe: true, .. } => "kretprobe",
            AttachSpec::Uprobe {
                retprobe: false, ..
            } => "uprobe",
            AttachSpec::Uprobe { retprobe: true, .. } => "uretprobe",
            AttachSpec::Fentry => "fentry",
            AttachSpec::Fexit => "fexit",
            AttachSpec::Xdp { .. } => "xdp",
            AttachSpec::Tc { .. } => "tc",
            AttachSpec::Tcx { .. } => "tcx",
        }
    }

    /// Checks the request against the program and fills defaults from its ELF section.
    pub fn resolve(
        self,
        kind: ProgramKind,
        section: &str,
        program_name: &str,
    ) -> Result<AttachSpec, CoreError> {
        if !self.accepts(kind) {
            return Err(CoreError::FailedPrecondition(format!(
                "program '{program_name}' is a {kind} program and cannot be attached as {}",
                self.type_name()
            )));
        }
        let from_section = parse_section(section).and_then(|s| s.target);
        Ok(match self {
            AttachSpec::Tracepoint { tracepoint } => {
                let tp = tracepoint.or(from_section).ok_or_else(|| {
                    invalid(format!(
                        "program '{program_name}' (section '{section}') names no tracepoint: pass --tracepoint GROUP/NAME"
                    ))
                })?;
                validate_tracepoint(&tp)?;
                AttachSpec::Tracepoint {
                    tracepoint: Some(tp),
                }
            }
            AttachSpec::Kprobe {
                fn_name,
                offset,
                container_pid,
                ..
            } => {
                let f = fn_name.or(from_section).ok_or_else(|| {
                    invalid(format!(
                        "program '{program_name}' (section '{section}') names no function: pass --fn-name SYM"
                    ))
                })?;
                validate_symbol("function name", &f)?;
                AttachSpec::Kprobe {
                    fn_name: Some(f),
                    offset,
                    retprobe: kind == ProgramKind::Kretprobe,
                    container_pid,
                }
            }
            AttachSpec::Uprobe {
                target,
                fn_name,
                offset,
                pid,
                container_pid,
                ..
            } => {
                if target.is_empty() {
                    return Err(invalid("uprobe needs --target PATH"));
                }
                if target.contains('\0') {
                    return Err(invalid("uprobe target contains a NUL byte"));
                }
                if let Some(f) = &fn_name {
                    validate_symbol("function name", f)?;
                }
                if fn_name.is_none() && offset == 0 {
                    return Err(invalid("uprobe needs --fn-name SYM or a non-zero --offset"));
                }
                if let Some(p) = pid.filter(|p| *p <= 0) {
                    return Err(invalid(format!("pid {p} is not a process id")));
                }
                AttachSpec::Uprobe {
                    target,
                    fn_name,
                    offset,
                    pid,
                    retprobe: kind == ProgramKind::Uretprobe,
                    container_pid,
                }
            }
            AttachSpec::Xdp {
                ref iface,
                priority,
                ..
            } => {
                validate_net(iface, priority)?;
                self
            }
            AttachSpec::Tc {
                iface,
                direction,
                priority,
                proceed_on,
                netns,
            } => {
                validate_net(&iface, priority)?;
                AttachSpec::Tc {
                    direction: Some(direction_or_section(direction, section, program_name)?),
                    iface,
                    priority,
                    proceed_on,
                    netns,
                }
            }
            AttachSpec::Tcx {
                iface,
                direction,
                priority,
                netns,
            } => {
                validate_net(&iface, priority)?;
                AttachSpec::Tcx {
                    direction: Some(direction_or_section(direction, section, program_name)?),
                    iface,
                    priority,
                    netns,
                }
            }
            other => other,
        })
    }

    /// Human description of the attach point, e.g. `tracepoint sched/sched_switch`.
    pub fn describe(&self) -> String {
        match self {
            AttachSpec::Tracepoint { tracepoint } => {
                format!("tracepoint {}", tracepoint.as_deref().unwrap_or("?"))
            }
            AttachSpec::Kprobe {
                fn_name, offset, ..
            } => {
                format!(
                    "{} {}+{offset}",
                    self.type_name(),
                    fn_name.as_deref().unwrap_or("?")
                )
            }
            AttachSpec::Uprobe {
                target,
                fn_name,
                offset,
                pid,
                ..
            } => {
                let mut s = format!(
                    "{} {target}:{}+{offset}",
                    self.type_name(),
                    fn_name.as_deref().unwrap_or("")
                );
                if let Some(p) = pid {
                    s.push_str(&format!(" pid {p}"));
                }
                s
            }
            AttachSpec::Fentry => "fentry".into(),
            AttachSpec::Fexit => "fexit".into(),
            AttachSpec::Xdp {
                iface, priority, ..
            } => format!("xdp {iface} priority {priority}"),
            AttachSpec::Tc {
                iface,
                direction,
                priority,
                ..
            } => format!(
                "tc {iface} {} priority {priority}",
                direction.map_or("?", Direction::as_str)
            ),
            AttachSpec::Tcx {
                iface,
                direction,
                priority,
                ..
            } => format!(
                "tcx {iface} {} priority {priority}",
                direction.map_or("?", Direction::as_str)
            ),
        }
    }
}

fn validate_net(iface: &str, priority: i32) -> Result<(), CoreError> {
    validate_iface(iface)?;
    if !(1..=1000).contains(&priority) {
        return Err(invalid(format!("priority {priority} is outside 1..=1000")));
    }
    Ok(())
}

/// The asked TC/TCX direction, else the one the section implies.
fn direction_or_section(
    asked: Option<Direction>,
    section: &str,
    program_name: &str,
) -> Result<Direction, CoreError> {
    asked
        .or_else(|| parse_section(section).and_then(|s| s.direction))
        .ok_or_else(|| {
            invalid(format!(
                "program '{program_name}' (section '{section}') implies no direction: pass \
                 --direction ingress|egress"
            ))
        })
}

/// Checks `GROUP/NAME` for a tracepoint (both parts identifier-like, so they are safe as path parts).
pub fn validate_tracepoint(tp: &str) -> Result<(), CoreError> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && p != "."
            && p != ".."
    };
    match tp.split_once('/') {
        Some((g, n)) if ok_part(g) && ok_part(n) => Ok(()),
        _ => Err(invalid(format!(
            "tracepoint '{tp}' is not GROUP/NAME (e.g. sched/sched_switch)"
        ))),
    }
}

/// Checks an interface name (Linux IFNAMSIZ rules).
pub fn validate_iface(iface: &str) -> Result<(), CoreError> {
    if iface.is_empty()
        || iface.len() > 15
        || iface.contains('/')
        || iface.chars().any(|c| c.is_whitespace() || c.is_control())
        || iface == "."
        || iface == ".."
    {
        return Err(invalid(format!("'{iface}' is not a valid interface name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies() {
        assert_eq!(PullPolicy::default(), PullPolicy::IfNotPresent);
        assert_eq!("Never".parse::<PullPolicy>().unwrap(), PullPolicy::Never);
        assert_eq!("always".parse::<PullPolicy>().unwrap(), PullPolicy::Always);
        assert_eq!(
            "IFNOTPRESENT".parse::<PullPolicy>().unwrap(),
            PullPolicy::IfNotPresent
        );
        assert!(matches!(
            "x".parse::<PullPolicy>(),
            Err(CoreError::InvalidArgument(m)) if m == "pull policy 'x' is not one of Always, IfNotPresent, Never"
        ));
        for p in PullPolicy::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }

    #[test]
    fn xdp_mode_spellings() {
        for (s, m) in [
            ("native", XdpMode::Native),
            ("drv", XdpMode::Native),
            ("skb", XdpMode::Skb),
            ("generic", XdpMode::Skb),
        ] {
            assert_eq!(s.parse::<XdpMode>().unwrap(), m);
        }
        for m in [XdpMode::Native, XdpMode::Skb] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
            assert_eq!(m.as_str().parse::<XdpMode>().unwrap(), m);
        }
        let e = "hw".parse::<XdpMode>().unwrap_err().to_string();
        assert!(e.contains("XDP mode 'hw' must be native or skb"), "{e}");
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0x0102").unwrap(), vec![1, 2]);
        assert_eq!(parse_hex("ff").unwrap(), vec![255]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("").is_err());
        assert_eq!(
            parse_global("GLOBAL_u8=01").unwrap(),
            ("GLOBAL_u8".into(), vec![1])
        );
        assert!(parse_global("nohex").is_err());
        assert_eq!(to_hex(&[1, 0xab]), "01ab");
    }

    #[test]
    fn tc_direction_defaults_from_section() {
        let tcx = |direction| AttachSpec::Tcx {
            iface: "eth0".into(),
            direction,
            priority: 50,
            netns: None,
        };
        for (section, want) in [
            ("tc/ingress", Direction::Ingress),
            ("tc/egress", Direction::Egress),
            ("tcx/ingress", Direction::Ingress),
            ("tcx/egress", Direction::Egress),
        ] {
            let got = tcx(None).resolve(ProgramKind::Tcx, section, "p").unwrap();
            assert_eq!(got, tcx(Some(want)), "{section}");
            let tc = AttachSpec::Tc {
                iface: "eth0".into(),
                direction: None,
                priority: 50,
                proceed_on: vec![3],
                netns: None,
            };
            let got = tc.resolve(ProgramKind::Tcx, section, "p").unwrap();
            assert!(
                matches!(got, AttachSpec::Tc { direction: Some(d), .. } if d == want),
                "{section}"
            );
        }
        // The user's word wins over the section.
        let got = tcx(Some(Direction::Egress))
            .resolve(ProgramKind::Tcx, "tcx/ingress", "p")
            .unwrap();
        assert_eq!(got, tcx(Some(Direction::Egress)));
        // `tc` and `classifier` imply none.
        for section in ["tc", "classifier"] {
            let e = tcx(None)
                .resolve(ProgramKind::Tc, section, "p")
                .unwrap_err()
                .to_string();
            assert!(e.contains("--direction ingress|egress"), "{e}");
            assert!(e.contains(section), "{e}");
        }
        assert_eq!(tcx(None).describe(), "tcx eth0 ? priority 50");
        assert_eq!(
            tcx(Some(Direction::Ingress)).describe(),
            "tcx eth0 ingress priority 50"
        );
    }

    #[test]
    fn tracepoint_defaults_from_section() {
        let spec = AttachSpec::Tracepoint { tracepoint: None }
            .resolve(
                ProgramKind::Tracepoint,
                "tracepoint/sched/sched_switch",
                "p",
            )
            .unwrap();
        assert_eq!(
            spec,
            AttachSpec::Tracepoint {
                tracepoint: Some("sched/sched_switch".into())
            }
        );
        assert!(
            AttachSpec::Tracepoint { tracepoint: None }
                .resolve(ProgramKind::Tracepoint, "tracepoint", "p")
                .is_err()
        );
        assert!(
            AttachSpec::Tracepoint {
                tracepoint: Some("../x".into())
            }
            .resolve(ProgramKind::Tracepoint, "tracepoint", "p")
            .is_err()
        );
    }

    #[test]
    fn kind_mismatch_is_refused() {
        let e = AttachSpec::Tracepoint {
            tracepoint: Some("a/b".into()),
        }
        .resolve(ProgramKind::Uprobe, "uprobe", "p")
        .unwrap_err();
        assert!(matches!(e, CoreError::FailedPrecondition(_)));
    }

    #[test]
    fn retprobe_follows_program_kind() {
        let s = AttachSpec::Uprobe {
            target: "/bin/true".into(),
            fn_name: Some("main".into()),
            offset: 0,
            pid: None,
            retprobe: false,
            container_pid: None,
        }
        .resolve(ProgramKind::Uretprobe, "uretprobe", "p")
        .unwrap();
        assert_eq!(s.type_name(), "uretprobe");
    }

    #[test]
    fn load_spec_validation() {
        let mut spec = LoadSpec {
            source: BytecodeSource::File {
                path: "/x.o".into(),
            },
            programs: vec![
                ProgramRequest {
                    name: "a".into(),
                    kind: None,
                    attach_fn: None,
                },
                ProgramRequest {
                    name: "a".into(),
                    kind: None,
                    attach_fn: None,
                },
            ],
            metadata: Metadata::new(),
            global_data: GlobalData::new(),
            map_owner_id: None,
            pull_policy: None,
            registry_auth: None,
        };
        assert!(spec.validate().is_err());
        spec.programs.pop();
        assert!(spec.validate().is_ok());
        spec.programs[0].name = "a/../b".into();
        assert!(spec.validate().is_err());
    }

    /// Found by fuzz_global_data: a multi-byte character at an odd offset
    /// panicked (str slicing), and a sign was taken for a digit.
    #[test]
    fn hex_regressions() {
        assert!(parse_hex("0a0\u{fffd}z").is_err());
        assert!(parse_hex("\u{e9}0").is_err());
        assert!(parse_hex("0\u{e9}").is_err());
        assert!(parse_global("x=a\u{e9}b").is_err());
        assert!(parse_hex("+f").is_err());
        assert!(parse_hex("-1").is_err());
        assert_eq!(parse_hex("0x0aFF"), Ok(vec![0x0a, 0xff]));
    }

    #[test]
    fn load_spec_limits_just_over_the_edge() {
        let prog = |i: usize| ProgramRequest {
            name: format!("p{i}"),
            kind: None,
            attach_fn: None,
        };
        let mut spec = LoadSpec {
            source: BytecodeSource::File {
                path: "/x.o".into(),
            },
            programs: (0..MAX_PROGRAMS_PER_LOAD).map(prog).collect(),
            metadata: Metadata::new(),
            global_data: GlobalData::new(),
            map_owner_id: None,
            pull_policy: None,
            registry_auth: None,
        };
        assert!(spec.validate().is_ok());
        spec.programs.push(prog(MAX_PROGRAMS_PER_LOAD));
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("257 programs named: at most 256"), "{e}");
        spec.programs.truncate(1);

        spec.global_data = (0..MAX_GLOBAL_DATA_ENTRIES)
            .map(|i| (format!("g{i}"), vec![1]))
            .collect();
        assert!(spec.validate().is_ok());
        spec.global_data.insert("one_more".into(), vec![1]);
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("257 global data variables: at most 256"), "{e}");

        spec.global_data = [("big".to_string(), vec![0u8; MAX_GLOBAL_DATA_BYTES])].into();
        assert!(spec.validate().is_ok());
        spec.global_data.get_mut("big").unwrap().push(0);
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("is 1048577 bytes: at most 1048576"), "{e}");
    }

    #[test]
    fn image_transport_fields() {
        let auth = RegistryAuth {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let mut spec = LoadSpec {
            source: BytecodeSource::Image {
                url: "quay.io/x/y:v1".into(),
                digest: None,
            },
            programs: vec![],
            metadata: Metadata::new(),
            global_data: GlobalData::new(),
            map_owner_id: None,
            pull_policy: Some(PullPolicy::Never),
            registry_auth: Some(auth.clone()),
        };
        assert!(spec.validate().is_ok());
        // The password never shows in Debug output (logs, panics).
        let dbg = format!("{spec:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("alice"), "{dbg}");
        // Round-trips through JSON (the ext service carries it).
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<LoadSpec>(&json).unwrap(), spec);

        let bad = json.replace("\"Never\"", "\"Sometimes\"");
        assert_ne!(bad, json);
        let e = serde_json::from_str::<LoadSpec>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Sometimes") && e.contains("IfNotPresent"), "{e}");
        let lower = json.replace("\"Never\"", "\"never\"");
        assert_eq!(serde_json::from_str::<LoadSpec>(&lower).unwrap(), spec);
        spec.pull_policy = None;
        spec.registry_auth = Some(RegistryAuth {
            username: String::new(),
            password: "p".into(),
        });
        assert!(spec.validate().is_err());
        spec.registry_auth = None;
        spec.source = BytecodeSource::Image {
            url: " ".into(),
            digest: None,
        };
        assert!(spec.validate().is_err());
        // File sources take neither field.
        spec.source = BytecodeSource::File {
            path: "/x.o".into(),
        };
        spec.pull_policy = Some(PullPolicy::Always);
        assert!(spec.validate().is_err());
        // Old JSON without the fields still parses; None is not serialised.
        spec.pull_policy = None;
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            !json.contains("pull_policy") && !json.contains("registry_auth"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<LoadSpec>(&json).unwrap(), spec);
    }
}
