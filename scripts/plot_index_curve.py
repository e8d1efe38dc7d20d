#!/usr/bin/env python3
"""Turns the CSV of `quiver-bench --mode index --curve-out F` into a recall/QPS plot.

    scripts/plot_index_curve.py curve.csv curve.png [--threads 1|2]

One line per library: recall@10 on x, queries per second on y (log scale), a point per
ef_search, labelled with its ef. Needs matplotlib (scripts/bench_venv.sh installs it).
"""

import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--threads", choices=["1", "2"], default="1")
    a = ap.parse_args()
    qps = "qps" + a.threads

    series = defaultdict(list)
    title = None
    with open(a.csv) as f:
        for row in csv.DictReader(f):
            series[row["library"]].append(row)
            title = (
                f"{row['n']} x {row['dim']} {row['space']}, M {row['m']}, "
                f"ef_construction {row['ef_construction']}, {a.threads} thread(s)"
            )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for library, rows in series.items():
        rows.sort(key=lambda r: int(r["ef"]))
        xs = [float(r["recall"]) for r in rows]
        ys = [float(r[qps]) for r in rows]
        ax.plot(xs, ys, marker="o", label=library)
        for r, x, y in zip(rows, xs, ys):
            ax.annotate(f"ef {r['ef']}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title or "index curve", fontsize=9)
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)


if __name__ == "__main__":
    main()
