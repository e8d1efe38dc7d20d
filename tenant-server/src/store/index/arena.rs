//! A collection's vectors, in search form, in slots that are written once.
//!
//! Every embedding a record is given takes a new slot; a re-embedded or deleted record
//! leaves its old slot behind, dead, until the indexer compacts. Slots never change after
//! they are published, so the graph and the exact scan read them without locks while the
//! one writer appends, and the graph's node ids are simply slot numbers.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

use super::buckets::Buckets;

/// No label: the slot belongs to no record (a dead slot carried over by a compaction).
pub const NO_LABEL: u32 = u32::MAX;

#[repr(transparent)]
struct Cell(UnsafeCell<f32>);

// zero bytes are the float 0.0
super::buckets::zeroed_element!(Cell);

pub struct Arena {
    dimension: usize,
    vectors: Buckets<Cell>,
    labels: Buckets<AtomicU32>,
    /// Slots published so far; a slot's contents are complete before it is counted.
    len: AtomicU32,
    append: Mutex<()>,
}

// SAFETY: a slot's floats are written only before the slot is published (by the single
// appender, under `append`) and only read after it is (`len` is stored with Release and
// loaded with Acquire), so no float is ever read and written concurrently.
unsafe impl Sync for Arena {}
unsafe impl Send for Arena {}

impl Arena {
    pub fn new(dimension: usize) -> Arena {
        Arena {
            dimension,
            vectors: Buckets::new(dimension),
            labels: Buckets::new(1),
            len: AtomicU32::new(0),
            append: Mutex::new(()),
        }
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Published slots.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a vector (already in search form) for `label`; returns its slot.
    pub fn push(&self, label: u32, v: &[f32]) -> u32 {
        let _one_appender = self.append.lock();
        let slot = self.len.load(Ordering::Relaxed);
        let row = slot as usize;
        self.vectors.reserve(row + 1);
        self.labels.reserve(row + 1);
        if let Some(cells) = self.vectors.row(row) {
            for (c, x) in cells.iter().zip(v.iter().chain(std::iter::repeat(&0.0))) {
                // SAFETY: the slot is not published yet, so nobody else reads this cell.
                unsafe { *c.0.get() = *x };
            }
        }
        if let Some(l) = self.labels.row(row) {
            l[0].store(label, Ordering::Relaxed);
        }
        self.len.store(slot + 1, Ordering::Release);
        slot
    }

    /// An arena of `labels.len()` slots whose floats (little-endian, `dimension` per slot)
    /// are read from `r` straight into the arena's memory, with every byte read fed to
    /// `checksum`. Nothing is published if reading fails.
    pub fn read_from(
        dimension: usize,
        labels: &[u32],
        r: &mut impl std::io::Read,
        checksum: &mut crc32fast::Hasher,
    ) -> std::io::Result<Arena> {
        let arena = Arena::new(dimension);
        let slots = labels.len();
        arena.vectors.reserve(slots);
        arena.labels.reserve(slots);
        let mut row = 0;
        while row < slots {
            let Some(run) = arena.vectors.run_from(row) else {
                return Err(std::io::Error::other("arena rows not reserved"));
            };
            let rows = (run.len() / arena.dimension.max(1)).min(slots - row);
            if rows == 0 {
                return Err(std::io::Error::other("arena bucket narrower than a row"));
            }
            // never more than the run holds, whatever the arithmetic above
            let floats = (rows * arena.dimension).min(run.len());
            // SAFETY: the rows are not published, so nobody else reads or writes them;
            // `Cell` is a transparent `UnsafeCell<f32>`, so writing through the shared
            // reference is allowed, and every byte pattern is a valid f32.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(run.as_ptr().cast::<u8>().cast_mut(), floats * 4)
            };
            r.read_exact(bytes)?;
            checksum.update(bytes);
            #[cfg(target_endian = "big")]
            for c in &run[..floats] {
                // SAFETY: as above, the row is not published yet.
                unsafe { *c.0.get() = f32::from_bits((*c.0.get()).to_bits().swap_bytes()) };
            }
            row += rows;
        }
        for (slot, &label) in labels.iter().enumerate() {
            if let Some(l) = arena.labels.row(slot) {
                l[0].store(label, Ordering::Relaxed);
            }
        }
        arena.len.store(slots as u32, Ordering::Release);
        Ok(arena)
    }

    /// The vector in `slot`, if it is published.
    #[inline]
    pub fn vector(&self, slot: u32) -> Option<&[f32]> {
        if slot >= self.len() {
            return None;
        }
        let cells = self.vectors.row(slot as usize)?;
        // SAFETY: `Cell` is a transparent `UnsafeCell<f32>`, and a published slot is
        // never written again.
        Some(unsafe { std::slice::from_raw_parts(cells.as_ptr().cast::<f32>(), cells.len()) })
    }

    /// The label whose embedding `slot` holds (or held).
    #[inline]
    pub fn label(&self, slot: u32) -> u32 {
        if slot >= self.len() {
            return NO_LABEL;
        }
        self.labels
            .row(slot as usize)
            .map_or(NO_LABEL, |l| l[0].load(Ordering::Relaxed))
    }

    pub fn allocated_bytes(&self) -> usize {
        self.vectors.allocated_bytes() + self.labels.allocated_bytes()
    }

    /// Bytes the published vectors themselves take.
    pub fn vector_bytes(&self) -> usize {
        self.len() as usize * self.dimension * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn slots_are_published_whole_while_readers_read() {
        let arena = Arc::new(Arena::new(8));
        let reader = {
            let arena = Arc::clone(&arena);
            std::thread::spawn(move || {
                let mut checked = 0u64;
                loop {
                    let n = arena.len();
                    for s in n.saturating_sub(50)..n {
                        let v = arena.vector(s).expect("published slot");
                        assert!(v.iter().all(|x| *x == s as f32), "torn slot {s}");
                        assert_eq!(arena.label(s), s * 2);
                        checked += 1;
                    }
                    if n == 20_000 {
                        return checked;
                    }
                }
            })
        };
        for s in 0..20_000u32 {
            assert_eq!(arena.push(s * 2, &[s as f32; 8]), s);
        }
        assert!(reader.join().unwrap() > 0);
        assert!(arena.vector(20_000).is_none());
        assert_eq!(arena.label(20_000), NO_LABEL);
    }
}
