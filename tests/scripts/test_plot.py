#!/usr/bin/env python3
"""scripts/plot.py on small inputs of every kind it reads: each command writes a PNG, and missing
inputs fail with one line naming what is missing. Exit 77 (skipped) without Debian's matplotlib.

    test_plot.py SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    root = sys.argv[1]
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    if os.path.realpath(sys.executable) != os.path.realpath(python):  # Debian's packages live there
        os.execv(python, [python] + sys.argv)
    if subprocess.run([python, "-c", "import matplotlib, numpy"], capture_output=True).returncode != 0:
        print("SKIPPED test_plot: /usr/bin/python3 lacks matplotlib or numpy (apt-get install python3-matplotlib)")
        return 77
    plot = os.path.join(root, "scripts", "plot.py")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        def path(name):
            return os.path.join(tmp, name)

        with open(path("metrics.jsonl"), "w") as f:
            for it in (100, 200, 300):
                f.write(json.dumps({"kind": "train", "iteration": it, "epoch": it / 100, "loss": 1.0 / it, "lr": 0.01,
                                    "layers": {"ip1": {"sparsity": it / 400, "bits": 32}, "ip2": {"sparsity": it / 500}}})
                        + "\n")
            f.write(json.dumps({"iteration": 300, "epoch": 3, "train_loss": 0.3, "test_loss": 0.35,
                                "accuracy": 0.9}) + "\n")
        with open(path("old.jsonl"), "w") as f:  # test rows only (older dsgtrain)
            f.write(json.dumps({"iteration": 300, "epoch": 3, "train_loss": 0.3, "test_loss": 0.35, "accuracy": 0.9}) + "\n")
        cost = {"macs": 10, "weight_words": 50.0, "index_words": 20.0, "activation_words": 5.0,
                "weights_in_dram": False, "energy_pj": 1.0}
        dense = dict(cost, weight_words=1000.0, index_words=0.0)
        with open(path("eval.json"), "w") as f:
            json.dump({"model": "m.dsgz", "top1": 0.9, "confusion": [[5, 1], [2, 7]],
                       "cost": {"layers": [{"name": "ip1", "dense": dense, "compressed": cost}]},
                       "sensitivity": {"granularity": "element", "base_accuracy": 0.9, "max_loss_points": 0.5,
                                       "levels": [0.5, 0.9], "layers": [{"name": "ip1", "accuracy": [0.899, 0.8],
                                                                         "suggested_sparsity": 0.5}]}}, f)
        with open(path("sens.csv"), "w") as f:
            f.write("layer,granularity,sparsity,accuracy,accuracy_drop\nip1,element,0.5,0.899,0.001\n"
                    "ip1,element,0.9,0.800,0.100\n")
        with open(path("bare.json"), "w") as f:
            json.dump({"model": "m"}, f)
        import numpy as np
        np.savez(path("after.npz"), **{"ip1.weight": np.array([[0, 0.5], [-0.5, 0]], np.float32),
                                       "ip1.codebook": np.array([-0.5, 0.5], np.float32)})
        np.savez(path("before.npz"), **{"ip1.weight": np.array([[0.1, 0.5], [-0.5, 0.2]], np.float32)})
        good = [["curves", path("metrics.jsonl"), path("old.jsonl")], ["sparsity", path("metrics.jsonl")],
                ["histogram", path("after.npz"), "--before", path("before.npz")], ["compression", path("eval.json")],
                ["sensitivity", path("eval.json")], ["sensitivity", path("sens.csv")], ["confusion", path("eval.json")]]
        for args in good:
            out = path(args[0] + ".png")
            r = subprocess.run([python, plot] + args + ["-o", out], capture_output=True, text=True)
            with open(out, "rb") if os.path.exists(out) else open(os.devnull, "rb") as f:
                magic = f.read(8)
            if r.returncode != 0 or magic != b"\x89PNG\r\n\x1a\n":
                failures.append("%s: exit %d, %s" % (args[0], r.returncode, r.stderr.strip()))
        bad = [(["sparsity", path("old.jsonl")], "no per-layer sparsity"),
               (["compression", path("bare.json")], "no \"cost\" section"),
               (["sensitivity", path("bare.json")], "no \"sensitivity\" section"),
               (["confusion", path("bare.json")], "no \"confusion\" matrix"),
               (["histogram", path("after.npz"), "--layer", "nope"], "has no nope.weight"),
               (["curves", path("missing.jsonl")], "cannot read")]
        for args, expected in bad:
            r = subprocess.run([python, plot] + args + ["-o", path("x.png")], capture_output=True, text=True)
            if r.returncode == 0 or expected not in r.stderr or not r.stderr.startswith("plot.py: error:"):
                failures.append("%s should fail with '%s': exit %d, %s" % (args[0], expected, r.returncode, r.stderr))
    for f in failures:
        print("FAILED " + f)
    print("test_plot: %d of %d checks passed" % (len(good) + len(bad) - len(failures), len(good) + len(bad)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
