//! Exit statuses of every `ferrovpn` command. A leaf: the CLI and the commands it dispatches to
//! (`decode`, `import`, `diagnose`) all return these.

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: the configuration is invalid or the operation failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: usage error, or the command is not available in this build.
pub const EXIT_USAGE: i32 = 2;
