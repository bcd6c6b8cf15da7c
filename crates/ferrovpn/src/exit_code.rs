//! Exit statuses of every `ferrovpn` command. A leaf: the CLI and the commands it dispatches to
//! (`decode`, `import`, `diagnose`) all return these.

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: the configuration is invalid or the operation failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: usage error, or the command is not available in this build.
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `initiate`, `terminate`, `rekey`: no connection of that name.
pub const EXIT_UNKNOWN_CONNECTION: i32 = 3;
/// Exit status of `terminate`, `rekey`: the connection was not up.
pub const EXIT_NOT_UP: i32 = 4;
/// Exit status of `initiate`, `rekey`: not done within `--timeout` (it may still finish).
pub const EXIT_TIMED_OUT: i32 = 5;
