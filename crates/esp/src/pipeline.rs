//! Multithreaded data path: one reader, N crypto workers, one writer, per direction; with one
//! worker, a single thread does all three (no hand-offs).
//!
//! As in wireguard-go: the reader takes a batch from the [`PacketSource`], assigns outbound
//! sequence numbers in arrival order, then hands the same batch both to the worker queue
//! (parallel crypto) and to the ordered queue. The writer pops the ordered queue and waits for
//! each batch to be finished before giving it to the [`PacketSink`], so packets leave in the
//! order they arrived (per SA and overall). On receive, workers only pre-check the replay
//! window; the writer updates it in arrival order after the ICV verified, so parallel
//! decryption cannot push packets out of a small window. Batches and buffers circulate through a free list:
//! no allocation per packet or per batch once running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::clock::{Clock, MonotonicClock};
use crate::packet::{PacketBuf, Verdict, DEFAULT_CAPACITY};
use crate::sad::{Sad, SadReader};

/// Packets per batch unless configured.
pub const DEFAULT_BATCH: usize = 64;

/// A fixed set of packet buffers, of which the first `len` are in use.
pub struct Batch {
    pkts: Vec<PacketBuf>,
    len: usize,
}

impl Batch {
    /// `size` buffers of `capacity` bytes each.
    pub fn new(size: usize, capacity: usize) -> Self {
        Batch {
            pkts: (0..size.max(1)).map(|_| PacketBuf::new(capacity)).collect(),
            len: 0,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The next free buffer (reset), or `None` when the batch is full.
    pub fn push(&mut self) -> Option<&mut PacketBuf> {
        let p = self.pkts.get_mut(self.len)?;
        p.reset();
        self.len += 1;
        Some(p)
    }

    /// Gives back the last pushed buffer (e.g. a read returned nothing).
    pub fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.pkts.len()
    }

    pub fn capacity(&self) -> usize {
        self.pkts.len()
    }

    pub fn packets(&self) -> &[PacketBuf] {
        self.pkts.get(..self.len).unwrap_or_default()
    }

    pub fn packets_mut(&mut self) -> &mut [PacketBuf] {
        let len = self.len;
        self.pkts.get_mut(..len).unwrap_or_default()
    }

    /// Packets that passed encap/decap.
    pub fn ok_packets(&self) -> impl Iterator<Item = &PacketBuf> {
        self.packets().iter().filter(|p| p.verdict() == Verdict::Ok)
    }
}

/// Outcome of one read from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// Packets were pushed into the batch.
    Data,
    /// Nothing right now (timeout); the pipeline checks for shutdown and reads again.
    Idle,
    /// The source is finished; the pipeline drains and stops.
    Closed,
}

/// Where packets come from: the TUN device (encap) or the ESP socket (decap).
/// Should return [`Recv::Idle`] now and then so shutdown is noticed.
pub trait PacketSource: Send {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv;
}

/// Where processed batches go: the ESP socket (encap) or the TUN device (decap). The batch
/// holds dropped packets too; send those with `Verdict::Ok` ([`Batch::ok_packets`]).
pub trait PacketSink: Send {
    fn send_batch(&mut self, batch: &mut Batch);
}

/// Which way the pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inner IP packets in, ESP packets out (outbound SAs named by `PacketBuf::sa`).
    Encap,
    /// ESP packets in, inner IP packets out.
    Decap,
}

struct Slot {
    batch: Mutex<Batch>,
    done: Mutex<bool>,
    cv: Condvar,
}

struct DoneGuard<'a>(&'a Slot);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.done) = true;
        self.0.cv.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Called first thing on every pipeline thread (e.g. to pin it to a CPU).
pub type ThreadStart = Arc<dyn Fn() + Send + Sync>;

/// Keeps several inline encap pipelines (lanes sharing SAs) sending in the order they
/// numbered their batches: a lane takes a turn while it assigns sequence numbers, encrypts
/// in parallel with the others, and sends only when every earlier turn has sent. Without it a
/// lane preempted between numbering and sending puts its packets far behind the other lanes'
/// on the wire, past the peer's anti-replay window (RFC 4303 §3.4.3; strongSwan's is 32).
#[derive(Default)]
pub struct SendOrder {
    /// Next turn to hand out; taken under this lock together with the sequence numbers.
    next: Mutex<u64>,
    /// Turn whose batch may be sent now.
    serving: Mutex<u64>,
    cv: Condvar,
}

impl SendOrder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Runs `number` (the sequence assignment) and returns the batch's turn.
    fn take(&self, number: impl FnOnce()) -> u64 {
        let mut next = lock(&self.next);
        number();
        let t = *next;
        *next += 1;
        t
    }

    /// Waits for `turn`, runs `send`, then lets the next turn go (also if `send` panics).
    fn send_in_turn(&self, turn: u64, send: impl FnOnce()) {
        struct Next<'a>(&'a SendOrder);
        impl Drop for Next<'_> {
            fn drop(&mut self) {
                *lock(&self.0.serving) += 1;
                self.0.cv.notify_all();
            }
        }
        {
            let mut serving = lock(&self.serving);
            while *serving != turn {
                serving = self.cv.wait(serving).unwrap_or_else(|p| p.into_inner());
            }
        }
        let _next = Next(self);
        send();
    }
}

/// Configures and starts a [`Pipeline`].
pub struct PipelineBuilder {
    sad: Arc<Sad>,
    mode: Mode,
    workers: usize,
    batch_size: usize,
    buffer_capacity: usize,
    in_flight: usize,
    clock: Arc<dyn Clock>,
    thread_start: Option<ThreadStart>,
    send_order: Option<Arc<SendOrder>>,
}

impl PipelineBuilder {
    /// Crypto threads (default: available cores); 1 runs the pipeline inline on one thread.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Bytes per packet buffer (default fits a 9000-byte MTU plus ESP overhead).
    pub fn buffer_capacity(mut self, n: usize) -> Self {
        self.buffer_capacity = n;
        self
    }

    /// Batches in flight between reader and writer (default: 4 per worker).
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = n.max(2);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Encap with one worker: send in the order shared with the other lanes on `order`.
    pub fn send_order(mut self, order: Arc<SendOrder>) -> Self {
        self.send_order = Some(order);
        self
    }

    /// Runs `f` at the start of each thread the pipeline spawns.
    pub fn thread_start(mut self, f: ThreadStart) -> Self {
        self.thread_start = Some(f);
        self
    }

    fn started(&self) -> impl Fn() + Send + 'static {
        let f = self.thread_start.clone();
        move || {
            if let Some(f) = &f {
                f();
            }
        }
    }

    /// Starts reader, workers and writer threads.
    pub fn spawn<S, K>(self, mut source: S, mut sink: K) -> std::io::Result<Pipeline>
    where
        S: PacketSource + 'static,
        K: PacketSink + 'static,
    {
        if self.workers == 1 {
            return self.spawn_inline(source, sink);
        }
        let in_flight = if self.in_flight == 0 {
            4 * self.workers
        } else {
            self.in_flight
        };
        let (free_tx, free_rx) = bounded::<Arc<Slot>>(in_flight);
        let (work_tx, work_rx) = bounded::<Arc<Slot>>(in_flight);
        let (order_tx, order_rx) = bounded::<Arc<Slot>>(in_flight);
        for _ in 0..in_flight {
            let slot = Arc::new(Slot {
                batch: Mutex::new(Batch::new(self.batch_size, self.buffer_capacity)),
                done: Mutex::new(false),
                cv: Condvar::new(),
            });
            free_tx
                .send(slot)
                .map_err(|_| std::io::Error::other("pipeline setup"))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(self.workers + 2);

        let mode = self.mode;
        let mut reader_sad = self.sad.reader();
        let reader_stop = stop.clone();
        let reader_free = free_tx.clone();
        let started = self.started();
        threads.push(
            std::thread::Builder::new()
                .name("esp-reader".into())
                .spawn(move || {
                    started();
                    reader_loop(
                        &mut source,
                        &mut reader_sad,
                        mode,
                        &reader_stop,
                        &free_rx,
                        &reader_free,
                        &work_tx,
                        &order_tx,
                    )
                })?,
        );

        for i in 0..self.workers {
            let rx: Receiver<Arc<Slot>> = work_rx.clone();
            let mut r = self.sad.reader();
            let clock = self.clock.clone();
            let started = self.started();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("esp-worker-{i}"))
                    .spawn(move || {
                        started();
                        while let Ok(slot) = rx.recv() {
                            // Marks the batch done even if the crypto code panics, so the
                            // writer never waits forever.
                            let _done = DoneGuard(&slot);
                            {
                                let mut b = lock(&slot.batch);
                                let now = clock.now();
                                match mode {
                                    Mode::Encap => r.encap_batch(b.packets_mut(), now),
                                    Mode::Decap => r.decap_open_batch(b.packets_mut(), now),
                                }
                            }
                        }
                    })?,
            );
        }
        drop(work_rx);

        let clock = self.clock.clone();
        let started = self.started();
        threads.push(
            std::thread::Builder::new()
                .name("esp-writer".into())
                .spawn(move || {
                    started();
                    while let Ok(slot) = order_rx.recv() {
                        {
                            let mut done = lock(&slot.done);
                            while !*done {
                                done = slot.cv.wait(done).unwrap_or_else(|p| p.into_inner());
                            }
                        }
                        {
                            let mut b = lock(&slot.batch);
                            if mode == Mode::Decap {
                                // Replay window updates happen here, in arrival order.
                                SadReader::decap_commit_batch(b.packets_mut(), clock.now());
                            }
                            sink.send_batch(&mut b);
                        }
                        // The reader may be gone at shutdown; then the slot is simply dropped.
                        let _ = free_tx.send(slot);
                    }
                })?,
        );

        Ok(Pipeline { stop, threads })
    }
}

impl PipelineBuilder {
    /// One worker: a single thread reads, does the crypto and writes each batch itself. No
    /// hand-off, so no queue wake-ups: on a small machine the cheapest way, and order is
    /// kept trivially.
    fn spawn_inline<S, K>(self, mut source: S, mut sink: K) -> std::io::Result<Pipeline>
    where
        S: PacketSource + 'static,
        K: PacketSink + 'static,
    {
        let mode = self.mode;
        let mut sad = self.sad.reader();
        let started = self.started();
        let clock = self.clock;
        let mut batch = Batch::new(self.batch_size, self.buffer_capacity);
        // A lane of its own still takes turns, just never waits for one.
        let order = self.send_order.clone().unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let name = match mode {
            Mode::Encap => "esp-encap",
            Mode::Decap => "esp-decap",
        };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                started();
                while !thread_stop.load(Ordering::Relaxed) {
                    batch.clear();
                    match source.recv_batch(&mut batch) {
                        Recv::Closed => return,
                        _ if batch.is_empty() => continue,
                        _ => {}
                    }
                    let now = clock.now();
                    match mode {
                        Mode::Encap => {
                            let turn = order.take(|| sad.assign_seq(batch.packets_mut()));
                            sad.encap_batch(batch.packets_mut(), now);
                            order.send_in_turn(turn, || sink.send_batch(&mut batch));
                        }
                        Mode::Decap => {
                            sad.decap_open_batch(batch.packets_mut(), now);
                            SadReader::decap_commit_batch(batch.packets_mut(), now);
                            sink.send_batch(&mut batch);
                        }
                    }
                }
            })?;
        Ok(Pipeline {
            stop,
            threads: vec![thread],
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn reader_loop(
    source: &mut dyn PacketSource,
    sad: &mut SadReader,
    mode: Mode,
    stop: &AtomicBool,
    free_rx: &Receiver<Arc<Slot>>,
    free_tx: &Sender<Arc<Slot>>,
    work_tx: &Sender<Arc<Slot>>,
    order_tx: &Sender<Arc<Slot>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(slot) = free_rx.recv() else { return };
        let got = {
            let mut b = lock(&slot.batch);
            b.clear();
            let r = source.recv_batch(&mut b);
            if r == Recv::Data && !b.is_empty() && mode == Mode::Encap {
                sad.assign_seq(b.packets_mut());
            }
            (r, b.is_empty())
        };
        match got {
            (Recv::Closed, _) => return,
            (_, true) => {
                let _ = free_tx.send(slot);
            }
            (_, false) => {
                *lock(&slot.done) = false;
                if order_tx.send(slot.clone()).is_err() || work_tx.send(slot).is_err() {
                    return;
                }
            }
        }
    }
}

/// A running pipeline; dropping it without `shutdown`/`join` leaves the threads running.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    pub fn builder(sad: Arc<Sad>, mode: Mode) -> PipelineBuilder {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        PipelineBuilder {
            sad,
            mode,
            workers,
            batch_size: DEFAULT_BATCH,
            buffer_capacity: DEFAULT_CAPACITY,
            in_flight: 0,
            clock: Arc::new(MonotonicClock::new()),
            thread_start: None,
            send_order: None,
        }
    }

    /// Asks the reader to stop after its current read, drains in-flight batches, joins.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join();
    }

    /// Waits until the source reports `Closed` and everything in flight was written.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}
