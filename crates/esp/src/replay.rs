//! Anti-replay window (RFC 4303 §3.4.3, Appendix A for ESN) kept as a ring of 64-bit words
//! (RFC 6479): sliding forward clears whole words instead of shifting the bitmap.

/// Default window: 1024 packets.
pub const DEFAULT_WINDOW: u32 = 1024;
/// Accepted window sizes (inclusive).
pub const MIN_WINDOW: u32 = 32;
pub const MAX_WINDOW: u32 = 65536;

const WORD_BITS: u64 = 64;

/// Why the window refused a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Left of the window.
    TooOld,
    /// Already received.
    Duplicate,
}

/// Sliding window for one inbound SA. `top` is the highest authenticated sequence number.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    size: u64,
    top: u64,
    words: Box<[u64]>,
}

impl ReplayWindow {
    /// `size` packets, rounded up to a multiple of 64; one spare word makes the ring (RFC 6479).
    pub fn new(size: u32) -> Self {
        let size = u64::from(size.clamp(MIN_WINDOW, MAX_WINDOW));
        let size = size.div_ceil(WORD_BITS) * WORD_BITS;
        let n = usize::try_from(size / WORD_BITS + 1).unwrap_or(1);
        ReplayWindow {
            size,
            top: 0,
            words: vec![0u64; n].into_boxed_slice(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Highest sequence number accepted so far (0 before the first packet).
    pub fn top(&self) -> u64 {
        self.top
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let n = self.words.len() as u64;
        let idx = usize::try_from((seq / WORD_BITS) % n).unwrap_or(0);
        (idx, 1u64 << (seq % WORD_BITS))
    }

    /// Reconstructs the 64-bit sequence number from its low 32 bits (RFC 4303 Appendix A2.2).
    pub fn infer_esn(&self, seq_lo: u32) -> u64 {
        let w = self.size;
        let tl = self.top & 0xffff_ffff;
        let th = self.top >> 32;
        let lo = u64::from(seq_lo);
        let hi = if tl >= w - 1 {
            // Case A: window within one 2^32 subspace.
            if lo >= tl + 1 - w {
                th
            } else {
                th + 1
            }
        } else {
            // Case B: window spans two subspaces.
            let bottom = (tl.wrapping_sub(w - 1)) & 0xffff_ffff;
            if lo >= bottom {
                th.saturating_sub(1)
            } else {
                th
            }
        };
        (hi << 32) | lo
    }

    /// Pre-check before the ICV (does not change state).
    pub fn check(&self, seq: u64) -> Result<(), ReplayVerdict> {
        if seq == 0 {
            return Err(ReplayVerdict::TooOld);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayVerdict::TooOld);
        }
        let (idx, bit) = self.slot(seq);
        match self.words.get(idx) {
            Some(w) if w & bit == 0 => Ok(()),
            _ => Err(ReplayVerdict::Duplicate),
        }
    }

    /// Marks `seq` received; call only after the ICV verified. Re-checks first, so two
    /// copies verified in parallel are still caught.
    pub fn update(&mut self, seq: u64) -> Result<(), ReplayVerdict> {
        self.check(seq)?;
        if seq > self.top {
            let n = self.words.len() as u64;
            let cur = self.top / WORD_BITS;
            let new = seq / WORD_BITS;
            let clear = (new - cur).min(n);
            for i in 1..=clear {
                let idx = usize::try_from((cur + i) % n).unwrap_or(0);
                if let Some(w) = self.words.get_mut(idx) {
                    *w = 0;
                }
            }
            self.top = seq;
        }
        let (idx, bit) = self.slot(seq);
        if let Some(w) = self.words.get_mut(idx) {
            *w |= bit;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplayVerdict::*;

    enum Op {
        /// Receive `seq` (full 64-bit) and expect this verdict.
        Recv(u64, Result<(), ReplayVerdict>),
        /// Check only (as an ICV failure would leave the window untouched).
        Check(u64, Result<(), ReplayVerdict>),
    }
    use Op::*;

    fn run(size: u32, ops: &[Op]) {
        let mut w = ReplayWindow::new(size);
        for (i, op) in ops.iter().enumerate() {
            match op {
                Recv(s, want) => assert_eq!(w.update(*s), *want, "op {i}: recv {s}"),
                Check(s, want) => assert_eq!(w.check(*s), *want, "op {i}: check {s}"),
            }
        }
    }

    #[test]
    fn window_edge_cases() {
        let table: &[(&str, u32, &[Op])] = &[
            (
                "first packet",
                64,
                &[Recv(1, Ok(())), Recv(1, Err(Duplicate))],
            ),
            ("zero is never valid", 64, &[Recv(0, Err(TooOld))]),
            (
                "first packet far ahead",
                64,
                &[
                    Recv(1000, Ok(())),
                    Recv(937, Ok(())),
                    Recv(936, Err(TooOld)),
                ],
            ),
            (
                "reordering inside the window",
                64,
                &[
                    Recv(5, Ok(())),
                    Recv(3, Ok(())),
                    Recv(4, Ok(())),
                    Recv(1, Ok(())),
                    Recv(2, Ok(())),
                    Recv(3, Err(Duplicate)),
                    Recv(6, Ok(())),
                ],
            ),
            (
                "slide by one keeps the left edge exact",
                64,
                &[
                    Recv(64, Ok(())),
                    Check(1, Ok(())),
                    Recv(65, Ok(())),
                    Check(1, Err(TooOld)),
                    Recv(2, Ok(())),
                    Recv(2, Err(Duplicate)),
                ],
            ),
            (
                "far-ahead jump clears old bits",
                64,
                &[
                    Recv(10, Ok(())),
                    Recv(10 + 64 * 5, Ok(())),
                    Recv(10 + 64 * 4 + 1, Ok(())),
                    Check(10 + 64 * 4 + 2, Ok(())),
                    Recv(10, Err(TooOld)),
                ],
            ),
            (
                "jump across word boundary reuses ring words",
                128,
                &[
                    Recv(127, Ok(())),
                    Recv(128, Ok(())),
                    Recv(255, Ok(())),
                    Check(128, Err(Duplicate)),
                    Recv(129, Ok(())),
                    Check(127, Err(TooOld)),
                    Recv(192, Ok(())),
                    Recv(192, Err(Duplicate)),
                ],
            ),
            (
                "check does not mark",
                64,
                &[
                    Check(7, Ok(())),
                    Check(7, Ok(())),
                    Recv(7, Ok(())),
                    Check(7, Err(Duplicate)),
                ],
            ),
            (
                "default window accepts 1023 behind",
                1024,
                &[
                    Recv(5000, Ok(())),
                    Recv(3977, Ok(())),
                    Recv(3976, Err(TooOld)),
                ],
            ),
        ];
        for (name, size, ops) in table {
            eprintln!("case: {name}");
            run(*size, ops);
        }
    }

    #[test]
    fn esn_inference_table() {
        // (window top, received low 32 bits, inferred 64-bit sequence number)
        let w = 64u32;
        let table: &[(&str, u64, u32, u64)] = &[
            ("start", 0, 1, 1),
            ("window exactly fills the first subspace", 63, 0, 0),
            ("window exactly fills, in window", 63, 1, 1),
            ("start, window spans 0", 10, 5, 5),
            ("same subspace ahead", 1000, 2000, 2000),
            ("same subspace behind", 1000, 990, 990),
            (
                "wrap ahead: low bits restart",
                0xffff_fff0,
                3,
                0x1_0000_0003,
            ),
            ("just below boundary", 0xffff_fff0, 0xffff_ffe0, 0xffff_ffe0),
            (
                "after wrap, old packet from previous subspace",
                0x1_0000_0005,
                0xffff_fff0,
                0xffff_fff0,
            ),
            ("after wrap, new packet", 0x1_0000_0005, 9, 0x1_0000_0009),
            (
                "after wrap, in window start",
                0x1_0000_0005,
                2,
                0x1_0000_0002,
            ),
            (
                "far behind left edge goes to next subspace (fails ICV)",
                0x2_0000_1000,
                5,
                0x3_0000_0005,
            ),
        ];
        for (name, top, lo, want) in table {
            let mut win = ReplayWindow::new(w);
            if *top > 0 {
                win.update(*top).unwrap();
            }
            assert_eq!(win.infer_esn(*lo), *want, "{name}");
        }
    }

    #[test]
    fn esn_window_across_2_pow_32() {
        let mut w = ReplayWindow::new(64);
        let near = 0xffff_fffe_u64;
        w.update(near).unwrap();
        let s = w.infer_esn(0xffff_ffff);
        assert_eq!(s, 0xffff_ffff);
        w.update(s).unwrap();
        let s = w.infer_esn(0);
        assert_eq!(s, 0x1_0000_0000);
        w.update(s).unwrap();
        let s = w.infer_esn(1);
        w.update(s).unwrap();
        assert_eq!(w.top(), 0x1_0000_0001);
        // A duplicate of the packet just before the boundary is still caught.
        let s = w.infer_esn(0xffff_fffe);
        assert_eq!(s, near);
        assert_eq!(w.update(s), Err(Duplicate));
        // Reordered packet from before the boundary still accepted.
        let s = w.infer_esn(0xffff_fff0);
        assert_eq!(w.update(s), Ok(()));
    }
}
