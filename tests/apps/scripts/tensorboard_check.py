#!/usr/bin/env python3
"""Reads dsgtrain --tensorboard events back with TensorBoard's own reader and checks the values.

    tensorboard_check.py EVENTS_DIR METRICS_JSONL VENV_DIR LAYER/INDEX=COUNT...

TensorBoard (PyPI `tensorboard`) is imported from /usr/bin/python3 when it has it; otherwise from
the virtual environment VENV_DIR, created with `python3 -m venv` and `pip install tensorboard`
on first use (kept for later runs). Exit status 77 (skipped) with a message when neither works
(no venv module, no network). Checks, against METRICS_JSONL (dsgtrain's own numbers):
  train/loss, train/lr at every display row; sparsity/<layer>, bits/<layer> from its "layers";
  test/<output> and cost/train_macs at every test row; for every LAYER/INDEX=COUNT a histogram
  weights/LAYER/INDEX at every test whose num and bucket counts sum to COUNT.
Exit 0 when all pass, 1 otherwise.
"""
import json
import os
import subprocess
import sys

SKIP = 77


def ensure_tensorboard(venv):
    try:
        import tensorboard  # noqa: F401
        return
    except ImportError:
        pass
    python = os.path.join(venv, "bin", "python3")
    if os.environ.get("DSG_TB_VENV") == "1":
        print("SKIP: TensorBoard is not importable in %s" % venv)
        sys.exit(SKIP)
    if not os.path.exists(python) or subprocess.call([python, "-c", "import tensorboard"]) != 0:
        print("installing TensorBoard into %s (python3 -m venv; pip install tensorboard)" % venv, flush=True)
        if subprocess.call([sys.executable, "-m", "venv", venv]) != 0:
            print("SKIP: python3 -m venv failed (apt-get install python3-venv)")
            sys.exit(SKIP)
        if subprocess.call([python, "-m", "pip", "install", "-q", "tensorboard"], timeout=600) != 0:
            print("SKIP: pip install tensorboard failed (no network or PyPI unreachable?)")
            sys.exit(SKIP)
    env = dict(os.environ, DSG_TB_VENV="1")
    os.execve(python, [python] + sys.argv, env)


failures = []


def check(cond, message):
    print(("  ok: " if cond else "FAIL: ") + message, flush=True)
    if not cond:
        failures.append(message)


def close(a, b, rel=2e-5):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def series_matches(acc, tag, want):
    """want: [(step, value)]; the event series of `tag` equals it (float32 vs %.6g: relative 2e-5)."""
    if tag not in acc.Tags()["scalars"]:
        check(False, "scalar %s is in the events" % tag)
        return
    got = [(e.step, e.value) for e in acc.Scalars(tag)]
    ok = len(got) == len(want) and all(g[0] == w[0] and close(g[1], w[1]) for g, w in zip(got, want))
    check(ok, "scalar %s == metrics.jsonl (%d points)%s" % (tag, len(want), "" if ok else ": got %s want %s" %
                                                              (got[:6], want[:6])))


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: tensorboard_check.py EVENTS_DIR METRICS_JSONL VENV_DIR LAYER/INDEX=COUNT...")
    events_dir, metrics, venv = sys.argv[1:4]
    ensure_tensorboard(venv)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [json.loads(l) for l in open(metrics) if l.strip()]
    train = [r for r in rows if r["kind"] == "train"]
    test = [r for r in rows if r["kind"] == "test"]
    acc = EventAccumulator(events_dir, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    print("tags: %s" % acc.Tags(), flush=True)
    series_matches(acc, "train/loss", [(r["iteration"], r["loss"]) for r in train])
    series_matches(acc, "train/lr", [(r["iteration"], r["lr"]) for r in train])
    layers = sorted({name for r in train for name in r.get("layers", {})})
    check(layers != [], "metrics.jsonl train rows report layers (%s)" % layers)
    for layer in layers:
        for key in ("sparsity", "bits"):
            want = [(r["iteration"], r["layers"][layer][key]) for r in train if key in r.get("layers", {}).get(layer, {})]
            if want:
                series_matches(acc, "%s/%s" % (key, layer), want)
    for output in ("accuracy", "loss"):
        series_matches(acc, "test/" + output, [(r["iteration"], r[output]) for r in test])
    series_matches(acc, "cost/train_macs", [(r["iteration"], r["train_macs"]) for r in test if "train_macs" in r])
    for spec in sys.argv[4:]:
        tag, count = "weights/" + spec.split("=")[0], int(spec.split("=")[1])
        if tag not in acc.Tags()["histograms"]:
            check(False, "histogram %s is in the events" % tag)
            continue
        hists = acc.Histograms(tag)
        ok = [h.step for h in hists] == [r["iteration"] for r in test] and all(
            h.histogram_value.num == count and sum(h.histogram_value.bucket) == count and
            h.histogram_value.min <= h.histogram_value.max for h in hists)
        check(ok, "histogram %s at every test (%s) holds %d weights (got %s)" %
              (tag, [r["iteration"] for r in test], count,
               [(h.step, h.histogram_value.num, sum(h.histogram_value.bucket)) for h in hists]))
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
