//! Authorisation on the gRPC socket: every request passes the [`gate`],
//! which reads the peer's credentials (taken by `bpfman-uds` at accept) and
//! asks the policy of bpfman.toml's `[auth]` table
//! ([`bpfman_core::auth`]) whether that peer may call that method. A refusal
//! is `PERMISSION_DENIED` with the rule in the message, and a log line with
//! the peer's uid, gid and pid.

use std::path::Path;
use std::sync::Arc;

use bpfman_core::auth::{AuthPolicy, AuthSection, Peer};
use bpfman_manager::{Code, ManagerError};
use bpfman_uds::observe::Gate;
use serde::Deserialize;
use tonic::Status;
use tracing::{debug, warn};

/// What the daemon reads of bpfman.toml here (the other tables are the image code's).
#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    auth: Option<AuthSection>,
}

/// The policy of the `[auth]` table of the file at `path` (a missing file or
/// table gives the defaults: uid 0 and `socket_gid` may mutate). A file that
/// does not parse is an error: the daemon does not start on a policy it
/// cannot read.
pub fn load_policy(path: &Path, socket_gid: Option<u32>) -> Result<AuthPolicy, ManagerError> {
    let section = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<File>(&text)
            .map_err(|e| {
                ManagerError::new(
                    Code::FailedPrecondition,
                    format!("{}: {}", path.display(), e.message()),
                )
            })?
            .auth
            .unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => AuthSection::default(),
        Err(e) => {
            return Err(ManagerError::new(
                Code::FailedPrecondition,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let mut policy = AuthPolicy::from_section(section, socket_gid, &path.display().to_string());
    for &g in policy.mutate_gids.iter().chain(&policy.read_gids) {
        if let Ok(Some(group)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(g)) {
            policy.group_names.insert(g, group.name);
        }
    }
    Ok(policy)
}

/// The gate that checks every request against `policy`, for
/// [`bpfman_uds::observe::ObserveLayer::gate`]: a refusal is
/// `PERMISSION_DENIED` with the rule in the message, logged with the peer.
pub fn gate(policy: AuthPolicy) -> Gate {
    Arc::new(
        move |peer: Option<&Peer>, path: &str| match policy.decide(peer, path) {
            Ok(access) => {
                if let Some(p) = peer {
                    debug!(uid = p.uid, gid = p.gid, pid = ?p.pid, method = %path, %access, "authorised");
                }
                Ok(())
            }
            Err(denied) => {
                match peer {
                    Some(p) => warn!(
                        uid = p.uid,
                        gid = p.gid,
                        pid = ?p.pid,
                        method = %path,
                        "permission denied: {denied}"
                    ),
                    None => warn!(method = %path, "permission denied: {denied}"),
                }
                Err(Status::permission_denied(denied.message))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_file_missing_table_and_bad_toml() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bpfman.toml");
        let d = load_policy(&p, Some(7)).unwrap();
        assert_eq!(
            (d.mutate_uids.clone(), d.mutate_gids.clone()),
            (vec![0], vec![7])
        );
        std::fs::write(&p, "[images]\nmax_layer_bytes = 5\n").unwrap();
        assert_eq!(load_policy(&p, Some(7)).unwrap().mutate_gids, vec![7]);
        std::fs::write(&p, "[auth]\nread_uids = [65534]\nmutate_gids = [0]\n").unwrap();
        let pol = load_policy(&p, Some(7)).unwrap();
        assert_eq!(pol.read_uids, vec![65534]);
        assert_eq!(pol.mutate_gids, vec![0]);
        assert_eq!(pol.group_names.get(&0).map(String::as_str), Some("root"));
        std::fs::write(&p, "[auth]\nread_user = [1]\n").unwrap();
        let e = load_policy(&p, None).unwrap_err();
        assert_eq!(e.code, Code::FailedPrecondition);
        assert!(e.message.contains("read_user"), "{}", e.message);
    }
}
