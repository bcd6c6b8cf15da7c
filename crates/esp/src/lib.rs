//! Software ESP data plane (RFC 4303).
