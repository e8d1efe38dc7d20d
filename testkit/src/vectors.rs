//! Synthetic data (a seeded Gaussian mixture) and exact k-NN ground truth.

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

/// A Gaussian mixture: `clusters` centres drawn from N(0, 1) per coordinate; a point is a
/// uniformly chosen centre plus N(0, sigma²) noise per coordinate.
pub struct Mixture {
    dim: usize,
    centres: Vec<f32>,
    noise: Normal<f32>,
}

impl Mixture {
    /// Draws the centres from `rng`.
    pub fn new(dim: usize, clusters: usize, sigma: f32, rng: &mut StdRng) -> anyhow::Result<Self> {
        anyhow::ensure!(dim > 0 && clusters > 0, "dim and clusters must be positive");
        let centres: Vec<f32> = (0..dim * clusters)
            .map(|_| Distribution::<f32>::sample(&StandardNormal, rng))
            .collect();
        let noise =
            Normal::new(0.0f32, sigma).map_err(|e| anyhow::anyhow!("bad sigma {sigma}: {e}"))?;
        Ok(Mixture {
            dim,
            centres,
            noise,
        })
    }

    /// `n` points, flat row-major (`n * dim` floats).
    pub fn sample(&self, n: usize, rng: &mut StdRng) -> Vec<f32> {
        let clusters = self.centres.len() / self.dim;
        let mut out = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            let c = rng.random_range(0..clusters);
            let centre = &self.centres[c * self.dim..(c + 1) * self.dim];
            out.extend(centre.iter().map(|&x| x + self.noise.sample(rng)));
        }
        out
    }
}

/// The sum of `term(a[i], b[i])`, written so that LLVM vectorises it (32 accumulators,
/// four 8-wide registers).
#[inline(always)]
fn sum_of(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 32];
    let ca = a.chunks_exact(32);
    let cb = b.chunks_exact(32);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x: &[f32; 32] = x.try_into().expect("chunk of 32");
        let y: &[f32; 32] = y.try_into().expect("chunk of 32");
        for j in 0..32 {
            acc[j] += term(x[j], y[j]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += term(*x, *y);
    }
    s
}

/// Squared Euclidean distance.
#[inline(always)]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    sum_of(a, b, |x, y| (x - y) * (x - y))
}

/// Negated inner product: smaller is nearer, as with a distance.
#[inline(always)]
pub fn neg_dot(a: &[f32], b: &[f32]) -> f32 {
    -sum_of(a, b, |x, y| x * y)
}

/// What "nearest" means for exact search. Cosine is [`Metric::L2`] over unit vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Largest inner product first.
    InnerProduct,
}

/// The `k` smallest (distance, index) pairs seen so far, sorted ascending.
struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    #[inline(always)]
    fn push(&mut self, d: f32, i: u32) {
        if self.items.len() == self.k {
            match self.items.last() {
                Some(&(worst, _)) if d < worst => {}
                _ => return,
            }
        }
        let pos = self.items.partition_point(|&(x, _)| x <= d);
        self.items.insert(pos, (d, i));
        self.items.truncate(self.k);
    }

    fn into_ids(self) -> Vec<u32> {
        self.items.into_iter().map(|(_, i)| i).collect()
    }
}

/// Queries handled together so that each data vector is read once per block.
const QUERY_BLOCK: usize = 16;

#[inline(always)]
fn knn_block_impl<D: Fn(&[f32], &[f32]) -> f32>(
    dist: D,
    data: &[f32],
    dim: usize,
    candidates: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<u32>> {
    let nq = queries.len() / dim;
    let mut out = Vec::with_capacity(nq);
    for block in queries.chunks(QUERY_BLOCK * dim) {
        let qs: Vec<&[f32]> = block.chunks_exact(dim).collect();
        let mut tops: Vec<TopK> = qs.iter().map(|_| TopK::new(k)).collect();
        let mut visit = |i: u32, v: &[f32]| {
            for (q, top) in qs.iter().zip(tops.iter_mut()) {
                top.push(dist(q, v), i);
            }
        };
        match candidates {
            None => {
                for (i, v) in data.chunks_exact(dim).enumerate() {
                    visit(i as u32, v);
                }
            }
            Some(c) => {
                for &i in c {
                    let start = i as usize * dim;
                    visit(i, &data[start..start + dim]);
                }
            }
        }
        out.extend(tops.into_iter().map(TopK::into_ids));
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn knn_block_avx2(
    metric: Metric,
    data: &[f32],
    dim: usize,
    candidates: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<u32>> {
    match metric {
        Metric::L2 => knn_block_impl(l2sq, data, dim, candidates, queries, k),
        Metric::InnerProduct => knn_block_impl(neg_dot, data, dim, candidates, queries, k),
    }
}

fn knn_block(
    metric: Metric,
    data: &[f32],
    dim: usize,
    candidates: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<u32>> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { knn_block_avx2(metric, data, dim, candidates, queries, k) };
    }
    match metric {
        Metric::L2 => knn_block_impl(l2sq, data, dim, candidates, queries, k),
        Metric::InnerProduct => knn_block_impl(neg_dot, data, dim, candidates, queries, k),
    }
}

/// Exact k nearest neighbours (squared L2) of each query among `data` (flat, `dim` per
/// row), or among the rows listed in `candidates`. Returns row indices, nearest first.
/// Runs on all available cores.
pub fn exact_knn(
    data: &[f32],
    dim: usize,
    candidates: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<u32>> {
    exact_knn_by(Metric::L2, data, dim, candidates, queries, k)
}

/// [`exact_knn`] by `metric`.
pub fn exact_knn_by(
    metric: Metric,
    data: &[f32],
    dim: usize,
    candidates: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<u32>> {
    let nq = queries.len() / dim;
    if nq == 0 {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(nq.div_ceil(QUERY_BLOCK))
        .max(1);
    let per_thread = nq.div_ceil(threads).div_ceil(QUERY_BLOCK) * QUERY_BLOCK;
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per_thread * dim)
            .map(|chunk| s.spawn(move || knn_block(metric, data, dim, candidates, chunk, k)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("ground-truth thread panicked"))
            .collect()
    })
}

/// Fraction of `truth` found in `got` (1.0 when `truth` is empty).
pub fn recall(got: &[u32], truth: &[u32]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = truth.iter().filter(|t| got.contains(t)).count();
    hits as f64 / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn naive(data: &[f32], dim: usize, cands: &[u32], q: &[f32], k: usize) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = cands
            .iter()
            .map(|&i| {
                let v = &data[i as usize * dim..(i as usize + 1) * dim];
                (v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), i)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.truncate(k);
        all.into_iter().map(|(_, i)| i).collect()
    }

    #[test]
    fn exact_knn_matches_naive() {
        let mut rng = StdRng::seed_from_u64(7);
        for dim in [3usize, 64, 70] {
            let m = Mixture::new(dim, 5, 0.3, &mut rng).unwrap();
            let data = m.sample(500, &mut rng);
            let queries = m.sample(37, &mut rng);
            let all: Vec<u32> = (0..500).collect();
            let some: Vec<u32> = (0..500).filter(|i| i % 7 == 3).collect();
            let got = exact_knn(&data, dim, None, &queries, 10);
            let got_f = exact_knn(&data, dim, Some(&some), &queries, 10);
            assert_eq!(got.len(), 37);
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                assert_eq!(got[qi], naive(&data, dim, &all, q, 10), "dim {dim} q {qi}");
                assert_eq!(got_f[qi], naive(&data, dim, &some, q, 10));
            }
        }
    }

    #[test]
    fn inner_product_ranks_by_largest_dot() {
        let mut rng = StdRng::seed_from_u64(11);
        let dim = 40;
        let data = Mixture::new(dim, 4, 0.5, &mut rng)
            .unwrap()
            .sample(300, &mut rng);
        let queries = Mixture::new(dim, 4, 0.5, &mut rng)
            .unwrap()
            .sample(9, &mut rng);
        let got = exact_knn_by(Metric::InnerProduct, &data, dim, None, &queries, 5);
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            let mut all: Vec<(f32, u32)> = data
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as u32))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: Vec<u32> = all[..5].iter().map(|p| p.1).collect();
            assert_eq!(got[qi], want, "query {qi}");
        }
    }

    #[test]
    fn mixture_is_seeded() {
        let a = Mixture::new(8, 3, 0.1, &mut StdRng::seed_from_u64(1))
            .unwrap()
            .sample(10, &mut StdRng::seed_from_u64(2));
        let b = Mixture::new(8, 3, 0.1, &mut StdRng::seed_from_u64(1))
            .unwrap()
            .sample(10, &mut StdRng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_eq!(a.len(), 80);
    }

    #[test]
    fn recall_counts_overlap() {
        assert_eq!(recall(&[1, 2, 3, 4], &[4, 3, 9, 8]), 0.5);
        assert_eq!(recall(&[], &[]), 1.0);
    }
}
