//! Pre-shared keys: inline or from a private `psk_file`, wiped on drop, never printed.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::secret_file::{self, SecretFileError};

/// What the configuration is loaded for: `up` needs every secret; `check` may validate a
/// configuration before its secrets are installed (a missing `psk_file` is then a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Check,
}

/// A pre-shared key; wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(pub(super) Zeroizing<Vec<u8>>);

impl Psk {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A secret obtained outside the file (an XAuth password typed at `ferrovpn up`).
    pub fn from_secret(secret: Zeroizing<Vec<u8>>) -> Psk {
        Psk(secret)
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// Reads a PSK file through [`secret_file::read_private`]: opened once without following a
/// symlink, judged on the open descriptor. `Ok(None)`: missing, and only being checked.
pub(super) fn read_psk_file(path: &Path, purpose: Purpose) -> Result<Option<Psk>, String> {
    let bytes = match secret_file::read_private(path) {
        Ok(b) => b,
        Err(SecretFileError::Missing { .. }) if purpose == Purpose::Check => return Ok(None),
        Err(e) => return Err(format!("psk_file {e}")),
    };
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(format!("psk_file {} is empty", path.display()));
    }
    Ok(Some(Psk(Zeroizing::new(trimmed.to_vec()))))
}
