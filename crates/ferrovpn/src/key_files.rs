//! File names of the key tables in a key export directory, as Wireshark and strongSwan's
//! save-keys plugin name them. A leaf: the daemon writes them (`save_keys_dir`), `decode`
//! reads them, the configuration checks the directory.

/// IKEv1 phase 1 keys: `initiator cookie,encryption key` per line.
pub const IKEV1_TABLE: &str = "ikev1_decryption_table";
/// ESP SAs: Wireshark's `esp_sa` UAT format.
pub const ESP_TABLE: &str = "esp_sa";
