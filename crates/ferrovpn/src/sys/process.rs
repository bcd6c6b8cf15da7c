//! This process and its threads: who it runs as, `up --daemon`'s fork and detach, and CPU
//! pinning of data plane threads.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A pipe whose two ends (read, write) close on exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into fds, which has room for two; checked below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [rd, wr] = fds;
    // SAFETY: both descriptors are fresh from pipe2 and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(rd), OwnedFd::from_raw_fd(wr)) })
}

/// Which side of a [`fork`] this is.
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(libc::pid_t),
    Child,
}

/// Threads of this process, from `/proc/self/task`.
fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// fork(2), refused unless this process has one thread: the child of a multithreaded process
/// may find locks held by threads that do not exist there.
pub fn fork() -> io::Result<Forked> {
    if thread_count()? != 1 {
        return Err(io::Error::other("other threads are running"));
    }
    // SAFETY: the process has a single thread (checked above), so the child is a complete copy
    // of it and may run any code.
    match unsafe { libc::fork() } {
        pid if pid < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Waits for the child `pid` and returns its raw wait status (0 when waitpid fails).
pub fn wait_child(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    // SAFETY: waits for our own child; status is a valid, exclusively borrowed out pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

/// Leaves the caller's session and terminal (setsid), changes to `/` and points stdin and
/// stdout at /dev/null. Failures leave the process attached, which is harmless, so they are
/// ignored.
pub fn detach() {
    // SAFETY: setsid takes no arguments; chdir and open get NUL-terminated literals; dup2 and
    // close operate on descriptors this process owns (`null` is ours until closed here).
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, libc::STDIN_FILENO);
            libc::dup2(null, libc::STDOUT_FILENO);
            libc::close(null);
        }
    }
}

/// The CPUs this thread may run on; empty when the kernel does not say.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is the empty set; sched_getaffinity fills it.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is that of the set passed.
    let ok = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) } == 0;
    if !ok {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE, inside the set.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &allowed) })
        .collect()
}

/// Pins the calling thread to `cpu` (below `CPU_SETSIZE`, as [`allowed_cpus`] returns).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the size is that of the set passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CPU time this process has used so far, user and system, in microseconds
/// (`getrusage(RUSAGE_SELF)`, all threads; with tick accounting, softirq work the kernel ran
/// inside this process's system calls is part of its system time).
pub fn cpu_time_us() -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero rusage is a valid value (plain integers); getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid, exclusively borrowed out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let us = |t: libc::timeval| {
        let s = u64::try_from(t.tv_sec).unwrap_or(0);
        let u = u64::try_from(t.tv_usec).unwrap_or(0);
        s.saturating_mul(1_000_000).saturating_add(u)
    };
    Ok((us(ru.ru_utime), us(ru.ru_stime)))
}

/// Moves the calling thread into the network namespace open at `ns` (`setns(2)` with
/// CLONE_NEWNET); other threads stay where they are.
#[cfg(test)]
pub fn enter_netns(ns: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the whole call (borrowed from `ns`); setns only reads it.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_only_grows() {
        let (u0, s0) = cpu_time_us().unwrap();
        // Some work in both modes: system calls and a little arithmetic.
        let mut x = 0u64;
        for i in 0..10_000u64 {
            x = x.wrapping_add(i.wrapping_mul(i));
            let _ = std::fs::metadata("/");
        }
        std::hint::black_box(x);
        let (u1, s1) = cpu_time_us().unwrap();
        assert!(u1 >= u0 && s1 >= s0, "{u0}/{s0} then {u1}/{s1}");
        assert!(u1 + s1 > 0, "a running process has used some CPU");
    }
}
