#!/usr/bin/env python3
"""End-to-end tests of data-parallel training (issue #14) under mpirun; python3 stdlib only.

    run_mpi_test.py SUBCOMMAND --dsgtrain PATH --dsgeval PATH --mpi-built ON|OFF

SUBCOMMAND is one CTest test each (CMakeLists.txt):
  equivalence      2 ranks x batch 32 == 1 rank x batch 64 (losses, accuracy; replicas bitwise equal)
  sparsity_resume  prune + quantize schedule and DGC under 2 ranks; resume from a mid-run snapshot
                   gives the same final snapshot as the uninterrupted run
  tcp              2 ranks over TCP on loopback (== shared memory), and in two network namespaces
  fault            a killed rank and a stopped rank end the job (no hang); snapshots stay loadable
Exit status: 0 pass, 1 fail, 77 skipped (no mpirun, or dsgtrain built without MPI).
Configs: tests/data/mpi/ (LeNet-300-100 on Fashion-MNIST, /usr/share/datasets/fashion-mnist).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "data", "mpi")
SKIP = 77
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe"]
# Shared memory and TCP on this host only (no network probing of other interfaces).
BTL_TCP = ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"]
LOSS_RE = re.compile(r"Iteration (\d+), loss = (\S+)")
ACC_RE = re.compile(r"Test net output #\d+: accuracy = (\S+)")


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)
    print("  ok: " + message, flush=True)


def config(name):
    return os.path.abspath(os.path.join(CONFIGS, name))


def run(cmd, timeout=120, env=None):
    """Runs cmd, returns (status, stdout+stderr). A timeout is a failure (the job hung)."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, env=env,
                           text=True, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode() if isinstance(e.output, bytes) else (e.output or "")
        print(out[-4000:])
        raise Failure("%s did not finish within %d s" % (cmd[0], timeout))
    print("  (exit %d after %.1f s)" % (p.returncode, time.time() - start), flush=True)
    return p.returncode, p.stdout


def must_succeed(cmd, timeout=120, env=None):
    status, out = run(cmd, timeout, env)
    if status != 0:
        print(out[-6000:])
        raise Failure("%s exited with %d" % (" ".join(cmd[:3]), status))
    return out


def train(args, cfg, out_dir, ranks, extra=(), mpi_extra=(), timeout=120):
    cmd = [args.dsgtrain, config(cfg), "--threads", "1", "--seed", "1", "--output", out_dir] + list(extra)
    if ranks > 1:
        cmd = MPIRUN + list(mpi_extra) + ["-np", str(ranks)] + cmd
    return must_succeed(cmd, timeout)


def losses(log):
    """{iteration: loss} from the display lines (display: 1, average_loss: 1 in the configs)."""
    found = {int(m.group(1)): float(m.group(2)) for m in LOSS_RE.finditer(log)}
    if not found:
        print(log[-4000:])
        raise Failure("no 'Iteration N, loss = L' lines in the log")
    return found


def accuracy(log):
    found = [float(a) for a in ACC_RE.findall(log)]
    if not found:
        raise Failure("no 'Test net output #0: accuracy = A' line in the log")
    return found[-1]


def max_loss_drift(a, b):
    common = sorted(set(a) & set(b))
    check(len(common) == len(a) == len(b), "both runs log the same %d iterations" % len(common))
    worst = max(common, key=lambda i: abs(a[i] - b[i]))
    return abs(a[worst] - b[worst]), worst


def weights_bytes(path):
    """A .dsgmodel: a 24-byte header (magic, version, size, CRC) + the ModelFile protobuf. Both are
    compared: equal training state gives equal bytes (protobuf serialisation is deterministic for
    equal messages)."""
    with open(path, "rb") as f:
        return f.read()


def snapshot(out_dir, prefix, it):
    return os.path.join(out_dir, "%s_iter_%d.dsgmodel" % (prefix, it))


# ---------------------------------------------------------------------------------------------
def test_equivalence(args, tmp):
    # The same config (batch_size 64 = the global batch) in one process and over 2 ranks of 32.
    one = train(args, "mlp_dense.prototxt", os.path.join(tmp, "r1"), 1)
    two = train(args, "mlp_dense.prototxt", os.path.join(tmp, "r2"), 2, ["--check-replicas", "1"])
    check("2 ranks" in two, "the 2-rank run says it trains over 2 ranks")
    l1, l2 = losses(one), losses(two)
    check(len(l1) == 200, "200 per-iteration losses logged (got %d)" % len(l1))
    drift, at = max_loss_drift(l1, l2)
    rel = {i: abs(l1[i] - l2[i]) / max(abs(l1[i]), 1e-3) for i in l1}
    first = min([i for i in rel if rel[i] > 0] or [len(l1)])
    early = max(rel[i] for i in range(60))
    late = max(rel.values())
    mean1, mean2 = (sum(l[i] for i in range(100, 200)) / 100 for l in (l1, l2))
    print("  measured: first differing printed loss at iteration %d; max relative difference %.3g over "
          "iterations 0-59, %.3g over all (max |diff| %.3g at %d); mean loss of 100-199: %.6f vs %.6f"
          % (first, early, late, drift, at, mean1, mean2))
    # Why these bounds. Both runs see the same samples in the same order with the same initial
    # weights; the 2-rank mean gradient is (sum of 32 + sum of 32) / 2 instead of a sum of 64, a
    # different summation order: relative rounding differences of ~1e-7 per entry per step. SGD
    # amplifies such differences exponentially (chaotic training), so they stay invisible in the
    # 6 printed digits for a while and then grow to the size of the batch-to-batch noise: measured
    # (Release, 2 cores) first difference at iteration 39, relative 1.1e-6 up to iteration 80,
    # 1e-3 at 90, 1-3% over 100-199 (saturated), means over 100-199 within 4e-4.
    # - iterations 0-59: 1e-4 relative (~100x the measured 1e-6). A real error (a wrong shard,
    #   no division by the rank count, a lost gradient) changes the loss by > 1e-2 from iteration
    #   1 or 2 on, so this window is what catches it.
    # - every iteration: 10% relative (3x the measured saturated 3%): no divergence.
    # - the mean loss over iterations 100-199 (100 batches average the per-batch noise): 1%
    #   relative (25x the measured 4e-4); doubled steps or half the data would shift it by more.
    check(l1[0] == l2[0], "iteration 0 losses are equal (same samples, same weights)")
    check(early <= 1e-4, "losses of iterations 0-59 agree within 1e-4 relative (measured %.3g)" % early)
    check(late <= 0.10, "losses of all 200 iterations agree within 10%% relative (measured %.3g)" % late)
    check(abs(mean1 - mean2) <= 0.01 * mean1, "mean loss over iterations 100-199 within 1% relative")
    a1, a2 = accuracy(one), accuracy(two)
    print("  measured: test accuracy 1 rank %.4f, 2 ranks %.4f" % (a1, a2))
    # 1000 test images: one image is 0.001; the weights differ by the drift above, so at most a
    # handful of borderline images flip.
    check(abs(a1 - a2) <= 0.01, "final test accuracy within 0.01 (1000 test images)")


def test_sparsity_resume(args, tmp):
    for cfg, prefix in (("mlp_compress.prototxt", "mlp_compress"), ("mlp_dgc.prototxt", "mlp_dgc")):
        full, resumed = os.path.join(tmp, prefix + "_full"), os.path.join(tmp, prefix + "_resumed")
        log = train(args, cfg, full, 2, ["--check-replicas", "1"])
        if prefix == "mlp_compress":
            # The schedule's structure changes (prune at 15, 25; quantize at 40) happened under
            # the replica check (every iteration) and the snapshots' fingerprint check.
            check("Sparsity ip1 (magnitude FINE): fired 2 times, sparsity 90.00%" in log,
                  "ip1 was pruned twice, to 90%")
            check(re.search(r"Quantization ip1: k-means 5 bits, \d+ of 31 shared values in use", log) is not None,
                  "ip1 is quantized (5-bit codebook)")
        else:
            check("gradient exchange: DGC (99% sparse" in log, "the 2-rank run uses the DGC exchange")
            check(re.search(r"bytes sent per rank and iteration \(dense: \d+, [\d.]+x less\)", log) is not None,
                  "DGC reports its byte savings")
        for it in (10, 30, 60):
            check(os.path.exists(snapshot(full, prefix, it)), "%s: snapshot at iteration %d written" % (prefix, it))
        # Resume from 30 (after pruning, before quantization) and run to the end.
        log2 = train(args, cfg, resumed, 2, ["--check-replicas", "1", "--resume", snapshot(full, prefix, 30)])
        a, b = snapshot(full, prefix, 60), snapshot(resumed, prefix, 60)
        check(os.path.exists(b), "%s: the resumed run wrote its final snapshot" % prefix)
        la, lb = losses(log), losses(log2)
        same = [i for i in lb if i in la and la[i] == lb[i]]
        check(len(same) == len(lb) and len(lb) >= 29,
              "%s: the resumed run's %d losses equal the uninterrupted run's bitwise" % (prefix, len(lb)))
        check(weights_bytes(a) != weights_bytes(snapshot(full, prefix, 30)),
              "%s: the weights changed between iterations 30 and 60 (the comparison below means something)" % prefix)
        check(weights_bytes(a) == weights_bytes(b),
              "%s: final snapshot of the resumed run is byte-identical to the uninterrupted run's" % prefix)


# ---------------------------------------------------------------------------------------------
NETNS = ("dsgmpi0", "dsgmpi1")
NS_ADDR = ("10.231.14.1", "10.231.14.2")


def netns_cleanup():
    for ns in NETNS:
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def netns_setup(tmp):
    """Two namespaces joined by a veth pair. Returns an error string, or None."""
    if shutil.which("ip") is None:
        return "no 'ip' command"
    netns_cleanup()
    steps = [["ip", "netns", "add", NETNS[0]], ["ip", "netns", "add", NETNS[1]],
             ["ip", "link", "add", "dsgveth0", "type", "veth", "peer", "name", "dsgveth1"],
             ["ip", "link", "set", "dsgveth0", "netns", NETNS[0]], ["ip", "link", "set", "dsgveth1", "netns", NETNS[1]]]
    for i, ns in enumerate(NETNS):
        steps += [["ip", "-n", ns, "addr", "add", NS_ADDR[i] + "/24", "dev", "dsgveth%d" % i],
                  ["ip", "-n", ns, "link", "set", "dsgveth%d" % i, "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]]
    for s in steps:
        p = subprocess.run(s, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            return "'%s' failed: %s" % (" ".join(s), p.stdout.strip())
    return None


def test_tcp(args, tmp):
    shm = train(args, "mlp_dense.prototxt", os.path.join(tmp, "shm"), 2, ["--iterations", "30"])
    tcp = train(args, "mlp_dense.prototxt", os.path.join(tmp, "tcp"), 2, ["--iterations", "30"], BTL_TCP)
    ls, lt = losses(shm), losses(tcp)
    # The transport moves bytes; the reduction order is MPI's and the same for both: bitwise equal.
    check(ls == lt, "30 losses over TCP (loopback) equal the shared-memory run's bitwise")
    # Two network namespaces: rank 0 in dsgmpi0, rank 1 in dsgmpi1, talking over a veth pair.
    try:
        why = netns_setup(tmp)
        if why:
            print("SKIPPED part: two network namespaces (%s); the loopback TCP part passed" % why, flush=True)
            return
        # mpirun (in dsgmpi0) starts the remote orted through an "rsh agent" that enters dsgmpi1.
        agent, agent_log = os.path.join(tmp, "ns_rsh.sh"), os.path.join(tmp, "ns_rsh.log")
        with open(agent, "w") as f:
            f.write("#!/bin/sh\n# mpirun's rsh agent: HOST CMD... -> run CMD in the namespace of HOST\n"
                    "host=$1; shift\ncase $host in %s) ns=%s;; *) ns=%s;; esac\n"
                    "echo \"$host $ns\" >> %s\n"
                    "exec ip netns exec $ns sh -c \"$*\"\n" % (NS_ADDR[1], NETNS[1], NETNS[0], agent_log))
        os.chmod(agent, 0o755)
        hostfile = os.path.join(tmp, "hosts")
        with open(hostfile, "w") as f:
            f.write("%s slots=1\n%s slots=1\n" % NS_ADDR)
        cmd = (["ip", "netns", "exec", NETNS[0]] + MPIRUN +
               ["--mca", "plm_rsh_agent", agent, "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include",
                "10.231.14.0/24", "--mca", "oob_tcp_if_include", "10.231.14.0/24", "--hostfile", hostfile,
                "-x", "PATH", "-x", "LD_LIBRARY_PATH", "-np", "2", args.dsgtrain, config("mlp_dense.prototxt"),
                "--threads", "1", "--seed", "1", "--iterations", "30", "--output", os.path.join(tmp, "ns")])
        status, out = run(cmd, timeout=120)
        if status != 0:
            print(out[-6000:])
        check(status == 0, "the 2-rank run across two network namespaces succeeded")
        # The agent logged that it started mpirun's daemon for the second host inside dsgmpi1 (the
        # rank there can reach rank 0 only over the veth pair).
        with open(agent_log) as f:
            check(("%s %s" % (NS_ADDR[1], NETNS[1])) in f.read(), "rank 1's daemon was started in namespace " + NETNS[1])
        check(losses(out) == ls, "its 30 losses equal the shared-memory run's bitwise")
    finally:
        netns_cleanup()


# ---------------------------------------------------------------------------------------------
def descendants(pid):
    """Pids below `pid` (from /proc's parent links)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rank_pid(mpirun_pid, dsgtrain, rank):
    for pid in descendants(mpirun_pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode()
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv0) == os.path.basename(dsgtrain) and \
                ("OMPI_COMM_WORLD_RANK=%d" % rank).encode() in env:
            return pid
    return None


class Job:
    """A background mpirun whose output goes to a file; always killed (whole group) on exit."""

    def __init__(self, cmd, log_path):
        print("$ " + " ".join(cmd), flush=True)
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids = []

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self.text()):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        for pid in self.pids + descendants(self.proc.pid):
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        self.log.close()


def fault_job(args, tmp, name, extra):
    cmd = MPIRUN + ["-np", "2", args.dsgtrain, config("mlp_dense.prototxt"), "--threads", "1", "--seed", "1",
                    "--iterations", "1000000", "--output", os.path.join(tmp, name)] + extra
    return Job(cmd, os.path.join(tmp, name + ".log"))


def test_fault(args, tmp):
    # (i) kill -9 of rank 1's process: mpirun notices the lost child and ends the job.
    job = fault_job(args, tmp, "killed", [])
    try:
        check(job.wait_for(r"Iteration 5\b", 60), "the long 2-rank run logs iterations")
        pid = rank_pid(job.proc.pid, args.dsgtrain, 1)
        check(pid is not None, "found rank 1's dsgtrain process below mpirun")
        job.pids.append(pid)
        os.kill(pid, signal.SIGKILL)
        start = time.time()
        status = job.wait_exit(60)
        print("  measured: mpirun exited %s %.1f s after kill -9 of rank 1" % (status, time.time() - start))
        check(status is not None and status != 0, "mpirun exits non-zero within 60 s after a rank is killed")
    finally:
        job.kill()
    # (ii) SIGSTOP of rank 1 with --comm-timeout 5: rank 0's collective times out, it reports and
    # aborts the job. mlp_fault.prototxt snapshots every 20 iterations, so one exists before the stop.
    out_dir = os.path.join(tmp, "stopped")
    cmd = MPIRUN + ["-np", "2", args.dsgtrain, config("mlp_fault.prototxt"), "--threads", "1", "--seed", "1",
                    "--output", out_dir, "--comm-timeout", "5"]
    job = Job(cmd, os.path.join(tmp, "stopped.log"))
    try:
        first = snapshot(out_dir, "mlp_fault", 20)
        end = time.time() + 60
        while time.time() < end and not os.path.exists(first) and job.proc.poll() is None:
            time.sleep(0.2)
        check(os.path.exists(first), "a snapshot was written before the stop")
        time.sleep(0.5)
        pid = rank_pid(job.proc.pid, args.dsgtrain, 1)
        check(pid is not None, "found rank 1's dsgtrain process below mpirun")
        job.pids.append(pid)
        os.kill(pid, signal.SIGSTOP)
        start = time.time()
        status = job.wait_exit(60)
        print("  measured: mpirun exited %s %.1f s after SIGSTOP of rank 1" % (status, time.time() - start))
        check(status is not None and status != 0, "the job exits non-zero within 60 s after a rank stops")
        check("no answer from the other ranks" in job.text(), "the log says 'no answer from the other ranks'")
    finally:
        job.kill()
    snaps = sorted((f for f in os.listdir(out_dir) if f.endswith(".dsgmodel")),
                   key=lambda f: int(re.search(r"_iter_(\d+)", f).group(1)))
    last = os.path.join(out_dir, snaps[-1])
    print("  last snapshot before the stop: " + last)
    must_succeed([args.dsgeval, last, "--batches", "2", "--threads", "1"], 120)
    check(True, "dsgeval loads the last snapshot written before the stop")
    it = int(re.search(r"_iter_(\d+)", last).group(1))
    must_succeed([args.dsgtrain, config("mlp_fault.prototxt"), "--threads", "1", "--resume", last, "--iterations",
                  str(it + 1), "--output", os.path.join(tmp, "after_stop")], 120)
    check(True, "a 1-process run resumes from it for one iteration")


TESTS = {"equivalence": test_equivalence, "sparsity_resume": test_sparsity_resume, "tcp": test_tcp,
         "fault": test_fault}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("test", choices=sorted(TESTS))
    ap.add_argument("--dsgtrain", required=True)
    ap.add_argument("--dsgeval", required=True)
    ap.add_argument("--mpi-built", default="ON", help="whether dsgtrain was built with MPI (CMake's MPI_C_FOUND)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.dsgtrain, args.dsgeval = os.path.abspath(args.dsgtrain), os.path.abspath(args.dsgeval)
    if shutil.which("mpirun") is None:
        print("SKIPPED mpi_%s: no mpirun on PATH (apt-get install openmpi-bin libopenmpi-dev)" % args.test)
        return SKIP
    if args.mpi_built.upper() not in ("ON", "TRUE", "1", "YES"):
        print("SKIPPED mpi_%s: dsgtrain was built without MPI (install libopenmpi-dev and rebuild)" % args.test)
        return SKIP
    if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
        print("SKIPPED mpi_%s: no Fashion-MNIST in /usr/share/datasets/fashion-mnist" % args.test)
        return SKIP
    os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    tmp = tempfile.mkdtemp(prefix="dsg_mpi_%s_" % args.test)
    start = time.time()
    try:
        TESTS[args.test](args, tmp)
    except Failure as e:
        print("FAILED mpi_%s: %s (files in %s)" % (args.test, e, tmp), flush=True)
        return 1
    print("PASSED mpi_%s in %.1f s" % (args.test, time.time() - start))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
