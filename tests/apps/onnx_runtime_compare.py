#!/usr/bin/env python3
"""Runs two ONNX models with onnxruntime on the same random input and compares their outputs
(tests/apps/test_onnx_runtime.cpp).

usage: onnx_runtime_compare.py REFERENCE.onnx OTHER.onnx [--raw-other --scale S [--mean M,...]]
                               [--tolerance T]

REFERENCE takes transformed values. With --raw-other, OTHER takes raw pixel values x (it was
exported with dsgcompress --onnx-normalize) and REFERENCE gets (x - mean) * scale, Caffe's
transform. Prints "max_abs_diff D" and exits 0 when every output agrees within T, 1 otherwise,
77 when onnxruntime cannot be imported.
"""
import argparse
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the C++ test reports the skip
    print("onnxruntime unavailable: %s" % e)
    sys.exit(77)


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("other")
    ap.add_argument("--raw-other", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--mean", default="")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=5)
    args = ap.parse_args()

    ref, other = session(args.reference), session(args.other)
    (ref_in,) = ref.get_inputs()
    (other_in,) = other.get_inputs()
    shape = [args.batch if not isinstance(d, int) else d for d in ref_in.shape]
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, size=shape).astype(np.float32)
    if args.raw_other:
        mean = np.array([float(v) for v in args.mean.split(",") if v], dtype=np.float32)
        if mean.size > 1:
            mean = mean.reshape([-1] + [1] * (raw.ndim - 2))
        transformed = ((raw - mean) if mean.size else raw) * np.float32(args.scale)
        ref_feed, other_feed = transformed.astype(np.float32), raw
    else:
        ref_feed = other_feed = raw * np.float32(args.scale)
    want = ref.run(None, {ref_in.name: ref_feed})
    got = other.run(None, {other_in.name: other_feed})
    if len(want) != len(got):
        print("output counts differ: %d vs %d" % (len(want), len(got)))
        return 1
    worst = 0.0
    for w, g in zip(want, got):
        if w.shape != g.shape:
            print("output shapes differ: %s vs %s" % (w.shape, g.shape))
            return 1
        worst = max(worst, float(np.max(np.abs(w - g))) if w.size else 0.0)
    spread = max(float(np.max(np.abs(w))) for w in want)
    print("max_abs_diff %.3g (largest output %.3g)" % (worst, spread))
    return 0 if worst <= args.tolerance and spread > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
