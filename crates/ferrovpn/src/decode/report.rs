//! What `decode` found in one capture: the ISAKMP records, the ESP flows and the counts of what
//! it skipped. Filled by `decode_with`, printed by `render`.

use super::capture::{CaptureError, Format};
use super::esp::EspFlow;
use super::isakmp::{IsakmpMessage, Record};

/// Everything found in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub format: Format,
    pub frames: usize,
    /// Link types present, in order of first appearance.
    pub link_types: Vec<u16>,
    /// ISAKMP datagrams in capture order.
    pub records: Vec<Record>,
    /// ESP flows in order of first appearance.
    pub esp: Vec<EspFlow>,
    pub keepalives: usize,
    /// IP fragments (not reassembled).
    pub fragments: usize,
    /// UDP GSO super-packets (several ESP-in-UDP datagrams in one captured frame, as a packet
    /// socket on the sending host sees them) split into their datagrams.
    pub gso_super_packets: usize,
    /// Frames cut short by the snap length or malformed below ISAKMP/ESP.
    pub truncated: usize,
    /// Why the capture file was not read to its end (its last record cut short, or damage);
    /// the report holds every frame before that point.
    pub stopped: Option<CaptureError>,
}

impl Report {
    /// The ISAKMP messages (without undecodable datagrams).
    pub fn messages(&self) -> impl Iterator<Item = &IsakmpMessage> {
        self.records.iter().filter_map(|r| match r {
            Record::Message(m) => Some(m.as_ref()),
            Record::Undecodable(_) => None,
        })
    }
}
