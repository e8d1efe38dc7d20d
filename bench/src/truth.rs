//! Exact answers in a collection's space, the yardstick of every recall figure: squared L2
//! as is, cosine as L2 over unit vectors (the same order), inner product largest first.

use quiver_tenant_server::store::distance::search_form;
use quiver_tenant_server::store::types::Space;
use quiver_testkit::vectors::{exact_knn_by, Metric};

/// The `k` nearest rows of `data` (flat, `dim` per row; only `candidates` if given) to
/// each query, nearest first, as a collection of `space` ranks them.
pub fn exact_in(
    space: Space,
    data: &[f32],
    dim: usize,
    candidates: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<u32>> {
    match space {
        Space::L2 => exact_knn_by(Metric::L2, data, dim, candidates, queries, k),
        Space::Ip => exact_knn_by(Metric::InnerProduct, data, dim, candidates, queries, k),
        Space::Cosine => {
            let unit = |flat: &[f32]| -> Vec<f32> {
                flat.chunks_exact(dim)
                    .flat_map(|v| search_form(Space::Cosine, v))
                    .collect()
            };
            exact_knn_by(Metric::L2, &unit(data), dim, candidates, &unit(queries), k)
        }
    }
}
