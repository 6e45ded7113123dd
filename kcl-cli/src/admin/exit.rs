//! Exit codes and the one error type of the admin commands.

use std::fmt;
use std::process::ExitCode;

/// How an admin command ended; the process exit code. Documented in
/// `kcl --help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (a dry run that printed its plan is done too).
    Ok = 0,
    /// 1: the store or service failed in another way.
    Failed = 1,
    /// 2: bad arguments or configuration (a wrong URL, an unknown option).
    Usage = 2,
    /// 3: the store or AWS could not be reached, throttled us, or refused
    /// the credentials (or there were none).
    Unavailable = 3,
    /// 4: not found: no such table, schema, stream, lease or consumer.
    NotFound = 4,
    /// 5: the lease changed while the command acted on it (re-run it).
    Conflict = 5,
    /// 6: refused: a position not in the shard, a declined confirmation.
    Refused = 6,
}

/// The exit-code table as `kcl --help` prints it.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (admin commands):
  0  done (a dry run that printed its plan, too)
  1  the store or service failed otherwise
  2  bad arguments or configuration (wrong URL, unknown option)
  3  store or AWS unreachable, throttling, or no/invalid credentials
  4  not found: table, schema, stream, lease or consumer
  5  the lease changed while acting on it: re-run
  6  refused: position not in the shard, confirmation declined";

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failed admin command: one line for stderr, and its exit code.
#[derive(Debug)]
pub struct AdminError {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong, for a person (never a secret).
    pub message: String,
}

impl AdminError {
    /// An error with this exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        AdminError {
            exit,
            message: message.into(),
        }
    }

    /// Bad arguments ([`Exit::Usage`]).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// A refused act ([`Exit::Refused`]).
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Exit::Refused, message)
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdminError {}

impl From<kcl_core::Error> for AdminError {
    fn from(e: kcl_core::Error) -> Self {
        use kcl_core::Error as E;
        let exit = match &e {
            E::Config(_) => Exit::Usage,
            E::Unavailable { .. } | E::Throttled { .. } => Exit::Unavailable,
            E::NotFound { .. } | E::NotInitialized(_) => Exit::NotFound,
            E::Conflict { .. } => Exit::Conflict,
            E::InvalidCheckpoint(_) => Exit::Refused,
            _ if looks_like_credentials(&e) => Exit::Unavailable,
            // sqlx reports a missing schema or table as a database error.
            E::Generic {
                store: "postgres", ..
            } if e.to_string().contains("does not exist") => Exit::NotFound,
            _ => Exit::Failed,
        };
        let mut message = e.to_string();
        if exit == Exit::NotFound && matches!(e, E::Generic { .. }) {
            message.push_str(" (the store is not set up for this application: check the URL's schema and the application name)");
        }
        if exit == Exit::Unavailable && looks_like_credentials(&e) {
            message.push_str(
                " (no usable AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
            );
        }
        AdminError::new(exit, message)
    }
}

/// Whether an error (or one of its sources) is about missing or refused
/// credentials; the SDKs report those as generic dispatch failures.
fn looks_like_credentials(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("credentials")
            || text.contains("unrecognizedclient")
            || text.contains("security token")
            || text.contains("signature")
        {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_their_exit_codes() {
        let cases = [
            (kcl_core::Error::Config("x".into()), Exit::Usage),
            (
                kcl_core::Error::Unavailable {
                    service: "redis",
                    source: None,
                },
                Exit::Unavailable,
            ),
            (kcl_core::Error::NotInitialized("t".into()), Exit::NotFound),
            (kcl_core::Error::conflict("s", "r"), Exit::Conflict),
            (
                kcl_core::Error::InvalidCheckpoint("x".into()),
                Exit::Refused,
            ),
            (kcl_core::Error::generic("postgres", "boom"), Exit::Failed),
            (
                kcl_core::Error::generic("postgres", "relation \"kcl.leases\" does not exist"),
                Exit::NotFound,
            ),
            (
                kcl_core::Error::generic("dynamodb", "failed to load credentials"),
                Exit::Unavailable,
            ),
        ];
        for (error, exit) in cases {
            assert_eq!(AdminError::from(error).exit, exit);
        }
    }
}
