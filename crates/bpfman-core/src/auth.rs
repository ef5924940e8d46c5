//! Who may call what on the daemon's gRPC socket: the policy of the `[auth]`
//! table of bpfman.toml, the access class of each gRPC method, and the
//! decision for one caller. Pure: the daemon reads the peer's credentials
//! (`SO_PEERCRED`, `SO_PEERGROUPS`) and the file, this module decides.
//!
//! ```toml
//! [auth]
//! mutate_uids = [0]          # default [0]
//! mutate_gids = [998]        # default: the group of the socket file
//! read_uids = [1000]         # default [] (only those who may mutate may read)
//! read_gids = []
//! ```
//!
//! Whoever may mutate may also read. The socket file's mode (0660) decides
//! who can connect at all; this policy decides what a connected peer may do.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// What a gRPC method does to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads state (list, get, health).
    Read,
    /// Changes kernel, bpffs, store or image cache state.
    Mutate,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Mutate => "mutate",
        })
    }
}

/// gRPC methods (`/package.Service/Method`) that only read. Every other path,
/// including methods added later and paths no service knows, is [`Access::Mutate`]:
/// a method forgotten here is refused to readers rather than opened to them.
pub const READ_METHODS: &[&str] = &[
    "/bpfman.v1.Bpfman/List",
    "/bpfman.v1.Bpfman/Get",
    "/bpfman.ext.v1.BpfmanExt/ListPrograms",
    "/bpfman.ext.v1.BpfmanExt/GetProgram",
    "/bpfman.ext.v1.BpfmanExt/ListLinks",
    "/bpfman.ext.v1.BpfmanExt/GetLink",
    "/bpfman.ext.v1.BpfmanExt/ProgramStats",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

/// The access class of the gRPC method at `path` (see [`READ_METHODS`]).
pub fn access_of(path: &str) -> Access {
    if READ_METHODS.contains(&path) {
        Access::Read
    } else {
        Access::Mutate
    }
}

/// The method name of a gRPC path (`/bpfman.v1.Bpfman/Load` -> `Load`), for messages.
pub fn method_name(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or(path)
}

/// The credentials of a connected peer, as the kernel reported them when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Process id (absent when the peer is in another pid namespace).
    pub pid: Option<i32>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {}", self.uid)?;
        if let Some(p) = self.pid {
            write!(f, " (pid {p})")?;
        }
        Ok(())
    }
}

/// The `[auth]` table as written in bpfman.toml; absent keys take the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Uids that may call every method.
    pub mutate_uids: Option<Vec<u32>>,
    /// Gids (effective or supplementary) that may call every method.
    pub mutate_gids: Option<Vec<u32>>,
    /// Uids that may call the read-only methods.
    pub read_uids: Option<Vec<u32>>,
    /// Gids that may call the read-only methods.
    pub read_gids: Option<Vec<u32>>,
}

/// The policy in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Uids that may mutate (and read).
    pub mutate_uids: Vec<u32>,
    /// Gids that may mutate (and read).
    pub mutate_gids: Vec<u32>,
    /// Uids that may read.
    pub read_uids: Vec<u32>,
    /// Gids that may read.
    pub read_gids: Vec<u32>,
    /// Where the policy comes from, named in refusals (the config file).
    pub source: String,
    /// Group names for messages (gid -> name), where known.
    pub group_names: BTreeMap<u32, String>,
}

/// A refused call; the message names the rule and where to change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The whole message, for the client and the log.
    pub message: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl AuthPolicy {
    /// The policy of `section` (absent table = `AuthSection::default()`): uid 0
    /// and `socket_gid` (the group of the socket file, when known) may mutate,
    /// nobody else may do anything, unless the table says otherwise.
    pub fn from_section(section: AuthSection, socket_gid: Option<u32>, source: &str) -> AuthPolicy {
        AuthPolicy {
            mutate_uids: section.mutate_uids.unwrap_or_else(|| vec![0]),
            mutate_gids: section
                .mutate_gids
                .unwrap_or_else(|| socket_gid.into_iter().collect()),
            read_uids: section.read_uids.unwrap_or_default(),
            read_gids: section.read_gids.unwrap_or_default(),
            source: source.to_string(),
            group_names: BTreeMap::new(),
        }
    }

    fn in_gids(peer: &Peer, gids: &[u32]) -> bool {
        gids.contains(&peer.gid) || peer.groups.iter().any(|g| gids.contains(g))
    }

    fn may_mutate(&self, peer: &Peer) -> bool {
        self.mutate_uids.contains(&peer.uid) || Self::in_gids(peer, &self.mutate_gids)
    }

    fn may_read(&self, peer: &Peer) -> bool {
        self.may_mutate(peer)
            || self.read_uids.contains(&peer.uid)
            || Self::in_gids(peer, &self.read_gids)
    }

    fn gids(&self, gids: &[u32]) -> String {
        let names: Vec<String> = gids
            .iter()
            .map(|g| match self.group_names.get(g) {
                Some(n) => n.clone(),
                None => g.to_string(),
            })
            .collect();
        format!("[{}]", names.join(", "))
    }

    fn uids(uids: &[u32]) -> String {
        let ids: Vec<String> = uids.iter().map(u32::to_string).collect();
        format!("[{}]", ids.join(", "))
    }

    /// May `peer` call the gRPC method at `path`? `None` (no credentials:
    /// the kernel did not give any) is refused.
    pub fn decide(&self, peer: Option<&Peer>, path: &str) -> Result<Access, Denied> {
        let access = access_of(path);
        let method = method_name(path);
        let Some(peer) = peer else {
            return Err(Denied {
                message: format!(
                    "a peer without credentials may not call {method}: the daemon could not read SO_PEERCRED of the connection"
                ),
            });
        };
        let allowed = match access {
            Access::Mutate => self.may_mutate(peer),
            Access::Read => self.may_read(peer),
        };
        if allowed {
            return Ok(access);
        }
        let mutate = format!(
            "only uids {} and gids {} may mutate",
            Self::uids(&self.mutate_uids),
            self.gids(&self.mutate_gids)
        );
        let rule = match access {
            Access::Mutate => format!("{mutate} (auth.mutate_* in {})", self.source),
            Access::Read => format!(
                "{mutate}, uids {} and gids {} may read (auth.* in {})",
                Self::uids(&self.read_uids),
                self.gids(&self.read_gids),
                self.source
            ),
        };
        Err(Denied {
            message: format!("{peer} may not call {method}: {rule}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
            pid: Some(123),
        }
    }

    fn default_policy() -> AuthPolicy {
        AuthPolicy::from_section(AuthSection::default(), Some(998), "/etc/bpfman/bpfman.toml")
    }

    #[test]
    fn methods_are_classified_and_unknown_ones_mutate() {
        assert_eq!(access_of("/bpfman.v1.Bpfman/List"), Access::Read);
        assert_eq!(access_of("/bpfman.v1.Bpfman/Get"), Access::Read);
        assert_eq!(access_of("/grpc.health.v1.Health/Check"), Access::Read);
        for m in ["Load", "Unload", "Attach", "Detach", "PullBytecode"] {
            assert_eq!(access_of(&format!("/bpfman.v1.Bpfman/{m}")), Access::Mutate);
        }
        for m in ["Gc", "Load", "Attach"] {
            assert_eq!(
                access_of(&format!("/bpfman.ext.v1.BpfmanExt/{m}")),
                Access::Mutate
            );
        }
        assert_eq!(access_of("/bpfman.v1.Bpfman/NewThing"), Access::Mutate);
        assert_eq!(access_of("/bpfman.v1.Bpfman/list"), Access::Mutate);
        assert_eq!(access_of(""), Access::Mutate);
        assert_eq!(method_name("/bpfman.v1.Bpfman/Load"), "Load");
        assert_eq!(method_name("weird"), "weird");
    }

    #[test]
    fn default_root_and_socket_group_mutate_nobody_else_anything() {
        let p = default_policy();
        assert_eq!(
            p.decide(Some(&peer(0, 0, &[])), "/bpfman.v1.Bpfman/Load"),
            Ok(Access::Mutate)
        );
        // The socket's group, as effective or supplementary gid.
        assert!(
            p.decide(Some(&peer(1000, 998, &[])), "/bpfman.v1.Bpfman/Load")
                .is_ok()
        );
        assert!(
            p.decide(
                Some(&peer(1000, 1000, &[4, 998])),
                "/bpfman.v1.Bpfman/Unload"
            )
            .is_ok()
        );
        let e = p
            .decide(Some(&peer(1000, 1000, &[4])), "/bpfman.v1.Bpfman/Load")
            .unwrap_err();
        assert_eq!(
            e.message,
            "uid 1000 (pid 123) may not call Load: only uids [0] and gids [998] may mutate (auth.mutate_* in /etc/bpfman/bpfman.toml)"
        );
        let e = p
            .decide(Some(&peer(1000, 1000, &[])), "/bpfman.v1.Bpfman/List")
            .unwrap_err();
        assert_eq!(
            e.message,
            "uid 1000 (pid 123) may not call List: only uids [0] and gids [998] may mutate, uids [] and gids [] may read (auth.* in /etc/bpfman/bpfman.toml)"
        );
    }

    #[test]
    fn readers_read_but_do_not_mutate() {
        let section = AuthSection {
            read_uids: Some(vec![65534]),
            read_gids: Some(vec![50]),
            ..Default::default()
        };
        let p = AuthPolicy::from_section(section, None, "cfg.toml");
        let nobody = peer(65534, 65534, &[]);
        assert_eq!(
            p.decide(Some(&nobody), "/bpfman.v1.Bpfman/List"),
            Ok(Access::Read)
        );
        assert!(
            p.decide(Some(&nobody), "/grpc.health.v1.Health/Check")
                .is_ok()
        );
        assert!(
            p.decide(Some(&peer(7, 7, &[50])), "/bpfman.ext.v1.BpfmanExt/GetLink")
                .is_ok()
        );
        let e = p
            .decide(Some(&nobody), "/bpfman.v1.Bpfman/Load")
            .unwrap_err();
        assert!(
            e.message.contains("only uids [0] and gids [] may mutate"),
            "{e}"
        );
        assert!(
            p.decide(Some(&nobody), "/bpfman.ext.v1.BpfmanExt/Gc")
                .is_err()
        );
        // No socket group known and none configured: root only.
        assert!(
            p.decide(Some(&peer(0, 5, &[])), "/bpfman.v1.Bpfman/Load")
                .is_ok()
        );
        assert!(
            p.decide(Some(&peer(1, 0, &[])), "/bpfman.v1.Bpfman/Load")
                .is_err()
        );
    }

    #[test]
    fn explicit_lists_replace_the_defaults_and_names_show() {
        let section = AuthSection {
            mutate_uids: Some(vec![]),
            mutate_gids: Some(vec![998]),
            ..Default::default()
        };
        let mut p = AuthPolicy::from_section(section, Some(5), "x.toml");
        p.group_names.insert(998, "bpfman".into());
        // Root is not special once mutate_uids is set (the socket mode still is).
        let e = p
            .decide(Some(&peer(0, 0, &[])), "/bpfman.v1.Bpfman/Detach")
            .unwrap_err();
        assert_eq!(
            e.message,
            "uid 0 (pid 123) may not call Detach: only uids [] and gids [bpfman] may mutate (auth.mutate_* in x.toml)"
        );
        assert!(
            p.decide(Some(&peer(0, 998, &[])), "/bpfman.v1.Bpfman/Detach")
                .is_ok()
        );
    }

    #[test]
    fn a_peer_without_credentials_is_refused() {
        let e = default_policy()
            .decide(None, "/bpfman.v1.Bpfman/List")
            .unwrap_err();
        assert!(e.message.contains("without credentials may not call List"));
    }

    #[test]
    fn peer_without_pid_prints_uid_only() {
        let mut p = peer(5, 5, &[]);
        p.pid = None;
        assert_eq!(p.to_string(), "uid 5");
    }
}
