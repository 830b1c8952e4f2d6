#!/usr/bin/env python3
"""A benchmark stopped early leaves nothing behind: no temporary file or directory, no child process.

Usage: check_bench_exit.py BUILD_BENCH_DIR SOURCE_ROOT

Each benchmark that makes something runs, briefly, in a scratch directory (its working directory
and $TMPDIR), and is stopped the way a user stops it, once what it makes exists: bench_ids by
SIGINT, SIGTERM and SIGHUP (its journal's directory), bench_idle --curve 1 by SIGTERM (its key
directory, its server and fleet processes), bench_server by SIGTERM (its server and raw receiver
processes), bench_leaf by SIGINT (the LEAF file it wrote), bench_train by SIGINT (the index file
of its PyTorch peer, read by the peer before it is ready). Afterwards the scratch directory must
be empty, the benchmark dead of that signal, and its children ended. The two that read
Fashion-MNIST are left out (said so) where it is not installed, and so is a benchmark this build
does not have. Not a benchmark: nothing is timed (the meson test `bench_exit`).
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failed = []


def wait_for(cond, what, secs=90.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def children(pid):
    """The pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def alive(pid):
    """Running (a zombie, ended but not yet reaped by whoever adopted it, is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


LOGS = tempfile.mkdtemp(prefix="bench_exit_logs.")
atexit.register(shutil.rmtree, LOGS, True)  # also when a wait times out


def said(log, word):
    """A line of the benchmark's output so far starts with word."""
    with open(log) as f:
        return any(line.startswith(word) for line in f)


def run(name, args, sig, ready, want_kids=0):
    """Runs bench_NAME ARGS in a scratch directory until ready(dir, log) holds, sends sig, and
    checks what is left."""
    if not os.path.exists(os.path.join(BENCH, name)):
        print("%s: left out, not built (-Dserver=false or -Dsim=false, or no jansson)" % name)
        return
    log = os.path.join(LOGS, name + "." + sig.name)
    with tempfile.TemporaryDirectory(prefix="bench_exit.") as d, open(log, "w") as lf:
        env = dict(os.environ, TMPDIR=d, FEDROP_SOURCE_ROOT=ROOT)
        p = subprocess.Popen([os.path.join(BENCH, name)] + args, cwd=d, env=env,
                             stdout=lf, stderr=subprocess.STDOUT)
        kids = []
        try:
            wait_for(lambda: ready(d, log) or p.poll() is not None, name + ": ready")
            if p.poll() is not None:
                failed.append("%s %s: ended before it was stopped (exit %d): %s"
                              % (name, sig.name, p.returncode, open(log).read()[-2000:]))
                return
            if want_kids:
                kids = wait_for(lambda: len(children(p.pid)) >= want_kids and children(p.pid),
                                name + ": its children")
            p.send_signal(sig)
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out = open(log).read()
        label = "%s %s" % (name, sig.name)
        if p.returncode != -sig:
            failed.append("%s: exit %s, not the signal (%s)" % (label, p.returncode, out[-2000:]))
        try:
            wait_for(lambda: not any(alive(k) for k in kids), "children", secs=10)
        except TimeoutError:
            left = [k for k in kids if alive(k)]
            failed.append("%s: child processes %s still running" % (label, left))
            for k in left:
                os.kill(k, signal.SIGKILL)
        left = sorted(os.listdir(d))
        if left:
            failed.append("%s: left behind in its directory: %s" % (label, left))
        print("%s: %s" % (label, "ok" if not failed or not failed[-1].startswith(label)
                          else failed[-1]))


def journal_made(d, log):
    return any(os.path.exists(os.path.join(d, e, "j.ckpt.ids")) for e in os.listdir(d))


for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    run("bench_ids", ["--ids", "10000000", "--conns", "4", "--reps", "3"], sig, journal_made)

run("bench_idle", ["--sessions", "20", "--secs", "600", "--curve", "1"], signal.SIGTERM,
    lambda d, log: any(os.path.exists(os.path.join(d, e, "allowed")) for e in os.listdir(d)),
    want_kids=2)

run("bench_server", ["--clients", "1", "--codecs", "none", "--rounds", "60"], signal.SIGTERM,
    lambda d, log: True, want_kids=2)

fmnist = os.environ.get("FEDROP_DATA_DIR") or "/usr/share/datasets"
if not (os.path.isdir(os.path.join(fmnist, "fashion-mnist")) or
        os.path.exists(os.path.join(fmnist, "train-images-idx3-ubyte.gz"))):
    print("bench_leaf, bench_train: left out, no Fashion-MNIST under " + fmnist)
else:
    run("bench_leaf", ["--samples", "3000", "--reps", "1000"], signal.SIGINT,
        lambda d, log: said(log, "wrote"))
    run("bench_train", ["--samples", "1000", "--reps", "63"], signal.SIGINT,
        lambda d, log: said(log, "rep 1:"))

for f in failed:
    print("FAILED:", f)
sys.exit(1 if failed else 0)
