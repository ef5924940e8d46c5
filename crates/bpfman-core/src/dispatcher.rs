//! Interface hooks and multi-program dispatchers: identity, ordering and
//! proceed-on masks. Pure: the network crate turns these decisions into
//! dispatcher programs, extension links and TCX anchors.
//!
//! # Ordering
//!
//! Programs on one hook run by `priority` (lower first), then by attach order
//! (`attached_seq`, earlier first), then by link id. The result depends only on
//! the entries, never on the order they are passed in, so equal priorities give
//! the same order on every run.
//!
//! # Proceed-on masks
//!
//! A dispatcher calls its programs in order; after each one it continues only
//! if the returned action is in that program's proceed-on set. The set is a
//! bitmask, libxdp-compatible for XDP:
//!
//! - XDP: bit `action` (`aborted`=0 … `redirect`=4); `dispatcher_return` is 31,
//!   the value an empty slot returns.
//! - TC: bit `action + 1`, because TC actions start at `unspec` = -1
//!   (`ok`=0 … `trap`=8); `dispatcher_return` is 30, so it also maps to bit 31.
//!
//! TCX has no dispatcher and no proceed-on: the kernel runs the chain itself.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::actions;
use crate::error::{CoreError, invalid};
use crate::spec::Direction;
use crate::{KernelLinkId, LinkId, ProgramId};

/// Most programs one dispatcher can hold (libxdp's limit, kept for TC too).
pub const MAX_DISPATCHER_SLOTS: usize = 10;
/// Value an unused XDP dispatcher slot returns (libxdp's `XDP_DISPATCHER_RETVAL`).
pub const XDP_DISPATCHER_RETURN: i32 = 31;
/// Value an unused TC dispatcher slot returns.
pub const TC_DISPATCHER_RETURN: i32 = 30;
/// Default priority when the user gives none (libxdp's default run priority).
pub const DEFAULT_PRIORITY: i32 = 50;

/// One kind of interface hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// XDP, through the XDP dispatcher.
    Xdp,
    /// TC ingress (clsact), through the TC dispatcher.
    TcIngress,
    /// TC egress (clsact), through the TC dispatcher.
    TcEgress,
    /// TCX ingress: kernel multi-attach.
    TcxIngress,
    /// TCX egress: kernel multi-attach.
    TcxEgress,
}

impl HookKind {
    /// Short stable name, used in pin paths and logs: `xdp`, `tc-ingress`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Xdp => "xdp",
            HookKind::TcIngress => "tc-ingress",
            HookKind::TcEgress => "tc-egress",
            HookKind::TcxIngress => "tcx-ingress",
            HookKind::TcxEgress => "tcx-egress",
        }
    }

    /// The TC hook for a direction.
    pub fn tc(direction: Direction) -> HookKind {
        match direction {
            Direction::Ingress => HookKind::TcIngress,
            Direction::Egress => HookKind::TcEgress,
        }
    }

    /// The TCX hook for a direction.
    pub fn tcx(direction: Direction) -> HookKind {
        match direction {
            Direction::Ingress => HookKind::TcxIngress,
            Direction::Egress => HookKind::TcxEgress,
        }
    }

    /// True for the kinds that run through a dispatcher (XDP and TC).
    pub fn uses_dispatcher(self) -> bool {
        matches!(
            self,
            HookKind::Xdp | HookKind::TcIngress | HookKind::TcEgress
        )
    }

    /// True for the TC dispatcher kinds.
    pub fn is_tc(self) -> bool {
        matches!(self, HookKind::TcIngress | HookKind::TcEgress)
    }

    /// The direction of a TC or TCX hook; `None` for XDP.
    pub fn direction(self) -> Option<Direction> {
        match self {
            HookKind::Xdp => None,
            HookKind::TcIngress | HookKind::TcxIngress => Some(Direction::Ingress),
            HookKind::TcEgress | HookKind::TcxEgress => Some(Direction::Egress),
        }
    }

    /// The value an unused dispatcher slot returns; `None` for TCX.
    pub fn dispatcher_return(self) -> Option<i32> {
        match self {
            HookKind::Xdp => Some(XDP_DISPATCHER_RETURN),
            HookKind::TcIngress | HookKind::TcEgress => Some(TC_DISPATCHER_RETURN),
            HookKind::TcxIngress | HookKind::TcxEgress => None,
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of one interface hook: kind, network namespace (by inode, also for
/// the host's namespace) and interface index inside that namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HookKey {
    /// Which hook.
    pub kind: HookKind,
    /// Inode of the network namespace (`stat -L /proc/PID/ns/net`).
    pub netns_ino: u64,
    /// Interface index inside that namespace.
    pub ifindex: u32,
}

impl fmt::Display for HookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} netns {} ifindex {}",
            self.kind, self.netns_ino, self.ifindex
        )
    }
}

/// One program the manager wants on a hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEntry {
    /// bpfman link id.
    pub link_id: LinkId,
    /// Program id (kernel id of the loaded program).
    pub program_id: ProgramId,
    /// Lower runs first.
    pub priority: i32,
    /// Actions after which the chain continues (ignored for TCX).
    pub proceed_on: Vec<i32>,
    /// Monotonic attach sequence: earlier attaches run first among equal priorities.
    pub attached_seq: u64,
}

/// Sort key of the documented order: priority, then attach order, then link id.
fn sort_key(e: &HookEntry) -> (i32, u64, LinkId) {
    (e.priority, e.attached_seq, e.link_id)
}

/// The entries in run order: priority ascending, then earlier attach first
/// (`attached_seq`), then link id ascending. Independent of input order.
pub fn order(entries: &[HookEntry]) -> Vec<HookEntry> {
    let mut v = entries.to_vec();
    v.sort_by_key(sort_key);
    v
}

/// Checks a desired set before it is applied: unique link ids, at most
/// [`MAX_DISPATCHER_SLOTS`] for dispatcher hooks, valid proceed-on codes.
pub fn validate_set(kind: HookKind, entries: &[HookEntry]) -> Result<(), CoreError> {
    let mut seen = BTreeSet::new();
    for e in entries {
        if !seen.insert(e.link_id) {
            return Err(invalid(format!(
                "link {} appears twice in the set for one hook",
                e.link_id
            )));
        }
        if kind.uses_dispatcher() {
            proceed_on_mask(kind, &e.proceed_on)?;
        }
    }
    if kind.uses_dispatcher() && entries.len() > MAX_DISPATCHER_SLOTS {
        return Err(CoreError::FailedPrecondition(format!(
            "{} programs requested on one {kind} hook; a dispatcher holds at most {MAX_DISPATCHER_SLOTS}",
            entries.len()
        )));
    }
    Ok(())
}

/// The name of an action code on a dispatcher hook (tables in
/// [`crate::actions`]), or `None` if it is not one.
pub fn action_name(kind: HookKind, code: i32) -> Option<&'static str> {
    match kind {
        HookKind::Xdp => actions::xdp_action_name(code),
        HookKind::TcIngress | HookKind::TcEgress => actions::tc_action_name(code),
        HookKind::TcxIngress | HookKind::TcxEgress => None,
    }
}

/// Proceed-on set used when the user gives none (upstream's defaults): XDP
/// `pass, dispatcher_return`; TC `pipe, dispatcher_return`; TCX none.
pub fn default_proceed_on(kind: HookKind) -> Vec<i32> {
    match kind {
        HookKind::Xdp => actions::DEFAULT_XDP_PROCEED_ON.to_vec(),
        HookKind::TcIngress | HookKind::TcEgress => actions::DEFAULT_TC_PROCEED_ON.to_vec(),
        HookKind::TcxIngress | HookKind::TcxEgress => Vec::new(),
    }
}

/// Bit of one action in a proceed-on mask (see the module docs).
fn action_bit(kind: HookKind, code: i32) -> Option<u32> {
    action_name(kind, code)?;
    let bit = if kind == HookKind::Xdp {
        code
    } else {
        code + 1
    };
    Some(1u32 << bit)
}

/// The libxdp-style bitmask of a proceed-on list. Exactly the given actions:
/// the dispatcher builder adds the `dispatcher_return` bit itself.
pub fn proceed_on_mask(kind: HookKind, codes: &[i32]) -> Result<u32, CoreError> {
    if !kind.uses_dispatcher() {
        return Err(invalid(format!(
            "{kind} has no proceed-on actions (the kernel runs the TCX chain)"
        )));
    }
    codes.iter().try_fold(0u32, |mask, &code| {
        action_bit(kind, code)
            .map(|b| mask | b)
            .ok_or_else(|| invalid(format!("{code} is not a {kind} action")))
    })
}

/// The action codes of a mask, ascending (inverse of [`proceed_on_mask`]).
pub fn proceed_on_codes(kind: HookKind, mask: u32) -> Vec<i32> {
    let range: Vec<i32> = match kind {
        HookKind::Xdp => actions::XDP_ACTIONS.iter().map(|(_, c)| *c).collect(),
        HookKind::TcIngress | HookKind::TcEgress => {
            actions::TC_ACTIONS.iter().map(|(_, c)| *c).collect()
        }
        HookKind::TcxIngress | HookKind::TcxEgress => Vec::new(),
    };
    range
        .into_iter()
        .filter(|&c| action_bit(kind, c).is_some_and(|b| mask & b != 0))
        .collect()
}

/// Where a new TCX program goes relative to the programs already on the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcxAnchor {
    /// Before this kernel link.
    BeforeLink(KernelLinkId),
    /// After this kernel link.
    AfterLink(KernelLinkId),
    /// At the end of the chain (no bpfman program on the hook yet).
    Last,
}

/// Placement of a new TCX program of `priority` among bpfman's programs on the
/// hook, given as `(priority, kernel link id)` in the kernel's current run
/// order. Equal priorities keep attach order: the new one goes after them.
pub fn tcx_anchor(priority: i32, others_in_kernel_order: &[(i32, KernelLinkId)]) -> TcxAnchor {
    if let Some(&(_, link)) = others_in_kernel_order.iter().find(|(p, _)| *p > priority) {
        return TcxAnchor::BeforeLink(link);
    }
    match others_in_kernel_order.last() {
        Some(&(_, link)) => TcxAnchor::AfterLink(link),
        None => TcxAnchor::Last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(link_id: u32, priority: i32, seq: u64) -> HookEntry {
        HookEntry {
            link_id: LinkId(link_id),
            program_id: ProgramId(100 + link_id),
            priority,
            proceed_on: vec![2],
            attached_seq: seq,
        }
    }

    fn ids(v: &[HookEntry]) -> Vec<u32> {
        v.iter().map(|e| e.link_id.get()).collect()
    }

    /// Every permutation of `v` (small inputs only).
    fn permutations(v: &[HookEntry]) -> Vec<Vec<HookEntry>> {
        if v.len() <= 1 {
            return vec![v.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..v.len() {
            let mut rest = v.to_vec();
            let x = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, x.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn priority_first_then_attach_order_then_link_id() {
        let set = vec![
            e(1, 50, 3),
            e(2, 10, 9),
            e(3, 50, 1),
            e(4, 50, 1),
            e(5, 1000, 0),
        ];
        assert_eq!(ids(&order(&set)), vec![2, 3, 4, 1, 5]);
    }

    #[test]
    fn equal_priorities_are_stable_across_every_input_order() {
        let set = vec![e(7, 5, 2), e(3, 5, 2), e(9, 5, 1), e(1, 5, 3), e(4, 1, 8)];
        let expected = vec![4, 9, 3, 7, 1];
        for p in permutations(&set) {
            assert_eq!(ids(&order(&p)), expected);
        }
    }

    #[test]
    fn xdp_mask_is_libxdp_compatible() {
        // libxdp default: XDP_PASS plus the dispatcher return bit.
        let m = proceed_on_mask(HookKind::Xdp, &default_proceed_on(HookKind::Xdp)).unwrap();
        assert_eq!(m, (1 << 2) | (1 << 31));
        assert_eq!(proceed_on_mask(HookKind::Xdp, &[]).unwrap(), 0);
        assert!(proceed_on_mask(HookKind::Xdp, &[5]).is_err());
        assert!(proceed_on_mask(HookKind::Xdp, &[-1]).is_err());
    }

    #[test]
    fn tc_mask_shifts_by_one() {
        assert_eq!(proceed_on_mask(HookKind::TcIngress, &[-1]).unwrap(), 1);
        assert_eq!(
            proceed_on_mask(HookKind::TcEgress, &[0, 3]).unwrap(),
            0b10010
        );
        assert_eq!(
            proceed_on_mask(HookKind::TcIngress, &[TC_DISPATCHER_RETURN]).unwrap(),
            1 << 31
        );
        assert!(proceed_on_mask(HookKind::TcIngress, &[9]).is_err());
        assert!(proceed_on_mask(HookKind::TcxIngress, &[0]).is_err());
    }

    #[test]
    fn masks_round_trip() {
        for kind in [HookKind::Xdp, HookKind::TcIngress] {
            let all: Vec<i32> = proceed_on_codes(kind, u32::MAX);
            assert_eq!(
                proceed_on_codes(kind, proceed_on_mask(kind, &all).unwrap()),
                all
            );
            let d = default_proceed_on(kind);
            assert_eq!(
                proceed_on_codes(kind, proceed_on_mask(kind, &d).unwrap()),
                d
            );
        }
        assert_eq!(proceed_on_codes(HookKind::Xdp, u32::MAX).len(), 6);
        assert_eq!(proceed_on_codes(HookKind::TcEgress, u32::MAX).len(), 11);
    }

    #[test]
    fn action_names_come_from_the_shared_tables() {
        assert_eq!(action_name(HookKind::TcIngress, 7), Some("redirect"));
        assert_eq!(action_name(HookKind::TcEgress, -1), Some("unspec"));
        assert_eq!(action_name(HookKind::Xdp, 31), Some("dispatcher_return"));
        assert_eq!(action_name(HookKind::Xdp, 30), None);
        assert_eq!(action_name(HookKind::TcxIngress, 0), None);
    }

    #[test]
    fn set_validation() {
        let too_many: Vec<HookEntry> = (0..11).map(|i| e(i, 50, i as u64)).collect();
        assert!(matches!(
            validate_set(HookKind::Xdp, &too_many),
            Err(CoreError::FailedPrecondition(_))
        ));
        // TCX is bounded by the kernel, not by a dispatcher.
        assert!(validate_set(HookKind::TcxIngress, &too_many).is_ok());
        assert!(validate_set(HookKind::Xdp, &too_many[..10]).is_ok());
        assert!(validate_set(HookKind::Xdp, &[e(1, 1, 1), e(1, 2, 2)]).is_err());
        let mut bad = e(1, 1, 1);
        bad.proceed_on = vec![99];
        assert!(validate_set(HookKind::TcIngress, &[bad]).is_err());
    }

    #[test]
    fn tcx_anchor_keeps_priority_then_attach_order() {
        assert_eq!(tcx_anchor(50, &[]), TcxAnchor::Last);
        let others =
            [(10, 101), (50, 102), (50, 103), (90, 104)].map(|(p, l)| (p, KernelLinkId(l)));
        let k = KernelLinkId;
        assert_eq!(tcx_anchor(50, &others), TcxAnchor::BeforeLink(k(104)));
        assert_eq!(tcx_anchor(5, &others), TcxAnchor::BeforeLink(k(101)));
        assert_eq!(tcx_anchor(100, &others), TcxAnchor::AfterLink(k(104)));
        assert_eq!(tcx_anchor(10, &others), TcxAnchor::BeforeLink(k(102)));
    }

    #[test]
    fn hook_kinds() {
        assert_eq!(HookKind::tc(Direction::Egress), HookKind::TcEgress);
        assert_eq!(HookKind::tcx(Direction::Ingress).as_str(), "tcx-ingress");
        assert!(HookKind::TcIngress.uses_dispatcher());
        assert!(!HookKind::TcxEgress.uses_dispatcher());
        assert_eq!(HookKind::Xdp.direction(), None);
        let k = HookKey {
            kind: HookKind::Xdp,
            netns_ino: 4026531840,
            ifindex: 3,
        };
        assert_eq!(k.to_string(), "xdp netns 4026531840 ifindex 3");
    }
}
