#!/bin/sh
# sim_mpi (suite integration): the same small run as 1 process and as 2 MPI ranks must give the
# same final model, bit for bit (model_sha256 in summary.json).
#   mpi_test.sh MPIRUN FL_SIM
set -eu
MPIRUN=$1
FL_SIM=$2
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
ARGS="--dataset synth-images:1200:1x8x8:4 --model mlp:64-32-4 --clients 40 --per-round 8 --rounds 4
      --partition iid --policy afd-multi --up-codec topk0.3+q8+zstd --down-codec q8 --threads 1
      --overcommit 1.25 --quiet 1"
"$FL_SIM" $ARGS --out "$DIR/one" >/dev/null
# OpenMPI's own start-up allocations are never freed: no leak check for the ranks (a
# sanitized build still checks every access).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $ARGS --out "$DIR/two" >/dev/null
a=$(grep '"model_sha256"' "$DIR/one/summary.json")
b=$(grep '"model_sha256"' "$DIR/two/summary.json")
r=$(grep '"mpi_ranks"' "$DIR/two/summary.json")
echo "1 process: $a"
echo "2 ranks:   $b ($r)"
case "$r" in *2*) ;; *) echo "FAIL: the mpirun run did not use 2 ranks"; exit 1;; esac
[ "$a" = "$b" ] || { echo "FAIL: models differ"; exit 1; }
echo "OK"
