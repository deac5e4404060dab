#!/usr/bin/python3
"""Exploratory probe for the Dynamic Sparse Graph issue (#6), not a benchmark: how much of the
exact per-sample top-k of a trained fully connected layer does DSG's dimension-reduction search
(sparse random projection, entries +-sqrt(3) w.p. 1/6, 0 w.p. 2/3, k from the JL bound for
m + n points) recover? Reads the layer from an ONNX export of a DSG model:

    build/dsgcompress out/lenet300_100/lenet300_100_iter_4690.dsgmodel --format onnx -o l300.onnx
    /usr/bin/python3 scripts/drs_recovery_probe.py l300.onnx ip1/weight
"""
import gzip
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def read_idx(path):
    data = gzip.open(path).read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    model, name = sys.argv[1], sys.argv[2]
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(model).graph.initializer}
    w = weights[name]
    if w.shape[1] != 784:
        sys.exit("the probe feeds Fashion-MNIST images: pick the first fully connected layer (784 inputs)")
    images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")[:64]
    x = (images.reshape(64, -1).astype(np.float32) - 72.94) * 0.01111
    y = x @ w.T
    rng = np.random.default_rng(0)
    print("epsilon  k  keep  recovered fraction of the exact top-k (mean over 64 samples)")
    for eps in (0.3, 0.5, 0.7):
        k = int(np.ceil(4 * np.log(x.shape[0] + w.shape[0]) / (eps ** 2 / 2 - eps ** 3 / 3)))
        r = rng.choice([np.sqrt(3), 0.0, -np.sqrt(3)], size=(k, x.shape[1]), p=[1 / 6, 2 / 3, 1 / 6])
        est = (x @ r.T) @ (w @ r.T).T / k
        for keep in (w.shape[0] // 2, w.shape[0] // 5, w.shape[0] // 10):
            rec = np.mean([len(set(np.argsort(-y[i])[:keep]) & set(np.argsort(-est[i])[:keep])) / keep
                           for i in range(x.shape[0])])
            print(f"{eps:7.1f} {k:4d} {keep:5d}  {rec:.3f}")


if __name__ == "__main__":
    main()
