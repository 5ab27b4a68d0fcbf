//! The OS user side of the local backend: whether pgdrill runs as root, and creating the
//! unprivileged PostgreSQL user during setup (`useradd`). Never switches user itself
//! (`process::RunAs` does, per child) and never prints: progress goes to the caller's log.

use crate::backend::BackendError;

use super::process::{is_root, lookup_user};

/// As root, create the unprivileged PostgreSQL user `user` if it is missing (a system user with
/// its own group and no home); anyone else, or when it exists, nothing to do.
pub fn ensure_pg_user(user: &str, log: &mut dyn FnMut(String)) -> Result<(), BackendError> {
    if !is_root() || lookup_user(user).is_some() {
        return Ok(());
    }
    log(format!("creating system user `{user}` for PostgreSQL"));
    let st = std::process::Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/bin/sh",
            user,
        ])
        .status()
        .map_err(|e| BackendError::infra(format!("useradd: {e}")))?;
    if !st.success() {
        return Err(BackendError::infra(format!("useradd {user} failed ({st})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_user_is_left_alone() {
        let mut lines = Vec::new();
        ensure_pg_user("root", &mut |l| lines.push(l)).unwrap();
        assert!(lines.is_empty(), "{lines:?}");
    }
}
