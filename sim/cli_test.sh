#!/bin/sh
# sim_cli (suite integration): what a user of the fl_sim command line sees when something is off:
# the messages name the file or option at fault and say why, and the exit status tells.
#   cli_test.sh FL_SIM
set -eu
FL_SIM=$1
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
ARGS="--dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 20 --per-round 4
      --partition iid --threads 1 --quiet 1"

fail() { echo "FAIL: $*"; exit 1; }

# rounds.csv cannot be written (a directory in its place): summary.json is written all the
# same, the error names rounds.csv and the reason, and the exit status is 1.
mkdir -p "$DIR/rs/rounds.csv"
rc=0
"$FL_SIM" $ARGS --rounds 2 --out "$DIR/rs" >/dev/null 2>"$DIR/rs.err" || rc=$?
[ "$rc" -eq 1 ] || fail "unwritable rounds.csv: exit status $rc, not 1"
tail -n 1 "$DIR/rs.err" | grep -qx "fl_sim: cannot write $DIR/rs/rounds.csv: Is a directory" ||
    fail "unwritable rounds.csv: $(cat "$DIR/rs.err")"
grep -q '"rounds": 2,' "$DIR/rs/summary.json" || fail "unwritable rounds.csv: no summary.json"
echo "unwritable rounds.csv: summary.json kept, exit status 1"

# --out naming a file: refused before anything loads, saying what is wrong with it.
: >"$DIR/file"
rc=0
"$FL_SIM" experiment afd --seeds 1 $ARGS --out "$DIR/file" >/dev/null 2>"$DIR/exp.err" || rc=$?
[ "$rc" -eq 1 ] || fail "--out FILE: experiment exit status $rc, not 1"
grep -qx "fl_sim experiment: --out: $DIR/file exists and is not a directory" "$DIR/exp.err" ||
    fail "--out FILE: experiment: $(cat "$DIR/exp.err")"
rc=0
"$FL_SIM" $ARGS --rounds 1 --out "$DIR/file/sub" >/dev/null 2>"$DIR/run.err" || rc=$?
[ "$rc" -eq 1 ] || fail "--out FILE/sub: exit status $rc, not 1"
grep -qx "fl_sim: --out: $DIR/file exists and is not a directory" "$DIR/run.err" ||
    fail "--out FILE/sub: $(cat "$DIR/run.err")"
echo "--out FILE: refused"

echo "ok"
