#!/usr/bin/python3
"""PyTorch peer of bench_train.c: the same cnn, data, batch size, learning rate and thread count.

Run with Debian's interpreter (python3-torch 1.13): /usr/bin/python3 bench_train_torch.py
    --batch 10 --threads 1 --samples 6000 --lr 0.05 [--classes 10] [--data DIR] [--reps R]
    [--interleave]
Each of R repetitions trains one epoch over the samples from the same initial weights in the
same order (the same work each time), and prints
    rep samples_per_s=<float> samples_per_cpu_s=<float>
With --interleave (bench_train.c alternates its repetitions with these): "ready" once the data
is loaded and the warm-up step done, then each repetition waits for a line on stdin.
Prints as its last line (medians of the R repetitions; the test accuracy after the last):
    samples_per_s=<float> test_acc=<float> samples_per_cpu_s=<float> peak_rss_mb=<float>
Times only the training loop (forward, backward, optimizer step over the samples), as the C
bench does; data loading and evaluation are outside the timed region.
"""
import argparse
import copy
import gzip
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(os.path.join(d, stem))


class CNN(nn.Module):
    """LEAF's FEMNIST CNN, as models/flm_arch.c builds "cnn:CLASSES"."""

    def __init__(self, classes):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv1 = nn.Conv2d(32, 64, 5, padding=2)
        self.dense0 = nn.Linear(64 * 7 * 7, 2048)
        self.dense1 = nn.Linear(2048, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv0(x)), 2)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.dense0(x.flatten(1)))
        return self.dense1(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=os.environ.get("FEDROP_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--index-file", help="uint32 little-endian training-set indexes (the C bench's subset)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--interleave", action="store_true",
                    help="say 'ready', then wait for a line on stdin before each repetition")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr = torch.from_numpy(load_idx(find(a.data, "train-images-idx3-ubyte")).astype(np.float32) / 255.0)
    ytr = torch.from_numpy(load_idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(load_idx(find(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0)
    yte = torch.from_numpy(load_idx(find(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    xtr, xte = xtr.unsqueeze(1), xte.unsqueeze(1)
    n = min(a.samples, xtr.shape[0])
    if a.index_file:
        idx = np.fromfile(a.index_file, dtype="<u4").astype(np.int64)[:n]
        n = len(idx)
        perm = torch.from_numpy(idx)[torch.randperm(n)]  # the same samples, a shuffled order
    else:
        perm = torch.randperm(xtr.shape[0])[:n]
    model = CNN(a.classes)
    init = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    # one warm-up step outside the timed region (the C bench also loads its kernels first)
    F.cross_entropy(model(xtr[:a.batch]), ytr[:a.batch]).backward()
    opt.zero_grad()
    if a.interleave:
        print("ready", flush=True)
    sps, cps = [], []
    for _ in range(max(a.reps, 1)):
        if a.interleave and not sys.stdin.readline():
            return
        model.load_state_dict(init)  # every repetition the same work: same weights, same order
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        sps.append(n / dt)
        cps.append(n / dc)
        print(f"rep samples_per_s={n / dt:.1f} samples_per_cpu_s={n / dc:.1f}", flush=True)
    correct = 0
    with torch.no_grad():
        for s in range(0, xte.shape[0], 1000):
            correct += (model(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum().item()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"samples_per_s={statistics.median(sps):.1f} test_acc={correct / xte.shape[0]:.4f} "
          f"samples_per_cpu_s={statistics.median(cps):.1f} peak_rss_mb={rss:.1f}", flush=True)


if __name__ == "__main__":
    main()
