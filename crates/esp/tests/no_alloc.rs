//! Encap and decap allocate nothing per packet (after the SA and buffers exist).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use ferrovpn_esp::*;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        System.alloc(l)
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|a| a.get())
}

#[test]
fn encap_and_decap_batches_do_not_allocate() {
    for cipher in Cipher::ALL {
        let p = pair_with(cipher, true, Encap::Raw, 0x4000);
        let mut r = p.sad.reader();
        let inner = ipv6(1000, 3);
        let mut out: Vec<PacketBuf> = (0..64).map(|_| PacketBuf::new(2048)).collect();
        let mut wire: Vec<PacketBuf> = (0..64).map(|_| PacketBuf::new(2048)).collect();
        for _ in 0..2 {
            for b in out.iter_mut() {
                b.fill(&inner);
                b.set_sa(p.out);
            }
            let before = allocs();
            r.encap_batch(&mut out, Timestamp::ZERO);
            for (w, o) in wire.iter_mut().zip(&out) {
                w.fill(o.data());
            }
            r.decap_batch(&mut wire, Timestamp::ZERO);
            let n = allocs() - before;
            assert!(wire.iter().all(|w| w.verdict() == Verdict::Ok));
            assert_eq!(n, 0, "{} allocated", cipher.name());
        }
    }
}
