//! The placement hash: XXH64 (seed 0) of the project name's UTF-8 bytes, fed to Lamping and
//! Veach's jump consistent hash.
//!
//! Both functions are fixed for the life of a deployment: changing either would move
//! almost every project. XXH64 is specified independently of this code
//! (<https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md>) so that tools in
//! other languages can compute placement too (`xxhash.xxh64_intdigest(name)` in Python).

/// The 64-bit hash of a project name used for placement.
pub fn project_hash(name: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(name.as_bytes(), 0)
}

/// Jump consistent hash ("A Fast, Minimal Memory, Consistent Hash Algorithm", Lamping and
/// Veach, 2014): maps `key` to a bucket in `0..buckets`. Growing `buckets` by one moves
/// about `1/(buckets+1)` of the keys, all of them into the new highest bucket; shrinking
/// by one moves only the keys of the removed highest bucket. `buckets == 0` yields 0.
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

/// The ordinal a project hashes to among `shard_count` shards, ignoring overrides.
pub fn home_ordinal(name: &str, shard_count: u32) -> u32 {
    jump_consistent_hash(project_hash(name), shard_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_matches_published_reference_values() {
        // Values produced by the paper's C++ code (as shipped in ClickHouse's tests).
        assert_eq!(jump_consistent_hash(1, 1), 0);
        assert_eq!(jump_consistent_hash(42, 57), 43);
        assert_eq!(jump_consistent_hash(256, 1024), 520);
        assert_eq!(jump_consistent_hash(3_735_883_980, 1), 0);
        assert_eq!(jump_consistent_hash(3_735_883_980, 666), 361);
        assert_eq!(jump_consistent_hash(16_045_690_984_833_335_023, 255), 237);
    }

    #[test]
    fn project_hash_is_xxh64_seed_zero() {
        // XXH64 reference values from the xxHash specification's test suite.
        assert_eq!(project_hash(""), 0xEF46_DB37_51D8_E999);
        assert_eq!(project_hash("a"), 0xD24E_C4F1_A98C_6E5B);
    }

    #[test]
    fn zero_buckets_does_not_panic() {
        assert_eq!(jump_consistent_hash(7, 0), 0);
    }
}
