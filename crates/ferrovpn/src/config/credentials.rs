//! Certificate authentication (`auth = "certificate"`): our certificate chain, its private key
//! (a secret file: the same owner/mode/no-symlink checks as `psk_file`) and the CAs trusted
//! for the peer, read and checked against each other at load time; and the CRLs (`crl_file`),
//! read at load and again when they change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ferrovpn_ike::cert::{Cert, CertAuth, LocalCert, PrivateKey, WallClock};
use ferrovpn_ike::crl::Crl;

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
        /// `crl_file`, if set.
        crl: Option<Arc<CrlWatch>>,
    },
}

/// Reads `cert_file` (ours first, then intermediates to send), `key_file` and `ca_file` (one or
/// more CA certificates); every error names the key and the file.
pub(super) fn load(
    cert_file: &Path,
    key_file: &Path,
    alt_certs: &[(PathBuf, PathBuf)],
    ca_file: &Path,
    crl_file: Option<&Path>,
) -> Result<Auth, String> {
    let chain = read_certs("cert_file", cert_file)?;
    let cas = read_cas(ca_file)?;
    let key = read_key("key_file", key_file)?;
    let mut alternates = Vec::new();
    for (cert, key_file) in alt_certs {
        let chain = read_certs("alt_certs cert_file", cert)?;
        let key = read_key("alt_certs key_file", key_file)?;
        if !chain.first().is_some_and(|c| c.matches_key(&key)) {
            return Err(format!(
                "alt_certs key_file {} and cert_file {}: the private key does not belong to the certificate",
                key_file.display(),
                cert.display()
            ));
        }
        alternates.push(LocalCert { chain, key });
    }
    let creds =
        CertAuth::with_alternates(chain, key, alternates, cas, WallClock::now()).map_err(|e| {
            format!(
                "key_file {} and cert_file {}{}: {e}",
                key_file.display(),
                cert_file.display(),
                if alt_certs.is_empty() {
                    ""
                } else {
                    " (and alt_certs)"
                }
            )
        })?;
    let crl = match crl_file {
        None => None,
        Some(path) => {
            let (crls, seen) = read_crls(path)?;
            creds.crls.set(crls);
            Some(Arc::new(CrlWatch {
                path: path.to_path_buf(),
                seen: Mutex::new(Seen {
                    files: seen,
                    checked: None,
                }),
            }))
        }
    };
    Ok(Auth::Certificate {
        creds,
        cert_file: cert_file.to_path_buf(),
        key_file: key_file.to_path_buf(),
        ca_file: ca_file.to_path_buf(),
        crl,
    })
}

/// How often at most the daemon looks at the CRL files (a flood of IKE messages must not
/// become a flood of `stat` calls).
pub const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The CRL files of a connection (`crl_file`: a file, or a directory of `*.crl`, `*.pem`,
/// `*.der`) and what they were when last read. They are read again when a file's size or
/// modification time changed, or a file came or went: the daemon checks when an IKE message
/// arrives (at most once per `CRL_CHECK_INTERVAL`) and at every `reload`. A changed file
/// that does not parse keeps the CRLs read before (the error is returned for the log).
pub struct CrlWatch {
    pub path: PathBuf,
    seen: Mutex<Seen>,
}

struct Seen {
    files: Vec<FileStamp>,
    checked: Option<Instant>,
}

type FileStamp = (PathBuf, Option<SystemTime>, u64);

impl std::fmt::Debug for CrlWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrlWatch({})", self.path.display())
    }
}

impl CrlWatch {
    /// Reads the CRLs again into `creds` if the files changed since they were read; `force`
    /// skips the interval (a reload). `None`: nothing changed or not due; `Some(Ok(n))`: `n`
    /// CRLs now in use.
    pub fn refresh(
        &self,
        creds: &CertAuth,
        now: Instant,
        force: bool,
    ) -> Option<Result<usize, String>> {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let due = seen
            .checked
            .is_none_or(|t| now.saturating_duration_since(t) >= CRL_CHECK_INTERVAL);
        if !force && !due {
            return None;
        }
        seen.checked = Some(now);
        let files = stamps(&self.path);
        if files == seen.files {
            return None;
        }
        seen.files = files;
        Some(read_crls(&self.path).map(|(crls, files)| {
            let n = crls.len();
            creds.crls.set(crls);
            seen.files = files;
            n
        }))
    }
}

/// The files `crl_file` names, in name order.
fn crl_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("crl_file {}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "crl" || x == "pem" || x == "der")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn stamps(path: &Path) -> Vec<FileStamp> {
    crl_files(path)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).ok();
            let modified = m.as_ref().and_then(|m| m.modified().ok());
            let len = m.map_or(0, |m| m.len());
            (f, modified, len)
        })
        .collect()
}

/// Every CRL of `crl_file` (PEM or DER), and the stamps of the files read. A directory may be
/// empty (no CRL published yet); a file must hold at least one CRL.
fn read_crls(path: &Path) -> Result<(Vec<Crl>, Vec<FileStamp>), String> {
    let before = stamps(path);
    let mut crls = Vec::new();
    for f in crl_files(path)? {
        let bytes = std::fs::read(&f).map_err(|e| format!("crl_file {}: {e}", f.display()))?;
        let got =
            Crl::from_file_bytes(&bytes).map_err(|e| format!("crl_file {}: {e}", f.display()))?;
        if got.is_empty() {
            return Err(format!("crl_file {}: no CRL in it", f.display()));
        }
        crls.extend(got);
    }
    Ok((crls, before))
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

fn read_key(key: &str, path: &Path) -> Result<PrivateKey, String> {
    let pem = secret_file::read_private(path).map_err(|e| format!("{key} {e}"))?;
    PrivateKey::from_pem(&pem).map_err(|e| format!("{key} {}: {e}", path.display()))
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<Cert>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    Cert::from_pem_chain(&pem).map_err(|e| format!("{key} {}: {e}", path.display()))
}
