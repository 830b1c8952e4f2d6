#!/bin/sh
# sim_cli (suite integration): what a user of the fl_sim command line sees when something is off:
# the messages name the file or option at fault and say why, and the exit status tells.
#   cli_test.sh FL_SIM
set -eu
# The messages are checked line for line: a host whose environment sets OPENBLAS_CORETYPE (one
# CI machine sets Haswell) would add fl_sim's one-line note about it before them. The checks of
# that note below set the variable themselves.
unset OPENBLAS_CORETYPE
FL_SIM=$1
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
ARGS="--dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 20 --per-round 4
      --partition iid --threads 1 --quiet 1"

fail() { echo "FAIL: $*"; exit 1; }

# A directory where rounds.csv goes: refused before the run (exit status 1, the path named),
# not found out after the training; nothing is written. --out's trailing slash is not doubled
# in the path (until 2026-12-07: "DIR/rs//rounds.csv").
mkdir -p "$DIR/rs/rounds.csv"
rc=0
"$FL_SIM" $ARGS --rounds 2 --out "$DIR/rs/" >/dev/null 2>"$DIR/rs.err" || rc=$?
[ "$rc" -eq 1 ] || fail "rounds.csv a directory: exit status $rc, not 1"
grep -qx "fl_sim: --out: $DIR/rs/rounds.csv is a directory, where the run writes a file" "$DIR/rs.err" ||
    fail "rounds.csv a directory: $(cat "$DIR/rs.err")"
[ ! -e "$DIR/rs/summary.json" ] || fail "rounds.csv a directory: a summary.json was written"
rmdir "$DIR/rs/rounds.csv"
mkdir -p "$DIR/rs/summary.json"
rc=0
"$FL_SIM" $ARGS --rounds 2 --out "$DIR/rs" >/dev/null 2>"$DIR/rs.err" || rc=$?
[ "$rc" -eq 1 ] || fail "summary.json a directory: exit status $rc, not 1"
grep -q "summary.json is a directory" "$DIR/rs.err" || fail "summary.json a directory: $(cat "$DIR/rs.err")"
[ ! -e "$DIR/rs/rounds.csv" ] || fail "summary.json a directory: a rounds.csv was written"
# ... and resume.fls, which a run with checkpoints writes (until 2026-12-07 the run warned at
# every checkpoint and ended with nothing to resume from); a run without any takes the DIR.
rmdir "$DIR/rs/summary.json"
mkdir -p "$DIR/rs/resume.fls"
for r in 0 1; do
    rc=0
    "$FL_SIM" $ARGS --rounds 2 --checkpoint-every 1 --resume $r --out "$DIR/rs" >/dev/null \
        2>"$DIR/rs.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "resume.fls a directory, --resume $r: exit status $rc, not 1"
    grep -qx "fl_sim: --out: $DIR/rs/resume.fls is a directory, where the run writes a file" \
        "$DIR/rs.err" || fail "resume.fls a directory, --resume $r: $(cat "$DIR/rs.err")"
    [ "$(ls -A "$DIR/rs")" = resume.fls ] || fail "resume.fls a directory: written to: $(ls -A "$DIR/rs")"
done
"$FL_SIM" $ARGS --rounds 2 --checkpoint-every 0 --out "$DIR/rs" >/dev/null 2>"$DIR/rs.err" ||
    fail "resume.fls a directory, --checkpoint-every 0: $(cat "$DIR/rs.err")"
[ -d "$DIR/rs/resume.fls" ] && [ -f "$DIR/rs/summary.json" ] ||
    fail "resume.fls a directory, --checkpoint-every 0: $(ls -A "$DIR/rs")"
rm -r "$DIR/rs/resume.fls" "$DIR/rs/summary.json" "$DIR/rs/rounds.csv"
# ... and an experiment's (table.csv, a mean-*.dat): refused before its first run, not after
# training every run (until 2026-12-08 it failed at its end: "cannot write DIR/table.csv"); its
# --out "DIR/xo/" too is named without a doubled slash.
for f in table.csv mean-afd-multi+c.dat; do
    rm -rf "$DIR/xo"
    mkdir -p "$DIR/xo/$f"
    rc=0
    "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --out "$DIR/xo/" >/dev/null 2>"$DIR/xo.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "experiment, $f a directory: exit status $rc, not 1 ($(cat "$DIR/xo.err"))"
    grep -qx "fl_sim experiment: --out: $DIR/xo/$f is a directory, where the experiment writes a file" \
        "$DIR/xo.err" || fail "experiment, $f a directory: $(cat "$DIR/xo.err")"
    [ "$(ls -A "$DIR/xo")" = "$f" ] || fail "experiment, $f a directory: written to: $(ls -A "$DIR/xo")"
done
echo "a directory in an output's place: refused before the run or the experiment"

# A DIR another run holds (its lock on the directory, here flock(1)'s): refused before the run,
# exit status 1, nothing of it touched.
mkdir -p "$DIR/held"
flock -F "$DIR/held" sleep 30 & # -F: sleep itself holds it, and its kill frees it
holder=$!
i=0
until ! flock -n "$DIR/held" true 2>/dev/null || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
rc=0
"$FL_SIM" $ARGS --rounds 2 --out "$DIR/held" >/dev/null 2>"$DIR/held.err" || rc=$?
erc=0 # an experiment alike
"$FL_SIM" experiment afd --seeds 1 $ARGS --out "$DIR/held" >/dev/null 2>"$DIR/held-exp.err" || erc=$?
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
[ "$rc" -eq 1 ] || fail "a DIR in use: exit status $rc, not 1 ($(cat "$DIR/held.err"))"
grep -q "fl_sim: --out $DIR/held is in use by another fl_sim run" "$DIR/held.err" ||
    fail "a DIR in use: $(cat "$DIR/held.err")"
[ "$erc" -eq 1 ] || fail "a DIR in use: experiment exit status $erc, not 1 ($(cat "$DIR/held-exp.err"))"
grep -qx "fl_sim experiment: --out $DIR/held is in use by another fl_sim run (one run or experiment at a time writes a DIR: wait for it to end, or choose another DIR)" \
    "$DIR/held-exp.err" || fail "a DIR in use: experiment: $(cat "$DIR/held-exp.err")"
[ -z "$(ls -A "$DIR/held")" ] || fail "a DIR in use: written to: $(ls -A "$DIR/held")"
"$FL_SIM" $ARGS --rounds 2 --out "$DIR/held" >/dev/null 2>"$DIR/held.err" ||
    fail "a DIR no longer in use: $(cat "$DIR/held.err")"
echo "a DIR another run holds: refused before a run or an experiment, taken once free"

# rounds.csv cannot be written as the run goes (a full disk: /dev/full): the run goes on, says
# so, and writes it whole at the end, beside summary.json.
rm -r "$DIR/rs"
mkdir "$DIR/rs"
ln -s /dev/full "$DIR/rs/rounds.csv"
rc=0
"$FL_SIM" $ARGS --rounds 2 --out "$DIR/rs" >/dev/null 2>"$DIR/rs.err" || rc=$?
[ "$rc" -eq 0 ] || fail "rounds.csv on a full disk: exit status $rc, not 0 ($(cat "$DIR/rs.err"))"
grep -qx "fl_sim: cannot write $DIR/rs/rounds.csv: No space left on device (trying again at the end)" \
    "$DIR/rs.err" || fail "rounds.csv on a full disk: $(cat "$DIR/rs.err")"
[ "$(wc -l <"$DIR/rs/rounds.csv")" -eq 3 ] || fail "rounds.csv on a full disk: not written at the end"
grep -q '"rounds": 2,' "$DIR/rs/summary.json" || fail "rounds.csv on a full disk: no summary.json"
echo "rounds.csv on a full disk: written at the end"

# A misspelt option (the last argument, or one an option follows) is named as unknown, not as
# missing its value; --version stands alone; a known one without its value says so (--config
# too: until 2026-12-07 a run's "--config --rounds 5" read a file named --rounds, "fl_sim:
# --rounds: No such file or directory"); a --model
# that names no architecture is refused before the data loads. Exit status 2 each time.
for c in "--bogus|unknown option 'bogus'" "--rounds 1 --roundz|unknown option 'roundz'" \
         "--rounds|--rounds needs a value" "experiment afd --bogus|unknown option 'bogus'" \
         "experiment afd --seeds|--seeds needs a value" "--preset|unknown option 'preset'" \
         "experiment afd --preset|--preset needs a value" \
         "--model bogus --rounds 1|--model: unknown architecture 'bogus'" \
         "--fold-threads 64|--fold-threads: '64' is not a thread count in 0 .. 63, or auto" \
         "--fold-threads some|--fold-threads: 'some' is not a thread count in 0 .. 63, or auto" \
         "--dataset foo --rounds 1|--dataset: dataset spec \"foo\" does not parse" \
         "--dataset synth-images:12:1x8 --rounds 1|--dataset: dataset spec" \
         "--test-dataset mnist:val --rounds 1|--test-dataset: dataset spec \"mnist:val\"" \
         "experiment afd --per-round 300|full: --per-round 300 is larger than --clients 200" \
         "--out --rounds 5|--out needs a value, and the next argument, --rounds, is an option" \
         "--config --rounds 5|--config needs a value, and the next argument, --rounds, is an option" \
         "experiment afd --config --rounds 5|--config needs a value, and the next argument, --rounds, is an option" \
         "--roundz --out x|unknown option 'roundz' (did you mean --rounds? see --help)" \
         "--per_round 3 --rounds 1|unknown option 'per_round' (did you mean --per-round? see --help)" \
         "experiment afd --seds 2|unknown option 'seds' (did you mean --seeds? see --help)" \
         "experiment afd --rounds 2 --fesh|unknown option 'fesh' (did you mean --fresh? see --help)" \
         "--version --rounds 1|--version stands alone" "--rounds 1 --version|--version stands alone" \
         "--rounds 1 --|'--' alone: fl_sim takes options only" "--help=1|--help takes no value" \
         "--version=2|--version takes no value" "--version 1|--version stands alone" \
         "--rounds 1 --flops lognormal:1e308:10|--flops: 'lognormal:1e308:10' can draw a rate that is not finite" \
         "--rounds 1 --up-bps lognormal:1e200:10|--up-bps: 'lognormal:1e200:10' can draw a rate that is not finite" \
         "experiment afd --down-bps lognormal:1e308:1|--down-bps: 'lognormal:1e308:1' can draw a rate that is not finite"; do
    args=${c%%|*}
    want=${c#*|}
    rc=0
    "$FL_SIM" $args >/dev/null 2>"$DIR/opt.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "$args: exit status $rc, not 2"
    grep -qF -- "$want" "$DIR/opt.err" || fail "$args: $(cat "$DIR/opt.err")"
done
echo "last-argument options: unknown named as unknown"

# A count with a leading blank or a sign is refused, as a number or a rate with one is (until
# 2026-12-07 --rounds ' 2' ran 2 rounds and --seeds ' 2' 2 seeds): exit status 2, nothing run.
for c in "--rounds| 2|--rounds: ' 2' is not a round count in 1 .. 100000000" \
         "--clients|	20|--clients: '\\t20' is not a client count in 1 .. 1000000" \
         "experiment afd --seeds| 1|--seeds: ' 1' is not a count in 1 .. 100" \
         "experiment afd --seeds|+1|--seeds: '+1' is not a count in 1 .. 100"; do
    opt=${c%%|*}
    rest=${c#*|}
    val=${rest%%|*}
    want=${rest#*|}
    rc=0
    "$FL_SIM" $opt "$val" $ARGS --rounds 1 --out "$DIR/blank" >/dev/null 2>"$DIR/blank.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "$opt '$val': exit status $rc, not 2 ($(cat "$DIR/blank.err"))"
    grep -qxF -- "fl_sim: $want" "$DIR/blank.err" || fail "$opt '$val': $(cat "$DIR/blank.err")"
    [ ! -e "$DIR/blank" ] || fail "$opt '$val': --out written"
done
echo "counts with a leading blank or sign: refused"

# --keep-layers longer than the model's droppable layers: a single run under --policy full
# takes it (inert there, as --keep: a warning), fd refuses it (exit 1); an experiment, whose fd
# and afd runs would refuse it, says so before its first run, not after training the full ones.
rc=0
"$FL_SIM" $ARGS --rounds 1 --policy full --keep-layers 0.5,0.5 >/dev/null 2>"$DIR/kl.err" || rc=$?
[ "$rc" -eq 0 ] || fail "--keep-layers under full: exit status $rc ($(cat "$DIR/kl.err"))"
grep -qx "fl_sim: warning: --keep-layers has no effect here: --policy full trains the whole model" \
    "$DIR/kl.err" || fail "--keep-layers under full: $(cat "$DIR/kl.err")"
rc=0
"$FL_SIM" $ARGS --rounds 1 --policy fd --keep-layers 0.5,0.5 >/dev/null 2>"$DIR/kl.err" || rc=$?
[ "$rc" -eq 1 ] || fail "--keep-layers under fd: exit status $rc, not 1"
grep -qx "fl_sim: --keep-layers: 2 values, but the model mlp:64-16-4 has 1 droppable layer" \
    "$DIR/kl.err" || fail "--keep-layers under fd: $(cat "$DIR/kl.err")"
rc=0
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --keep-layers 0.5,0.5 --out "$DIR/klx" \
    >/dev/null 2>"$DIR/kl.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--keep-layers in an experiment: exit status $rc, not 2"
grep -qx "fl_sim experiment: --keep-layers: 2 values, but the model mlp:64-16-4 has 1 droppable layer" \
    "$DIR/kl.err" || fail "--keep-layers in an experiment: $(cat "$DIR/kl.err")"
[ ! -e "$DIR/klx" ] || fail "--keep-layers in an experiment: runs made: $(ls -R "$DIR/klx")"
echo "--keep-layers too long: inert under full, refused by fd and by an experiment before its runs"

# A 0|1 option alone means 1, last or before another option; with a value it takes the value,
# and a value that is no boolean is still refused. (ARGS holds --quiet 1: not used here.)
BARE="--dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 20 --per-round 4
      --partition iid --threads 1 --rounds 2"
rounds_said() { grep -c '^round ' "$1" || true; }
rc=0
"$FL_SIM" $BARE --out "$DIR/bare" --quiet >"$DIR/bare.out" 2>"$DIR/bare.err" || rc=$?
[ "$rc" -eq 0 ] || fail "--quiet alone: exit status $rc ($(cat "$DIR/bare.err"))"
[ "$(rounds_said "$DIR/bare.out")" -eq 0 ] || fail "--quiet alone: per-round lines written"
grep -q '^rounds 2 ' "$DIR/bare.out" || fail "--quiet alone: no closing line"
rc=0
"$FL_SIM" $BARE --agg-dilute --quiet 0 --out "$DIR/bare2" >"$DIR/bare2.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "--agg-dilute alone: exit status $rc ($(cat "$DIR/bare2.out"))"
grep -q '"agg_dilute": *1' "$DIR/bare2/summary.json" || fail "--agg-dilute alone: not set"
[ "$(rounds_said "$DIR/bare2.out")" -eq 2 ] || fail "--quiet 0: $(cat "$DIR/bare2.out")"
rc=0
"$FL_SIM" $BARE --quiet maybe >/dev/null 2>"$DIR/bare3.err" || rc=$?
[ "$rc" -eq 2 ] && grep -qF "'maybe' is not a boolean" "$DIR/bare3.err" ||
    fail "--quiet maybe: exit status $rc, $(cat "$DIR/bare3.err")"
echo "0|1 options: alone they mean 1"
# Booleans as YAML writes them, in any case, and on/off, as fl_server's config takes them (until
# 2026-12-08 `quiet: True` in a --config was refused: "'True' is not a boolean").
printf 'dataset: synth-images:1200:1x8x8:4\nmodel: mlp:64-16-4\nclients: 20\nper_round: 4\nrounds: 2\nquiet: True\nagg_dilute: On\nkeep_going: FALSE\n' >"$DIR/bools.yaml"
rc=0
"$FL_SIM" --config "$DIR/bools.yaml" --threads 1 --out "$DIR/bools" >"$DIR/bools.out" 2>"$DIR/bools.err" || rc=$?
[ "$rc" -eq 0 ] || fail "YAML booleans True / On / FALSE: exit status $rc ($(cat "$DIR/bools.err"))"
[ "$(rounds_said "$DIR/bools.out")" -eq 0 ] || fail "quiet: True: per-round lines written"
grep -q '"agg_dilute": *1' "$DIR/bools/summary.json" && grep -q '"keep_going": *0' "$DIR/bools/summary.json" ||
    fail "agg_dilute: On, keep_going: FALSE: not as set: $(grep -o '"agg_dilute": [0-9]*\|"keep_going": [0-9]*' "$DIR/bools/summary.json")"
echo "booleans: True, On, FALSE as YAML writes them"

# A flag given again: the last value counts (a script's common flags, then an override), said.
"$FL_SIM" $ARGS --rounds 1 --per-round 2 >/dev/null 2>"$DIR/twice.err" ||
    fail "a flag given again: $(cat "$DIR/twice.err")"
grep -qx "fl_sim: warning: --per-round is given more than once: the last, '2', is used" \
    "$DIR/twice.err" || fail "a flag given again: $(cat "$DIR/twice.err")"
grep -q "quiet" "$DIR/twice.err" && fail "a flag given once said: $(cat "$DIR/twice.err")"
# Three times: one warning, naming the value used (each repeat named the value given so far).
"$FL_SIM" $ARGS --rounds 3 --rounds 1 --rounds 2 >/dev/null 2>"$DIR/thrice.err" ||
    fail "a flag given thrice: $(cat "$DIR/thrice.err")"
[ "$(grep -c "warning: --rounds is given more than once" "$DIR/thrice.err")" = 1 ] &&
    grep -qx "fl_sim: warning: --rounds is given more than once: the last, '2', is used" \
        "$DIR/thrice.err" || fail "a flag given thrice: $(cat "$DIR/thrice.err")"
echo "a flag given again: said"

# A trace whose lines end in a CR alone: one line; its error shows the CR as \x0d, not raw.
printf 'client,flops,down_bps,up_bps,availability\r0,1e9,1e6,1e6,0.5\r' >"$DIR/cr.csv"
rc=0
"$FL_SIM" $ARGS --rounds 1 --trace "$DIR/cr.csv" >/dev/null 2>"$DIR/cr.err" || rc=$?
[ "$rc" -eq 1 ] || fail "a CR-only trace: exit status $rc, not 1"
grep -qF "its column 5 is 'availability\x0d0', not 'availability' (the file's lines end in a CR alone" \
    "$DIR/cr.err" || fail "a CR-only trace: $(cat -A "$DIR/cr.err")"
grep -q "$(printf '\r')" "$DIR/cr.err" && fail "a CR-only trace: a raw CR in the message"
echo "a CR-only trace: refused, the CR shown as \\x0d"

# An empty --trace (an unset $TRACE in a script) is refused, not run without the trace.
rc=0
"$FL_SIM" --trace "" --rounds 1 >/dev/null 2>"$DIR/opt.err" || rc=$?
[ "$rc" -eq 2 ] && grep -qF -- "--trace is empty (leave it out, or write ~ in a config file, for none)" \
    "$DIR/opt.err" || fail "--trace '': exit status $rc: $(cat "$DIR/opt.err")"
echo "an empty --trace refused"

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
# a symlink whose target is gone (until 2026-12-07: "cannot create DIR/dangling: File exists")
ln -s "$DIR/gone" "$DIR/dangling"
rc=0
"$FL_SIM" $ARGS --rounds 1 --out "$DIR/dangling" >/dev/null 2>"$DIR/run.err" || rc=$?
[ "$rc" -eq 1 ] || fail "--out DANGLING: exit status $rc, not 1"
grep -qx "fl_sim: --out: $DIR/dangling is a symbolic link to $DIR/gone, which does not exist (or \
cannot be reached): make it, or point the link elsewhere" "$DIR/run.err" ||
    fail "--out DANGLING: $(cat "$DIR/run.err")"
[ ! -e "$DIR/gone" ] || fail "--out DANGLING: its target was made"
echo "--out FILE: refused"

# No update accepted in any round (a learning rate that diverges): a warning that says so and
# points at the likely cause, the counts in summary.json, and still exit status 0 (the run did
# what it was asked).
rc=0
"$FL_SIM" $ARGS --rounds 3 --lr 1e6 --out "$DIR/nolearn" >"$DIR/nolearn.out" 2>"$DIR/nolearn.err" || rc=$?
[ "$rc" -eq 0 ] || fail "no update accepted: exit status $rc, not 0"
grep -q "^fl_sim: warning: no client update was accepted in 3 rounds (12 failed, 0 late);.*--lr 1e+06" \
    "$DIR/nolearn.err" || fail "no update accepted: no warning: $(grep -v '^warn\|^error' "$DIR/nolearn.err")"
grep -q '"updates_accepted": 0,' "$DIR/nolearn/summary.json" &&
    grep -q '"updates_failed": 12,' "$DIR/nolearn/summary.json" || fail "no update accepted: summary.json"
"$FL_SIM" $ARGS --rounds 2 --progress lines --quiet 0 >"$DIR/plain.out" 2>"$DIR/plain.err"
grep -q "^round 2 .* reported 4 late 0 failed 0$" "$DIR/plain.out" || fail "plain line: $(cat "$DIR/plain.out")"
! grep -q "warning: no client update" "$DIR/plain.err" || fail "a run that learned warned: $(cat "$DIR/plain.err")"
echo "no update accepted: warned, exit status 0"

# Virtual times past 1e9 s (here idle steps of 1e9 s while too few clients are online) stay
# short on the plain progress lines (six significant digits), as they do in rounds.csv: %.3f of
# the huge times a slow trace makes printed hundreds of digits.
"$FL_SIM" $ARGS --rounds 3 --availability p:0.1 --idle-step 1e9 --progress lines --quiet 0 \
    --out "$DIR/long" >"$DIR/long.out" 2>"$DIR/long.err" || fail "long virtual times: $(cat "$DIR/long.err")"
awk '/^round / { if ($4 !~ /^[0-9.]+e\+[0-9]+$/ || length($4) > 12) bad = bad " " $4 } END { if (bad) { print bad; exit 1 } }' \
    "$DIR/long.out" || fail "long virtual times on the progress lines: $(cat "$DIR/long.out")"
[ "$(grep -c '^round [0-9]* vtime_s ' "$DIR/long.out")" -eq 3 ] || fail "long virtual times: $(cat "$DIR/long.out")"
awk -F, 'NR > 1 && length($2) > 16 { exit 1 }' "$DIR/long/rounds.csv" ||
    fail "long virtual times in rounds.csv: $(cat "$DIR/long/rounds.csv")"
echo "long virtual times: short on the progress lines"

# More --threads than the CPUs this process may run on (nproc: its affinity mask, as fl_sim
# counts them): one warning at start, and the run goes on to its results; as many as the CPUs:
# none. The experiment says it too. (Until 2026-12-02 --threads 1000 on 2 CPUs said nothing.)
ncpu=$(nproc)
if [ "$ncpu" -lt 1024 ]; then
    NT_ARGS=$(echo $ARGS | sed 's/ --threads 1//') # ARGS without its --threads
    over=$((ncpu + 1))
    said="warning: --threads $over is more than the $ncpu CPU$([ "$ncpu" -eq 1 ] || echo s) this process may run on: the threads take turns on them, so the run is no faster than with --threads $ncpu (its results are the same either way)"
    rc=0
    "$FL_SIM" $NT_ARGS --rounds 2 --threads "$over" --out "$DIR/over" >/dev/null 2>"$DIR/over.err" || rc=$?
    [ "$rc" -eq 0 ] || fail "--threads $over: exit status $rc ($(cat "$DIR/over.err"))"
    [ "$(grep -cx "fl_sim: $said" "$DIR/over.err")" -eq 1 ] ||
        fail "--threads $over on $ncpu CPUs: not warned once: $(cat "$DIR/over.err")"
    grep -q '"rounds": 2,' "$DIR/over/summary.json" || fail "--threads $over: no summary.json"
    "$FL_SIM" $NT_ARGS --rounds 1 --threads "$ncpu" >/dev/null 2>"$DIR/atcpu.err" ||
        fail "--threads $ncpu: $(cat "$DIR/atcpu.err")"
    ! grep -q "warning: --threads" "$DIR/atcpu.err" || fail "--threads $ncpu on $ncpu CPUs warned: $(cat "$DIR/atcpu.err")"
    rc=0 # the experiment: checked before anything loads (its dataset is not there)
    FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" experiment afd --seeds 3 --threads "$over" \
        --out "$DIR/overexp" >/dev/null 2>"$DIR/overexp.err" || rc=$?
    [ "$(grep -cx "fl_sim experiment: $said" "$DIR/overexp.err")" -eq 1 ] ||
        fail "experiment --threads $over: not warned once: $(cat "$DIR/overexp.err")"
    echo "--threads $over on $ncpu CPUs: warned once, the run went on"
fi

# OPENBLAS_CORETYPE naming another kernel than fedrop's pick for this CPU (AVX2 -> Haswell,
# AVX-512 -> SkylakeX): one note at start, the run goes on with it; none under --quiet, none with
# the variable unset. (Until 2026-12-04 only summary.json's "blas" told, after the run.)
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
    OPENBLAS_CORETYPE=Prescott "$FL_SIM" $ARGS --rounds 1 --quiet 0 --progress lines \
        >/dev/null 2>"$DIR/core.err" || fail "OPENBLAS_CORETYPE=Prescott: $(cat "$DIR/core.err")"
    [ "$(grep -c "^fl_sim: note: OPENBLAS_CORETYPE=Prescott in the environment replaces \(Haswell\|SkylakeX\), the kernel fedrop picks for this CPU: .*unset the variable to train on" "$DIR/core.err")" -eq 1 ] ||
        fail "OPENBLAS_CORETYPE=Prescott: not noted once: $(cat "$DIR/core.err")"
    OPENBLAS_CORETYPE=Prescott "$FL_SIM" $ARGS --rounds 1 >/dev/null 2>"$DIR/core.err" ||
        fail "OPENBLAS_CORETYPE=Prescott, --quiet: $(cat "$DIR/core.err")"
    ! grep -q "note: OPENBLAS_CORETYPE" "$DIR/core.err" || fail "noted under --quiet: $(cat "$DIR/core.err")"
    env -u OPENBLAS_CORETYPE "$FL_SIM" $ARGS --rounds 1 --quiet 0 --progress lines \
        >/dev/null 2>"$DIR/core.err" || fail "OPENBLAS_CORETYPE unset: $(cat "$DIR/core.err")"
    ! grep -q "note: OPENBLAS_CORETYPE" "$DIR/core.err" || fail "noted, variable unset: $(cat "$DIR/core.err")"
    echo "OPENBLAS_CORETYPE=Prescott: noted once at start, not under --quiet nor when unset"
fi
# A name OpenBLAS does not know (a typo): it runs its own detection's kernel, and the note says
# that one runs, not that the variable's name "replaces" fedrop's pick and rounds otherwise.
if env -u OPENBLAS_CORETYPE "$FL_SIM" $ARGS --rounds 1 | grep -q ' blas [A-Za-z]' &&
    ! env -u OPENBLAS_CORETYPE "$FL_SIM" $ARGS --rounds 1 | grep -q ' blas reference'; then
    OPENBLAS_CORETYPE=NoSuchCore "$FL_SIM" $ARGS --rounds 1 --quiet 0 --progress lines \
        >"$DIR/nocore.out" 2>"$DIR/core.err" || fail "OPENBLAS_CORETYPE=NoSuchCore: $(cat "$DIR/core.err")"
    ran=$(grep -o 'blas [^ ]*' "$DIR/nocore.out" | tail -n 1 | cut -d' ' -f2) # "+AVX512" too
    [ "$(grep -c "^fl_sim: note: OPENBLAS_CORETYPE=NoSuchCore in the environment is not what OpenBLAS runs (a name it does not know, or a kernel it will not run on this CPU): it runs $ran " "$DIR/core.err")" -eq 1 ] &&
        ! grep -q "replaces" "$DIR/core.err" ||
        fail "OPENBLAS_CORETYPE=NoSuchCore (OpenBLAS ran $ran): $(cat "$DIR/core.err")"
    echo "OPENBLAS_CORETYPE=NoSuchCore: noted as not what OpenBLAS runs ($ran)"
fi

# Where a named dataset is looked for, as --help says: $FEDROP_DATA_DIR/NAME, then the variable's
# directory itself (and not /usr/share/datasets when it is set).
"$FL_SIM" --help | grep -q 'FEDROP_DATA_DIR/NAME' || fail "--help does not say where datasets are"
rc=0
FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" --dataset mnist --rounds 1 --quiet 1 >/dev/null 2>"$DIR/data.err" || rc=$?
[ "$rc" -ne 0 ] || fail "a dataset that is not there: exit status 0"
grep -q "not found in $DIR/nodata/mnist or $DIR/nodata (the directory of \$FEDROP_DATA_DIR)\$" "$DIR/data.err" ||
    fail "missing dataset: $(cat "$DIR/data.err")"
echo "datasets: looked for where --help says"

# idx:IMAGES,LABELS with neither file there: both are named, the images first (as the spec has
# them), not only the labels; and the option that named them (until 2026-12-07 the files alone).
rc=0
"$FL_SIM" --dataset "idx:$DIR/noimg,$DIR/nolab" --rounds 1 --quiet 1 >/dev/null 2>"$DIR/idx.err" || rc=$?
[ "$rc" -eq 1 ] || fail "idx pair missing: exit status $rc, not 1"
grep -qx "fl_sim: --dataset idx:$DIR/noimg,$DIR/nolab: $DIR/noimg: cannot open: No such file or directory; $DIR/nolab: cannot open: No such file or directory" \
    "$DIR/idx.err" || fail "idx pair missing: $(cat "$DIR/idx.err")"
echo "idx pair missing: both files named"

# The same pair as --test-dataset, beside a training set that loads: the option is named (its
# message was the training set's, word for word, until 2026-12-02).
rc=0
"$FL_SIM" $ARGS --test-dataset "idx:$DIR/noimg,$DIR/nolab" --rounds 1 >/dev/null 2>"$DIR/tidx.err" || rc=$?
[ "$rc" -eq 1 ] || fail "test idx pair missing: exit status $rc, not 1"
grep -qx "fl_sim: --test-dataset idx:$DIR/noimg,$DIR/nolab: $DIR/noimg: cannot open: No such file or directory; $DIR/nolab: cannot open: No such file or directory" \
    "$DIR/tidx.err" || fail "test idx pair missing: $(cat "$DIR/tidx.err")"
echo "test idx pair missing: --test-dataset named"

# A run whose dataset does not load leaves no --out directory it made, however deep; one that was
# there stays, with what it holds.
rc=0
FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" --dataset mnist --rounds 1 --quiet 1 --out "$DIR/runnd/deep" \
    >/dev/null 2>"$DIR/runnd.err" || rc=$?
[ "$rc" -eq 1 ] || fail "run, missing dataset: exit status $rc, not 1"
[ ! -e "$DIR/runnd" ] || fail "run, missing dataset: left $(find "$DIR/runnd" | tr '\n' ' ')"
mkdir -p "$DIR/runold/deep" && touch "$DIR/runold/keep"
FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" --dataset mnist --rounds 1 --quiet 1 --out "$DIR/runold/deep" \
    >/dev/null 2>&1 && fail "run, missing dataset, existing --out: exit status 0"
[ -d "$DIR/runold/deep" ] && [ -e "$DIR/runold/keep" ] ||
    fail "run, missing dataset: an --out that existed was removed"
echo "run, missing dataset: no directory left"

# An experiment whose dataset does not load says why, exits 1, and leaves no directory it made
# (--out DIR, however deep, and DIR/runs); a DIR/runs that was there, with a run in it, stays.
rc=0
FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" experiment afd --seeds 1 --out "$DIR/expnd/deep" \
    >/dev/null 2>"$DIR/expnd.err" || rc=$?
[ "$rc" -eq 1 ] || fail "experiment, missing dataset: exit status $rc, not 1"
grep -q "^fl_sim experiment: dataset: .*not found in $DIR/nodata/fashion-mnist or $DIR/nodata (the directory of \$FEDROP_DATA_DIR)\$" \
    "$DIR/expnd.err" || fail "experiment, missing dataset: $(cat "$DIR/expnd.err")"
[ ! -e "$DIR/expnd" ] || fail "experiment, missing dataset: left $(find "$DIR/expnd" | tr '\n' ' ')"
mkdir -p "$DIR/expold/runs/full-s1"
rc=0
FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" experiment afd --seeds 1 --out "$DIR/expold" \
    >/dev/null 2>"$DIR/expold.err" || rc=$?
[ "$rc" -eq 1 ] || fail "experiment, missing dataset, earlier runs: exit status $rc, not 1"
[ -d "$DIR/expold/runs/full-s1" ] || fail "experiment, missing dataset: an earlier run was removed"
echo "experiment, missing dataset: refused, no directory left"
# --target-acc 0 (none) is taken by the experiment, whose presets set keep-going with their
# target: the run gets as far as the (missing) dataset, not refused for --keep-going.
rc=0
FEDROP_DATA_DIR="$DIR/nodata" "$FL_SIM" experiment afd --seeds 1 --target-acc 0 --out "$DIR/expt0" \
    >/dev/null 2>"$DIR/expt0.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "^fl_sim experiment: dataset: " "$DIR/expt0.err" ||
    fail "experiment --target-acc 0: exit status $rc: $(cat "$DIR/expt0.err")"
echo "experiment --target-acc 0: taken"
# An experiment whose table.md cannot be written (here a directory in its place) names the file
# and why, exits 1, and leaves no table.csv emptied beside it (it said "cannot write the tables
# under DIR", and table.csv stayed, empty); since 2026-12-08 before its first run (the failure
# at the end, a full disk, is test_sim's test_experiment_resumes).
mkdir -p "$DIR/exptab/table.md"
rc=0
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --out "$DIR/exptab" >/dev/null \
    2>"$DIR/exptab.err" || rc=$?
[ "$rc" -eq 1 ] || fail "experiment, table.md a directory: exit status $rc, not 1"
grep -qx "fl_sim experiment: --out: $DIR/exptab/table.md is a directory, where the experiment writes a file" \
    "$DIR/exptab.err" || fail "experiment, table.md a directory: $(cat "$DIR/exptab.err")"
[ ! -e "$DIR/exptab/table.csv" ] || fail "experiment, table.md a directory: table.csv left behind"
[ ! -e "$DIR/exptab/runs" ] || fail "experiment, table.md a directory: runs trained first"
echo "experiment, table.md cannot be written: named, exit status 1"

# An experiment resumed with another BLAS (here FLM_NO_SKINNY, which summary.json's "blas" names
# where it turns fedrop's AVX-512 kernels off) takes the saved runs, and says once that they may
# differ in their last bits; with the same one it says nothing.
(unset FLM_NO_SKINNY; "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --out "$DIR/expblas") \
    >/dev/null 2>&1 || fail "experiment for the BLAS check failed"
FLM_NO_SKINNY=1 "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --out "$DIR/expblas" \
    >/dev/null 2>"$DIR/expblas.err" || fail "experiment resumed under FLM_NO_SKINNY: $(cat "$DIR/expblas.err")"
if FLM_NO_SKINNY=1 "$FL_SIM" $ARGS --rounds 1 | grep -q "blas [^ ]*+FLM_NO_SKINNY "; then
    [ "$(grep -c "8 saved runs were trained with another BLAS than this host's .*+FLM_NO_SKINNY" \
        "$DIR/expblas.err")" -eq 1 ] || fail "experiment, another BLAS: $(cat "$DIR/expblas.err")"
    echo "experiment resumed with another BLAS: said once"
else # no AVX-512 here: the variable changes nothing, and nothing is said
    ! grep -q "another BLAS" "$DIR/expblas.err" || fail "experiment, FLM_NO_SKINNY without AVX-512: $(cat "$DIR/expblas.err")"
    echo "experiment under FLM_NO_SKINNY without AVX-512: nothing to say"
fi
# (and a temporary that a crash while table.md was written left beside it is removed: the
# tables are written whole to a temporary and renamed, never in place)
printf '| config | reached' > "$DIR/expblas/table.md.tmp.Ab12Cd"
(unset FLM_NO_SKINNY; "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --out "$DIR/expblas") \
    >/dev/null 2>"$DIR/expblas.err"
! grep -q "another BLAS" "$DIR/expblas.err" || fail "experiment, same BLAS: $(cat "$DIR/expblas.err")"
[ -z "$(ls "$DIR/expblas" | grep '\.tmp\.')" ] && [ "$(grep -c '^| ' "$DIR/expblas/table.md")" -eq 9 ] ||
    fail "experiment tables: $(ls "$DIR/expblas"), $(cat "$DIR/expblas/table.md")"

# Two runs with the same "blas" must have used the same kernels. OPENBLAS_CORETYPE=Haswell names
# OpenBLAS's core only: on an AVX-512 CPU fedrop's own AVX-512 kernels run beside it, on a CPU with
# AVX2 alone they do not (as under FLM_NO_SKINNY here), and the bits differ; the bare "Haswell" is
# what the AVX2 CPU says, so this one must say more. (mlp:64-512-4: a layer big enough for them.)
BIG="--dataset synth-images:1200:1x8x8:4 --model mlp:64-512-4 --clients 20 --per-round 4
     --partition iid --threads 1 --quiet 1 --rounds 1"
with=$(env -u FLM_NO_SKINNY OPENBLAS_CORETYPE=Haswell "$FL_SIM" $BIG | grep -o 'blas .*')
without=$(OPENBLAS_CORETYPE=Haswell FLM_NO_SKINNY=1 "$FL_SIM" $BIG | grep -o 'blas .*')
if [ "${with##* }" != "${without##* }" ]; then
    case $with in
    "blas Haswell "*) fail "AVX-512 kernels beside OpenBLAS's Haswell, named as without: $with" ;;
    "blas Haswell+AVX512 "*) echo "blas names fedrop's AVX-512 kernels beside OpenBLAS's Haswell" ;;
    *) fail "OPENBLAS_CORETYPE=Haswell: $with" ;;
    esac
else # no AVX-512 here (or no OpenBLAS): the kernels are the same either way
    echo "blas with and without FLM_NO_SKINNY: the same bits here, nothing to name"
fi

# An experiment with a trace reads its saved runs back while the trace's rows are the same, and
# trains them again, saying so once, when the rows were edited under the same --trace path (its
# settings, which name the path only, still match).
printf 'client,flops,down_bps,up_bps,availability\n0,1e9,2e7,5e6,1\n1,2e9,1e7,2e6,1\n' \
    >"$DIR/exptr.csv"
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --trace "$DIR/exptr.csv" --out "$DIR/exptr" \
    >/dev/null 2>&1 || fail "experiment with a trace failed"
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --trace "$DIR/exptr.csv" --out "$DIR/exptr" \
    --quiet 0 --progress lines >/dev/null 2>"$DIR/exptr.err" || fail "experiment with a trace, again: $(cat "$DIR/exptr.err")"
[ "$(grep -c "(read back from .*/exptr/runs/" "$DIR/exptr.err")" -eq 8 ] &&
    ! grep -q "trace rows" "$DIR/exptr.err" ||
    fail "experiment with the same trace: not every run read back: $(cat "$DIR/exptr.err")"
sed -i 's/^1,2e9,/1,3e9,/' "$DIR/exptr.csv"
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --trace "$DIR/exptr.csv" --out "$DIR/exptr" \
    --quiet 0 --progress lines >/dev/null 2>"$DIR/exptr.err" || fail "experiment with an edited trace: $(cat "$DIR/exptr.err")"
[ "$(grep -c "read back from" "$DIR/exptr.err")" -eq 0 ] &&
    [ "$(grep -c "trace rows" "$DIR/exptr.err")" -eq 1 ] &&
    grep -qF "/exptr/runs/full-s1 and 7 other saved runs: their trace rows differ from --trace $(cd "$DIR" && pwd -P)/exptr.csv's now: run again" \
    "$DIR/exptr.err" || fail "experiment with an edited trace: $(cat "$DIR/exptr.err")"
echo "experiment with a trace: runs read back while its rows are the same, run again once edited"

# --fresh takes what the other on/off options take (until 2026-12-07 it refused true/false/yes/no):
# yes trains every run again, no reads the saved ones back; anything else is refused, exit 2.
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --out "$DIR/fr" >/dev/null 2>&1 ||
    fail "experiment for --fresh failed"
for v in yes true; do
    "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --out "$DIR/fr" --fresh $v --quiet 0 \
        --progress lines >/dev/null 2>"$DIR/fr.err" || fail "--fresh $v: $(cat "$DIR/fr.err")"
    [ "$(grep -c "final acc .* rounds, .* virtual s" "$DIR/fr.err")" -eq 8 ] &&
        ! grep -q "read back" "$DIR/fr.err" || fail "--fresh $v: not every run trained: $(cat "$DIR/fr.err")"
done
for v in no false; do
    "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --out "$DIR/fr" --fresh $v --quiet 0 \
        --progress lines >/dev/null 2>"$DIR/fr.err" || fail "--fresh $v: $(cat "$DIR/fr.err")"
    [ "$(grep -c "read back from" "$DIR/fr.err")" -eq 8 ] ||
        fail "--fresh $v: not every run read back: $(cat "$DIR/fr.err")"
done
rc=0
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --out "$DIR/fr" --fresh maybe >/dev/null \
    2>"$DIR/fr.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--fresh maybe: exit status $rc, not 2"
grep -qx "fl_sim: --fresh: 'maybe' is not a boolean (0/1, true/false, yes/no, on/off)" "$DIR/fr.err" ||
    fail "--fresh maybe: $(cat "$DIR/fr.err")"
echo "--fresh: 0/1, true/false, yes/no, on/off, as the other on/off options"

# An option the other settings make inert is named in a warning (the run goes on); the same
# option where it matters is not.
"$FL_SIM" $ARGS --rounds 1 --keep 0.5 >/dev/null 2>"$DIR/keep.err" || fail "--keep under full: $(cat "$DIR/keep.err")"
grep -qx "fl_sim: warning: --keep has no effect here: --policy full trains the whole model" "$DIR/keep.err" ||
    fail "--keep under full: no warning: $(cat "$DIR/keep.err")"
"$FL_SIM" $ARGS --rounds 1 --keep 0.5 --policy fd >/dev/null 2>"$DIR/keepfd.err"
! grep -q "warning" "$DIR/keepfd.err" || fail "--keep under fd: $(cat "$DIR/keepfd.err")"
"$FL_SIM" $ARGS --rounds 1 --keep 1 --policy fd --idle-step 5 >/dev/null 2>"$DIR/keep1.err" ||
    fail "--keep 1 under fd: $(cat "$DIR/keep1.err")"
grep -qx "fl_sim: warning: --keep 1 keeps every unit: --policy fd then trains the whole model, as \
--policy full does" "$DIR/keep1.err" || fail "--keep 1 under fd: no warning: $(cat "$DIR/keep1.err")"
grep -q "warning: --idle-step has no effect here: with --availability always" "$DIR/keep1.err" ||
    fail "--idle-step, always online: no warning: $(cat "$DIR/keep1.err")"
# ... naming the policy given (until 2026-12-07 --policy fd-per-client was said as "fd")
"$FL_SIM" $ARGS --rounds 1 --keep 1 --policy fd-per-client >/dev/null 2>"$DIR/keep1pc.err" ||
    fail "--keep 1 under fd-per-client: $(cat "$DIR/keep1pc.err")"
grep -qx "fl_sim: warning: --keep 1 keeps every unit: --policy fd-per-client then trains the whole \
model, as --policy full does" "$DIR/keep1pc.err" ||
    fail "--keep 1 under fd-per-client: $(cat "$DIR/keep1pc.err")"
# --keep below 1 with --keep-layers keeping every droppable layer whole: said too, once the model
# is known (until 2026-12-07 it was not), once by an experiment, not by each of its runs.
"$FL_SIM" $ARGS --rounds 1 --keep 0.5 --keep-layers 1 --policy fd >/dev/null 2>"$DIR/klw.err" ||
    fail "--keep-layers 1 under fd: $(cat "$DIR/klw.err")"
grep -qx "warn  --keep-layers 1 keeps every unit of the 1 droppable layer of mlp:64-16-4 (--keep \
0.5 applies to none): --policy fd then trains the whole model, as --policy full does" "$DIR/klw.err" ||
    fail "--keep-layers 1 under fd: no warning: $(cat "$DIR/klw.err")"
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --keep 0.5 --keep-layers 1 --out "$DIR/expklw" \
    >/dev/null 2>"$DIR/expklw.err" || fail "experiment, --keep-layers 1: $(cat "$DIR/expklw.err")"
[ "$(grep -c "keeps every unit" "$DIR/expklw.err")" -eq 1 ] &&
    grep -qx "warn  --keep-layers 1 keeps every unit of the 1 droppable layer of mlp:64-16-4 \
(--keep 0.5 applies to none): fd and afd then train the whole model, as full does" "$DIR/expklw.err" ||
    fail "experiment, --keep-layers 1: not one warning: $(cat "$DIR/expklw.err")"
# A model without droppable layers (a dense layer alone) trains whole under fd and afd: said.
"$FL_SIM" $ARGS --rounds 1 --model mlp:64-4 --policy afd-single >/dev/null 2>"$DIR/nodrop.err" ||
    fail "no droppable layer: $(cat "$DIR/nodrop.err")"
grep -q "mlp:64-4 has no droppable layer: --policy afd-single then trains the whole model" \
    "$DIR/nodrop.err" || fail "no droppable layer under afd-single: no warning: $(cat "$DIR/nodrop.err")"
"$FL_SIM" $ARGS --rounds 1 --model mlp:64-4 >/dev/null 2>"$DIR/nodropfull.err"
! grep -q "droppable" "$DIR/nodropfull.err" || fail "no droppable layer under full: $(cat "$DIR/nodropfull.err")"
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --model mlp:64-4 --out "$DIR/expnodrop" \
    >/dev/null 2>"$DIR/expnodrop.err" || fail "experiment, no droppable layer: $(cat "$DIR/expnodrop.err")"
[ "$(grep -c "droppable" "$DIR/expnodrop.err")" -eq 1 ] &&
    grep -qx "fl_sim experiment: warning: --model mlp:64-4 has no droppable layer: fd and afd then \
train the whole model, as full does" "$DIR/expnodrop.err" ||
    fail "experiment, no droppable layer: not warned once: $(cat "$DIR/expnodrop.err")"
echo "inert options: warned"

# --target-acc with --eval-every 0: the target can only be found at the last round, which the
# run says once at start (under --quiet too: a warning); the run goes on. With evaluations
# every round it says nothing.
"$FL_SIM" $ARGS --rounds 3 --target-acc 0.3 --eval-every 0 >"$DIR/tgt0.out" 2>"$DIR/tgt0.err" ||
    fail "--target-acc, --eval-every 0: $(cat "$DIR/tgt0.err")"
[ "$(grep -c "^fl_sim: warning: --target-acc 0.3 with --eval-every 0: the test set is evaluated only after the last round (3)," "$DIR/tgt0.err")" -eq 1 ] ||
    fail "--target-acc, --eval-every 0: not warned once: $(cat "$DIR/tgt0.err")"
grep -q "^rounds 3 " "$DIR/tgt0.out" || fail "--target-acc, --eval-every 0: the run did not go on"
"$FL_SIM" $ARGS --rounds 3 --target-acc 0.3 --eval-every 1 >/dev/null 2>"$DIR/tgt1.err"
! grep -q "warning" "$DIR/tgt1.err" || fail "--target-acc, --eval-every 1: $(cat "$DIR/tgt1.err")"
echo "target with no evaluation before the last round: warned"

# --config naming a directory: the reason, not a bare "read error".
rc=0
"$FL_SIM" --config "$DIR" >/dev/null 2>"$DIR/cfgdir.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--config DIR: exit status $rc, not 2"
grep -qx "fl_sim: --config: $DIR: a directory, not a regular file" "$DIR/cfgdir.err" ||
    fail "--config DIR: $(cat "$DIR/cfgdir.err")"
echo "--config DIR: says it is a directory"
# --config naming no file: the option is named, as --trace's is (until 2026-12-07
# "fl_sim: missing.yaml: No such file or directory" alone)
rc=0
"$FL_SIM" --config "$DIR/missing.yaml" >/dev/null 2>"$DIR/cfgmissing.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--config missing.yaml: exit status $rc, not 2"
grep -qx "fl_sim: --config: $DIR/missing.yaml: No such file or directory" "$DIR/cfgmissing.err" ||
    fail "--config missing.yaml: $(cat "$DIR/cfgmissing.err")"
# a block scalar's value ends in a line break: the message is one line, and says why
printf 'rounds: |\n  2\n' > "$DIR/block.yaml"
rc=0
"$FL_SIM" --config "$DIR/block.yaml" >/dev/null 2>"$DIR/cfgblock.err" || rc=$?
[ "$rc" -eq 2 ] || fail "rounds: |: exit status $rc, not 2"
[ "$(wc -l < "$DIR/cfgblock.err")" -eq 1 ] || fail "rounds: |: not one line: $(cat "$DIR/cfgblock.err")"
grep -qF "fl_sim: $DIR/block.yaml:1: --rounds: '2\n' is not a round count in 1 .. 100000000 (a block scalar" \
    "$DIR/cfgblock.err" || fail "rounds: |: $(cat "$DIR/cfgblock.err")"
echo "--config missing, or a block scalar: said on one line, naming the option"
# A line indented under an option that already has a value ("rounds: 2", then "    seed: 3") is
# said as such, at that line (until 2026-12-07 "'2 seed' is not a round count" at line 1, and
# after a comment libyaml's "did not find expected key while parsing a block mapping")
printf 'rounds: 2\n    seed: 3\n' >"$DIR/deep.yaml"
printf 'rounds: 2 # two\n\n    seed: 3\n' >"$DIR/deepc.yaml"
rc=0
"$FL_SIM" --config "$DIR/deep.yaml" >/dev/null 2>"$DIR/cfgdeep.err" || rc=$?
[ "$rc" -eq 2 ] || fail "over-indented line: exit status $rc, not 2"
grep -qx "fl_sim: $DIR/deep.yaml:2: --rounds: this line is indented under 'rounds' (line 1), which already has a value ('2'): YAML reads it as more of that value; an option beside it is indented as it is" \
    "$DIR/cfgdeep.err" || fail "over-indented line: $(cat "$DIR/cfgdeep.err")"
rc=0
"$FL_SIM" --config "$DIR/deepc.yaml" >/dev/null 2>"$DIR/cfgdeep.err" || rc=$?
[ "$rc" -eq 2 ] || fail "over-indented line after a comment: exit status $rc, not 2"
grep -qx "fl_sim: $DIR/deepc.yaml:3: this line is indented under 'rounds' (line 1), which already has a value ('2'): an option beside it is indented as it is (libyaml: did not find expected key)" \
    "$DIR/cfgdeep.err" || fail "over-indented line after a comment: $(cat "$DIR/cfgdeep.err")"
echo "--config: a line indented under an option with a value is said so, at that line"
# Every message fl_sim prints is one line: a line break in a flag's value or a path it quotes
# is written \n (until 2026-12-07 "--trace: a" and "b: no such file" on two lines)
nl='
'
for c in "--trace|a${nl}b|fl_sim: --trace: a\\nb: no such file" \
         "experiment afd --seeds|${nl}1|fl_sim: --seeds: '\\n1' is not a count in 1 .. 100" \
         "experiment afd --preset|x${nl}y|fl_sim: --preset: 'x\\ny' is not small or full"; do
    opt=${c%%|*}
    rest=${c#*|}
    val=${rest%%|*}
    want=${rest#*|}
    rc=0
    "$FL_SIM" $opt "$val" >/dev/null 2>"$DIR/nl.err" || rc=$?
    [ "$rc" -ne 0 ] || fail "$opt with a line break: exit status 0"
    [ "$(wc -l < "$DIR/nl.err")" -eq 1 ] && grep -qxF -- "$want" "$DIR/nl.err" ||
        fail "$opt with a line break: $(cat "$DIR/nl.err")"
done
echo "a line break in a flag's value or path: said escaped, on one line"
# "fl_sim experiment X": the name given is quoted, or said to be missing (until 2026-12-07 both
# were "the experiment is 'afd'" alone, which did not say what was read as the name)
for c in "experiment|fl_sim: experiment needs its name: the experiment is 'afd' (fl_sim experiment afd --help)" \
         "experiment --seeds 3|fl_sim: unknown experiment '--seeds': the experiment is 'afd' (fl_sim experiment afd --help)" \
         "experiment afd-multi|fl_sim: unknown experiment 'afd-multi': the experiment is 'afd' (fl_sim experiment afd --help)"; do
    rc=0
    "$FL_SIM" ${c%%|*} >/dev/null 2>"$DIR/expname.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "${c%%|*}: exit status $rc, not 2"
    grep -qxF -- "${c#*|}" "$DIR/expname.err" || fail "${c%%|*}: $(cat "$DIR/expname.err")"
done
echo "fl_sim experiment with no name or another: said so"
# --config a FIFO (as a shell's <(...) gives a pipe): read once its writer comes; its relative
# paths are taken from where fl_sim runs (a pipe has no directory), as its output is.
mkfifo "$DIR/cfg.fifo"
# (the writers give up after 20 s: a fl_sim that never opens the FIFO fails the test, not hangs it)
timeout 20 sh -c 'printf "rounds: 2\nout: %s/fifo-run\n" "$1" >"$1/cfg.fifo"' sh "$DIR" &
rc=0
"$FL_SIM" $ARGS --config "$DIR/cfg.fifo" >/dev/null 2>"$DIR/cfgfifo.err" || rc=$?
wait
[ "$rc" -eq 0 ] || fail "--config FIFO: exit status $rc ($(cat "$DIR/cfgfifo.err"))"
grep -q '"rounds": 2,' "$DIR/fifo-run/summary.json" || fail "--config FIFO: not read"
timeout 20 sh -c 'printf "trace: nowhere.csv\n" >"$1/cfg.fifo"' sh "$DIR" &
rc=0
"$FL_SIM" $ARGS --config "$DIR/cfg.fifo" >/dev/null 2>"$DIR/cfgfifo.err" || rc=$?
wait
[ "$rc" -ne 0 ] || fail "--config FIFO naming a missing trace: exit status 0"
grep -q "nowhere.csv" "$DIR/cfgfifo.err" && ! grep -q "$DIR/nowhere.csv" "$DIR/cfgfifo.err" ||
    fail "--config FIFO: its trace taken beside it: $(cat "$DIR/cfgfifo.err")"
printf 'trace: nowhere.csv\n' >"$DIR/stdin.yaml"
rc=0
"$FL_SIM" $ARGS --config /dev/stdin <"$DIR/stdin.yaml" >/dev/null 2>"$DIR/cfgstdin.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "nowhere.csv" "$DIR/cfgstdin.err" && ! grep -q "/dev/nowhere.csv" "$DIR/cfgstdin.err" ||
    fail "--config /dev/stdin: its trace taken beside it: $(cat "$DIR/cfgstdin.err")"
echo "--config FIFO or /dev/stdin: read, its paths from where fl_sim runs"

# --resume from another directory than the run was started in, its trace named relatively: by a
# config beside it, then by --trace. The saved settings name the trace by its absolute path, so
# the resume is not refused ("setting 'trace' differs: saved "cfg/trace.csv", this run
# "../cfg/trace.csv"") and gives the model of a run that never stopped, bit for bit.
mkdir -p "$DIR/rel/cfg" "$DIR/rel/elsewhere"
printf 'client,flops,down_bps,up_bps,availability\n0,1e9,2e7,5e6,1\n1,2e9,1e7,2e6,1\n' \
    >"$DIR/rel/cfg/trace.csv"
printf 'trace: trace.csv\n' >"$DIR/rel/cfg/run.yaml"
(cd "$DIR/rel" && "$FL_SIM" $ARGS --config cfg/run.yaml --rounds 3 --out "$DIR/rel/whole") \
    >/dev/null 2>"$DIR/rel.err" || fail "relative --config, whole run: $(cat "$DIR/rel.err")"
grep -qF "\"trace\": \"$(cd "$DIR/rel/cfg" && pwd -P)/trace.csv\"" "$DIR/rel/whole/summary.json" ||
    fail "relative --config: summary.json's trace not absolute: $(grep -o '"trace": "[^"]*"' "$DIR/rel/whole/summary.json")"
want=$(grep -o '"model_sha256": "[0-9a-f]*"' "$DIR/rel/whole/summary.json")
(cd "$DIR/rel" && "$FL_SIM" $ARGS --config cfg/run.yaml --rounds 2 --out "$DIR/rel/cf") \
    >/dev/null 2>"$DIR/rel.err" || fail "relative --config, 2 rounds: $(cat "$DIR/rel.err")"
(cd "$DIR/rel/elsewhere" && "$FL_SIM" $ARGS --config ../cfg/run.yaml --rounds 3 --out "$DIR/rel/cf" \
    --resume 1) >/dev/null 2>"$DIR/rel.err" ||
    fail "--resume from another directory, relative --config: $(cat "$DIR/rel.err")"
grep -q "resuming $DIR/rel/cf after round 2 of 3" "$DIR/rel.err" ||
    fail "--resume from another directory, relative --config: not resumed: $(cat "$DIR/rel.err")"
grep -qF "$want" "$DIR/rel/cf/summary.json" ||
    fail "--resume from another directory, relative --config: another model than a whole run's"
(cd "$DIR/rel" && "$FL_SIM" $ARGS --trace cfg/trace.csv --rounds 2 --out "$DIR/rel/tr") \
    >/dev/null 2>"$DIR/rel.err" || fail "relative --trace, 2 rounds: $(cat "$DIR/rel.err")"
# The trace's rows edited before the resume (client 1's flops): the same path, another
# population. Refused (exit status 1) naming the file, and resumed once the rows are put back.
cp "$DIR/rel/cfg/trace.csv" "$DIR/rel/trace.orig"
sed -i 's/^1,2e9,/1,3e9,/' "$DIR/rel/cfg/trace.csv"
rc=0
(cd "$DIR/rel" && "$FL_SIM" $ARGS --trace cfg/trace.csv --rounds 3 --out "$DIR/rel/tr" --resume 1) \
    >/dev/null 2>"$DIR/rel.err" || rc=$?
[ "$rc" -eq 1 ] && grep -qF "fl_sim: --resume: $DIR/rel/tr/resume.fls: --trace $(cd "$DIR/rel/cfg" && pwd -P)/trace.csv: its contents changed since the run was started" \
    "$DIR/rel.err" || fail "--resume after the trace's rows changed: exit status $rc: $(cat "$DIR/rel.err")"
cp "$DIR/rel/trace.orig" "$DIR/rel/cfg/trace.csv"
echo "--resume after the trace's rows changed: refused, the file named"
(cd "$DIR/rel/cfg" && "$FL_SIM" $ARGS --trace trace.csv --rounds 3 --out "$DIR/rel/tr" --resume 1) \
    >/dev/null 2>"$DIR/rel.err" || fail "--resume from another directory, relative --trace: $(cat "$DIR/rel.err")"
grep -qF "$want" "$DIR/rel/tr/summary.json" ||
    fail "--resume from another directory, relative --trace: another model than a whole run's"
# summary.json: the digest of the rows the runs read, the same for the whole run and the resumed
tsha=$(grep -o '"trace_sha256": "[0-9a-f]\{64\}"' "$DIR/rel/whole/summary.json") ||
    fail "summary.json of a run with a trace: no trace_sha256"
grep -qF "$tsha" "$DIR/rel/tr/summary.json" ||
    fail "resumed run: trace_sha256 not the whole run's: $(grep trace_sha256 "$DIR/rel/tr/summary.json")"
# another file under the same relative name is another setting, still refused by name
cp "$DIR/rel/cfg/trace.csv" "$DIR/rel/elsewhere/trace.csv"
rc=0
(cd "$DIR/rel/elsewhere" && "$FL_SIM" $ARGS --trace trace.csv --rounds 4 --out "$DIR/rel/tr" --resume 1) \
    >/dev/null 2>"$DIR/rel.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "setting 'trace' differs" "$DIR/rel.err" ||
    fail "--resume with another trace file: exit status $rc: $(cat "$DIR/rel.err")"
echo "--resume from another directory: relative trace and config paths name the same files"
rc=0
"$FL_SIM" --config= >/dev/null 2>"$DIR/cfgempty.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--config=: exit status $rc, not 2"
grep -qx "fl_sim: --config is empty (want a YAML file)" "$DIR/cfgempty.err" || fail "--config=: $(cat "$DIR/cfgempty.err")"
echo "--config=: says it is empty"

# A second --config is refused (exit status 2) rather than merged over the first, key by key,
# in whichever order they came; nothing runs.
printf 'rounds: 2\n' >"$DIR/a.yaml"
printf 'rounds: 3\n' >"$DIR/b.yaml"
for how in "--config $DIR/a.yaml --config $DIR/b.yaml" "--config=$DIR/a.yaml --rounds 1 --config=$DIR/b.yaml"; do
    rc=0
    "$FL_SIM" $ARGS $how --out "$DIR/twocfg" >/dev/null 2>"$DIR/twocfg.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "$how: exit status $rc, not 2"
    grep -qx "fl_sim: --config given twice ($DIR/a.yaml, then $DIR/b.yaml): a run reads one config file; give other settings as flags" \
        "$DIR/twocfg.err" || fail "$how: $(cat "$DIR/twocfg.err")"
    [ ! -e "$DIR/twocfg" ] || fail "$how: ran"
done
echo "--config twice: refused"

# Rates that are > 0 but so small that a client's arrival could overflow the virtual clock
# (1e-300 FLOP/s did at round 5; it used to spin at 100% CPU before that was caught at run time):
# refused before the run, a trace's with its line, below the documented floor of 1; a subnormal
# one (strtod's ERANGE) as too small, not as "not a finite number".
printf 'client,flops,down_bps,up_bps,availability\n0,1e9,1e6,1e6,1\n1,1e-300,1e6,1e6,1\n' >"$DIR/tiny.csv"
printf 'client,flops,down_bps,up_bps,availability\n0,1e9,5e-324,1e6,1\n' >"$DIR/sub.csv"
for c in "--flops 1e-300|2|fl_sim: --flops: '1e-300' is below 1 (FLOP/s or bit/s), the least rate fl_sim takes" \
         "--up-bps lognormal:0.5:1|2|fl_sim: --up-bps: 'lognormal:0.5:1': the median is below 1 (FLOP/s or bit/s)" \
         "--trace $DIR/tiny.csv|1|fl_sim: --trace: $DIR/tiny.csv: line 3: flops '1e-300' is below 1 FLOP/s, the least rate fl_sim takes" \
         "--trace $DIR/sub.csv|1|fl_sim: --trace: $DIR/sub.csv: line 2: down_bps '5e-324' is below 1 bit/s, the least rate fl_sim takes"; do
    how=${c%%|*}
    rest=${c#*|}
    want_rc=${rest%%|*}
    want=${rest#*|}
    rc=0
    timeout 60 "$FL_SIM" $ARGS --rounds 5 $how --out "$DIR/tiny" >/dev/null 2>"$DIR/tiny.err" || rc=$?
    [ "$rc" -eq "$want_rc" ] || fail "$how: exit status $rc, not $want_rc: $(cat "$DIR/tiny.err")"
    grep -qF "$want" "$DIR/tiny.err" || fail "$how: $(cat "$DIR/tiny.err")"
    [ ! -e "$DIR/tiny" ] || fail "$how: left $DIR/tiny"
done
# At the floor itself a run goes through.
printf 'client,flops,down_bps,up_bps,availability\n0,1,1,1,1\n' >"$DIR/one.csv"
"$FL_SIM" $ARGS --rounds 2 --trace "$DIR/one.csv" >/dev/null 2>"$DIR/one.err" ||
    fail "rates of 1: $(cat "$DIR/one.err")"
echo "tiny rates: refused before the run"

# --help's option table: every description starts in the same column, long names included.
bad=$("$FL_SIM" --help | sed -n '/^Options/,/^  --help/p' | grep '^  --' |
      awk '{ if (substr($0, 36, 1) != " " || substr($0, 37, 1) == " ") print }')
[ -z "$bad" ] || fail "--help: misaligned option lines: $bad"
long=$("$FL_SIM" --help | sed -n '/^Options/,/^  --help/p' | awk 'length($0) > 100')
[ -z "$long" ] || fail "--help: option lines wider than 100 columns: $long"
echo "--help: one column for the descriptions, wrapped at 100"

# The options --help's usage says the experiment does not take are those it refuses (exit status
# 2, before anything runs), and it names every one it refuses: --resume and --checkpoint-every
# were refused but not named, so the usage read as if the experiment took them.
not_taken=$("$FL_SIM" --help | sed -n '/^usage:/,/^$/p' | tr '\n' ' ' |
            sed -n 's/.*takes any option below but \([^)]*\)).*/\1/p' | tr -s ' ,' '\n\n' | grep '^--')
for o in --config --policy --seed --keep-going --resume --checkpoint-every; do
    echo "$not_taken" | grep -qx -- "$o" || fail "--help: the experiment refuses $o, its usage does not say so"
    rc=0
    "$FL_SIM" experiment afd --seeds 1 $ARGS "$o" 1 --out "$DIR/exp-refused" >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "experiment $o 1: exit status $rc, not 2 (--help says it is not taken)"
done
[ ! -e "$DIR/exp-refused" ] || fail "experiment, a refused option: --out was written"
echo "--help: the options the experiment does not take, as it refuses them"

# A trace whose rows that --clients uses (client k takes row k mod n) are all unavailable: refused
# before the run, not after 10,000 idle steps; with one more client (row 2 is available) it runs.
printf 'client,flops,down_bps,up_bps,availability\n0,1e9,1e6,1e6,0\n1,1e9,1e6,1e6,0\n2,1e9,1e6,1e6,1\n' >"$DIR/off.csv"
rc=0
"$FL_SIM" --dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 2 --per-round 1 \
    --rounds 1 --threads 1 --quiet 1 --trace "$DIR/off.csv" >/dev/null 2>"$DIR/off.err" || rc=$?
[ "$rc" -eq 1 ] || fail "trace rows all off: exit status $rc, not 1: $(cat "$DIR/off.err")"
grep -qF "every availability of rows 0 .. 1, the ones --clients 2 uses, is 0" "$DIR/off.err" ||
    fail "trace rows all off: $(cat "$DIR/off.err")"
"$FL_SIM" --dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 3 --per-round 1 \
    --rounds 1 --threads 1 --quiet 1 --trace "$DIR/off.csv" >/dev/null 2>"$DIR/off.err" ||
    fail "trace with row 2 on: $(cat "$DIR/off.err")"
echo "trace rows that --clients uses all off: refused"

# Some rows available, but fewer clients that can ever come online than --per-round (clients 0,
# 1 and 3 take the rows at 0): refused before the run, naming --trace and the counts, not after
# 10,000 idle steps under --availability's name.
rc=0
"$FL_SIM" --dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 4 --per-round 2 \
    --rounds 1 --threads 1 --quiet 1 --trace "$DIR/off.csv" >/dev/null 2>"$DIR/few.err" || rc=$?
[ "$rc" -eq 1 ] || fail "trace with too few clients on: exit status $rc, not 1: $(cat "$DIR/few.err")"
grep -qxF "fl_sim: --trace: only 1 of the 4 clients that hold samples can come online (an availability above 0: client k takes row k mod 3 of $DIR/off.csv), fewer than --per-round 2: no round could ever start" \
    "$DIR/few.err" || fail "trace with too few clients on: $(cat "$DIR/few.err")"
# Availabilities above 0 but too low to ever gather a round: only the run finds that out, and
# it names --trace too.
printf 'client,flops,down_bps,up_bps,availability\n0,1e9,1e6,1e6,1e-12\n1,1e9,1e6,1e6,1e-12\n' >"$DIR/rare.csv"
rc=0
"$FL_SIM" --dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 2 --per-round 2 \
    --rounds 1 --threads 1 --quiet 1 --trace "$DIR/rare.csv" >/dev/null 2>"$DIR/rare.err" || rc=$?
[ "$rc" -eq 1 ] || fail "trace too rarely on: exit status $rc, not 1: $(cat "$DIR/rare.err")"
grep -qF "no round could start: fewer than --per-round 2 of the 2 clients with an availability above 0 in --trace $DIR/rare.csv were online for 10,000 idle steps (at most 0 at once)" \
    "$DIR/rare.err" || fail "trace too rarely on: $(cat "$DIR/rare.err")"
echo "trace with fewer clients that can come online than --per-round: refused, --trace named"

# The same without a trace: --availability p:0.05 never brings all 10 clients online at once.
# The message gives the most that were (until 2026-12-06 it said only "too few"), so that the
# user sees how far --per-round is from what the availability gives.
rc=0
"$FL_SIM" --dataset synth-images:1200:1x8x8:4 --model mlp:64-16-4 --clients 10 --per-round 10 \
    --rounds 1 --threads 1 --quiet 1 --availability p:0.05 >/dev/null 2>"$DIR/p.err" || rc=$?
[ "$rc" -eq 1 ] || fail "availability too low: exit status $rc, not 1: $(cat "$DIR/p.err")"
most=$(sed -n 's/^fl_sim: no round could start: at most \([0-9]*\) of the 10 clients that hold samples were online at once in 10,000 idle steps, fewer than --per-round 10 (see --availability, --idle-step)$/\1/p' "$DIR/p.err")
[ -n "$most" ] && [ "$most" -ge 1 ] && [ "$most" -lt 10 ] ||
    fail "availability too low: $(cat "$DIR/p.err")"
echo "availability too low for --per-round: refused after the idle steps, with the most online ($most of 10)"

# A chunk size that cuts a tensor into more chunks than the wire carries (2^16) is refused, as
# fl_server refuses it (until 2026-12-06 fl_sim ran it, and the daemon ran rounds that sent no
# Task). dense0.w of mlp:8192-16-4 holds 131,072 elements: chunks of 2 make 65,536 of them, the
# most, and run.
rc=0
"$FL_SIM" --dataset synth-images:40:2x64x64:4 --model mlp:8192-16-4 --clients 4 --per-round 2 \
    --rounds 1 --threads 1 --quiet 1 --chunk-elems 1 >/dev/null 2>"$DIR/chunks.err" || rc=$?
[ "$rc" -eq 1 ] || fail "too many chunks: exit status $rc, not 1: $(cat "$DIR/chunks.err")"
grep -qxF "fl_sim: --chunk-elems 1 cuts tensor dense0.w of mlp:8192-16-4 (131072 elements) into 131072 chunks, more than the 65536 a tensor the wire carries: use --chunk-elems 2 or more" \
    "$DIR/chunks.err" || fail "too many chunks: $(cat "$DIR/chunks.err")"
"$FL_SIM" --dataset synth-images:40:2x64x64:4 --model mlp:8192-16-4 --clients 4 --per-round 2 \
    --rounds 1 --threads 1 --quiet 1 --chunk-elems 2 >/dev/null 2>"$DIR/chunks.err" ||
    fail "65536 chunks of a tensor: $(cat "$DIR/chunks.err")"
echo "a chunk size that cuts a tensor into more than 65536 chunks: refused; 65536 chunks run"

# More clients than samples: those without one are never online, which is said at the start
# with the count summary.json gives (until 2026-12-02 only summary.json's empty_clients said it).
"$FL_SIM" $ARGS --clients 2000 --rounds 1 --out "$DIR/empty" >/dev/null 2>"$DIR/empty.err" ||
    fail "empty clients: $(cat "$DIR/empty.err")"
n_empty=$(sed -n 's/.*"empty_clients": \([0-9]*\),.*/\1/p' "$DIR/empty/summary.json")
[ "${n_empty:-0}" -gt 0 ] || fail "empty clients: the test wants some, summary.json says ${n_empty:-none}"
grep -q "$n_empty of the 2000 clients hold no training sample (2000 shards, one per client, over [0-9]* samples): they are never online, so $((2000 - n_empty)) clients take part; --data-shards S" \
    "$DIR/empty.err" || fail "empty clients: not said: $(cat "$DIR/empty.err")"
"$FL_SIM" $ARGS --rounds 1 2>"$DIR/noempty.err" >/dev/null || fail "$(cat "$DIR/noempty.err")"
! grep -q "hold no training sample" "$DIR/noempty.err" || fail "empty clients said of a run without: $(cat "$DIR/noempty.err")"
echo "empty clients: said at the start"
# ... and by an experiment once, not by each of its runs (until 2026-12-07 the same line 8 times
# a seed: the runs of a seed share its partition), the runs it applies to counted at the end
"$FL_SIM" experiment afd --seeds 2 $ARGS --clients 2000 --rounds 1 --out "$DIR/emptyexp" \
    >/dev/null 2>"$DIR/emptyexp.err" || fail "empty clients, experiment: $(cat "$DIR/emptyexp.err")"
[ "$(grep -c "$n_empty of the 2000 clients hold no training sample (2000 shards, one per client, over [0-9]* samples): .* (full seed 1; said once for the experiment)$" \
    "$DIR/emptyexp.err")" -eq 1 ] && [ "$(grep -c "hold no training sample" "$DIR/emptyexp.err")" -eq 2 ] &&
    grep -q "16 of the 16 runs trained had clients that hold no training sample (said once above)$" \
    "$DIR/emptyexp.err" || fail "empty clients, experiment: not said once: $(cat "$DIR/emptyexp.err")"
echo "empty clients in an experiment: said once, the runs counted"

# --model lstm: listed in --help, and it runs on the token data the help names.
"$FL_SIM" --help | grep -q "lstm:80:8:256:2:80" || fail "--help does not list --model lstm"
"$FL_SIM" --dataset synth-tokens:200:80:80 --model lstm --clients 10 --per-round 2 --rounds 1 \
    --partition iid --threads 1 --quiet 1 >/dev/null 2>"$DIR/lstm.err" || fail "--model lstm: $(cat "$DIR/lstm.err")"
echo "--model lstm: listed, runs"

# The progress bar, cut to 80 columns when stderr is no terminal (as on an 80-column one): the
# round count, the time left and the accuracy come first and survive; so does the experiment's time left and
# the accuracy, with the longest configuration name.
"$FL_SIM" $ARGS --rounds 3 --progress bar --quiet 0 2>&1 >/dev/null | tr '\r' '\n' >"$DIR/bar.txt"
grep -Eq '^3/3 ~[0-9]+m[0-9]+s left  acc 0\.[0-9]{4} \[=+\]  wall ' "$DIR/bar.txt" ||
    fail "progress bar: $(cat -v "$DIR/bar.txt")"
# Virtual times below 100 s in three digits, as the summary's: these rounds take a fraction of
# a virtual second, which read "vtime 0s" to the end (until 2026-12-02).
"$FL_SIM" $ARGS --rounds 3 --progress bar --quiet 0 --out "$DIR/barvt" 2>&1 >/dev/null | tr '\r' '\n' >"$DIR/barvt.txt"
vt=$(sed -n 's/.*"virtual_time_s": \([0-9.e+-]*\),.*/\1/p' "$DIR/barvt/summary.json")
vt3=$(printf '%.3g' "$vt")
awk -v vt="$vt" 'BEGIN { exit !(vt > 0 && vt < 1) }' || fail "progress bar: the test wants a run under 1 virtual s, not $vt"
grep -Eq "^3/3 .*  vtime ${vt3}s  " "$DIR/barvt.txt" ||
    fail "progress bar: virtual time $vt not shown as ${vt3}s: $(cat -v "$DIR/barvt.txt")"
"$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 2 --progress bar --quiet 0 --out "$DIR/expbar" \
    2>&1 >/dev/null | tr '\r' '\n' >"$DIR/expbar.txt"
grep -Eq '^run 6/8, all done in ~[0-9hms]+: afd-single\+c seed 1, 2/2, acc 0\.[0-9]{4}, ' "$DIR/expbar.txt" ||
    fail "experiment progress: $(cat -v "$DIR/expbar.txt")"
echo "progress: round, time left and accuracy first"
# A dumb terminal (TERM=dumb: Emacs' shell and compilation buffers; or no TERM) takes no escape
# sequences: --progress auto writes the plain lines there, and --progress bar redraws without
# "\033[K" (until 2026-12-08 it came out as "^[[K" after every redraw).
TERM=dumb "$FL_SIM" $ARGS --rounds 3 --progress bar --quiet 0 2>&1 >/dev/null | tr '\r' '\n' >"$DIR/dumb.txt"
grep -Eq '^3/3 ~[0-9]+m[0-9]+s left  acc 0\.[0-9]{4} \[=+\]  wall ' "$DIR/dumb.txt" ||
    fail "TERM=dumb, --progress bar: $(cat -v "$DIR/dumb.txt")"
! grep -q "$(printf '\033')" "$DIR/dumb.txt" || fail "TERM=dumb, --progress bar: an escape sequence: $(cat -v "$DIR/dumb.txt")"
if command -v script >/dev/null; then
    # a terminal (script's pseudo-terminal) whose TERM is dumb: the plain lines, no bar
    TERM=dumb script -qec "$FL_SIM $(echo $ARGS) --rounds 3 --quiet 0" /dev/null >"$DIR/dumbtty.txt" 2>&1 ||
        fail "TERM=dumb on a terminal: $(cat -v "$DIR/dumbtty.txt")"
    grep -q '^round 3 vtime_s ' "$DIR/dumbtty.txt" && ! grep -q '3/3 ~' "$DIR/dumbtty.txt" &&
        ! grep -q "$(printf '\033')" "$DIR/dumbtty.txt" ||
        fail "TERM=dumb on a terminal: not the plain lines: $(cat -v "$DIR/dumbtty.txt")"
    # and a terminal that can redraw a line keeps its bar
    TERM=xterm script -qec "$FL_SIM $(echo $ARGS) --rounds 3 --quiet 0" /dev/null >"$DIR/tty.txt" 2>&1 ||
        fail "a terminal: $(cat -v "$DIR/tty.txt")"
    grep -q '3/3 ~' "$DIR/tty.txt" || fail "a terminal: no progress bar: $(cat -v "$DIR/tty.txt")"
fi
echo "progress on a dumb terminal: no escape sequences"

# Without a loadable OpenBLAS (every name it is looked up by a broken file) the run trains on the
# reference GEMM, finishes, and says so at the start, as fl_client does; the summary says
# "reference" (+AVX512 where fedrop's own AVX-512 kernels take the GEMMs they fit).
mkdir "$DIR/noblas"
for n in libopenblas.so.0 libopenblas.so libopenblasp-r0.3.21.so; do
    echo "not a library" >"$DIR/noblas/$n"
done
rc=0
LD_LIBRARY_PATH="$DIR/noblas" "$FL_SIM" $ARGS --rounds 1 --out "$DIR/nb" >/dev/null 2>"$DIR/nb.err" || rc=$?
[ "$rc" -eq 0 ] || fail "no OpenBLAS: exit status $rc ($(cat "$DIR/nb.err"))"
grep -q "OpenBLAS cannot be loaded: local training runs on fedrop's reference GEMM" "$DIR/nb.err" ||
    fail "no OpenBLAS: no warning ($(cat "$DIR/nb.err"))"
grep -Eq '"blas": "reference(\+AVX512)?"' "$DIR/nb/summary.json" ||
    fail "no OpenBLAS: summary.json's blas"
echo "no OpenBLAS: runs on the reference GEMM and says so"

# A FIFO in the place of --resume's resume.fls (or of an experiment run's summary.json): refused
# at once, exit status 1, the file named; until 2026-12-07 the open waited for a writer for good.
mkdir "$DIR/ff"
mkfifo "$DIR/ff/resume.fls"
rc=0
timeout 60 "$FL_SIM" $ARGS --rounds 2 --out "$DIR/ff" --resume 1 >/dev/null 2>"$DIR/ff.err" || rc=$?
[ "$rc" -eq 1 ] && grep -qF "$DIR/ff/resume.fls" "$DIR/ff.err" ||
    fail "resume.fls a FIFO: exit status $rc (124: it waited for a writer): $(cat "$DIR/ff.err")"
echo "resume.fls a FIFO: refused at once"


# gnuplot, which the experiment runs, gets no signal blocked: fl_sim's main blocks its stop signals
# for the thread that takes them (fl_sig.h), and a mask outlives exec. Until 2026-12-07 a Ctrl-C
# did not stop a gnuplot that hung. A stand-in gnuplot on PATH reads its own mask: an awk script,
# since a shell blocks signals of its own while it waits for a command.
mkdir -p "$DIR/gp/bin"
printf '#!/usr/bin/awk -f\nBEGIN { while ((getline l < "/proc/self/status") > 0) if (l ~ /^SigBlk/) print l > "%s/gp/blk" }\n' \
    "$DIR" >"$DIR/gp/bin/gnuplot"
chmod +x "$DIR/gp/bin/gnuplot"
PATH="$DIR/gp/bin:$PATH" "$FL_SIM" experiment afd --seeds 1 $ARGS --rounds 1 --out "$DIR/gp/x" \
    >/dev/null 2>"$DIR/gp.err" || fail "experiment with a stand-in gnuplot: $(cat "$DIR/gp.err")"
grep -qx "SigBlk:[[:space:]]*0*" "$DIR/gp/blk" ||
    fail "gnuplot started with signals blocked: $(cat "$DIR/gp/blk" 2>/dev/null || echo 'it did not run')"
echo "gnuplot: started with no signal blocked"

# Standard output and error closed (`fl_sim ... >&- 2>&-`, a supervisor that closes them): they are
# opened on /dev/null before anything else. Until 2026-12-07 the files the run opened took their
# numbers: DIR/rounds.csv took stderr's, and a resume's "fl_sim: resuming ..." line went into it.
"$FL_SIM" $ARGS --rounds 2 --checkpoint-every 1 --out "$DIR/cf" >/dev/null 2>"$DIR/cf.err" ||
    fail "closed std fds, first run: $(cat "$DIR/cf.err")"
rc=0
"$FL_SIM" $ARGS --rounds 3 --checkpoint-every 1 --resume 1 --out "$DIR/cf" >&- 2>&- || rc=$?
[ "$rc" -eq 0 ] || fail "closed std fds, resumed: exit status $rc"
[ "$(grep -c '^[0-9]' "$DIR/cf/rounds.csv")" -eq 3 ] || fail "closed std fds: $(cat "$DIR/cf/rounds.csv")"
! grep -q "fl_sim" "$DIR/cf/rounds.csv" || fail "closed std fds: the log in rounds.csv: $(cat "$DIR/cf/rounds.csv")"
echo "closed std fds: rounds.csv holds rounds only"

echo "ok"
