#!/usr/bin/env python3
"""Reads a dsgtrain log as Caffe's two log parsers do and checks their tables; python3 stdlib only.

    caffe_log_check.py LOG METRICS_JSONL

BVLC Caffe ships tools/extra/parse_log.sh (sed/grep/awk) and tools/extra/parse_log.py (regular
expressions); users point them at training logs. Their logic is re-implemented here step by step
(each step names the command it stands for) and the tables they would build from LOG are compared
with dsgtrain's own numbers in METRICS_JSONL (the "train" rows per display interval and the
"test" rows per test):
  parse_log.sh  LOG.test  '#Iters Seconds TestAccuracy TestLoss'  (test outputs #0 and #1)
                LOG.train '#Iters Seconds TrainingLoss LearningRate'
  parse_log.py  train rows (NumIters, Seconds, LearningRate, <train outputs>) and test rows
                (NumIters, Seconds, LearningRate, <test outputs>)
Also: every log line holding "Iteration " has one of Caffe's forms ("Iteration N, Testing net (#0)",
"Iteration N, loss = X", "Iteration N, lr = X"), since parse_log.sh counts any other such line
after the first test as a test. Prints one line per check; exits 0 when all pass, 1 otherwise.
"""
import datetime
import itertools
import json
import math
import re
import sys

failures = []


def check(cond, message):
    print(("  ok: " if cond else "FAIL: ") + message, flush=True)
    if not cond:
        failures.append(message)


def close(a, b, rel=2e-5):
    """a and b are numbers within `rel` (%g prints 6 digits); False when a is not a number (a table
    column holding '0.5s/100', as parse_log.sh makes of "Iteration N (... iter/s, ...), loss")."""
    try:
        a, b = float(a), float(b)
    except ValueError:
        return False
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


# --- parse_log.sh ----------------------------------------------------------------------------
def sed_range(lines, start, end):
    """sed -n '/start/,/end/p': from a line matching start through the next line matching end."""
    out, inside = [], False
    for line in lines:
        if not inside:
            if re.search(start, line):
                inside = True
                out.append(line)
        else:
            out.append(line)
            if re.search(end, line):
                inside = False
    return out


def awk_field(line, n):
    """awk '{print $n}': whitespace-separated fields, 1-based; '' when there are fewer."""
    fields = line.split()
    return fields[n - 1] if len(fields) >= n else ""


def glog_time(line, year=2000):
    """extract_seconds.py's extract_datetime_from_line: 'Immdd hh:mm:ss.uuuuuu ...'."""
    f = line.strip().split()
    month, day = int(f[0][1:3]), int(f[0][3:])
    stamp = f[1]
    pos = stamp.rfind(".")
    h, m, s = [int(x) for x in stamp[:pos].split(":")]
    return datetime.datetime(year, month, day, h, m, s, int(stamp[pos + 1:]))


def extract_seconds(lines):
    """extract_seconds.py: seconds since the first 'Solving' line, for each line with 'Iteration'."""
    start = next(glog_time(l) for l in lines if "Solving" in l)
    return ["%f" % (glog_time(l) - start).total_seconds() for l in lines if "Iteration" in l]


def iteration_numbers(lines):
    """grep 'Iteration ' | sed 's/.*Iteration \\([[:digit:]]*\\).*/\\1/g'."""
    return [re.sub(r".*Iteration ([0-9]*).*", r"\1", l) for l in lines if "Iteration " in l]


def paste(*columns):
    return [tuple(row) for row in itertools.zip_longest(*columns, fillvalue="")]


def parse_log_sh(lines):
    aux = sed_range(lines, r"Iteration .* Testing net", r"Iteration *. loss")
    for pattern in (r"Waiting for data", r"prefetch queue empty", r"Iteration .* loss", r"Iteration .* lr",
                    r"Train net"):
        aux = [l for l in aux if not re.search(pattern, l)]  # sed -i '/pattern/d'
    iters = iteration_numbers(aux)
    acc = [awk_field(l, 11) for l in aux if "Test net output #0" in l]
    loss = [awk_field(l, 11) for l in aux if "Test net output #1" in l]
    aux3 = [l for l in lines if "] Solving " in l] + [l for l in lines if "Testing net" in l]
    test = paste(iters, extract_seconds(aux3), acc, loss)

    aux = [l for l in lines if "] Solving " in l] + [l for l in lines if ", loss = " in l]
    iters = iteration_numbers(aux)
    train_loss = [awk_field(l, 9) for l in lines if ", loss = " in l]
    lr = [awk_field(l, 9) for l in lines if ", lr = " in l]
    train = paste(iters, extract_seconds(aux), train_loss, lr)
    return test, train


# --- parse_log.py ----------------------------------------------------------------------------
def parse_log_py(lines):
    regex_iteration = re.compile(r"Iteration (\d+)")
    regex_train_output = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
    regex_test_output = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
    regex_learning_rate = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")
    it = iter(lines)
    start = None
    for line in it:  # get_start_time consumes the lines up to the first 'Solving'
        if "Solving" in line:
            start = glog_time(line)
            break
    check(start is not None, "parse_log.py: a 'Solving' line gives the start time")
    iteration, lr = -1, float("nan")
    tables = {"train": [], "test": []}
    rows = {"train": None, "test": None}

    def add_output(kind, regex, line, seconds):
        match = regex.search(line)
        row, table = rows[kind], tables[kind]
        if match:
            if not row or row["NumIters"] != iteration:
                if row:
                    table.append(row)
                row = {"NumIters": iteration, "Seconds": seconds, "LearningRate": lr}
            row[match.group(2)] = float(match.group(3))
        if row and len(table) >= 1 and len(row) == len(table[0]):
            table.append(row)
            row = None
        rows[kind] = row

    for line in it:
        m = regex_iteration.search(line)
        if m:
            iteration = float(m.group(1))
        if iteration == -1:
            continue
        try:
            seconds = (glog_time(line) - start).total_seconds()
        except (ValueError, IndexError):  # parse_log.py stops with "Unexpected error when parsing line"
            check(False, "parse_log.py: every line after the first iteration is in glog format: %r" % line)
            continue
        m = regex_learning_rate.search(line)
        if m:
            lr = float(m.group(1))
        add_output("train", regex_train_output, line, seconds)
        add_output("test", regex_test_output, line, seconds)
    for table in tables.values():  # fix_initial_nan_learning_rate
        if len(table) > 1:
            table[0]["LearningRate"] = table[1]["LearningRate"]
    return tables["train"], tables["test"]


# --- the checks ------------------------------------------------------------------------------
def main():
    if len(sys.argv) != 3:
        sys.exit("usage: caffe_log_check.py LOG METRICS_JSONL")
    lines = open(sys.argv[1], errors="replace").read().splitlines()
    rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    train = [r for r in rows if r.get("kind") == "train"]
    test = [r for r in rows if r.get("kind") == "test"]
    check(len(train) >= 2 and len(test) >= 2, "metrics.jsonl has train rows (%d) and test rows (%d)" %
          (len(train), len(test)))
    check(len(train) + len(test) == len(rows), "every metrics.jsonl row has kind train or test")

    check(any("] Solving " in l for l in lines), "the log has the '] Solving ' line (the parsers' start time)")
    if failures:
        return 1
    caffe_forms = re.compile(r"\] Iteration \d+, (Testing net \(#\d+\)|loss = \S+|lr = \S+)$")
    odd = [l for l in lines if "Iteration " in l and not caffe_forms.search(l)]
    check(not odd, "every line holding 'Iteration ' has one of Caffe's forms%s" %
          ("; not: " + " | ".join(odd[:3]) if odd else ""))

    sh_test, sh_train = parse_log_sh(lines)
    want = [(str(r["iteration"]), r["accuracy"], r["loss"]) for r in test]
    got_ok = len(sh_test) == len(want) and all(
        g[0] == w[0] and g[2] != "" and close(g[2], w[1]) and g[3] != "" and close(g[3], w[2])
        for g, w in zip(sh_test, want))
    check(got_ok, "parse_log.sh test table (#Iters, TestAccuracy, TestLoss) == metrics.jsonl test rows:\n%s\n  want %s" %
          ("\n".join("    " + " ".join(r) for r in sh_test), want))
    check(all(s and float(s) >= 0 for _, s, _, _ in sh_test), "parse_log.sh test table: Seconds filled")
    want = [(str(r["iteration"]), r["loss"], r["lr"]) for r in train]
    got_ok = len(sh_train) == len(want) and all(
        g[0] == w[0] and g[2] != "" and close(g[2], w[1]) and g[3] != "" and close(g[3], w[2])
        for g, w in zip(sh_train, want))
    check(got_ok, "parse_log.sh train table (#Iters, TrainingLoss, LearningRate) == metrics.jsonl train rows:\n%s\n  want %s" %
          ("\n".join("    " + " ".join(r) for r in sh_train), want))
    check(all(s and float(s) >= 0 for _, s, _, _ in sh_train), "parse_log.sh train table: Seconds filled")

    py_train, py_test = parse_log_py(lines)
    check([int(r["NumIters"]) for r in py_train] == [r["iteration"] for r in train],
          "parse_log.py train rows: NumIters == metrics.jsonl train iterations (%s)" %
          [int(r["NumIters"]) for r in py_train])
    # dsgtrain logs "lr = " before the train outputs, so each row gets its own rate; parse_log.py
    # then overwrites the first row's with the second's (fix_initial_nan_learning_rate).
    want_lr = [m["lr"] for m in train[1:2]] + [m["lr"] for m in train[1:]]
    check(len(py_train) == len(train) and all(close(p["LearningRate"], w) for p, w in zip(py_train, want_lr)),
          "parse_log.py train rows: LearningRate == metrics.jsonl lr (%s)" % [p["LearningRate"] for p in py_train])
    check(all("loss" in p and math.isfinite(p["loss"]) for p in py_train), "parse_log.py train rows: a loss column")
    check([int(r["NumIters"]) for r in py_test] == [r["iteration"] for r in test],
          "parse_log.py test rows: NumIters == metrics.jsonl test iterations (%s)" %
          [int(r["NumIters"]) for r in py_test])
    check(len(py_test) == len(test) and all(close(p.get("accuracy", -1), m["accuracy"]) and
                                            close(p.get("loss", -1), m["loss"]) for p, m in zip(py_test, test)),
          "parse_log.py test rows: accuracy and loss == metrics.jsonl test rows")
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
