//! PyTorch's CUDA caching allocator serving allocations that are never freed: a model's
//! parameters as an engine creates them at load. Exact arithmetic, following
//! `c10/cuda/CUDACachingAllocator.cpp` with its default settings:
//! - a request is rounded up to 512 B;
//! - up to 1 MiB it is served from 2 MiB segments (the small pool), up to 10 MiB from 20 MiB
//!   segments, and a larger one gets a segment of its own rounded up to 2 MiB, unless a free block
//!   left in an earlier segment of its pool fits (best fit: the smallest that does);
//! - a block is split when what remains is at least 512 B (small pool) or more than 1 MiB (large
//!   pool); otherwise the request keeps the whole block.
//!
//! What the GPU loses is the sum of the segments, not of the tensors: a bf16 `5120 x 1280`
//! projection (12.5 MiB) holds a 14 MiB segment. SGLang reports its weights as that drop in free
//! memory ("Load weight end ... mem usage"), and sizes its KV pool from what is left.
//! What PyTorch counts as allocated is the blocks handed out, remainders that were not split off
//! included: Qwen2.5-7B's `gate_up_proj` (259 MiB) holds a 260 MiB segment whose 1 MiB tail stays
//! with it. vLLM reports that count as "Model loading took" and budgets its KV cache with it.

/// Requests are rounded up to a multiple of this.
pub const MIN_BLOCK: u64 = 512;
/// Largest request of the small pool.
pub const SMALL_SIZE: u64 = 1 << 20;
/// Segment size of the small pool.
pub const SMALL_BUFFER: u64 = 2 << 20;
/// Segment size for requests between [`SMALL_SIZE`] and [`MIN_LARGE_ALLOC`].
pub const LARGE_BUFFER: u64 = 20 << 20;
/// Requests from this size get a segment of their own.
pub const MIN_LARGE_ALLOC: u64 = 10 << 20;
/// Granularity of own segments.
pub const ROUND_LARGE: u64 = 2 << 20;

/// Allocator state: free blocks per pool and the bytes reserved from the GPU.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    small_free: Vec<u64>,
    large_free: Vec<u64>,
    reserved: u64,
    requested: u64,
    allocated: u64,
}

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to).saturating_mul(to)
}

impl Segments {
    /// Serves one allocation of `size` bytes (zero-size requests take no memory).
    pub fn alloc(&mut self, size: u64) {
        self.alloc_counting(size, true);
    }

    /// As [`Segments::alloc`]; with `count_tail` false the allocated count takes the request's
    /// size even when the block keeps an unsplit tail (for tensors an engine later replaces).
    pub fn alloc_counting(&mut self, size: u64, count_tail: bool) {
        if size == 0 {
            return;
        }
        let size = round_up(size, MIN_BLOCK);
        self.requested = self.requested.saturating_add(size);
        let small = size <= SMALL_SIZE;
        let pool = if small { &mut self.small_free } else { &mut self.large_free };
        let best = pool.iter().enumerate().filter(|(_, b)| **b >= size).min_by_key(|(_, b)| **b).map(|(i, _)| i);
        let block = match best {
            Some(i) => pool.swap_remove(i),
            None => {
                let segment = if small {
                    SMALL_BUFFER
                } else if size < MIN_LARGE_ALLOC {
                    LARGE_BUFFER
                } else {
                    round_up(size, ROUND_LARGE)
                };
                self.reserved = self.reserved.saturating_add(segment);
                segment
            }
        };
        let rest = block - size;
        if (small && rest >= MIN_BLOCK) || (!small && rest > SMALL_SIZE) {
            pool.push(rest);
            self.allocated = self.allocated.saturating_add(size);
        } else {
            self.allocated = self.allocated.saturating_add(if count_tail { block } else { size });
        }
    }

    /// Bytes PyTorch counts as allocated (`memory_allocated`): the blocks handed out.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Bytes of GPU memory the segments hold.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Bytes requested (rounded to 512 B).
    pub fn requested(&self) -> u64 {
        self.requested
    }
}

/// Reserved bytes after serving `sizes` in order.
pub fn reserved_for(sizes: impl IntoIterator<Item = u64>) -> u64 {
    let mut s = Segments::default();
    sizes.into_iter().for_each(|x| s.alloc(x));
    s.reserved()
}

#[cfg(test)]
mod tests {
    use super::*;
    const MIB: u64 = 1 << 20;

    #[test]
    fn large_requests_round_to_two_mib() {
        // Qwen2.5-32B at TP4: o_proj 1280 x 5120 bf16 = 12.5 MiB -> a 14 MiB segment
        assert_eq!(reserved_for([1280 * 5120 * 2]), 14 * MIB);
        // Llama-3-8B at TP4: gate_up 7168 x 4096 bf16 = 56 MiB exactly: no slack
        assert_eq!(reserved_for([7168 * 4096 * 2]), 56 * MIB);
    }

    #[test]
    fn medium_requests_share_twenty_mib_segments() {
        // three 6 MiB requests fit one 20 MiB segment; the fourth finds 2 MiB left and opens another
        assert_eq!(reserved_for([6 * MIB; 3]), 20 * MIB);
        assert_eq!(reserved_for([6 * MIB; 4]), 40 * MIB);
        // a 1 MiB request is small: it never takes a large-pool tail
        assert_eq!(reserved_for([19 * MIB, MIB]), 22 * MIB);
    }

    #[test]
    fn a_large_request_reuses_a_free_tail() {
        // 8 MiB opens a 20 MiB segment; 11 MiB fits the 12 MiB left (best fit) and takes no new segment
        assert_eq!(reserved_for([8 * MIB, 11 * MIB]), 20 * MIB);
    }

    #[test]
    fn unsplit_tails_count_as_allocated() {
        // Qwen2.5-7B gate_up 259 MiB: a 260 MiB segment, the 1 MiB tail is not split off
        let mut s = Segments::default();
        s.alloc(2 * 18944 * 3584 * 2);
        assert_eq!(s.allocated(), 260 * MIB);
        // o_proj 24.5 MiB: a 26 MiB segment, the 1.5 MiB tail is split off and stays free
        let mut s = Segments::default();
        s.alloc(3584 * 3584 * 2);
        assert_eq!((s.allocated(), s.reserved()), (3584 * 3584 * 2, 26 * MIB));
    }

    #[test]
    fn small_requests_pack_into_two_mib_segments() {
        assert_eq!(reserved_for([10_000; 100]), 2 * MIB);
        assert_eq!(reserved_for([1]), 2 * MIB);
        assert_eq!(reserved_for([0, 0]), 0);
        let mut s = Segments::default();
        s.alloc(1);
        assert_eq!(s.requested(), 512);
    }
}
