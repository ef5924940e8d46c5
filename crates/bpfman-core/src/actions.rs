//! Named XDP and TC return actions, as used in `proceed_on` lists.
//!
//! The numbers are the kernel's return codes (plus the dispatcher's own
//! `dispatcher_return`), exactly as upstream bpfman's `bpfman.v1` API carries
//! them in `XDPAttachInfo.proceed_on` and `TCAttachInfo.proceed_on`. The CLI
//! parses names with these tables; the gRPC server validates codes with them.

use crate::error::{CoreError, invalid};

/// XDP actions: name and code (`enum xdp_action`, plus the dispatcher's 31).
pub const XDP_ACTIONS: &[(&str, i32)] = &[
    ("aborted", 0),
    ("drop", 1),
    ("pass", 2),
    ("tx", 3),
    ("redirect", 4),
    ("dispatcher_return", 31),
];

/// TC actions: name and code (`TC_ACT_*`, plus the dispatcher's 30).
pub const TC_ACTIONS: &[(&str, i32)] = &[
    ("unspec", -1),
    ("ok", 0),
    ("reclassify", 1),
    ("shot", 2),
    ("pipe", 3),
    ("stolen", 4),
    ("queued", 5),
    ("repeat", 6),
    ("redirect", 7),
    ("trap", 8),
    ("dispatcher_return", 30),
];

/// Upstream's default XDP `proceed_on`: pass, dispatcher_return.
pub const DEFAULT_XDP_PROCEED_ON: [i32; 2] = [2, 31];
/// Upstream's default TC `proceed_on`: pipe, dispatcher_return.
pub const DEFAULT_TC_PROCEED_ON: [i32; 2] = [3, 30];

fn code_of(table: &[(&str, i32)], what: &str, name: &str) -> Result<i32, CoreError> {
    let lower = name.to_ascii_lowercase();
    table
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            invalid(format!(
                "unknown {what} action '{name}' (expected one of: {})",
                names(table)
            ))
        })
}

fn name_of<'a>(table: &[(&'a str, i32)], code: i32) -> Option<&'a str> {
    table.iter().find(|(_, c)| *c == code).map(|(n, _)| *n)
}

fn names(table: &[(&str, i32)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

fn codes(table: &[(&str, i32)]) -> String {
    table
        .iter()
        .map(|(n, c)| format!("{c} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_codes(table: &[(&str, i32)], what: &str, proceed_on: &[i32]) -> Result<(), CoreError> {
    match proceed_on.iter().find(|c| name_of(table, **c).is_none()) {
        Some(bad) => Err(invalid(format!(
            "{what} proceed_on code {bad} is not valid (expected: {})",
            codes(table)
        ))),
        None => Ok(()),
    }
}

/// Code of an XDP action name (case-insensitive), e.g. `pass` → 2.
pub fn xdp_action_code(name: &str) -> Result<i32, CoreError> {
    code_of(XDP_ACTIONS, "XDP", name)
}

/// Name of an XDP action code, e.g. 31 → `dispatcher_return`.
pub fn xdp_action_name(code: i32) -> Option<&'static str> {
    name_of(XDP_ACTIONS, code)
}

/// Code of a TC action name (case-insensitive), e.g. `pipe` → 3.
pub fn tc_action_code(name: &str) -> Result<i32, CoreError> {
    code_of(TC_ACTIONS, "TC", name)
}

/// Name of a TC action code, e.g. 30 → `dispatcher_return`.
pub fn tc_action_name(code: i32) -> Option<&'static str> {
    name_of(TC_ACTIONS, code)
}

/// Checks every code of an XDP `proceed_on` list.
pub fn validate_xdp_proceed_on(proceed_on: &[i32]) -> Result<(), CoreError> {
    check_codes(XDP_ACTIONS, "XDP", proceed_on)
}

/// Checks every code of a TC `proceed_on` list.
pub fn validate_tc_proceed_on(proceed_on: &[i32]) -> Result<(), CoreError> {
    check_codes(TC_ACTIONS, "TC", proceed_on)
}

/// Parses XDP action names into codes (for the CLI's `--proceed-on`).
pub fn parse_xdp_proceed_on<S: AsRef<str>>(names: &[S]) -> Result<Vec<i32>, CoreError> {
    names.iter().map(|n| xdp_action_code(n.as_ref())).collect()
}

/// Parses TC action names into codes (for the CLI's `--proceed-on`).
pub fn parse_tc_proceed_on<S: AsRef<str>>(names: &[S]) -> Result<Vec<i32>, CoreError> {
    names.iter().map(|n| tc_action_code(n.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for (n, c) in XDP_ACTIONS {
            assert_eq!(xdp_action_code(n).unwrap(), *c);
            assert_eq!(xdp_action_name(*c), Some(*n));
        }
        for (n, c) in TC_ACTIONS {
            assert_eq!(tc_action_code(n).unwrap(), *c);
            assert_eq!(tc_action_name(*c), Some(*n));
        }
        assert_eq!(xdp_action_code("PASS").unwrap(), 2);
        assert_eq!(tc_action_code("unspec").unwrap(), -1);
        assert!(xdp_action_code("pipe").is_err());
        assert!(tc_action_code("pass").is_err());
        assert_eq!(xdp_action_name(30), None);
    }

    #[test]
    fn validation_and_defaults() {
        assert!(validate_xdp_proceed_on(&DEFAULT_XDP_PROCEED_ON).is_ok());
        assert!(validate_tc_proceed_on(&DEFAULT_TC_PROCEED_ON).is_ok());
        assert!(validate_xdp_proceed_on(&[5]).is_err());
        assert!(validate_tc_proceed_on(&[31]).is_err());
        assert!(validate_tc_proceed_on(&[-1, 8]).is_ok());
        assert_eq!(
            parse_xdp_proceed_on(&["pass", "dispatcher_return"]).unwrap(),
            DEFAULT_XDP_PROCEED_ON
        );
        assert_eq!(
            parse_tc_proceed_on(&["pipe", "dispatcher_return"]).unwrap(),
            DEFAULT_TC_PROCEED_ON
        );
    }
}
