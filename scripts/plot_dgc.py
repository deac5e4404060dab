#!/usr/bin/env python3
"""Test accuracy per epoch of dense and DGC data-parallel runs (scripts/dgc_results.sh PLOT=...).

    plot_dgc.py OUT.png RUN_DIR/metrics.jsonl ...

Each metrics.jsonl is one run; its directory name is MODEL_{dense,dgc}_SEED. Dense runs are solid
lines, DGC runs dashed, one colour per model; the legend gives the bytes each rank sent per
iteration when the run logged them (exchange_bytes_per_iter).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: plot_dgc.py OUT.png METRICS.jsonl ...")
    out, paths = sys.argv[1], sys.argv[2:]
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {}
    for path in sorted(paths):
        run = os.path.basename(os.path.dirname(path))
        model, kind, seed = run.rsplit("_", 2)
        rows = [json.loads(line) for line in open(path) if line.strip()]
        rows = [r for r in rows if r.get("accuracy") is not None]
        if not rows:
            continue
        colour = colours.setdefault(model, "C%d" % len(colours))
        sent = rows[-1].get("exchange_bytes_per_iter")
        label = "%s %s seed %s" % (model, "DGC" if kind == "dgc" else "dense", seed)
        if sent:
            label += " (%.0f B/iter)" % sent
        ax.plot([r["epoch"] for r in rows], [100 * r["accuracy"] for r in rows], color=colour,
                linestyle="--" if kind == "dgc" else "-", marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Data-parallel training, 2 ranks: dense allreduce vs Deep Gradient Compression")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
