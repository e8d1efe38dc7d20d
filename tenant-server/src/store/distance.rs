//! Distance kernels. Each kernel is written once as plain Rust that LLVM vectorises, and
//! compiled twice: for the baseline target and for AVX2+FMA, picked at run time.

use super::types::Space;

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler keep a full vector register busy.
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn l2_sq_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            let d = ca[i] - cb[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_generic(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        super::l2_sq_generic(a, b)
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Dot product. Slices must have equal length (callers validate dimensions first).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { avx2::dot(a, b) };
    }
    dot_generic(a, b)
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { avx2::l2_sq(a, b) };
    }
    l2_sq_generic(a, b)
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The vector a collection searches with: cosine collections search unit vectors, so that
/// cosine distance becomes `1 - dot`.
pub fn search_form(space: Space, v: &[f32]) -> Vec<f32> {
    let mut out = v.to_vec();
    if space == Space::Cosine {
        normalize(&mut out);
    }
    out
}

/// Chroma's distance between a stored vector and a query, both already in search form.
#[inline]
pub fn distance(space: Space, stored: &[f32], query: &[f32]) -> f32 {
    match space {
        Space::L2 => l2_sq(stored, query),
        Space::Cosine | Space::Ip => 1.0 - dot(stored, query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn vec_of(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
    }

    #[test]
    fn kernels_match_naive_for_all_lengths() {
        for n in [0, 1, 3, 7, 8, 9, 16, 31, 384, 1000] {
            let a = vec_of(n, 1.0);
            let b = vec_of(n, 2.5);
            let d = naive_dot(&a, &b);
            assert!(
                (dot(&a, &b) - d).abs() <= 1e-3 * (1.0 + d.abs()),
                "dot n={n}"
            );
            let l: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((l2_sq(&a, &b) - l).abs() <= 1e-3 * (1.0 + l), "l2 n={n}");
        }
    }

    #[test]
    fn chroma_distance_definitions() {
        // Chroma's documented example: squared L2.
        assert_eq!(
            distance(Space::L2, &[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5]),
            8.75
        );
        assert!((distance(Space::Ip, &[1.0, 2.0], &[3.0, 4.0]) - (1.0 - 11.0)).abs() < 1e-6);
        let a = search_form(Space::Cosine, &[3.0, 4.0]);
        let b = search_form(Space::Cosine, &[4.0, 3.0]);
        assert!((distance(Space::Cosine, &a, &b) - (1.0 - 24.0 / 25.0)).abs() < 1e-6);
        let same = search_form(Space::Cosine, &[2.0, 0.0]);
        assert!(distance(Space::Cosine, &same, &same).abs() < 1e-6);
    }

    #[test]
    fn zero_vector_normalizes_to_zero() {
        let mut z = vec![0.0; 4];
        normalize(&mut z);
        assert_eq!(z, vec![0.0; 4]);
    }
}
