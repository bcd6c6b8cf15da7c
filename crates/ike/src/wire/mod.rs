//! ISAKMP wire format (RFC 2408 §3, RFC 2407 §4): zero-copy views and parse/emit structs.
