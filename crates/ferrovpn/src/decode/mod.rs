//! `ferrovpn decode`: read a capture (pcap or pcapng), name every ISAKMP message as operators
//! do (MM1…MM6, AM1…AM3, QM1…QM3, INFO) with its cookies, message ID and payloads, spot
//! retransmissions and simultaneous negotiations, decrypt with Wireshark's IKEv1 decryption
//! table, and group ESP packets by SPI with their sequence gaps.

pub mod capture;
pub mod esp;
pub mod isakmp;
pub mod keys;
pub mod packet;
mod render;

use std::io::Write;
use std::path::Path;

pub use capture::{CaptureError, Format, Frame, Timestamp};
pub use esp::EspFlow;
pub use isakmp::{Body, Decryption, IsakmpMessage, MessageName, Record, Undecodable};
pub use keys::{KeyTable, KeyTableError};
pub use render::render;

use packet::Content;

/// Why a capture cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Keys(#[from] KeyTableError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

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
    /// Frames cut short by the snap length or malformed below ISAKMP/ESP.
    pub truncated: usize,
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

/// Decodes a capture file's bytes; `keys` decrypts the IKE SAs it names.
pub fn decode(capture: &[u8], keys: Option<&KeyTable>) -> Result<Report, DecodeError> {
    let (format, frames) = capture::read(capture)?;
    let mut tracker = isakmp::Tracker::new(keys);
    let mut flows = esp::EspFlows::default();
    let mut report = Report {
        format,
        frames: frames.len(),
        link_types: Vec::new(),
        records: Vec::new(),
        esp: Vec::new(),
        keepalives: 0,
        fragments: 0,
        truncated: 0,
    };
    for frame in &frames {
        if !report.link_types.contains(&frame.link_type) {
            report.link_types.push(frame.link_type);
        }
        match packet::parse(frame.link_type, frame.data) {
            Content::Isakmp {
                src,
                dst,
                nat_t,
                message,
            } => tracker.add(frame.number, frame.time, src, dst, nat_t, message),
            Content::Esp {
                src,
                dst,
                udp,
                packet,
            } => {
                if !flows.add(frame.time, src, dst, udp, packet) {
                    report.truncated += 1;
                }
            }
            Content::Keepalive { .. } => report.keepalives += 1,
            Content::Fragment => report.fragments += 1,
            Content::Truncated => report.truncated += 1,
            Content::Other => {}
        }
    }
    report.records = tracker.into_records();
    report.esp = flows.into_flows();
    Ok(report)
}

/// `ferrovpn decode FILE [--keys FILE] [-v]`: prints the report; exit status 0, or 1 when a
/// file cannot be read or parsed.
pub fn run(
    file: &Path,
    keys: Option<&Path>,
    verbose: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let result = (|| {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| DecodeError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let table = match keys {
            Some(p) => {
                let text = read(p)?;
                let parsed = KeyTable::parse(&String::from_utf8_lossy(&text)).map_err(|e| {
                    DecodeError::Io {
                        path: p.display().to_string(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    }
                })?;
                Some(parsed)
            }
            None => None,
        };
        let bytes = read(file)?;
        let report = decode(&bytes, table.as_ref()).map_err(|e| DecodeError::Io {
            path: file.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        Ok::<_, DecodeError>(render(&report, verbose))
    })();
    match result {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            crate::cli::EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "ferrovpn decode: {e}");
            crate::cli::EXIT_FAILURE
        }
    }
}
