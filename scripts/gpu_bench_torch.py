#!/usr/bin/env python3
"""PyTorch side of scripts/gpu_bench.sh: trains the peer models of scripts/torch_peer.py (LeNet-300-100,
LeNet-5, lstm_rows: same layers, same solvers) on Fashion-MNIST on one device, eager and under
torch.compile, at each batch size given, and prints one JSON line per (mode, batch):

    {"model": ..., "mode": "eager"|"compile", "batch": B, "device": ..., "warmup": W,
     "iterations": N, "images_per_sec": ..., "seconds": ..., "error": null|"..."}

Timing: W warm-up iterations (the compilation, cuDNN/cuBLAS set-up and the allocator's first
allocations happen there), then the device is synchronised and N iterations are timed, ending with a
synchronisation. The training set sits on the device already (uploaded once, before any timing),
and each batch is gathered there from a random permutation: the peer pays no host-to-device copy,
so the comparison is conservative for dsgtrain, which copies each batch from host memory.
Precision: float32 everywhere, TF32 off for matmuls and cuDNN convolutions (DSG computes in fp32;
--tf32 allows it); cudnn.benchmark is on (fixed shapes: the fastest convolution algorithms, chosen
during the warm-up).

    python3 scripts/gpu_bench_torch.py --model lenet5 --device cuda --batches 64,256 \
        --warmup 20 --iterations 200 --data DIR
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import LeNet300100, LeNet5, LSTMRows, read_idx  # noqa: E402  (the same peer models)


def make_model(name, device):
    model = {"lenet300_100": LeNet300100, "lenet5": LeNet5, "lstm_rows": LSTMRows}[name]().to(device)
    if name == "lstm_rows":
        opt = torch.optim.Adam(model.parameters(), lr=0.002, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return model, opt


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args, x, y, mode, batch, device):
    torch.manual_seed(args.seed)
    model, opt = make_model(args.model, device)
    forward = model
    if mode == "compile":
        if not hasattr(torch, "compile"):
            raise RuntimeError("torch %s has no torch.compile" % torch.__version__)
        forward = torch.compile(model)

    def loss_of(xb, yb):
        return F.cross_entropy(forward(xb), yb)

    n = x.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    order = torch.randperm(n, generator=gen).to(device)
    pos = 0

    def step():
        nonlocal order, pos
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen).to(device), 0
        idx = order[pos:pos + batch]
        pos += batch
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x[idx], y[idx])
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.iterations):
        loss = step()
    sync(device)
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss).item():
        raise RuntimeError("loss is not finite")
    return seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["lenet300_100", "lenet5", "lstm_rows"], required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmuls and convolutions")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # Same input transform as the DSG configs: (pixel - 72.94) * 0.01111.
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    x = ((torch.from_numpy(images.copy()).float() - 72.94) * 0.01111).unsqueeze(1).to(device)
    y = torch.from_numpy(labels.astype("int64")).to(device)
    sync(device)

    for mode in args.modes.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            row = {"model": args.model, "mode": mode, "batch": batch, "device": str(device),
                   "torch": torch.__version__, "tf32": args.tf32, "warmup": args.warmup, "iterations": args.iterations,
                   "images_per_sec": None, "seconds": None, "error": None}
            try:
                seconds = run(args, x, y, mode, batch, device)
                row["seconds"] = seconds
                row["images_per_sec"] = args.iterations * batch / seconds
            except Exception as e:  # noqa: BLE001  (one failed mode must not hide the others)
                msg = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
                row["error"] = msg[:200]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
