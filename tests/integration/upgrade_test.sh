#!/bin/sh
# upgrade_state (suite integration): the state that released versions left behind, read by this
# build (tests/fixtures/upgrade/README.md says how each file was made).
# - fl_server --resume on each server-VERSION directory (its fl.yaml, checkpoint and client-id
#   journal): --check says it would resume at round 2 and bind the journal's ids, and changes no
#   file; a start with run.rounds already reached writes the checkpoint again, and its model and
#   optimizer state (sections 1-3) are the old file's byte for byte, its run id the old run's;
#   two more rounds with two fl_clients finish the run, and where this host's fresh run computes
#   the fixture's first two rounds bit for bit, the resumed run ends on a fresh 4-round run's model.
# - fl_sim --resume 1 on each sim-VERSION directory (resume.fls of format 2 and 3, with the top-k
#   residual file): it resumes after round 3, and where this host's fresh 3-round run gives the
#   fixture's model, the 6-round result is a fresh 6-round run's, bit for bit, and so is its
#   rounds.csv, rewritten in this release's columns, wall times aside.
#   upgrade_test.sh FL_SERVER FL_CLIENT FL_SIM FIXTURES
set -eu
FL_SERVER=$1
FL_CLIENT=$2
FL_SIM=$3
FIX=$4
DIR=$(mktemp -d)
pids=
trap 'for p in $pids; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$DIR"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# The run id a checkpoint's start names ("resumed from ckpt at round 2 (..., run ID)").
run_of() { sed -n 's/.*resumed from ckpt at round [0-9]* (model version [0-9]*, run \([0-9a-f]*\)).*/\1/p' "$1"; }
sha_of() { sed -n 's/.*run done: [0-9]* rounds; model sha256 \([0-9a-f]*\).*/\1/p' "$1"; }

# An fl_server in directory $1 (extra flags $2...) with two fl_clients over ipc://fl.sock; its
# log in $1/server.log. Bounded: the server's own deadline_s and liveness end a run without
# clients, and the clients are killed once the server is gone.
serve() {
    d=$1
    shift
    (cd "$d" && exec "$FL_SERVER" --config fl.yaml "$@") >"$d/server.log" 2>&1 &
    sp=$!
    pids="$pids $sp"
    cp=
    for i in 0 1; do
        (cd "$d" && exec "$FL_CLIENT" --server ipc://fl.sock --insecure --id dev$i \
            --dataset synth-images:400:1x4x4:4 --num-clients 2 --client-index $i) \
            >"$d/client$i.log" 2>&1 &
        cp="$cp $!"
    done
    pids="$pids $cp"
    rc=0
    wait "$sp" || rc=$?
    for p in $cp; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    return $rc
}

# The old runs' ids (README.md).
for v in 0.1.0:7968e1080331ebd1 0.2.1:9eddd41fe63484cb 0.3.5:7ba9d6bd474fa41a; do
    ver=${v%%:*}
    id=${v#*:}
    src=$FIX/server-$ver
    d=$DIR/server-$ver
    cp -R "$src" "$d"

    (cd "$d" && "$FL_SERVER" --config fl.yaml --resume --check) >"$d/check.log" 2>&1 ||
        fail "$ver: --check --resume: exit $? ($(cat "$d/check.log"))"
    grep -q "would resume from ckpt at round 2 (model version 2, run $id)" "$d/check.log" ||
        fail "$ver: --check does not resume the checkpoint: $(cat "$d/check.log")"
    if [ -f "$src/ckpt.ids" ]; then
        grep -q "client ids ckpt.ids: 2 ids would be bound as before the restart" "$d/check.log" ||
            fail "$ver: --check does not read the client ids: $(cat "$d/check.log")"
    fi
    for f in "$src"/*; do
        cmp -s "$f" "$d/${f##*/}" || fail "$ver: --check changed ${f##*/}"
    done

    # run.rounds (2) already reached: the start's checkpoint, nothing trained
    (cd "$d" && "$FL_SERVER" --config fl.yaml --resume) >"$d/same.log" 2>&1 ||
        fail "$ver: --resume: exit $? ($(cat "$d/same.log"))"
    [ "$(run_of "$d/same.log")" = "$id" ] || fail "$ver: not the old run's id: $(cat "$d/same.log")"
    # written again (else the comparison below would hold the fixture against itself)
    grep -q "checkpoint: wrote ckpt " "$d/same.log" ||
        fail "$ver: the start did not write the checkpoint again: $(cat "$d/same.log")"
    # magic and version (12 bytes), then META, MODEL and OPT from byte 24: 2212 bytes for
    # mlp:16-8-4 under fedadam; the body's length (bytes 16-23) grows by the sections that 0.1.0
    # did not write
    cmp -s -n 12 "$src/ckpt" "$d/ckpt" && cmp -s -i 24 -n 2212 "$src/ckpt" "$d/ckpt" ||
        fail "$ver: the checkpoint written again holds another model or optimizer state"

    serve "$d" --resume --set run.rounds=4 || fail "$ver: resumed run: exit $? ($(cat "$d/server.log"))"
    grep -q "resumed from ckpt at round 2" "$d/server.log" && grep -q "run done: 4 rounds" "$d/server.log" ||
        fail "$ver: the resumed run did not train rounds 2 and 3: $(cat "$d/server.log")"

    # this host's own run from round 0, for the model bits
    f=$DIR/fresh-$ver
    mkdir "$f"
    cp "$src/fl.yaml" "$f/"
    serve "$f" || fail "$ver: fresh run: exit $? ($(cat "$f/server.log"))"
    if cmp -s -i 24 -n 2212 "$src/ckpt" "$f/ckpt"; then
        rm -f "$f/ckpt" "$f/ckpt.ids"
        serve "$f" --set run.rounds=4 || fail "$ver: fresh 4-round run: exit $?"
        [ "$(sha_of "$d/server.log")" = "$(sha_of "$f/server.log")" ] && [ -n "$(sha_of "$f/server.log")" ] ||
            fail "$ver: resumed model $(sha_of "$d/server.log"), a fresh run's $(sha_of "$f/server.log")"
    else
        echo "$ver: this host's first two rounds differ from the fixture's (another BLAS kernel?): model bits not compared"
    fi
done

ARGS="--dataset synth-images:400:1x4x4:4 --model mlp:16-8-4 --clients 8 --per-round 2
      --partition iid --threads 1 --eval-every 1 --quiet 1 --checkpoint-every 1 --seed 3
      --policy afd-multi --up-codec topk0.25+q8"
model_of() { sed -n 's/^  "model_sha256": "\([0-9a-f]*\)",$/\1/p' "$1"; }
"$FL_SIM" $ARGS --rounds 3 --out "$DIR/sim-fresh3" >/dev/null 2>&1 || fail "fl_sim: fresh 3 rounds"
"$FL_SIM" $ARGS --rounds 6 --out "$DIR/sim-fresh6" >/dev/null 2>&1 || fail "fl_sim: fresh 6 rounds"
for ver in 0.3.3 0.3.5; do
    src=$FIX/sim-$ver
    d=$DIR/sim-$ver
    cp -R "$src" "$d"
    "$FL_SIM" $ARGS --rounds 6 --resume 1 --out "$d" >"$d.out" 2>"$d.err" ||
        fail "sim $ver: --resume 1: exit $? ($(cat "$d.err"))"
    grep -q "resuming $d after round 3 of 6" "$d.err" || fail "sim $ver: not resumed: $(cat "$d.err")"
    grep -q '"resumed_after": 3,' "$d/summary.json" || fail "sim $ver: summary.json: no resumed_after 3"
    if [ "$(model_of "$src/summary.json")" = "$(model_of "$DIR/sim-fresh3/summary.json")" ]; then
        [ "$(model_of "$d/summary.json")" = "$(model_of "$DIR/sim-fresh6/summary.json")" ] ||
            fail "sim $ver: resumed model $(model_of "$d/summary.json"), a fresh run's $(model_of "$DIR/sim-fresh6/summary.json")"
        # rounds.csv in this release's columns (eval_wall_s appended), the fresh run's but for
        # the wall times (wall_s, train_wall_s: 4, 5; eval_wall_s: 20)
        cut -d, -f1-3,6-19 "$d/rounds.csv" >"$d.rounds"
        cut -d, -f1-3,6-19 "$DIR/sim-fresh6/rounds.csv" >"$DIR/fresh6.rounds"
        head -n 1 "$d/rounds.csv" | grep -q ',train_flops,eval_wall_s$' &&
            cmp -s "$d.rounds" "$DIR/fresh6.rounds" ||
            fail "sim $ver: the resumed run's rounds.csv is not a fresh run's (wall times aside): $(diff "$d.rounds" "$DIR/fresh6.rounds" | head -5)"
    else
        echo "sim $ver: this host's first three rounds differ from the fixture's (another BLAS kernel?): model bits not compared"
    fi
done
echo "upgrade_state: ok"
