#!/usr/bin/env python3
"""The hnswlib reference of `quiver-bench --mode index`.

Reads points.f32 and queries.f32 (raw little-endian f32, --dim per row) from --dir,
builds an hnswlib index with the given space, M and ef_construction on every core, and
for each ef of the sweep times the queries, --passes times, keeping the best: one at a time
(median latency; this includes the Python call, a few microseconds), as one batch on one
thread (QPS 1t) and as one batch on two threads (QPS 2t). Each ef's result labels go to ids-ef<EF>.u32; the timings
go to stdout as one JSON document. Recall is scored by the bench, not here.
"""

import argparse
import json
import os
import time

import hnswlib
import numpy as np


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--space", choices=["l2", "cosine", "ip"], required=True)
    ap.add_argument("--m", type=int, required=True)
    ap.add_argument("--ef-construction", type=int, required=True)
    ap.add_argument("--ef-sweep", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--passes", type=int, default=3, help="timed passes per ef; the best is kept")
    a = ap.parse_args()

    points = np.fromfile(os.path.join(a.dir, "points.f32"), dtype="<f4").reshape(-1, a.dim)
    queries = np.fromfile(os.path.join(a.dir, "queries.f32"), dtype="<f4").reshape(-1, a.dim)
    n = len(points)

    before = rss_bytes()
    start = time.perf_counter()
    index = hnswlib.Index(space=a.space, dim=a.dim)
    index.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=100)
    index.add_items(points, np.arange(n), num_threads=os.cpu_count() or 1)
    build_secs = time.perf_counter() - start
    after = rss_bytes()

    # hnswlib's own layout: per element the vector, the layer-0 list (2M links and a
    # count) and the label; upper layers hold M links and a count on ~1/M of elements
    per_element = a.dim * 4 + (2 * a.m + 1) * 4 + 8
    upper = n / a.m * (a.m + 1) * 4
    curve = []
    for ef in (int(x) for x in a.ef_sweep.split(",")):
        index.set_ef(ef)
        for q in queries[:100]:
            index.knn_query(q, k=a.k, num_threads=1)
        p50, qps1, qps2 = float("inf"), 0.0, 0.0
        for _ in range(a.passes):
            lat = []
            for q in queries:
                s = time.perf_counter()
                index.knn_query(q, k=a.k, num_threads=1)
                lat.append(time.perf_counter() - s)
            p50 = min(p50, float(np.median(lat)))
            s = time.perf_counter()
            labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
            qps1 = max(qps1, len(queries) / (time.perf_counter() - s))
            s = time.perf_counter()
            index.knn_query(queries, k=a.k, num_threads=2)
            qps2 = max(qps2, len(queries) / (time.perf_counter() - s))
        name = f"ids-ef{ef}.u32"
        labels.astype("<u4").tofile(os.path.join(a.dir, name))
        curve.append(
            {
                "ef": ef,
                "p50_us": p50 * 1e6,
                "qps1": qps1,
                "qps2": qps2,
                "ids_file": name,
            }
        )
    print(
        json.dumps(
            {
                "version": getattr(hnswlib, "__version__", "hnswlib"),
                "build_secs": build_secs,
                "index_bytes": int(n * per_element + upper),
                "rss_growth": (after - before) if before and after else None,
                "curve": curve,
            }
        )
    )


if __name__ == "__main__":
    main()
