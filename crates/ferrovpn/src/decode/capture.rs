//! Capture files as tcpdump, dumpcap and tshark write them: classic pcap (both byte orders,
//! microsecond and nanosecond magic) and pcapng (SHB, IDB, EPB, SPB and the obsolete PB).
//! Every length is checked before use; malformed files are errors, never panics. Hand-written
//! rather than pcap-file: see docs/DEPENDENCIES.md ("Well-kept crates, measured").

use std::fmt;

/// Why a capture file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("not a pcap or pcapng file (magic {0:02x?})")]
    UnknownFormat([u8; 4]),
    #[error("capture truncated at byte {offset} (frame {frame})")]
    Truncated { offset: usize, frame: usize },
    #[error("bad {what} at byte {offset}")]
    Malformed { what: &'static str, offset: usize },
    #[error(
        "packet at byte {offset} names interface {interface}, but only {count} were described"
    )]
    UnknownInterface {
        offset: usize,
        interface: u32,
        count: usize,
    },
}

/// Container format of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        })
    }
}

/// Capture time since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp {
    pub secs: u64,
    pub nanos: u32,
}

impl Timestamp {
    /// Seconds from `earlier` to `self` (0 when `earlier` is later).
    pub fn seconds_since(&self, earlier: &Timestamp) -> f64 {
        let a = self.secs as f64 + f64::from(self.nanos) / 1e9;
        let b = earlier.secs as f64 + f64::from(earlier.nanos) / 1e9;
        (a - b).max(0.0)
    }
}

/// One captured frame: its link-layer type (a LINKTYPE_ number) and the captured bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// 1-based position in the file, as Wireshark numbers frames.
    pub number: usize,
    pub time: Timestamp,
    pub link_type: u16,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

/// Bounds-checked reads at absolute offsets.
#[derive(Debug, Clone, Copy)]
struct Bytes<'a> {
    buf: &'a [u8],
    endian: Endian,
}

impl<'a> Bytes<'a> {
    fn slice(&self, at: usize, len: usize) -> Option<&'a [u8]> {
        self.buf.get(at..at.checked_add(len)?)
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.slice(at, 2)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.slice(at, 4)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    /// `u32` at `at + off`.
    fn u32_at(&self, at: usize, off: usize) -> Option<u32> {
        self.u32(at.checked_add(off)?)
    }

    /// `u16` at `at + off`.
    fn u16_at(&self, at: usize, off: usize) -> Option<u16> {
        self.u16(at.checked_add(off)?)
    }

    /// `slice` from `at + off`.
    fn slice_at(&self, at: usize, off: usize, len: usize) -> Option<&'a [u8]> {
        self.slice(at.checked_add(off)?, len)
    }
}

const PCAP_MICRO: u32 = 0xa1b2_c3d4;
const PCAP_NANO: u32 = 0xa1b2_3c4d;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_LEN: usize = 16;
/// Largest frame a pcap record holds (libpcap's MAXIMUM_SNAPLEN); a longer record length is
/// damage, not a record cut short by the end of the file.
const PCAP_MAX_FRAME: u32 = 262_144;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// if_tsresol option of an IDB (pcapng §4.2).
const OPT_IF_TSRESOL: u16 = 9;

/// The frames of a capture file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture<'a> {
    pub format: Format,
    pub frames: Vec<Frame<'a>>,
    /// Why reading stopped before the end of the file (a last record cut short, as a killed
    /// tcpdump leaves it, or damage further on); every frame before that point is in `frames`.
    pub stopped: Option<CaptureError>,
}

impl CaptureError {
    /// Byte offset in the file where the problem is.
    pub fn offset(&self) -> usize {
        match self {
            CaptureError::UnknownFormat(_) => 0,
            CaptureError::Truncated { offset, .. }
            | CaptureError::Malformed { offset, .. }
            | CaptureError::UnknownInterface { offset, .. } => *offset,
        }
    }

    /// The file ends inside a record: nothing after it was lost, only the record itself.
    pub fn is_cut_short(&self) -> bool {
        matches!(self, CaptureError::Truncated { .. })
    }
}

/// Reads every frame of a pcap or pcapng file, in file order. A file whose header cannot be
/// read is an error; a problem after the header stops reading there (`Capture::stopped`).
pub fn read(buf: &[u8]) -> Result<Capture<'_>, CaptureError> {
    let magic: [u8; 4] =
        buf.get(..4)
            .and_then(|m| m.try_into().ok())
            .ok_or(CaptureError::Truncated {
                offset: 0,
                frame: 0,
            })?;
    let mut frames = Vec::new();
    let (format, result) = if u32::from_be_bytes(magic) == PCAPNG_SHB {
        (Format::Pcapng, read_pcapng(buf, &mut frames))
    } else {
        let (endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (PCAP_MICRO, _) => (Endian::Little, false),
            (PCAP_NANO, _) => (Endian::Little, true),
            (_, PCAP_MICRO) => (Endian::Big, false),
            (_, PCAP_NANO) => (Endian::Big, true),
            _ => return Err(CaptureError::UnknownFormat(magic)),
        };
        (
            Format::Pcap,
            read_pcap(Bytes { buf, endian }, nanos, &mut frames),
        )
    };
    match result {
        Ok(()) => Ok(Capture {
            format,
            frames,
            stopped: None,
        }),
        // The file header (pcap) or first section header (pcapng) is unreadable.
        Err(e) if e.offset() == 0 => Err(e),
        Err(e) => Ok(Capture {
            format,
            frames,
            stopped: Some(e),
        }),
    }
}

/// Classic pcap: a 24-byte file header, then 16-byte record headers each followed by the frame.
fn read_pcap<'a>(
    b: Bytes<'a>,
    nanos: bool,
    frames: &mut Vec<Frame<'a>>,
) -> Result<(), CaptureError> {
    let link = b.u32(20).ok_or(CaptureError::Truncated {
        offset: 0,
        frame: 0,
    })?;
    // The upper bits of the link-type field carry FCS information; the type is 16 bits.
    let link_type = (link & 0xffff) as u16;
    let mut at = PCAP_HEADER_LEN;
    while at < b.buf.len() {
        let number = frames.len().saturating_add(1);
        let truncated = CaptureError::Truncated {
            offset: at,
            frame: number,
        };
        let secs = b.u32(at).ok_or(truncated.clone())?;
        let frac = b.u32_at(at, 4).ok_or(truncated.clone())?;
        let incl = b.u32_at(at, 8).ok_or(truncated.clone())?;
        if incl > PCAP_MAX_FRAME {
            return Err(CaptureError::Malformed {
                what: "record length",
                offset: at,
            });
        }
        let incl = usize::try_from(incl).map_err(|_| truncated.clone())?;
        let data = b
            .slice_at(at, PCAP_RECORD_LEN, incl)
            .ok_or(truncated.clone())?;
        let nanos = if nanos {
            frac
        } else {
            frac.checked_mul(1000).ok_or(CaptureError::Malformed {
                what: "timestamp",
                offset: at,
            })?
        };
        if nanos >= 1_000_000_000 {
            return Err(CaptureError::Malformed {
                what: "timestamp",
                offset: at,
            });
        }
        frames.push(Frame {
            number,
            time: Timestamp {
                secs: u64::from(secs),
                nanos,
            },
            link_type,
            data,
        });
        // `data` ends there, inside the buffer.
        at = at
            .checked_add(PCAP_RECORD_LEN)
            .and_then(|a| a.checked_add(incl))
            .ok_or(truncated)?;
    }
    Ok(())
}

/// Timestamp resolution of one pcapng interface (if_tsresol, default microseconds).
#[derive(Debug, Clone, Copy)]
enum Resolution {
    /// Units of 10^-n seconds.
    Decimal(u32),
    /// Units of 2^-n seconds.
    Binary(u32),
}

impl Resolution {
    fn from_option(v: u8) -> Option<Resolution> {
        let n = u32::from(v & 0x7f);
        if v & 0x80 == 0 {
            (n <= 19).then_some(Resolution::Decimal(n))
        } else {
            (n <= 63).then_some(Resolution::Binary(n))
        }
    }

    /// Whole seconds and nanoseconds of `ticks` units (`from_option` bounds n, so no step
    /// fails; a failure would give time 0, never a panic).
    fn timestamp(self, ticks: u64) -> Timestamp {
        let split = || -> Option<(u64, u128)> {
            match self {
                Resolution::Decimal(n) => {
                    let per_sec = 10u64.checked_pow(n)?;
                    let frac = u128::from(ticks.checked_rem(per_sec)?)
                        .checked_mul(1_000_000_000)?
                        .checked_div(u128::from(per_sec))?;
                    Some((ticks.checked_div(per_sec)?, frac))
                }
                Resolution::Binary(n) => {
                    let t = u128::from(ticks);
                    let mask = 1u128.checked_shl(n)?.checked_sub(1)?;
                    let frac = (t & mask).checked_mul(1_000_000_000)?.checked_shr(n)?;
                    Some((u64::try_from(t.checked_shr(n)?).ok()?, frac))
                }
            }
        };
        split().map_or_else(Timestamp::default, |(secs, frac)| Timestamp {
            secs,
            nanos: u32::try_from(frac).unwrap_or(0),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u16,
    snap_len: u32,
    resolution: Resolution,
}

/// pcapng (draft-ietf-opsawg-pcapng): blocks of `type, total length, body, total length`; each
/// section header fixes the byte order and starts a new list of interfaces.
fn read_pcapng<'a>(buf: &'a [u8], frames: &mut Vec<Frame<'a>>) -> Result<(), CaptureError> {
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut b = Bytes {
        buf,
        endian: Endian::Little,
    };
    let mut at = 0usize;
    while at < buf.len() {
        let truncated = CaptureError::Truncated {
            offset: at,
            frame: frames.len().saturating_add(1),
        };
        let malformed = |what| CaptureError::Malformed { what, offset: at };
        let block_type = b.u32(at).ok_or(truncated.clone())?;
        if block_type == PCAPNG_SHB {
            let order = b.slice_at(at, 8, 4).ok_or(truncated.clone())?;
            b.endian = match u32::from_le_bytes(order.try_into().map_err(|_| truncated.clone())?) {
                PCAPNG_BYTE_ORDER => Endian::Little,
                x if x.swap_bytes() == PCAPNG_BYTE_ORDER => Endian::Big,
                _ => return Err(malformed("section header byte-order magic")),
            };
            interfaces.clear();
        }
        let total = b.u32_at(at, 4).ok_or(truncated.clone())?;
        let total = usize::try_from(total).map_err(|_| malformed("block length"))?;
        if total < 12 || !total.is_multiple_of(4) {
            return Err(malformed("block length"));
        }
        let block = b.slice(at, total).ok_or(truncated.clone())?;
        // total >= 12 was checked.
        let body_end = total.saturating_sub(4);
        if b.u32_at(at, body_end) != Some(total as u32) {
            return Err(malformed("trailing block length"));
        }
        let body = Bytes {
            buf: block.get(8..body_end).ok_or(truncated.clone())?,
            endian: b.endian,
        };
        match block_type {
            PCAPNG_IDB => {
                let link_type = body.u16(0).ok_or(malformed("interface description"))?;
                let snap_len = body.u32(4).ok_or(malformed("interface description"))?;
                let mut resolution = Resolution::Decimal(6);
                for (code, value) in options(body, 8) {
                    if code == OPT_IF_TSRESOL {
                        resolution = value
                            .first()
                            .and_then(|v| Resolution::from_option(*v))
                            .ok_or(malformed("if_tsresol option"))?;
                    }
                }
                interfaces.push(Interface {
                    link_type,
                    snap_len,
                    resolution,
                });
            }
            PCAPNG_EPB | PCAPNG_PB => {
                // EPB: 32-bit interface ID; obsolete PB: 16-bit ID and 16-bit drop count.
                let interface = if block_type == PCAPNG_EPB {
                    body.u32(0)
                } else {
                    body.u16(0).map(u32::from)
                }
                .ok_or(malformed("packet block"))?;
                let hi = body.u32(4).ok_or(malformed("packet block"))?;
                let lo = body.u32(8).ok_or(malformed("packet block"))?;
                let cap = body.u32(12).ok_or(malformed("packet block"))?;
                let cap = usize::try_from(cap).map_err(|_| malformed("packet block"))?;
                let data = body.slice(20, cap).ok_or(malformed("captured length"))?;
                let i = usize::try_from(interface)
                    .ok()
                    .and_then(|i| interfaces.get(i))
                    .ok_or(CaptureError::UnknownInterface {
                        offset: at,
                        interface,
                        count: interfaces.len(),
                    })?;
                frames.push(Frame {
                    number: frames.len().saturating_add(1),
                    time: i.resolution.timestamp(
                        // The high 32 bits, then the low (a shift by 32 of a u64 never fails).
                        u64::from(hi).checked_shl(32).unwrap_or(0) | u64::from(lo),
                    ),
                    link_type: i.link_type,
                    data,
                });
            }
            PCAPNG_SPB => {
                let i = interfaces.first().ok_or(CaptureError::UnknownInterface {
                    offset: at,
                    interface: 0,
                    count: 0,
                })?;
                let orig = body.u32(0).ok_or(malformed("simple packet block"))?;
                let mut cap = usize::try_from(orig).unwrap_or(usize::MAX);
                if i.snap_len != 0 {
                    cap = cap.min(usize::try_from(i.snap_len).unwrap_or(usize::MAX));
                }
                cap = cap.min(body.buf.len().saturating_sub(4));
                let data = body.slice(4, cap).ok_or(malformed("simple packet block"))?;
                frames.push(Frame {
                    number: frames.len().saturating_add(1),
                    // A simple packet block carries no timestamp.
                    time: Timestamp::default(),
                    link_type: i.link_type,
                    data,
                });
            }
            _ => {}
        }
        // `block` ends there, inside the buffer.
        at = at.checked_add(total).ok_or(truncated)?;
    }
    Ok(())
}

/// Iterates the options of a block body from `at`: (code, value) until opt_endofopt or the end.
fn options<'a>(body: Bytes<'a>, mut at: usize) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
    std::iter::from_fn(move || {
        let code = body.u16(at)?;
        let len = usize::from(body.u16_at(at, 2)?);
        if code == 0 {
            return None;
        }
        let value = body.slice_at(at, 4, len)?;
        // The value is padded to 32 bits.
        at = at
            .checked_add(4)?
            .checked_add(len.div_ceil(4).checked_mul(4)?)?;
        Some((code, value))
    })
}

#[cfg(test)]
// In tests an out-of-range index or an overflow is a failed test, which is what it should be.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn pcap_header(magic: u32, le: bool, link: u32) -> Vec<u8> {
        let w = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let h = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut out = Vec::new();
        out.extend_from_slice(&w(magic));
        out.extend_from_slice(&h(2));
        out.extend_from_slice(&h(4));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w(65535));
        out.extend_from_slice(&w(link));
        out
    }

    fn pcap_record(out: &mut Vec<u8>, le: bool, secs: u32, frac: u32, data: &[u8]) {
        let w = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        out.extend_from_slice(&w(secs));
        out.extend_from_slice(&w(frac));
        out.extend_from_slice(&w(data.len() as u32));
        out.extend_from_slice(&w(data.len() as u32));
        out.extend_from_slice(data);
    }

    #[test]
    fn reads_pcap_in_both_byte_orders_and_resolutions() {
        for le in [true, false] {
            for (magic, frac, nanos) in [(PCAP_MICRO, 250_000, 250_000_000), (PCAP_NANO, 7, 7)] {
                let mut f = pcap_header(magic, le, 101);
                pcap_record(&mut f, le, 1_700_000_000, frac, &[0x45, 1, 2]);
                pcap_record(&mut f, le, 1_700_000_001, 0, &[]);
                let Capture {
                    format,
                    frames,
                    stopped,
                } = read(&f).unwrap();
                assert_eq!((format, stopped), (Format::Pcap, None));
                assert_eq!(frames.len(), 2);
                assert_eq!(frames[0].link_type, 101);
                assert_eq!(frames[0].data, &[0x45, 1, 2]);
                assert_eq!(frames[0].time.nanos, nanos);
                assert_eq!(frames[1].number, 2);
            }
        }
    }

    #[test]
    fn a_pcap_cut_short_keeps_the_records_before_the_cut() {
        let mut f = pcap_header(PCAP_MICRO, true, 1);
        pcap_record(&mut f, true, 1, 0, &[1, 2, 3, 4]);
        pcap_record(&mut f, true, 2, 0, &[5, 6, 7, 8]);
        f.truncate(f.len() - 1);
        let c = read(&f).unwrap();
        assert_eq!(c.frames.len(), 1);
        assert_eq!(c.frames[0].data, &[1, 2, 3, 4]);
        let stopped = c.stopped.unwrap();
        assert_eq!(
            stopped,
            CaptureError::Truncated {
                offset: 24 + 16 + 4,
                frame: 2
            }
        );
        assert!(stopped.is_cut_short());
        // Cut inside the first record header: no frame, but still a capture.
        let c = read(&f[..30]).unwrap();
        assert!(c.frames.is_empty() && c.stopped.is_some());
        // Cut inside the file header: not a capture at all.
        assert!(matches!(
            read(&f[..10]),
            Err(CaptureError::Truncated { offset: 0, .. })
        ));
        assert!(matches!(read(b"GIF8"), Err(CaptureError::UnknownFormat(_))));
        assert!(read(&[]).is_err());
    }

    fn block(out: &mut Vec<u8>, le: bool, t: u32, body: &[u8]) {
        let w = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        out.extend_from_slice(&w(t));
        out.extend_from_slice(&w(total));
        out.extend_from_slice(body);
        out.resize(out.len() + padded - body.len(), 0);
        out.extend_from_slice(&w(total));
    }

    fn pcapng(le: bool, tsresol: Option<u8>) -> Vec<u8> {
        let w = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let h = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut f = Vec::new();
        let mut shb = Vec::new();
        shb.extend_from_slice(&w(PCAPNG_BYTE_ORDER));
        shb.extend_from_slice(&h(1));
        shb.extend_from_slice(&h(0));
        shb.extend_from_slice(&[0xff; 8]);
        block(&mut f, le, PCAPNG_SHB, &shb);
        let mut idb = Vec::new();
        idb.extend_from_slice(&h(1));
        idb.extend_from_slice(&h(0));
        idb.extend_from_slice(&w(0));
        if let Some(r) = tsresol {
            idb.extend_from_slice(&h(OPT_IF_TSRESOL));
            idb.extend_from_slice(&h(1));
            idb.extend_from_slice(&[r, 0, 0, 0]);
            idb.extend_from_slice(&[0; 4]);
        }
        block(&mut f, le, PCAPNG_IDB, &idb);
        let mut epb = Vec::new();
        let ticks: u64 = 1_500_000_000_123_456;
        epb.extend_from_slice(&w(0));
        epb.extend_from_slice(&w((ticks >> 32) as u32));
        epb.extend_from_slice(&w(ticks as u32));
        epb.extend_from_slice(&w(5));
        epb.extend_from_slice(&w(5));
        epb.extend_from_slice(&[1, 2, 3, 4, 5]);
        block(&mut f, le, PCAPNG_EPB, &epb);
        let mut spb = Vec::new();
        spb.extend_from_slice(&w(3));
        spb.extend_from_slice(&[9, 8, 7]);
        block(&mut f, le, PCAPNG_SPB, &spb);
        block(&mut f, le, 0x0000_0005, &[0; 8]); // interface statistics: skipped
        f
    }

    #[test]
    fn reads_pcapng_blocks_in_both_byte_orders() {
        for le in [true, false] {
            let f = pcapng(le, None);
            let Capture {
                format,
                frames,
                stopped,
            } = read(&f).unwrap();
            assert_eq!((format, stopped), (Format::Pcapng, None));
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[0].data, &[1, 2, 3, 4, 5]);
            assert_eq!(frames[0].link_type, 1);
            assert_eq!(frames[0].time.secs, 1_500_000_000);
            assert_eq!(frames[0].time.nanos, 123_456_000);
            assert_eq!(frames[1].data, &[9, 8, 7]);
        }
        let f = pcapng(true, Some(9));
        let frames = read(&f).unwrap().frames;
        assert_eq!(frames[0].time.secs, 1_500_000);
        assert_eq!(frames[0].time.nanos, 123_456);
    }

    #[test]
    fn a_pcapng_cut_short_or_damaged_keeps_the_blocks_before() {
        let f = pcapng(true, None);
        // Inside the section header: not a capture.
        for cut in [4, 13, 20] {
            assert!(read(&f[..cut]).is_err(), "cut at {cut}");
        }
        // Inside the last block (interface statistics): both packets are there.
        let c = read(&f[..f.len() - 2]).unwrap();
        assert_eq!(c.frames.len(), 2);
        assert!(c.stopped.as_ref().is_some_and(CaptureError::is_cut_short));
        let mut bad = f.clone();
        bad[4] = 13; // SHB length not a multiple of 4
        assert!(read(&bad).is_err());
        // A damaged block after the first packet: the packet is kept, the damage reported.
        let spb_at = f.len() - 20 - 20;
        let mut bad = f.clone();
        bad[spb_at + 4] = 13;
        let c = read(&bad).unwrap();
        assert_eq!(c.frames.len(), 1);
        assert_eq!(
            c.stopped,
            Some(CaptureError::Malformed {
                what: "block length",
                offset: spb_at
            })
        );
    }
}
