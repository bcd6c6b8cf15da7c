//! PAM (Linux-PAM, `pam_start(3)`), loaded at run time with `dlopen(3)` from `libpam.so.0`:
//! only the runtime library is needed (no -dev package, no link-time dependency), and a host
//! without it fails `up`/`check` of a PAM gateway with a clear error instead of not starting.
//!
//! One check is `pam_start` (or `pam_start_confdir`, Linux-PAM 1.4) → `pam_set_item(PAM_RHOST)`
//! → `pam_authenticate` → `pam_acct_mgmt` → `pam_end`, with a conversation function that answers the echo-off prompt
//! with the password and the echo-on prompt with the user name. It blocks (pam_unix waits
//! after a wrong password, LDAP goes to the network): call it from a worker thread only.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use zeroize::Zeroize;

// Linux-PAM's _pam_types.h / _pam_compat.h values.
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_PERM_DENIED: c_int = 6;
const PAM_AUTH_ERR: c_int = 7;
const PAM_CRED_INSUFFICIENT: c_int = 8;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_CONV_ERR: c_int = 19;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
/// pam_set_item's item for the remote host: what pam_access, pam_faillock and the auth log
/// see as the client (as sshd sets it).
const PAM_RHOST: c_int = 4;
/// Linux-PAM's PAM_MAX_NUM_MSG: more messages in one call is a broken module.
const PAM_MAX_NUM_MSG: c_int = 32;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

type Handle = *mut c_void;
type StartFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut Handle) -> c_int;
type StartConfdirFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const PamConv,
    *const c_char,
    *mut Handle,
) -> c_int;
type HandleFn = unsafe extern "C" fn(Handle, c_int) -> c_int;
type SetItemFn = unsafe extern "C" fn(Handle, c_int, *const c_void) -> c_int;
type StrerrorFn = unsafe extern "C" fn(Handle, c_int) -> *const c_char;

/// The libpam functions used, resolved once per process (the library is never unloaded).
struct Lib {
    start: StartFn,
    start_confdir: Option<StartConfdirFn>,
    set_item: SetItemFn,
    authenticate: HandleFn,
    acct_mgmt: HandleFn,
    end: HandleFn,
    strerror: StrerrorFn,
}

const LIBRARY: &CStr = c"libpam.so.0";

/// The last `dlerror(3)` text, or `fallback`.
fn dl_error(fallback: &str) -> String {
    // SAFETY: dlerror returns a thread-local NUL-terminated string or NULL; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return fallback.to_string();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}

/// `dlsym(3)` of `name` in `lib`, null when absent.
fn symbol(lib: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: `lib` is a handle dlopen returned and never closed; `name` is NUL-terminated.
    unsafe { libc::dlsym(lib, name.as_ptr()) }
}

fn open() -> Result<Lib, String> {
    // SAFETY: LIBRARY is NUL-terminated; loading libpam runs only its (side-effect free)
    // initialisers. The handle is kept for the life of the process.
    let lib = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(format!(
            "cannot load libpam.so.0 ({}): install Linux-PAM's runtime library (Debian: libpam0g, Fedora: pam)",
            dl_error("not found")
        ));
    }
    let need = |name: &CStr| {
        let p = symbol(lib, name);
        if p.is_null() {
            Err(format!(
                "libpam.so.0 lacks {}: not Linux-PAM?",
                name.to_string_lossy()
            ))
        } else {
            Ok(p)
        }
    };
    let start = need(c"pam_start")?;
    let set_item = need(c"pam_set_item")?;
    let authenticate = need(c"pam_authenticate")?;
    let acct_mgmt = need(c"pam_acct_mgmt")?;
    let end = need(c"pam_end")?;
    let strerror = need(c"pam_strerror")?;
    let confdir = symbol(lib, c"pam_start_confdir");
    // SAFETY: each symbol is Linux-PAM's function of that name, whose C prototype
    // (security/pam_appl.h) is the function pointer type it is converted to; all are non-null.
    unsafe {
        Ok(Lib {
            start: std::mem::transmute::<*mut c_void, StartFn>(start),
            start_confdir: (!confdir.is_null())
                .then(|| std::mem::transmute::<*mut c_void, StartConfdirFn>(confdir)),
            set_item: std::mem::transmute::<*mut c_void, SetItemFn>(set_item),
            authenticate: std::mem::transmute::<*mut c_void, HandleFn>(authenticate),
            acct_mgmt: std::mem::transmute::<*mut c_void, HandleFn>(acct_mgmt),
            end: std::mem::transmute::<*mut c_void, HandleFn>(end),
            strerror: std::mem::transmute::<*mut c_void, StrerrorFn>(strerror),
        })
    }
}

fn library() -> Result<&'static Lib, String> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(open).as_ref().map_err(Clone::clone)
}

/// Loads libpam now (for `up`/`check`): Ok, or why PAM cannot be used. With `confdir`, the
/// library must also have `pam_start_confdir` (Linux-PAM 1.4 and later).
pub fn available(confdir: bool) -> Result<(), String> {
    let lib = library()?;
    if confdir && lib.start_confdir.is_none() {
        return Err("libpam.so.0 lacks pam_start_confdir (Linux-PAM 1.4 or later is needed for a PAM configuration directory)".into());
    }
    Ok(())
}

/// Why a check did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamFailure {
    /// The call that failed: `pam_start`, `pam_authenticate` or `pam_acct_mgmt`.
    pub step: &'static str,
    /// The PAM return code.
    pub code: i32,
    /// `pam_strerror`'s text (or ours when PAM was never reached).
    pub text: String,
}

impl PamFailure {
    /// True when PAM said no to this user (wrong password, unknown user, expired account);
    /// false for an error of PAM itself (a missing module, a broken service file).
    pub fn is_denial(&self) -> bool {
        matches!(
            self.code,
            PAM_PERM_DENIED
                | PAM_AUTH_ERR
                | PAM_CRED_INSUFFICIENT
                | PAM_USER_UNKNOWN
                | PAM_MAXTRIES
                | PAM_NEW_AUTHTOK_REQD
                | PAM_ACCT_EXPIRED
        )
    }
}

impl std::fmt::Display for PamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.step, self.text, self.code)
    }
}

/// What the conversation function answers with; borrowed by PAM through `appdata_ptr` from
/// `pam_start` to `pam_end`.
struct Answers<'a> {
    user: &'a [u8],
    password: &'a [u8],
}

/// `bytes` and a NUL in memory from `malloc(3)`, as PAM frees responses; null when out of
/// memory.
fn malloc_string(bytes: &[u8]) -> *mut c_char {
    let Some(len) = bytes.len().checked_add(1) else {
        return std::ptr::null_mut();
    };
    // SAFETY: malloc of a nonzero size; the result is checked for null.
    let p = unsafe { libc::malloc(len) }.cast::<u8>();
    if p.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `p` holds `len` = bytes.len() + 1 bytes; the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        p.add(bytes.len()).write(0);
    }
    p.cast()
}

/// Wipes and frees the first `n` responses of `out` and `out` itself (a conversation that
/// fails hands nothing to PAM).
///
/// # Safety
/// `out` is a `calloc`ed array of at least `n` responses whose `resp` are null or
/// `malloc_string` results.
unsafe fn free_responses(out: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, within the array (the caller's contract).
        let r = unsafe { &mut *out.add(i) };
        if !r.resp.is_null() {
            // SAFETY: a NUL-terminated malloc_string result, owned by us until freed here.
            unsafe {
                let len = libc::strlen(r.resp);
                std::slice::from_raw_parts_mut(r.resp.cast::<u8>(), len).zeroize();
                libc::free(r.resp.cast());
            }
            r.resp = std::ptr::null_mut();
        }
    }
    // SAFETY: `out` came from calloc and is not used after this.
    unsafe { libc::free(out.cast()) };
}

/// The conversation function (pam_conv(3)): echo-off prompts get the password, echo-on prompts
/// the user name, informational and error messages nothing; any other style fails the call.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    if appdata.is_null() {
        return PAM_CONV_ERR;
    }
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    // SAFETY: `appdata` is the `Answers` that `check` put in the pam_conv; it outlives pam_end.
    let answers = unsafe { &*appdata.cast::<Answers<'_>>() };
    // SAFETY: calloc of n (1..=32) responses; checked for null. PAM frees it (and the strings).
    let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of num_msg message pointers; i < num_msg.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: `out` is our calloc'ed array; entries before i are ours.
            unsafe { free_responses(out, i) };
            return PAM_CONV_ERR;
        }
        // SAFETY: a non-null message of PAM's, valid for this call.
        let style = unsafe { (*m).msg_style };
        let answer = match style {
            PAM_PROMPT_ECHO_OFF => Some(answers.password),
            PAM_PROMPT_ECHO_ON => Some(answers.user),
            PAM_ERROR_MSG | PAM_TEXT_INFO => None,
            _ => {
                // SAFETY: as above.
                unsafe { free_responses(out, i) };
                return PAM_CONV_ERR;
            }
        };
        if let Some(a) = answer {
            let p = malloc_string(a);
            if p.is_null() {
                // SAFETY: as above.
                unsafe { free_responses(out, i) };
                return PAM_BUF_ERR;
            }
            // SAFETY: i < n, within `out`.
            unsafe { (*out.add(i)).resp = p };
        }
    }
    // SAFETY: `resp` is PAM's non-null out pointer; ownership of `out` passes to PAM.
    unsafe { *resp = out };
    PAM_SUCCESS
}

/// Checks `user` with `password`, from the client at `rhost`, through PAM service `service`
/// (its file in `confdir`, or the system's /etc/pam.d when None): `pam_authenticate`, then
/// `pam_acct_mgmt`. Blocks.
pub fn check(
    service: &str,
    confdir: Option<&Path>,
    rhost: IpAddr,
    user: &str,
    password: &[u8],
) -> Result<(), PamFailure> {
    let ours = |text: &str| PamFailure {
        step: "pam_start",
        code: -1,
        text: text.to_string(),
    };
    let lib = library().map_err(|e| ours(&e))?;
    let service = CString::new(service).map_err(|_| ours("NUL in the service name"))?;
    let c_user = CString::new(user).map_err(|_| ours("NUL in the user name"))?;
    // An address's text has no NUL.
    let c_rhost = CString::new(rhost.to_string()).map_err(|_| ours("NUL in the address"))?;
    if password.contains(&0) {
        return Err(PamFailure {
            step: "pam_authenticate",
            code: PAM_AUTH_ERR,
            text: "NUL in the password".into(),
        });
    }
    let answers = Answers {
        user: user.as_bytes(),
        password,
    };
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: std::ptr::from_ref(&answers).cast_mut().cast(),
    };
    let mut h: Handle = std::ptr::null_mut();
    let rc = match confdir {
        None => {
            // SAFETY: NUL-terminated strings and `conv` live until pam_end below; `h` is
            // writable.
            unsafe { (lib.start)(service.as_ptr(), c_user.as_ptr(), &conv, &mut h) }
        }
        Some(dir) => {
            let Some(start) = lib.start_confdir else {
                return Err(ours("libpam.so.0 lacks pam_start_confdir"));
            };
            let dir =
                CString::new(dir.as_os_str().as_bytes()).map_err(|_| ours("NUL in the confdir"))?;
            // SAFETY: as above; `dir` lives until the end of this call (PAM reads the
            // service file during pam_start).
            unsafe {
                start(
                    service.as_ptr(),
                    c_user.as_ptr(),
                    &conv,
                    dir.as_ptr(),
                    &mut h,
                )
            }
        }
    };
    if rc != PAM_SUCCESS || h.is_null() {
        if !h.is_null() {
            // SAFETY: a handle pam_start returned, ended once.
            unsafe { (lib.end)(h, rc) };
        }
        return Err(PamFailure {
            step: "pam_start",
            code: rc,
            text: "cannot start (service file?)".into(),
        });
    }
    let flags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
    // SAFETY: `h` is a live handle; PAM copies the NUL-terminated string.
    let mut rc = unsafe { (lib.set_item)(h, PAM_RHOST, c_rhost.as_ptr().cast()) };
    let mut step = "pam_set_item";
    if rc == PAM_SUCCESS {
        step = "pam_authenticate";
        // SAFETY: `h` is a live handle; `answers` and `conv` outlive it.
        rc = unsafe { (lib.authenticate)(h, flags) };
    }
    if rc == PAM_SUCCESS {
        step = "pam_acct_mgmt";
        // SAFETY: as above.
        rc = unsafe { (lib.acct_mgmt)(h, flags) };
    }
    let result = if rc == PAM_SUCCESS {
        Ok(())
    } else {
        // SAFETY: a live handle; pam_strerror returns a static NUL-terminated string (or
        // null), copied before pam_end.
        let t = unsafe { (lib.strerror)(h, rc) };
        let text = if t.is_null() {
            String::from("unknown error")
        } else {
            // SAFETY: non-null, NUL-terminated (see above).
            unsafe { CStr::from_ptr(t) }.to_string_lossy().into_owned()
        };
        Err(PamFailure {
            step,
            code: rc,
            text,
        })
    };
    // SAFETY: the live handle, ended exactly once; nothing uses it afterwards.
    unsafe { (lib.end)(h, rc) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips outside CI (printing why) when this host cannot run the test; fails under CI.
    fn unavailable(why: &str) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and the real PAM test cannot run: {why}");
        }
        eprintln!("SKIP real PAM test: {why}");
    }

    /// Linux-PAM's module directory holding pam_exec.so and pam_permit.so, if any.
    fn has_modules() -> bool {
        [
            "/lib/x86_64-linux-gnu/security",
            "/usr/lib/x86_64-linux-gnu/security",
            "/lib/security",
            "/usr/lib/security",
            "/lib64/security",
            "/usr/lib64/security",
            "/usr/lib/aarch64-linux-gnu/security",
            "/lib/aarch64-linux-gnu/security",
        ]
        .iter()
        .any(|d| {
            Path::new(d).join("pam_exec.so").exists() && Path::new(d).join("pam_permit.so").exists()
        })
    }

    /// The real libpam, a service file in a directory of ours (`pam_start_confdir`), and
    /// pam_exec running a script that reads the password our conversation function gave PAM
    /// (no root, no /etc/pam.d): the right password passes authentication and account
    /// management, a wrong one or another user is a denial.
    #[test]
    fn real_pam_checks_through_a_service_in_a_confdir() {
        if let Err(e) = available(true) {
            return unavailable(&e);
        }
        if !has_modules() {
            return unavailable(
                "pam_exec.so/pam_permit.so not found in a Linux-PAM module directory",
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ferrovpn-pam-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("check.sh");
        // pam_exec writes the password and a NUL to stdin (expose_authtok).
        std::fs::write(
            &script,
            "#!/bin/sh\npw=$(tr -d '\\000')\n[ \"$PAM_USER\" = alice ] && [ \"$PAM_RHOST\" = 192.0.2.7 ] && [ \"$pw\" = 'correct horse' ]\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.join("ferrovpn-test"),
            format!(
                // pam_exec fails with PAM_SYSTEM_ERR; pam_deny makes that a denial (AUTH_ERR).
                "auth [success=done default=ignore] pam_exec.so quiet expose_authtok {}\nauth required pam_deny.so\naccount required pam_permit.so\n",
                script.display()
            ),
        )
        .unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let run = |u: &str, p: &[u8]| check("ferrovpn-test", Some(&dir), client, u, p);
        let good = run("alice", b"correct horse");
        let wrong = run("alice", b"correct horsE");
        let other = run("bob", b"correct horse");
        // The script accepts alice from 192.0.2.7 only: PAM_RHOST is the client's address.
        let elsewhere = "192.0.2.8".parse().unwrap();
        let other_host = check(
            "ferrovpn-test",
            Some(&dir),
            elsewhere,
            "alice",
            b"correct horse",
        );
        let no_service = check(
            "no-such-service",
            Some(&dir),
            client,
            "alice",
            b"correct horse",
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(good, Ok(()));
        let wrong = wrong.unwrap_err();
        assert_eq!(wrong.step, "pam_authenticate");
        assert!(wrong.is_denial(), "{wrong}");
        assert!(other.unwrap_err().is_denial());
        assert!(other_host.unwrap_err().is_denial());
        assert!(no_service.is_err());
    }

    #[test]
    fn a_password_with_nul_never_reaches_pam() {
        let e = check("x", None, "192.0.2.7".parse().unwrap(), "alice", b"a\0b").unwrap_err();
        if e.step == "pam_authenticate" {
            assert!(e.is_denial());
        }
    }
}
