#!/bin/sh
# sim_mpi (suite integration): the same small run as 1 process and as 2 MPI ranks must give the
# same final model, bit for bit (model_sha256 in summary.json); ranks of two BLAS kernels are
# named in its "blas"; the experiment resumes under 2 ranks; SIGUSR1 to mpirun stops the run
# after a round, with its summary.
#   mpi_test.sh MPIRUN FL_SIM FL_SIM_HOOKS
set -eu
MPIRUN=$1
FL_SIM=$2
FL_SIM_HOOKS=$3 # fl_sim built with FLSIM_TEST_HOOKS: FEDROP_TEST_SIM_FAIL injects a failure
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

# Ranks on other BLAS kernels (here another OPENBLAS_CORETYPE in each rank's environment; on a
# cluster, hosts of two CPU generations) give a model no single process gives: summary.json's
# "blas" names them all, "mixed:" and the names, rather than rank 0's alone, and that is said
# once. Where the two cores are one here (no OpenBLAS: "reference"), there is nothing to name.
k0=$(OPENBLAS_CORETYPE=Prescott "$FL_SIM" $ARGS --rounds 1 | grep -o 'blas [^ ]*')
k1=$(OPENBLAS_CORETYPE=Sandybridge "$FL_SIM" $ARGS --rounds 1 | grep -o 'blas [^ ]*')
if [ "$k0" != "$k1" ]; then
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS \
        -n 1 -x OPENBLAS_CORETYPE=Prescott "$FL_SIM" $ARGS --out "$DIR/mixed" : \
        -n 1 -x OPENBLAS_CORETYPE=Sandybridge "$FL_SIM" $ARGS --out "$DIR/mixed" \
        >/dev/null 2>"$DIR/mixed.err" ||
        { echo "FAIL: ranks of two BLAS: $(cat "$DIR/mixed.err")"; exit 1; }
    want="mixed:${k0#blas }/${k1#blas }"
    grep -q "\"blas\": \"$want\"" "$DIR/mixed/summary.json" ||
        { echo "FAIL: ranks of two BLAS: $(grep '"blas"' "$DIR/mixed/summary.json"), not $want"
          exit 1; }
    [ "$(grep -c "MPI ranks train with different BLAS kernels" "$DIR/mixed.err")" -eq 1 ] ||
        { echo "FAIL: ranks of two BLAS: not said once: $(cat "$DIR/mixed.err")"; exit 1; }
    ! grep -q '"blas": "mixed' "$DIR/two/summary.json" ||
        { echo "FAIL: ranks of one BLAS named mixed"; exit 1; }
    echo "ranks of two BLAS kernels: $want, said once"
fi

# --resume under 2 ranks (each reads DIR/resume.fls; rank 0 wrote it; each rank its own clients'
# top-k residuals): 2 rounds, then on to 4, the model of the 1-process run of 4 rounds ($DIR/r1),
# without and with the top-k uplink.
for up in q8 topk0.3+q8+zstd; do
RARGS=$(echo "$ARGS" | sed "s/--up-codec topk0.3+q8+zstd/--up-codec $up/; s/--rounds 4//")
rm -rf "$DIR/r1" "$DIR/r2"
"$FL_SIM" $RARGS --rounds 4 --out "$DIR/r1" >/dev/null
for n in 2 4; do
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $RARGS \
        --rounds "$n" --resume 1 --out "$DIR/r2" >/dev/null 2>"$DIR/r2.err" ||
        { echo "FAIL: --resume under 2 ranks ($n rounds): $(cat "$DIR/r2.err")"; exit 1; }
done
grep -q "resuming $DIR/r2 after round 2 of 4" "$DIR/r2.err" || { echo "FAIL: not resumed: $(cat "$DIR/r2.err")"; exit 1; }
a=$(grep '"model_sha256"' "$DIR/r1/summary.json")
b=$(grep '"model_sha256"' "$DIR/r2/summary.json")
[ "$a" = "$b" ] || { echo "FAIL: resumed under 2 ranks ($up): $b, not $a"; exit 1; }
echo "--resume under 2 ranks, --up-codec $up: the 1-process model"
done
[ -f "$DIR/r2/resume-resid.rank1-of-2.round4.fls" ] || { echo "FAIL: no residuals of rank 1: $(ls "$DIR/r2")"; exit 1; }
# residuals saved by 2 ranks are not taken by 1 process (each rank held its own clients')
rc=0
"$FL_SIM" $RARGS --rounds 5 --resume 1 --out "$DIR/r2" >/dev/null 2>"$DIR/r3.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "2 MPI ranks saved the clients' error-feedback residuals.*mpirun -n 2" "$DIR/r3.err" ||
    { echo "FAIL: 2 ranks' residuals resumed by 1 process (exit status $rc): $(cat "$DIR/r3.err")"; exit 1; }
echo "2 ranks' residuals refused to 1 process"
# a damaged resume.fls, which every rank reads and refuses, is said once
printf 'X' | dd of="$DIR/r2/resume.fls" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $RARGS \
    --rounds 5 --resume 1 --out "$DIR/r2" >/dev/null 2>"$DIR/r4.err" || rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "checksum does not match" "$DIR/r4.err")" -eq 1 ] ||
    { echo "FAIL: a damaged resume.fls under 2 ranks: exit status $rc: $(cat "$DIR/r4.err")"; exit 1; }
echo "a damaged resume.fls under 2 ranks: refused, said once"

# The experiment under 2 ranks resumes: rank 0 reads back the finished runs and every rank skips
# them (a disagreement would hang or fail the collective calls); the table comes out the same.
EXP="--seeds 1 --dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 20 --per-round 4
     --rounds 2 --eval-every 1 --threads 1 --quiet 1 --out $DIR/exp"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" experiment afd $EXP >/dev/null
cp "$DIR/exp/table.csv" "$DIR/table1.csv"
cp "$DIR/exp/runs/full-s1/summary.json" "$DIR/full1.json"
rm -r "$DIR/exp/runs/afd-single-s1"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" experiment afd $EXP >/dev/null
[ -f "$DIR/exp/runs/afd-single-s1/summary.json" ] || { echo "FAIL: the removed run was not run again"; exit 1; }
cmp -s "$DIR/full1.json" "$DIR/exp/runs/full-s1/summary.json" || { echo "FAIL: a finished run was run again"; exit 1; }
cmp -s "$DIR/table1.csv" "$DIR/exp/table.csv" || { echo "FAIL: the resumed table differs"; exit 1; }
echo "experiment resumed under 2 ranks: same table"

# kill -USR1 to mpirun (which passes SIGUSR1 on to every rank) stops the run after a round the
# ranks agree on: a summary marked interrupted for exactly the rounds in rounds.csv.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $ARGS \
    --rounds 1000000 --eval-every 1000 --out "$DIR/usr1" >/dev/null 2>"$DIR/usr1.err" &
pid=$!
i=0
until [ "$(($(cat "$DIR/usr1/rounds.csv" 2>/dev/null | wc -l) - 1))" -ge 3 ]; do
    i=$((i + 1))
    [ "$i" -le 1200 ] || { kill -9 "$pid"; echo "FAIL: no 3 rounds under mpirun in 120 s"; exit 1; }
    sleep 0.1
done
kill -USR1 "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 138 ] || { echo "FAIL: SIGUSR1 under mpirun: exit status $rc, not 138: $(cat "$DIR/usr1.err")"; exit 1; }
grep -q '"interrupted": true' "$DIR/usr1/summary.json" || { echo "FAIL: SIGUSR1 under mpirun: summary not marked interrupted"; exit 1; }
rounds=$(sed -n 's/^  "rounds": \([0-9]*\),$/\1/p' "$DIR/usr1/summary.json")
lines=$(($(wc -l <"$DIR/usr1/rounds.csv") - 1))
[ "$rounds" = "$lines" ] || { echo "FAIL: SIGUSR1 under mpirun: summary.json says $rounds rounds, rounds.csv holds $lines"; exit 1; }
echo "SIGUSR1 to mpirun: stopped after round $rounds, exit status 138"

# A step that fails on one rank alone ends every rank with exit 1 (before, the others waited for
# it in the run's first exchange forever): rank 0's --out that cannot be made, and a dataset that
# one "host" does not have (FEDROP_DATA_DIR on one rank only, as on a host that lacks the files).
T="--dataset synth-images:400:1x8x8:4 --model mlp:64-8-4 --clients 8 --per-round 2 --rounds 2
   --threads 1 --quiet 1"
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $T \
    --out /proc/fedrop-no >/dev/null 2>"$DIR/out.err" || rc=$?
[ "$rc" -ne 124 ] || { echo "FAIL: an --out rank 0 cannot make hung the ranks"; exit 1; }
[ "$rc" -ne 0 ] || { echo "FAIL: an --out rank 0 cannot make: exit status 0"; exit 1; }
grep -q -- "--out" "$DIR/out.err" || { echo "FAIL: no --out error: $(cat "$DIR/out.err")"; exit 1; }
mkdir "$DIR/nowhere" "$DIR/fm" "$DIR/fm/fashion-mnist"
# A tiny Fashion-MNIST of zeros (IDX: magic, count, 28 x 28) for rank 0, so that the test needs
# no installed dataset (the suites that do report SKIP without it).
idx() { # PREFIX COUNT-AS-4-BYTE-PRINTF-ESCAPES COUNT
    { printf '\0\0\10\3'; printf "$2"; printf '\0\0\0\34\0\0\0\34'; head -c $(($3 * 784)) /dev/zero; } \
        >"$DIR/fm/fashion-mnist/$1-images-idx3-ubyte"
    { printf '\0\0\10\1'; printf "$2"; head -c "$3" /dev/zero; } >"$DIR/fm/fashion-mnist/$1-labels-idx1-ubyte"
}
idx train '\0\0\1\220' 400
idx t10k '\0\0\0\144' 100
F="--dataset fashion-mnist --train-samples 400 --model mlp:784-8-10 --clients 8
   --per-round 2 --rounds 2 --threads 1 --quiet 1 --out $DIR/nodata"
# two_hosts DATA0 DATA1 ERR: fl_sim $F on two ranks, each reading the dataset from its own
# FEDROP_DATA_DIR (as two hosts would); its exit status in $rc, its stderr in ERR.
two_hosts() {
    rc=0
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
        "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 1 \
        env FEDROP_DATA_DIR="$1" "$FL_SIM" $F : \
        -x ASAN_OPTIONS -n 1 env FEDROP_DATA_DIR="$2" "$FL_SIM" $F >/dev/null 2>"$3" || rc=$?
}
two_hosts "$DIR/fm" "$DIR/nowhere" "$DIR/data.err"
[ "$rc" -ne 124 ] || { echo "FAIL: a dataset one rank lacks hung the ranks"; exit 1; }
[ "$rc" -ne 0 ] || { echo "FAIL: a dataset one rank lacks: exit status 0"; exit 1; }
# said once, by the rank that lacks it (the other, which has nothing to add, says nothing)
[ "$(grep -c "not found in $DIR/nowhere/fashion-mnist" "$DIR/data.err")" -eq 1 ] &&
    ! grep -q "another MPI rank" "$DIR/data.err" ||
    { echo "FAIL: the missing dataset not said once, by rank 1: $(cat "$DIR/data.err")"; exit 1; }
[ ! -e "$DIR/nodata/summary.json" ] || { echo "FAIL: a summary for a run that never ran"; exit 1; }
# ... and when no host has it, the reason every rank hits is said once, not once a rank
two_hosts "$DIR/nowhere" "$DIR/nowhere" "$DIR/data0.err"
[ "$rc" -eq 1 ] && [ "$(grep -c "not found in $DIR/nowhere/fashion-mnist" "$DIR/data0.err")" -eq 1 ] ||
    { echo "FAIL: a dataset no rank has: exit status $rc, said $(grep -c "not found" "$DIR/data0.err") times: $(cat "$DIR/data0.err")"; exit 1; }
# ... and a host whose copy of the dataset differs (one label): named by that rank, exit 1.
cp -r "$DIR/fm" "$DIR/fm2"
printf '\1' | dd of="$DIR/fm2/fashion-mnist/train-labels-idx1-ubyte" bs=1 seek=20 conv=notrunc 2>/dev/null
two_hosts "$DIR/fm" "$DIR/fm2" "$DIR/data2.err"
[ "$rc" -eq 1 ] || { echo "FAIL: a dataset that differs on one rank: exit status $rc, not 1"; exit 1; }
grep -q "MPI rank 1's data differ from rank 0's" "$DIR/data2.err" ||
    { echo "FAIL: the differing data not said: $(cat "$DIR/data2.err")"; exit 1; }
# Each rank runs in its own directory (c0, c1), reading its own run.yaml, as on two hosts:
# configs ARGS... runs them, its exit status in $rc and its stderr in $DIR/cfg.err.
configs() {
    rc=0
    (ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
        "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 1 env -C "$DIR/c0" \
        "$FL_SIM" --config run.yaml "$@" : -x ASAN_OPTIONS -n 1 env -C "$DIR/c1" "$FL_SIM" \
        --config run.yaml "$@" >/dev/null 2>"$DIR/cfg.err") || rc=$?
}
# A --config file one host lacks.
mkdir "$DIR/c0" "$DIR/c1"
printf 'rounds: 2\n' >"$DIR/c0/run.yaml"
configs $T
[ "$rc" -ne 124 ] || { echo "FAIL: a --config one rank lacks hung the ranks"; exit 1; }
[ "$rc" -ne 0 ] || { echo "FAIL: a --config one rank lacks: exit status 0"; exit 1; }
# ... and a --config whose settings do not hold on one host (its per_round above its clients)
printf 'clients: 8\nper_round: 2\n' >"$DIR/c0/run.yaml"
printf 'clients: 8\n' >"$DIR/c1/run.yaml" # the default per_round, 50
configs --dataset synth-images:400:1x8x8:4 --model mlp:64-8-4 --rounds 2 --threads 1 --quiet 1
[ "$rc" -ne 124 ] || { echo "FAIL: a --config that does not hold on one rank hung the ranks"; exit 1; }
[ "$rc" -eq 2 ] || { echo "FAIL: a --config that does not hold on one rank: exit status $rc, not 2"; exit 1; }
grep -q "is larger than --clients" "$DIR/cfg.err" || { echo "FAIL: no reason: $(cat "$DIR/cfg.err")"; exit 1; }
# A bad flag given to every rank is said once, not once a rank; a rank's own reason beside it.
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $T --roundz 3 \
    >/dev/null 2>"$DIR/flag.err" || rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: a bad flag under 2 ranks: exit status $rc, not 2"; exit 1; }
[ "$(grep -c "unknown option 'roundz'" "$DIR/flag.err")" -eq 1 ] ||
    { echo "FAIL: a bad flag not said exactly once: $(cat "$DIR/flag.err")"; exit 1; }
printf 'rounds: 0\n' >"$DIR/c1/run.yaml"
printf 'rounds: 2\nrounds: 3\n' >"$DIR/c0/run.yaml"
configs $T
[ "$rc" -eq 2 ] || { echo "FAIL: two bad --config files: exit status $rc, not 2"; exit 1; }
grep -q "given twice" "$DIR/cfg.err" && grep -q "round count" "$DIR/cfg.err" ||
    { echo "FAIL: each rank's own reason not said: $(cat "$DIR/cfg.err")"; exit 1; }
# Settings that each hold but differ between the hosts' files (the learning rate) end every rank,
# the differing one naming the setting; a thread count of each host's own does not.
printf 'clients: 8\nper_round: 2\nlr: 0.05\n' >"$DIR/c0/run.yaml"
printf 'clients: 8\nper_round: 2\nlr: 0.1\n' >"$DIR/c1/run.yaml"
configs --dataset synth-images:400:1x8x8:4 --model mlp:64-8-4 --rounds 2 --threads 1 --quiet 1
[ "$rc" -ne 124 ] || { echo "FAIL: settings that differ between the ranks hung them"; exit 1; }
[ "$rc" -eq 1 ] || { echo "FAIL: settings that differ between the ranks: exit status $rc, not 1"; exit 1; }
grep -q 'rank 1.s settings differ from rank 0.s: "lr": 0.1 here, "lr": 0.05 on rank 0' "$DIR/cfg.err" ||
    { echo "FAIL: the differing setting not named: $(cat "$DIR/cfg.err")"; exit 1; }
printf 'clients: 8\nper_round: 2\nthreads: 2\n' >"$DIR/c1/run.yaml"
printf 'clients: 8\nper_round: 2\nthreads: 1\n' >"$DIR/c0/run.yaml"
configs --dataset synth-images:400:1x8x8:4 --model mlp:64-8-4 --rounds 2 --quiet 1
[ "$rc" -eq 0 ] || { echo "FAIL: thread counts that differ between the ranks refused: $(cat "$DIR/cfg.err")"; exit 1; }
# --out on one host only: each checkpoint is a collective call, so it is refused up front
printf 'clients: 8\nper_round: 2\nout: %s\n' "$DIR/o0" >"$DIR/c0/run.yaml"
printf 'clients: 8\nper_round: 2\n' >"$DIR/c1/run.yaml"
configs --dataset synth-images:400:1x8x8:4 --model mlp:64-8-4 --rounds 2 --threads 1 --quiet 1
[ "$rc" -eq 1 ] && grep -q 'rank 1.s settings differ from rank 0.s: "--out given": false here, "--out given": true on rank 0' "$DIR/cfg.err" ||
    { echo "FAIL: --out on one rank only: exit status $rc: $(cat "$DIR/cfg.err")"; exit 1; }
# Experiment settings every rank refuses: said once, exit 2 (agreed, not MPI_Abort).
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" experiment afd \
    --seeds 1 --clients 20 --per-round 30 --out "$DIR/xbad" >/dev/null 2>"$DIR/xbad.err" || rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c "is larger than --clients 20" "$DIR/xbad.err")" -eq 1 ] &&
    ! grep -q "MPI_ABORT" "$DIR/xbad.err" ||
    { echo "FAIL: experiment settings refused under 2 ranks: exit status $rc: $(cat "$DIR/xbad.err")"; exit 1; }
# Rank 0 cannot save an experiment's run (its directory is a dangling link): every rank ends.
mkdir -p "$DIR/xs/runs"
ln -s "$DIR/nowhere/gone/x" "$DIR/xs/runs/full+c-s1"
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" experiment afd \
    $EXP --out "$DIR/xs" >/dev/null 2>"$DIR/xs.err" || rc=$?
[ "$rc" -ne 124 ] || { echo "FAIL: a run rank 0 could not save hung the ranks"; exit 1; }
[ "$rc" -ne 0 ] || { echo "FAIL: a run rank 0 could not save: exit status 0"; exit 1; }
# said once, by rank 0 (rank 1, which has nothing to add, says nothing)
[ "$(grep -c "^fl_sim experiment: full+c seed 1: " "$DIR/xs.err")" -eq 1 ] && ! grep -q "rank 0 could not save" "$DIR/xs.err" ||
    { echo "FAIL: a run rank 0 could not save: not said once: $(cat "$DIR/xs.err")"; exit 1; }
echo "a step failed on one rank: every rank ended (exit status $rc)"

# A failure injected on one rank in the middle of a run (as if memory ran out there) ends every
# rank, none left waiting in a collective call: in the client phase or after the feed (agreed at
# the exchange or after the feed: exit 1, said once, by that rank), in the evaluation (agreed
# there), and in the core's tick (not agreed: that rank ends the job, MPI_Abort).
for at in 1:client:2 0:feed:2 1:eval:2 1:tick:3; do
    rc=0
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" FEDROP_TEST_SIM_FAIL=$at \
        timeout -k 10 120 "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS \
        -x FEDROP_TEST_SIM_FAIL -n 2 "$FL_SIM_HOOKS" $ARGS --eval-every 1 --rounds 5 \
        --out "$DIR/inj" >/dev/null 2>"$DIR/inj.err" || rc=$?
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || { echo "FAIL: a failure at $at hung the ranks: $(cat "$DIR/inj.err")"; exit 1; }
    [ "$rc" -ne 0 ] || { echo "FAIL: a failure at $at: exit status 0"; exit 1; }
    [ "$(grep -c "^fl_sim: simulation failed: out of memory" "$DIR/inj.err")" -eq 1 ] &&
        ! grep -q "another MPI rank" "$DIR/inj.err" ||
        { echo "FAIL: a failure at $at not said once, by its rank: $(cat "$DIR/inj.err")"; exit 1; }
    [ ! -e "$DIR/inj/summary.json" ] || { echo "FAIL: a failure at $at: a summary written"; exit 1; }
    echo "a failure at $at: every rank ended (exit status $rc), said once"
    rm -rf "$DIR/inj"
done
# A run in which no round can ever start (the replicated core's decision, the same on every
# rank at the same step): said once, exit 1, and the ranks agreed on it (no MPI_Abort).
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout -k 10 120 \
    "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -n 2 "$FL_SIM" $ARGS \
    --availability p:0.01 --out "$DIR/idle" >/dev/null 2>"$DIR/idle.err" || rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "no round could start" "$DIR/idle.err")" -eq 1 ] &&
    ! grep -q "MPI_ABORT" "$DIR/idle.err" ||
    { echo "FAIL: no round could start under 2 ranks: exit status $rc: $(cat "$DIR/idle.err")"; exit 1; }
echo "no round could start under 2 ranks: said once (exit status $rc)"
echo "OK"
