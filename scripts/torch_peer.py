#!/usr/bin/python3
"""PyTorch peer for DSG's benchmarks: trains the same model as a DSG config on Fashion-MNIST
(same batch, same solver: SGD lr 0.01 momentum 0.9 weight decay 5e-4 for the LeNets, Adam lr 0.002
for lstm_rows; same thread count) and prints one JSON line with the training throughput (data
already in memory, as in dsgtrain), test accuracy and the FLOPs of one training step.

    /usr/bin/python3 scripts/torch_peer.py --model lenet5 --threads 1 --iterations 938
    /usr/bin/python3 scripts/torch_peer.py --model lstm_rows --threads 1 --iterations 938
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class LeNet300100(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.ip1, self.ip2, self.ip3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)
        self.p = dropout  # Bernoulli dropout after both hidden layers (as configs/lenet300_100_dropout)

    def forward(self, x):
        x = x.flatten(1)
        h1 = F.dropout(F.relu(self.ip1(x)), self.p, self.training)
        h2 = F.dropout(F.relu(self.ip2(h1)), self.p, self.training)
        return self.ip3(h2)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5)
        self.ip1, self.ip2 = nn.Linear(800, 500), nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        return self.ip2(F.relu(self.ip1(x.flatten(1))))


class LSTMRows(nn.Module):
    """configs/lstm_rows.prototxt: the image's 28 rows are 28 steps of 28 features; an LSTM with
    128 hidden units runs over them and its last hidden state goes to a 10-way classifier. Same
    initialisation as the config: LSTM weights uniform +-1/sqrt(128), biases 0; classifier weights
    Caffe's xavier (uniform +-sqrt(3 / fan_in)), bias 0."""

    def __init__(self):
        super().__init__()
        self.lstm, self.ip = nn.LSTM(28, 128), nn.Linear(128, 10)
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("weight"):
                    p.uniform_(-0.0884, 0.0884)
                else:
                    p.zero_()
            self.ip.weight.uniform_(-(3 / 128) ** 0.5, (3 / 128) ** 0.5)
            self.ip.bias.zero_()

    def forward(self, x):
        seq = x.flatten(1, 2).transpose(0, 1)  # [N, 1, 28, 28] -> [28 steps, N, 28 features]
        h, _ = self.lstm(seq)
        return self.ip(h[-1])


def train_step_flops(model_name):
    """FLOPs of forward + backward (data and weight gradients) per image for the GEMM layers;
    the first layer computes no gradient for its input."""
    if model_name == "lstm_rows":
        # Input projection 28 -> 512 gates (forward, weight gradient), recurrent 128 -> 512 gates
        # (forward, weight and hidden gradients) over 28 steps, classifier 128 -> 10 (all three).
        return 2 * (28 * 512 * 28 * 2 + 28 * 512 * 128 * 3 + 128 * 10 * 3)
    if model_name == "lenet300_100":
        macs = [784 * 300, 300 * 100, 100 * 10]
    else:
        macs = [20 * 25 * 24 * 24, 50 * 500 * 8 * 8, 800 * 500, 500 * 10]
    total = 0
    for i, m in enumerate(macs):
        total += 2 * m * (2 if i == 0 else 3)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["lenet300_100", "lenet5", "lstm_rows"], required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=938)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0, help="lenet300_100: dropout rate after ip1 and ip2")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    # Same input transform as the DSG configs: (pixel - 72.94) * 0.01111 (mean 0.286, std 0.353).
    norm = lambda a: (a.astype(np.float32) - 72.94) * 0.01111
    x = torch.from_numpy(norm(read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))))
    y = torch.from_numpy(read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    xt = torch.from_numpy(norm(read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))))
    yt = torch.from_numpy(read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    x, xt = x.unsqueeze(1), xt.unsqueeze(1)

    if args.model == "lstm_rows":
        model = LSTMRows()
        opt = torch.optim.Adam(model.parameters(), lr=0.002, betas=(0.9, 0.999), eps=1e-8)
    else:
        model = LeNet300100(args.dropout) if args.model == "lenet300_100" else LeNet5()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    n = x.shape[0]
    order = torch.randperm(n)
    pos = 0
    start = time.perf_counter()
    for it in range(args.iterations):
        if pos + args.batch > n:
            order, pos = torch.randperm(n), 0
        idx = order[pos:pos + args.batch]
        pos += args.batch
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    ips = args.iterations * args.batch / elapsed
    print(json.dumps({"model": args.model, "threads": args.threads, "batch": args.batch, "dropout": args.dropout,
                      "iterations": args.iterations, "images_per_sec": ips, "accuracy": acc,
                      "train_step_flops_per_image": train_step_flops(args.model)}))


if __name__ == "__main__":
    main()
