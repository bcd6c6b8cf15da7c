//! IKEv1 control plane (RFC 2408, RFC 2409), sans-IO.
