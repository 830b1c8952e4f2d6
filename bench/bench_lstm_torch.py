#!/usr/bin/python3
"""PyTorch peer of bench/bench_lstm.c: nn.LSTM forward + backward at one shape.

Usage: /usr/bin/python3 bench_lstm_torch.py B T C H LAYERS THREADS REPS [--interleave]
Runs 3 untimed warm-up passes, then REPS timed passes, and prints as its last line
    torch <version> threads N: fwd+bwd median X ms (min Y ms)
With --interleave (bench_lstm.c alternates its passes with these): "ready" after the warm-up,
then each timed pass waits for a line on stdin and prints "rep ms=<float>"; it stops at the
end of stdin or after REPS passes.
The same work as the C side: forward over all steps, backward from a random dout on every
step's output, gradients for the input and every weight.
"""
import sys
import time

import torch

interleave = "--interleave" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a != "--interleave"]
B, T, C, H, L, threads, reps = (int(a) for a in args[:7])
torch.set_num_threads(threads)
torch.manual_seed(1)
lstm = torch.nn.LSTM(C, H, num_layers=L, batch_first=True)
x = torch.randn(B, T, C, requires_grad=True)
dout = torch.randn(B, T, H)


def one_pass():
    t0 = time.perf_counter()
    out, _ = lstm(x)
    out.backward(dout)
    return (time.perf_counter() - t0) * 1e3


for _ in range(3):
    one_pass()
if interleave:
    print("ready", flush=True)
times = []
for _ in range(reps):
    if interleave and not sys.stdin.readline():
        break
    times.append(one_pass())
    if interleave:
        print(f"rep ms={times[-1]:.4f}", flush=True)
if times:
    times.sort()
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}: "
          f"fwd+bwd median {times[len(times) // 2]:.2f} ms (min {times[0]:.2f} ms)", flush=True)
