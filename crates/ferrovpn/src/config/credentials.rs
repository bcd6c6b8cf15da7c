//! Certificate authentication (`auth = "certificate"`): our certificate chain, its private key
//! (a secret file: the same owner/mode/no-symlink checks as `psk_file`) and the CAs trusted
//! for the peer, read and checked against each other at load time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrovpn_ike::cert::{Cert, CertAuth, PrivateKey, WallClock};

use crate::secret_file;

/// How a connection authenticates phase 1.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The connection's `psk`/`psk_file`.
    Psk,
    /// Signatures with X.509 certificates; the files are kept for `check` to show.
    Certificate {
        creds: Arc<CertAuth>,
        cert_file: PathBuf,
        key_file: PathBuf,
        ca_file: PathBuf,
    },
}

/// Reads `cert_file` (ours first, then intermediates to send), `key_file` and `ca_file` (one or
/// more CA certificates); every error names the key and the file.
pub(super) fn load(cert_file: &Path, key_file: &Path, ca_file: &Path) -> Result<Auth, String> {
    let chain = read_certs("cert_file", cert_file)?;
    let cas = read_cas(ca_file)?;
    let key_pem = secret_file::read_private(key_file).map_err(|e| format!("key_file {e}"))?;
    let key = PrivateKey::from_pem(&key_pem)
        .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    let creds = CertAuth::new(chain, key, cas, WallClock::now()).map_err(|e| {
        format!(
            "key_file {} and cert_file {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(Auth::Certificate {
        creds,
        cert_file: cert_file.to_path_buf(),
        key_file: key_file.to_path_buf(),
        ca_file: ca_file.to_path_buf(),
    })
}

/// `ca_file` is a PEM file, or a directory whose `*.pem`/`*.crt` files are read (in name
/// order; other files are ignored, as strongSwan's x509ca/ does).
fn read_cas(path: &Path) -> Result<Vec<Cert>, String> {
    if !path.is_dir() {
        return read_certs("ca_file", path);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "pem" || x == "crt"))
        .collect();
    files.sort();
    let mut cas = Vec::new();
    for f in &files {
        cas.extend(read_certs("ca_file", f)?);
    }
    if cas.is_empty() {
        return Err(format!(
            "ca_file {}: a directory without *.pem or *.crt certificates",
            path.display()
        ));
    }
    Ok(cas)
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<Cert>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    Cert::from_pem_chain(&pem).map_err(|e| format!("{key} {}: {e}", path.display()))
}
