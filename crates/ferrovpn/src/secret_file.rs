//! Files that hold secrets: the `psk_file` the configuration names and the key tables written
//! into `save_keys_dir`. Each is opened once, never through a symbolic link (`O_NOFOLLOW`), and
//! judged on the open descriptor (`fstat`), so the file checked is the file read or written.
//! A leaf module: it knows nothing of the configuration or the daemon.

use std::ffi::CString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::sys;

/// Largest PSK file read; a key file holds one key, so anything bigger is a wrong path.
pub const MAX_PSK_FILE: u64 = 64 * 1024;

/// Why a secret file or its directory was refused. Each message starts with the path.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("{} is a symbolic link{}; refusing to follow it: name the real {what} itself", path.display(), target.as_ref().map(|t| format!(" (to {})", t.display())).unwrap_or_default())]
    Symlink {
        path: PathBuf,
        target: Option<PathBuf>,
        what: &'static str,
    },
    #[error("{} is a {found}, not a {want}", path.display())]
    WrongType {
        path: PathBuf,
        found: &'static str,
        want: &'static str,
    },
    #[error("{} is owned by uid {owner}; it must belong to uid {euid}, the user ferrovpn runs as{}", path.display(), if *root_ok { " (or to root)" } else { "" })]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
        root_ok: bool,
    },
    #[error("{} is {what} by group/others (mode {mode:04o}); run: chmod 600 {}", path.display(), path.display())]
    FileMode {
        path: PathBuf,
        what: &'static str,
        mode: u32,
    },
    #[error("{} is writable by group/others (mode {mode:04o}): another user could plant files there; use a directory only its owner can write, e.g. install -d -m 700 {}", path.display(), path.display())]
    DirMode { path: PathBuf, mode: u32 },
    #[error("{} is larger than {MAX_PSK_FILE} bytes; a PSK file holds one key", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl SecretFileError {
    fn io(path: &Path, source: io::Error) -> Self {
        SecretFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The effective uid of this process: the owner secret files must have.
pub fn effective_uid() -> u32 {
    crate::sys::process::effective_uid()
}

fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// What an `open` error means for `path`: ELOOP under O_NOFOLLOW is a symlink in the last
/// component (confirmed with lstat), ENOENT a missing file, anything else as it is.
fn open_error(path: &Path, e: io::Error, what: &'static str) -> SecretFileError {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::EMLINK) | Some(libc::ENOTDIR)
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            SecretFileError::Symlink {
                path: path.to_path_buf(),
                target: std::fs::read_link(path).ok(),
                what,
            }
        }
        Some(libc::ENOENT) => SecretFileError::Missing {
            path: path.to_path_buf(),
        },
        Some(libc::ENOTDIR) if what == "directory" => SecretFileError::WrongType {
            path: path.to_path_buf(),
            found: std::fs::symlink_metadata(path)
                .map(|m| kind(&m))
                .unwrap_or("file"),
            want: what,
        },
        _ => SecretFileError::io(path, e),
    }
}

/// The ownership and mode rules, on values an `fstat` returned (pure, so every case is testable
/// without changing owners).
pub fn judge_private_file(
    path: &Path,
    uid: u32,
    mode: u32,
    euid: u32,
    root_ok: bool,
) -> Result<(), SecretFileError> {
    if uid != euid && !(root_ok && uid == 0) {
        return Err(SecretFileError::Owner {
            path: path.to_path_buf(),
            owner: uid,
            euid,
            root_ok,
        });
    }
    let mode = mode & 0o7777;
    let what = match (mode & 0o044 != 0, mode & 0o022 != 0) {
        (true, true) => "readable and writable",
        (true, false) => "readable",
        (false, true) => "writable",
        (false, false) if mode & 0o011 != 0 => "executable",
        _ => return Ok(()),
    };
    Err(SecretFileError::FileMode {
        path: path.to_path_buf(),
        what,
        mode,
    })
}

/// The rules for a directory that receives key files: ours and writable by nobody else.
pub fn judge_private_dir(
    path: &Path,
    uid: u32,
    mode: u32,
    euid: u32,
) -> Result<(), SecretFileError> {
    if uid != euid {
        return Err(SecretFileError::Owner {
            path: path.to_path_buf(),
            owner: uid,
            euid,
            root_ok: false,
        });
    }
    if mode & 0o022 != 0 {
        return Err(SecretFileError::DirMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Reads a PSK file: one `open(O_NOFOLLOW)`, then on that descriptor: a regular file, owned by
/// us (or root), no group/other permission bits, at most [`MAX_PSK_FILE`] bytes.
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| open_error(path, e, "file"))?;
    let meta = f.metadata().map_err(|e| SecretFileError::io(path, e))?;
    if !meta.is_file() {
        return Err(SecretFileError::WrongType {
            path: path.to_path_buf(),
            found: kind(&meta),
            want: "regular file",
        });
    }
    judge_private_file(path, meta.uid(), meta.mode(), effective_uid(), true)?;
    if meta.len() > MAX_PSK_FILE {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    // Room for the whole file up front: the buffer never reallocates, so no unwiped copy of
    // the key is left behind in freed memory.
    let cap = usize::try_from(MAX_PSK_FILE)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    (&f).take(MAX_PSK_FILE.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| SecretFileError::io(path, e))?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > MAX_PSK_FILE {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(buf)
}

/// A directory that receives key files, held open so that files are created relative to the
/// directory that was checked, whatever later happens to its path.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    dir: File,
}

/// Names of files a [`PrivateDir`] may hold: plain names, no `/`.
fn file_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{name}' is not a plain file name"),
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

impl PrivateDir {
    /// Opens `path` (not through a symlink), then checks on the descriptor that it is a
    /// directory owned by us and not writable by group/others.
    pub fn open(path: &Path) -> Result<PrivateDir, SecretFileError> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| open_error(path, e, "directory"))?;
        let meta = dir.metadata().map_err(|e| SecretFileError::io(path, e))?;
        if !meta.is_dir() {
            return Err(SecretFileError::WrongType {
                path: path.to_path_buf(),
                found: kind(&meta),
                want: "directory",
            });
        }
        judge_private_dir(path, meta.uid(), meta.mode(), effective_uid())?;
        Ok(PrivateDir {
            path: path.to_path_buf(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An existing `name` in the directory that we would refuse to append to (a symlink, not a
    /// regular file, not ours, readable or writable by others); Ok when absent or fine.
    pub fn check_existing(&self, name: &str) -> Result<(), SecretFileError> {
        let path = self.path.join(name);
        let c = file_name(name).map_err(|e| SecretFileError::io(&path, e))?;
        let st = match sys::fs::stat_at_nofollow(self.dir.as_fd(), &c) {
            Ok(st) => st,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT) => Ok(()),
                    _ => Err(SecretFileError::io(&path, e)),
                }
            }
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFLNK {
            return Err(SecretFileError::Symlink {
                target: std::fs::read_link(&path).ok(),
                path,
                what: "file",
            });
        }
        if fmt != libc::S_IFREG {
            return Err(SecretFileError::WrongType {
                path,
                found: match fmt {
                    libc::S_IFDIR => "directory",
                    libc::S_IFIFO => "FIFO",
                    libc::S_IFSOCK => "socket",
                    libc::S_IFCHR => "character device",
                    libc::S_IFBLK => "block device",
                    _ => "special file",
                },
                want: "regular file",
            });
        }
        judge_private_file(&path, st.st_uid, st.st_mode, effective_uid(), false)
    }

    /// Opens `name` for appending: created 0600 at once (`O_CREAT` with that mode, never a
    /// chmod afterwards), never through a symlink, and refused unless it is a regular file of
    /// ours that no one else may read or write.
    pub fn open_append(&self, name: &str) -> Result<File, SecretFileError> {
        let path = self.path.join(name);
        let c = file_name(name).map_err(|e| SecretFileError::io(&path, e))?;
        let flags = libc::O_WRONLY
            | libc::O_APPEND
            | libc::O_CREAT
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | libc::O_NONBLOCK;
        let f = match sys::fs::open_at(self.dir.as_fd(), &c, flags, 0o600) {
            Ok(f) => f,
            Err(e) => {
                return Err(match e.raw_os_error() {
                    Some(libc::ELOOP) | Some(libc::EMLINK) => SecretFileError::Symlink {
                        target: std::fs::read_link(&path).ok(),
                        path,
                        what: "file",
                    },
                    _ => SecretFileError::io(&path, e),
                })
            }
        };
        let meta = f.metadata().map_err(|e| SecretFileError::io(&path, e))?;
        if !meta.is_file() {
            return Err(SecretFileError::WrongType {
                path,
                found: kind(&meta),
                want: "regular file",
            });
        }
        judge_private_file(&path, meta.uid(), meta.mode(), effective_uid(), false)?;
        Ok(f)
    }
}

/// `path` relative to `base` when it is relative; as it is otherwise.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Raw bytes of a path, for length limits such as a Unix socket's.
pub fn path_len(path: &Path) -> usize {
    path.as_os_str().as_bytes().len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A fresh private temp directory, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);
    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("ferrovpn-sf-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_mode(p: &Path, text: &str, mode: u32) {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_private_file_is_read_and_a_wide_one_gets_the_chmod_command() {
        let d = TempDir::new("mode");
        let f = d.0.join("k.psk");
        write_mode(&f, "secret\n", 0o600);
        assert_eq!(&read_private(&f).unwrap()[..], b"secret\n");
        for (mode, what) in [
            (0o644, "readable"),
            (0o620, "writable"),
            (0o666, "readable and writable"),
            (0o610, "executable"),
        ] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_private(&f).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "{} is {what} by group/others (mode {mode:04o}); run: chmod 600 {}",
                    f.display(),
                    f.display()
                )
            );
        }
    }

    #[test]
    fn a_symlinked_psk_file_is_refused_as_a_symlink_even_to_a_private_file() {
        let d = TempDir::new("link");
        let real = d.0.join("real.psk");
        write_mode(&real, "secret", 0o600);
        let link = d.0.join("k.psk");
        symlink(&real, &link).unwrap();
        let e = read_private(&link).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} is a symbolic link (to {}); refusing to follow it: name the real file itself",
                link.display(),
                real.display()
            )
        );
        assert!(!e.contains("chmod"), "{e}");
        // A symlink to a file such as /etc/shadow says the same, not "chmod 600 it".
        let shadow = d.0.join("shadow-link");
        symlink("/etc/shadow", &shadow).unwrap();
        let e = read_private(&shadow).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link (to /etc/shadow)"), "{e}");
    }

    #[test]
    fn missing_directories_fifos_and_big_files_are_refused_without_blocking() {
        let d = TempDir::new("kinds");
        assert!(matches!(
            read_private(&d.0.join("none")),
            Err(SecretFileError::Missing { .. })
        ));
        let e = read_private(&d.0).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let fifo = d.0.join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        crate::sys::fs::make_fifo(&c).unwrap();
        let e = read_private(&fifo).unwrap_err().to_string();
        assert!(e.ends_with("is a FIFO, not a regular file"), "{e}");
        let big = d.0.join("big");
        write_mode(&big, &"x".repeat(70_000), 0o600);
        assert!(matches!(
            read_private(&big),
            Err(SecretFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn owners_other_than_us_or_root_are_refused() {
        let p = Path::new("/k");
        assert!(judge_private_file(p, 1000, 0o600, 1000, true).is_ok());
        assert!(judge_private_file(p, 0, 0o600, 1000, true).is_ok());
        assert_eq!(
            judge_private_file(p, 0, 0o600, 1000, false)
                .unwrap_err()
                .to_string(),
            "/k is owned by uid 0; it must belong to uid 1000, the user ferrovpn runs as"
        );
        assert_eq!(
            judge_private_file(p, 1001, 0o600, 0, true)
                .unwrap_err()
                .to_string(),
            "/k is owned by uid 1001; it must belong to uid 0, the user ferrovpn runs as (or to root)"
        );
        assert!(judge_private_dir(p, 0, 0o700, 0).is_ok());
        assert!(judge_private_dir(p, 0, 0o755, 0).is_ok());
        assert!(judge_private_dir(p, 5, 0o700, 0).is_err());
        assert_eq!(
            judge_private_dir(p, 0, 0o1777, 0).unwrap_err().to_string(),
            "/k is writable by group/others (mode 1777): another user could plant files there; use a directory only its owner can write, e.g. install -d -m 700 /k"
        );
    }

    /// As root, a file of another user is refused on the real descriptor too.
    #[test]
    fn a_psk_file_of_another_user_is_refused() {
        if effective_uid() != 0 {
            eprintln!("skipping: chown needs root (the rule itself is tested above)");
            return;
        }
        let d = TempDir::new("owner");
        let f = d.0.join("k.psk");
        write_mode(&f, "secret", 0o600);
        std::os::unix::fs::chown(&f, Some(4321), None).unwrap();
        let e = read_private(&f).unwrap_err().to_string();
        assert!(
            e.contains("is owned by uid 4321; it must belong to uid 0"),
            "{e}"
        );
    }

    #[test]
    fn key_files_are_created_0600_and_appended_despite_a_wide_umask() {
        let d = TempDir::new("append");
        let dir = PrivateDir::open(&d.0).unwrap();
        let old = crate::sys::fs::set_umask(0);
        let r = dir.open_append("esp_sa").map(|mut f| f.write_all(b"a\n"));
        crate::sys::fs::set_umask(old);
        r.unwrap().unwrap();
        dir.open_append("esp_sa")
            .unwrap()
            .write_all(b"b\n")
            .unwrap();
        let p = d.0.join("esp_sa");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert!(dir.check_existing("esp_sa").is_ok());
        assert!(dir.check_existing("absent").is_ok());
        assert!(dir.open_append("../x").is_err());
    }

    #[test]
    fn a_symlink_or_a_wide_file_in_the_key_dir_is_refused_and_its_target_untouched() {
        let d = TempDir::new("keylink");
        let victim = d.0.join("victim");
        write_mode(&victim, "precious\n", 0o644);
        let keys = d.0.join("keys");
        std::fs::create_dir(&keys).unwrap();
        symlink(&victim, keys.join("esp_sa")).unwrap();
        let dir = PrivateDir::open(&keys).unwrap();
        for e in [
            dir.check_existing("esp_sa").unwrap_err(),
            dir.open_append("esp_sa").unwrap_err(),
        ] {
            assert!(
                e.to_string().starts_with(&format!(
                    "{} is a symbolic link",
                    keys.join("esp_sa").display()
                )),
                "{e}"
            );
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o644
        );
        write_mode(&keys.join("ikev1_decryption_table"), "", 0o644);
        let e = dir.open_append("ikev1_decryption_table").unwrap_err();
        assert!(
            e.to_string()
                .contains("is readable by group/others (mode 0644)"),
            "{e}"
        );
        std::fs::create_dir(keys.join("sub")).unwrap();
        let e = dir.check_existing("sub").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is a directory, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn key_dirs_that_are_symlinks_files_or_world_writable_are_refused() {
        let d = TempDir::new("keydir");
        let real = d.0.join("real");
        std::fs::create_dir(&real).unwrap();
        let link = d.0.join("keys");
        symlink(&real, &link).unwrap();
        assert_eq!(
            PrivateDir::open(&link).unwrap_err().to_string(),
            format!(
                "{} is a symbolic link (to {}); refusing to follow it: name the real directory itself",
                link.display(),
                real.display()
            )
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = PrivateDir::open(&real).unwrap_err().to_string();
        assert!(e.contains("is writable by group/others (mode 1777)"), "{e}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(PrivateDir::open(&real).is_err());
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(PrivateDir::open(&real).is_ok());
        let file = d.0.join("file");
        write_mode(&file, "", 0o600);
        assert_eq!(
            PrivateDir::open(&file).unwrap_err().to_string(),
            format!("{} is a regular file, not a directory", file.display())
        );
        assert!(matches!(
            PrivateDir::open(&d.0.join("none")),
            Err(SecretFileError::Missing { .. })
        ));
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        assert_eq!(
            resolve(Path::new("/etc/fv"), Path::new("k.psk")),
            Path::new("/etc/fv/k.psk")
        );
        assert_eq!(
            resolve(Path::new("/etc/fv"), Path::new("/abs")),
            Path::new("/abs")
        );
    }
}
