//! Append-only rows in buckets of doubling size.
//!
//! Growing never moves a stored row, so readers hold plain references while the graph and
//! the vector arena grow under them, and a small collection pays for a small first bucket
//! only. Bucket 0 holds `FIRST_ROWS` rows, bucket `b > 0` holds `FIRST_ROWS << (b - 1)`.
//!
//! The newest bucket is up to half empty. Elements whose zero bytes are a valid value
//! (counters, ids, floats) get their bucket from `alloc_zeroed`, whose large blocks are
//! fresh pages from the kernel: the empty rows then cost address space, not memory.

use std::alloc::Layout;
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::sync::OnceLock;

/// What a bucket is made of, and how a new bucket of it is allocated.
pub trait Element: Sized {
    fn bucket(len: usize) -> Box<[Self]>;
}

/// A bucket of `len` zero-byte elements, without writing them.
///
/// # Safety
/// All-zero bytes must be a valid value of `T`.
pub(crate) unsafe fn zeroed<T>(len: usize) -> Box<[T]> {
    let layout = match Layout::array::<T>(len) {
        Ok(l) if l.size() > 0 => l,
        _ => return (0..len).map(|_| unsafe { std::mem::zeroed() }).collect(),
    };
    // SAFETY: the layout is non-zero-sized; the block has the layout `Box<[T]>` frees it
    // with, and zero bytes are a valid `T` (the caller's promise).
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len))
    }
}

/// Elements valid as zero bytes, allocated with [`zeroed`].
macro_rules! zeroed_element {
    ($($t:ty),*) => {$(
        impl $crate::store::index::buckets::Element for $t {
            fn bucket(len: usize) -> Box<[Self]> {
                // SAFETY: zero bytes are a valid value of this type.
                unsafe { $crate::store::index::buckets::zeroed(len) }
            }
        }
    )*};
}
zeroed_element!(AtomicU8, AtomicU32);
pub(super) use zeroed_element;

/// Elements built by `Default`, written one by one.
macro_rules! default_element {
    ($($t:ty),*) => {$(
        impl $crate::store::index::buckets::Element for $t {
            fn bucket(len: usize) -> Box<[Self]> {
                (0..len).map(|_| <$t>::default()).collect()
            }
        }
    )*};
}
pub(super) use default_element;

const FIRST_ROWS: usize = 64;
const BUCKETS: usize = 40;

pub struct Buckets<T> {
    width: usize,
    buckets: [OnceLock<Box<[T]>>; BUCKETS],
}

/// (bucket, row inside it) of a row.
#[inline]
fn locate(row: usize) -> (usize, usize) {
    if row < FIRST_ROWS {
        return (0, row);
    }
    let scaled = row / FIRST_ROWS;
    let b = (usize::BITS - scaled.leading_zeros()) as usize;
    (b, row - (FIRST_ROWS << (b - 1)))
}

#[inline]
fn bucket_rows(b: usize) -> usize {
    if b == 0 {
        FIRST_ROWS
    } else {
        FIRST_ROWS << (b - 1)
    }
}

impl<T: Element> Buckets<T> {
    /// Rows of `width` elements each.
    pub fn new(width: usize) -> Buckets<T> {
        Buckets {
            width: width.max(1),
            buckets: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Makes rows `0..rows` addressable (allocating default elements); safe to race.
    pub fn reserve(&self, rows: usize) {
        if rows == 0 {
            return;
        }
        let (last, _) = locate(rows - 1);
        for b in 0..=last.min(BUCKETS - 1) {
            self.buckets[b].get_or_init(|| T::bucket(bucket_rows(b) * self.width));
        }
    }

    /// The row, if it was reserved.
    #[inline]
    pub fn row(&self, row: usize) -> Option<&[T]> {
        let (b, r) = locate(row);
        let bucket = self.buckets.get(b)?.get()?;
        bucket.get(r * self.width..(r + 1) * self.width)
    }

    /// The elements from the start of `row` to the end of its bucket (a run of rows that
    /// are contiguous in memory), if `row` was reserved.
    #[inline]
    pub fn run_from(&self, row: usize) -> Option<&[T]> {
        let (b, r) = locate(row);
        self.buckets.get(b)?.get()?.get(r * self.width..)
    }

    /// Rows reserved so far.
    pub fn capacity(&self) -> usize {
        (0..BUCKETS)
            .take_while(|&b| self.buckets[b].get().is_some())
            .map(bucket_rows)
            .sum()
    }

    /// Bytes allocated.
    pub fn allocated_bytes(&self) -> usize {
        self.capacity() * self.width * std::mem::size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn rows_map_to_distinct_places_and_survive_growth() {
        let b: Buckets<AtomicU32> = Buckets::new(3);
        assert!(b.row(0).is_none());
        b.reserve(1000);
        assert!(b.capacity() >= 1000);
        for r in 0..1000 {
            let row = b.row(r).unwrap();
            assert_eq!(row.len(), 3);
            row[2].store(r as u32, Ordering::Relaxed);
        }
        let first = b.row(5).unwrap().as_ptr();
        b.reserve(100_000);
        assert_eq!(b.row(5).unwrap().as_ptr(), first, "growing moved a row");
        for r in 0..1000 {
            assert_eq!(b.row(r).unwrap()[2].load(Ordering::Relaxed), r as u32);
        }
        let mut seen = std::collections::HashSet::new();
        for r in 0..100_000 {
            assert!(seen.insert(b.row(r).unwrap().as_ptr() as usize));
        }
    }

    #[test]
    fn locate_is_contiguous() {
        let mut expected = (0, 0);
        for row in 0..10_000 {
            assert_eq!(locate(row), expected, "row {row}");
            expected.1 += 1;
            if expected.1 == bucket_rows(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
    }
}
