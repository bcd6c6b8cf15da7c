//! File system calls std does not offer: `*at` calls relative to an open directory, without
//! following symlinks, and atomic create-or-fail steps.

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: what `name` in `dir` is, the link itself if it
/// is a symlink.
pub fn stat_at_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value for fstatat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is an open descriptor for the call (borrowed), `name` is NUL-terminated and
    // `st` is a valid, exclusively borrowed stat buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `openat(dir, name, flags, mode)`: the file, owned.
pub fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<File> {
    // SAFETY: `dir` is an open descriptor for the call (borrowed) and `name` is NUL-terminated;
    // the mode argument is what O_CREAT reads.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a descriptor openat just returned, owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `mkdtemp`: creates the directory `template` names with its trailing `XXXXXX` replaced by
/// random characters, mode 0700, and returns its path.
pub fn make_temp_dir(template: CString) -> io::Result<PathBuf> {
    let mut buf = template.into_bytes_with_nul();
    // SAFETY: buf is a NUL-terminated template ending in XXXXXX, which mkdtemp modifies in
    // place without changing its length.
    if unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) }.is_null() {
        return Err(io::Error::last_os_error());
    }
    buf.pop();
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// `renameat2(RENAME_NOREPLACE)`: moves `from` to `to`, failing with `EEXIST` instead of
/// replacing what is there.
pub fn rename_noreplace(from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both paths are NUL-terminated; AT_FDCWD resolves them like rename(2).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mkfifo(path, 0600)`, for tests that need a FIFO where a file is expected.
#[cfg(test)]
pub fn make_fifo(path: &CStr) -> io::Result<()> {
    // SAFETY: path is NUL-terminated.
    if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets this process's file creation mask and returns the old one.
#[cfg(test)]
pub fn set_umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask only changes this process's creation mask and cannot fail.
    unsafe { libc::umask(mask) }
}

/// `poll(2)` for one descriptor becoming readable; false on timeout or error.
#[cfg(test)]
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: libc::c_int) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid, exclusively borrowed pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) == 1 }
}
