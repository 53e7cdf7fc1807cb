//! The CPU memory probe: a counting global allocator (current and peak bytes, exact, because
//! candle's CPU tensors are plain `Vec`s) with an optional soft cap for out-of-memory tests. It
//! also counts *bulk* bytes, allocations of at least [`BULK`] bytes: tensor storage, as opposed
//! to the few small allocations of each tensor's bookkeeping (headers, shapes, strides), so a
//! cache's size can be read without them.
//!
//! The cap never makes an allocation fail (Rust aborts the process on a failed allocation, which
//! could not be recorded): when the live bytes pass it, a flag is raised, and the measuring loop
//! treats the point as out of memory once the forward pass returns.
#![allow(unsafe_code)] // the only way to observe every allocation is a #[global_allocator]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counts live bytes and their high-water mark; delegates to the system allocator.
pub struct Counting;

/// Allocations of at least this many bytes count as bulk (tensor storage).
pub const BULK: usize = 512;

static CURRENT: AtomicU64 = AtomicU64::new(0);
static BULK_CURRENT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static CAP: AtomicU64 = AtomicU64::new(u64::MAX);
static OVER_CAP: AtomicBool = AtomicBool::new(false);

fn grew(size: usize) {
    if size >= BULK {
        BULK_CURRENT.fetch_add(size as u64, Ordering::Relaxed);
    }
    let now = CURRENT.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
    PEAK.fetch_max(now, Ordering::Relaxed);
    if now > CAP.load(Ordering::Relaxed) {
        OVER_CAP.store(true, Ordering::Relaxed);
    }
}

fn shrank(size: usize) {
    if size >= BULK {
        BULK_CURRENT.fetch_sub(size as u64, Ordering::Relaxed);
    }
    CURRENT.fetch_sub(size as u64, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's layout and pointer unchanged; the
// counters are atomics and never affect what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we only hand out its pointers).
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; on success the old block is gone and the new one is live.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Live heap bytes now.
pub fn current() -> u64 {
    CURRENT.load(Ordering::Relaxed)
}

/// Live bytes in bulk allocations (tensor storage) now.
pub fn bulk() -> u64 {
    BULK_CURRENT.load(Ordering::Relaxed)
}

/// Highest live heap bytes since the last [`reset_peak`].
pub fn peak() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new high-water mark at the current level.
pub fn reset_peak() {
    PEAK.store(current(), Ordering::Relaxed);
}

/// Sets the soft cap (`None`: no cap) and clears the over-cap flag.
pub fn set_cap(bytes: Option<u64>) {
    CAP.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
    OVER_CAP.store(false, Ordering::Relaxed);
}

/// Whether the live bytes passed the cap since the flag was last cleared; clears it.
pub fn take_over_cap() -> bool {
    OVER_CAP.swap(false, Ordering::Relaxed)
}
