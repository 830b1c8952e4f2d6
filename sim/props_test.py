#!/usr/bin/env python3
"""Determinism over drawn settings: fl_sim runs the same settings three ways and must give the
same model, bit for bit, each time.

Each case draws a model family (mlp, cnn, moge, lstm on synthetic data), a policy, a keep
fraction, the two codecs, the partition, over-commit, a deadline, availability, the chunk size,
batch size, momentum, dilution and the server learning rate, from a seeded generator. Then:
  a. R rounds on 1 worker thread;
  b. R rounds on 3 worker threads;
  c. R1 < R rounds on 2 threads, then the same command with --resume 1 to R rounds;
  d. R rounds on 2 threads, killed with SIGKILL at up to two moments drawn as fractions of a's
     wall time (a crash: no signal handler runs, a save may be cut off mid-write), each time
     started again with --resume 1, until a start runs to its end.
a, b, c and d must agree on model_sha256, rounds, bytes up and down and virtual time. Settings
that fl_sim refuses must be refused by a, b and c with the same message (d is then skipped).
Where a kill lands (before the first save, between saves, after the run ended) depends on the
machine's speed, so d's path is not the same from run to run; its kill moments are printed.

The fixed test (meson test sim_props) runs 16 cases of seed 1. A longer campaign:
    sim/props_test.py build/sim/fl_sim --cases 200 --seed 7
A failure prints the case's command line, which reproduces it alone.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

DOWN = ["none", "q8", "f16", "bf16", "rot+q4+zstd", "rot256+q2b64", "q1+zstd-3"]
UP = DOWN + ["topk0.1+q8+zstd", "topk0.01", "sub0.5+q4", "rot+sub0.3+q2+zstd", "topk0.2+rot+q4"]
MODELS = [("synth-images:300:1x8x8:5", "mlp:64-24-16-5"),
          ("synth-images:300:1x8x8:5", "cnn:5:8x8x1"),
          ("synth-images:300:1x8x8:5", "moge:64:8:2:2:1:5"),
          ("synth-tokens:300:12:20", "lstm:20:4:8:1:12")]


def draw(rnd):
    """One case: the options every way shares, the rounds R and the stop R1 of the resumed way."""
    ds, model = rnd.choice(MODELS)
    clients = rnd.choice([5, 20, 100])
    rounds = rnd.randint(2, 5)
    opts = ["--dataset", ds, "--model", model, "--clients", str(clients),
            "--per-round", str(rnd.randint(1, min(clients, 10))),
            "--policy", rnd.choice(["full", "fd", "fd-per-client", "afd-single", "afd-multi"]),
            "--keep", rnd.choice(["0.3", "0.75"]),
            "--down-codec", rnd.choice(DOWN), "--up-codec", rnd.choice(UP),
            "--seed", str(rnd.randint(0, 2**64 - 1)), "--batch", str(rnd.choice([1, 10])),
            "--partition", rnd.choice(["iid", "dirichlet:0.3"]),
            "--overcommit", rnd.choice(["1", "1.5"]), "--deadline", rnd.choice(["0", "8"]),
            "--availability", rnd.choice(["always", "p:0.7"]),
            "--chunk-elems", rnd.choice(["65536", "100"])]
    if rnd.random() < 0.3:
        opts += ["--momentum", "0.9"]
    if rnd.random() < 0.2:
        opts += ["--agg-dilute", "1"]
    if rnd.random() < 0.3:
        opts += ["--server-lr", "0.5"]
    return opts, rounds, rnd.randint(1, rounds - 1)


def args_of(exe, opts, out, extra):
    return [exe] + opts + ["--quiet", "1", "--checkpoint-every", "1", "--out", out] + extra


def summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    return (s["model_sha256"], s["rounds"], s["bytes_up"], s["bytes_down"],
            s["virtual_time_s"])


def failure(rc, stderr):
    """A failed run as the report gives it: its exit status and its last line on stderr."""
    lines = stderr.strip().splitlines()
    return "exit %d: %s" % (rc, lines[-1] if lines else "(nothing said)")


def run(exe, opts, out, extra):
    """fl_sim with opts + extra into out: (the figures compared, None) or (None, its error)."""
    p = subprocess.run(args_of(exe, opts, out, extra), capture_output=True, text=True,
                       timeout=900)
    if p.returncode != 0:
        return None, failure(p.returncode, p.stderr)
    return summary(out), None


def done(out):
    """The rounds that rounds.csv holds (0 where it is not there yet)."""
    try:
        with open(os.path.join(out, "rounds.csv")) as f:
            return max(0, sum(1 for line in f if line.endswith("\n")) - 1)
    except OSError:
        return 0


def run_killed(exe, opts, out, extra, moments):
    """fl_sim killed with SIGKILL `moments` seconds after each start (one start per moment),
    started again with --resume 1 after each kill, and at last left to end: (the figures, None,
    the kills that landed) or (None, its error, the kills)."""
    kills = []
    for i in range(len(moments) + 1):
        resume = ["--resume", "1"] if i else []
        with open(out + ".err", "w") as err:
            p = subprocess.Popen(args_of(exe, opts, out, extra + resume),
                                 stdout=subprocess.DEVNULL, stderr=err)
            try:
                rc = p.wait(timeout=moments[i] if i < len(moments) else 900)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                if i == len(moments):
                    return None, "no end in 900 s after its last start", kills
                kills.append("%.3f s (rounds.csv held %d)" % (moments[i], done(out)))
                continue
        if rc != 0:
            with open(out + ".err") as f:
                return None, failure(rc, f.read()), kills
        return summary(out), None, kills


def main():
    # the docstring's first paragraph, as one line (its first line alone stopped mid-sentence)
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("fl_sim", help="the fl_sim program (build/sim/fl_sim)")
    ap.add_argument("--cases", type=int, default=16, help="cases to draw (default 16)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the draws (default 1)")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    # the kill moments from a generator of their own: the cases' settings stay those of the seed
    krnd = random.Random(a.seed + 1000003)
    tmp = tempfile.mkdtemp(prefix="fl_sim_props.")
    failed = refused = 0
    try:
        for i in range(a.cases):
            opts, rounds, stop = draw(rnd)
            d = os.path.join(tmp, str(i))
            t0 = time.monotonic()
            one, e1 = run(a.fl_sim, opts, d + "a", ["--threads", "1", "--rounds", str(rounds)])
            wall = time.monotonic() - t0
            moments = [round(krnd.uniform(0.1, 1.0) * wall, 3)
                       for _ in range(krnd.randint(1, 2))]
            three, e3 = run(a.fl_sim, opts, d + "b", ["--threads", "3", "--rounds", str(rounds)])
            first, ep = run(a.fl_sim, opts, d + "c", ["--threads", "2", "--rounds", str(stop)])
            resumed, er = (run(a.fl_sim, opts, d + "c",
                               ["--threads", "2", "--rounds", str(rounds), "--resume", "1"])
                           if first else (None, ep))
            killed, ek, kills = (run_killed(a.fl_sim, opts, d + "d",
                                            ["--threads", "2", "--rounds", str(rounds)], moments)
                                 if one else (None, "not run: the straight run failed", []))
            cmd = "fl_sim " + " ".join(opts) + " --rounds %d (stopped at %d)" % (rounds, stop)
            if e1 and e1 == e3 == er:
                refused += 1
                print("case %d: refused all three ways (%s)" % (i, e1))
            elif one and one == three == resumed == killed:
                print("case %d: %s, %d rounds (resumed after %d; killed at %s, a run %.2f s): "
                      "model %s, same four ways"
                      % (i, opts[3], rounds, stop, ", ".join(kills) or "none", wall,
                         one[0][:16]))
            else:
                failed += 1
                print("FAIL case %d: %s" % (i, cmd))
                for name, r, e in (("1 thread", one, e1), ("3 threads", three, e3),
                                   ("resumed", resumed, er),
                                   ("killed at %s" % ", ".join(kills), killed, ek)):
                    print("  %-9s %s" % (name, r if r else e))
            for w in "abcd":
                shutil.rmtree(d + w, ignore_errors=True)
            if os.path.exists(d + "d.err"):
                os.unlink(d + "d.err")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d cases: %d failed, %d refused alike" % (a.cases, failed, refused))
    return 1 if failed or refused == a.cases else 0


if __name__ == "__main__":
    sys.exit(main())
