//! IKEv1 cryptography: PRFs, Diffie-Hellman groups, phase 1 ciphers and the key schedule.
