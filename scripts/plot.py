#!/usr/bin/env python3
"""Pictures from the files DSG's tools write (matplotlib from Debian's python3-matplotlib).

    plot.py curves      METRICS.jsonl [...]   -o OUT.png   training curves: loss, accuracy, lr
    plot.py sparsity    METRICS.jsonl         -o OUT.png   per-layer sparsity over the run
    plot.py histogram   MODEL.npz [--before DENSE.npz] [--layer L] -o OUT.png
                                                             weight histograms (dsgcompress --format npz),
                                                             pruned zeros counted apart, k-means centroids marked
    plot.py compression EVAL.json             -o OUT.png   bytes by layer: values and indices (dsgeval --json on a .dsgz)
    plot.py sensitivity EVAL.json|SENS.csv    -o OUT.png   accuracy loss in points per layer and sparsity,
                                                             the suggested sparsity marked (dsgeval --sensitivity
                                                             --json, or its CSV)
    plot.py confusion   EVAL.json             -o OUT.png   confusion matrix heatmap (dsgeval --json)

metrics.jsonl rows are dsgtrain's: one per test (test loss and outputs) and, where the run wrote
them, one per display interval ("kind": "train": loss, lr, per-layer sparsity). Every command
fails with one line naming the file and what is missing.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fail(message):
    sys.exit("plot.py: error: " + message)


def read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        fail("cannot read %s: %s" % (path, e))


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail("cannot read %s: %s" % (path, e))


def split_rows(rows):
    """(train rows, test rows): rows without "kind" are test rows (older dsgtrain)."""
    train = [r for r in rows if r.get("kind") == "train"]
    test = [r for r in rows if r.get("kind", "test") == "test"]
    return train, test


def curves(args):
    runs = []
    for path in args.files:
        train, test = split_rows(read_jsonl(path))
        parts = path.split("/")
        name = parts[-2] if len(parts) > 1 and parts[-1] == "metrics.jsonl" else parts[-1].rsplit(".", 1)[0]
        if train or test:
            runs.append((name, train, test))
    if not runs:
        fail("no rows in " + ", ".join(args.files))
    with_lr = any("lr" in r for _, train, _ in runs for r in train)
    fig, axes = plt.subplots(1, 3 if with_lr else 2, figsize=(14 if with_lr else 10, 4))
    ax_loss, ax_acc = axes[0], axes[1]
    for i, (name, train, test) in enumerate(runs):
        colour = "C%d" % i
        if train:
            ax_loss.plot([r["iteration"] for r in train], [r["loss"] for r in train], color=colour, label=name + " train")
            if with_lr:
                axes[2].plot([r["iteration"] for r in train], [r.get("lr") for r in train], color=colour, label=name)
        elif test:  # older metrics: the smoothed train loss of each test row
            ax_loss.plot([r["iteration"] for r in test], [r.get("train_loss") for r in test], color=colour,
                         label=name + " train")
        if test:
            ax_loss.plot([r["iteration"] for r in test], [r.get("test_loss") for r in test], "o--", color=colour,
                         label=name + " test")
            acc = [r for r in test if r.get("accuracy") is not None]
            ax_acc.plot([r["iteration"] for r in acc], [100 * r["accuracy"] for r in acc], "o-", color=colour, label=name)
    titles = [("loss", "loss"), ("test accuracy", "%"), ("learning rate", "lr")]
    for ax, (title, unit) in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def sparsity(args):
    train, _ = split_rows(read_jsonl(args.files[0]))
    series = {}
    for r in train:  # "layers": {"ip1": {"sparsity": 0.9, "bits": 5}, ...} (apps/training_outputs.hpp)
        for layer, stats in (r.get("layers") or {}).items():
            if "sparsity" in stats:
                series.setdefault(layer, []).append((r["iteration"], 100 * stats["sparsity"]))
    if not series:
        fail("%s has no per-layer sparsity (rows with \"kind\": \"train\" and \"layers\")" % args.files[0])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for layer, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], label=layer)
    ax.set_xlabel("iteration")
    ax.set_ylabel("sparsity (%)")
    ax.set_title("Per-layer sparsity over training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def histogram(args):
    import numpy as np

    try:
        after = np.load(args.files[0])
        before = np.load(args.before) if args.before else None
    except OSError as e:
        fail(str(e))
    weights = [k for k in after.files if k.endswith(".weight")]
    if args.layer:
        weights = [args.layer + ".weight"]
        if weights[0] not in after.files:
            fail("%s has no %s (it holds %s)" % (args.files[0], weights[0], ", ".join(after.files)))
    if not weights:
        fail("%s holds no <layer>.weight arrays" % args.files[0])
    fig, axes = plt.subplots(1, len(weights), figsize=(4.5 * len(weights), 3.8), squeeze=False)
    for ax, key in zip(axes[0], weights):
        w = after[key].ravel()
        nz = w[w != 0]
        if before is not None and key in before.files:
            b = before[key].ravel()
            ax.hist(b, bins=100, alpha=0.45, label="before (%d)" % b.size, color="C0")
        ax.hist(nz, bins=100, alpha=0.75, label="after: %d non-zero, %.1f%% pruned" % (nz.size, 100.0 * (1 - nz.size / max(1, w.size))), color="C1")
        layer = key[: -len(".weight")]
        if layer + ".codebook" in after.files:
            for c in after[layer + ".codebook"]:
                ax.axvline(c, color="C3", linewidth=0.5, alpha=0.6)
            ax.plot([], [], color="C3", label="k-means centroids")
        ax.set_title(layer)
        ax.set_xlabel("weight")
        ax.set_ylabel("count")
        ax.legend(fontsize=7)
    fig.suptitle("Weight histograms" + (" before and after pruning" if before is not None else ""))
    return fig


def compression(args):
    report = read_json(args.files[0])
    cost = report.get("cost")
    if not cost:
        fail("%s has no \"cost\" section (run dsgeval --json on a .dsgz)" % args.files[0])
    layers = cost["layers"]
    names = [l["name"] for l in layers]
    values = [4 * l["compressed"]["weight_words"] for l in layers]
    indices = [4 * l["compressed"]["index_words"] for l in layers]
    dense = [4 * l["dense"]["weight_words"] for l in layers]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], dense, width=0.4, label="dense float32", color="C7")
    ax.bar([i + 0.2 for i in x], values, width=0.4, label="compressed: values (codes)", color="C0")
    ax.bar([i + 0.2 for i in x], indices, width=0.4, bottom=values, label="compressed: relative indices", color="C1")
    for i, (d, v, ix) in enumerate(zip(dense, values, indices)):
        ax.text(i + 0.2, v + ix, "%.0fx" % (d / max(1e-9, v + ix)), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5 * min(v for v in values + indices + dense if v > 0))
    ax.set_ylabel("bytes read per sample (32-bit words x 4)")
    ax.set_title("Compression by layer: " + report.get("model", ""))
    ax.legend(fontsize=8)
    return fig


def sensitivity_from_csv(path, max_loss):
    """dsgeval --sensitivity's CSV (layer,granularity,sparsity,accuracy,accuracy_drop) as the JSON
    section; the suggested sparsity is dsgeval's rule: the largest level within max_loss points."""
    import csv

    try:
        with open(path) as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        fail("cannot read %s: %s" % (path, e))
    if not rows or "accuracy_drop" not in rows[0]:
        fail("%s is not a dsgeval sensitivity CSV" % path)
    levels = sorted({float(r["sparsity"]) for r in rows})
    base = float(rows[0]["accuracy"]) + float(rows[0]["accuracy_drop"])
    layers = []
    for name in dict.fromkeys(r["layer"] for r in rows):
        by_level = {float(r["sparsity"]): float(r["accuracy"]) for r in rows if r["layer"] == name}
        accuracy = [by_level[l] for l in levels]
        within = [l for l, a in zip(levels, accuracy) if 100 * (base - a) <= max_loss]
        layers.append({"name": name, "accuracy": accuracy, "suggested_sparsity": max(within) if within else None})
    return {"granularity": rows[0]["granularity"], "base_accuracy": base, "max_loss_points": max_loss,
            "levels": levels, "layers": layers}


def sensitivity(args):
    if args.files[0].endswith(".csv"):
        sens = sensitivity_from_csv(args.files[0], args.max_loss)
    else:
        sens = read_json(args.files[0]).get("sensitivity")
    if not sens:
        fail("%s has no \"sensitivity\" section (run dsgeval --sensitivity --json)" % args.files[0])
    base = sens["base_accuracy"]
    levels = [0.0] + [100 * v for v in sens["levels"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for layer in sens["layers"]:
        loss = [0.0] + [100 * (base - a) for a in layer["accuracy"]]  # the unpruned point first
        line, = ax.plot(levels, loss, "o-", markersize=3, label=layer["name"])
        s = layer.get("suggested_sparsity")
        if s is not None:
            j = sens["levels"].index(s) + 1
            ax.plot([levels[j]], [loss[j]], "*", markersize=12, color=line.get_color())
    ax.axhline(sens.get("max_loss_points", 0.5), color="grey", linestyle=":", label="allowed loss")
    ax.plot([], [], "k*", label="suggested sparsity")
    ax.set_xlabel("sparsity of the layer (%), " + sens.get("granularity", ""))
    ax.set_ylabel("accuracy loss (points)")
    ax.set_title("Pruning sensitivity (base top-1 %.2f%%)" % (100 * base))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def confusion(args):
    report = read_json(args.files[0])
    m = report.get("confusion")
    if not m:
        fail("%s has no \"confusion\" matrix (dsgeval --json)" % args.files[0])
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax, label="samples")
    top = max(max(row) for row in m)
    for t, row in enumerate(m):
        for c, n in enumerate(row):
            if n:
                ax.text(c, t, str(n), ha="center", va="center", fontsize=6, color="white" if n > top / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (top-1 %.2f%%)" % (100 * report.get("top1", 0)))
    return fig


def main():
    commands = {"curves": curves, "sparsity": sparsity, "histogram": histogram, "compression": compression,
                "sensitivity": sensitivity, "confusion": confusion}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(commands))
    parser.add_argument("files", nargs="+")
    parser.add_argument("-o", "--output", required=True, help="PNG to write")
    parser.add_argument("--before", help="histogram: the weights before pruning (.npz)")
    parser.add_argument("--layer", help="histogram: one layer only")
    parser.add_argument("--max-loss", type=float, default=0.5,
                        help="sensitivity from a CSV: the allowed loss in points for the suggestion (dsgeval's default)")
    args = parser.parse_args()
    fig = commands[args.command](args)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print("wrote " + args.output)


if __name__ == "__main__":
    main()
