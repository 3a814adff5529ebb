#!/usr/bin/env bash
# The Fluent Bit filter in a real Fluent Bit (5.1.1, built once by ../shared/tools/build-fluent-bit.sh):
# streams go through `tail` (JSON parser) -> `wasm` filter -> `file` output, and the alerts must be those
# of `newterms scan` on the same input (event.id and kibana.alert.uuid, counts), for both profiles, raw
# CloudTrail and ECS; Fluent Bit SIGKILLed mid-stream and started again on the rest must give the alerts
# of one uninterrupted run; a corrupt state or a bad configuration is reported and nothing is written;
# a state moves between the filter and `newterms scan --state` both ways.
#   usage: tests/fluent-bit/run.sh     (NEWTERMS_SHARED overrides ../shared; prints "N passed, M failed")
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${NEWTERMS_SHARED:-$repo/../shared}
work=$(mktemp -d "${TMPDIR:-/tmp}/newterms-fluent-bit.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  [ -n "${NEWTERMS_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }

(cd "$repo" && cargo build --quiet --package newterms) || { echo "0 passed, 1 failed"; exit 1; }
newterms=${CARGO_TARGET_DIR:-$repo/target}/debug/newterms
[[ $newterms = /* ]] || newterms=$repo/$newterms
fluent_bit=$("$shared/tools/build-fluent-bit.sh") || { echo "cannot build Fluent Bit"; echo "0 passed, 1 failed"; exit 1; }
"$newterms" component --target fluent-bit --output "$work/filter.wasm" >/dev/null 2>&1
printf '[PARSER]\n    Name json\n    Format json\n' >"$work/parsers.conf"

# The (event.id, kibana.alert.uuid) of every alert in a file of alert documents, one per line, sorted;
# the filter answers a record that raises several alerts with {"alerts": [...]}.
alert_keys() {
  python3 - "$@" <<'EOF'
import json, sys
keys = []
lenient = len(sys.argv) > 2  # a file still being written may end in a partial line
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if not line:
        continue
    try:
        doc = json.loads(line)
    except ValueError:
        if lenient:
            continue
        raise
    for alert in doc["alerts"] if list(doc) == ["alerts"] else [doc]:
        keys.append(f'{alert["event"].get("id")} {alert["kibana.alert.uuid"] if "kibana.alert.uuid" in alert else alert["kibana"]["alert"]["uuid"]}')
for key in sorted(keys):
    print(key)
EOF
}

# start_fb NAME INPUT STATE_DIR [extra tail settings]: starts Fluent Bit over INPUT (output in
# $work/NAME/out, log in $work/NAME/log; buffers in $storage, default $work/NAME/storage); sets $fb_pid.
start_fb() {
  local name=$1 input=$2 state=$3 extra=${4:-}
  local dir=$work/$name
  mkdir -p "$dir" "$state"
  cat >"$dir/fb.conf" <<EOF
[SERVICE]
    Flush 1
    Grace 1
    Log_Level info
    Parsers_File $work/parsers.conf
    storage.path ${storage:-$dir/storage}
[INPUT]
    Name tail
    Path $input
    Read_from_Head true
    Parser json
    Tag events
    Buffer_Max_Size 4M
$extra
[FILTER]
    Name wasm
    Match events
    WASM_Path ${module:-$work/filter.wasm}
    Function_Name newterms_filter
    Event_Format json
    Accessible_Paths $state
    WASM_Stack_Size 1M
[OUTPUT]
    Name file
    Match events
    Path $dir
    File out
    Format plain
EOF
  "$fluent_bit" -c "$dir/fb.conf" >>"$dir/log" 2>&1 &
  fb_pid=$!
  pids+=("$fb_pid")
}

# wait_for FILE N SECONDS: until FILE holds N alerts, or SECONDS pass.
wait_for() {
  local waited=0
  while [ "$(count "$1")" -lt "$2" ] && [ $waited -lt $(($3 * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
}

# run_fb NAME INPUT STATE_DIR EXPECTED [extra]: runs Fluent Bit until the output holds EXPECTED alerts
# (then 2 s more, for any extra) or 90 s pass; with EXPECTED 0, for 5 s. Then stops it (SIGTERM).
run_fb() {
  start_fb "$1" "$2" "$3" "${5:-}"
  if [ "$4" -gt 0 ]; then wait_for "$work/$1/out" "$4" 90; sleep 2; else sleep 5; fi
  kill -TERM "$fb_pid" 2>/dev/null
  wait "$fb_pid" 2>/dev/null
}

# Alerts in a filter output file (documents wrapping several count for each).
count() {
  [ -f "$1" ] || { echo 0; return; }
  alert_keys "$1" lenient | wc -l
}

# compare NAME INPUT PROFILE: the filter's alerts against `newterms scan --profile PROFILE`.
compare() {
  local name=$1 input=$2 profile=$3
  local state=$work/$name/state
  mkdir -p "$state"
  printf 'profile = "%s"\n' "$profile" >"$state/newterms.toml"
  "$newterms" scan --profile "$profile" "$input" >"$work/$name.expected" 2>/dev/null
  local expected
  expected=$(wc -l <"$work/$name.expected")
  run_fb "$name" "$input" "$state" "$expected"
  if [ "$expected" -gt 0 ] && diff <(alert_keys "$work/$name.expected") <(alert_keys "$work/$name/out") >"$work/$name.diff"; then
    pass "$name: $expected alerts equal newterms scan ($profile)"
  else
    fail "$name" "expected $expected alerts, got $(count "$work/$name/out") ($(head -3 "$work/$name.diff" | tr '\n' ' '))"
  fi
}

gunzip -c "$repo/tests/fixtures/cloudtrail/mixed_all.ndjson.gz" >"$work/mixed_all.ndjson"
python3 "$repo/tests/cross-host/gen_stream.py" --events 30000 --seed 11 >"$work/generated.ndjson"
grep -c '"@timestamp"' "$work/generated.ndjson" >/dev/null || fail "the generated stream has ECS documents"

compare example-default "$repo/examples/lambda-invocations.ndjson" default
compare example-elastic "$repo/examples/lambda-invocations.ndjson" elastic
compare fixture-default "$repo/tests/fixtures/cloudtrail/lambda_invoke.ndjson" default
compare fixture-elastic "$repo/tests/fixtures/cloudtrail/lambda_invoke.ndjson" elastic
compare mixed-default "$work/mixed_all.ndjson" default
compare generated-default "$work/generated.ndjson" default
compare generated-elastic "$work/generated.ndjson" elastic

# Elastic rule files: `rules = ["rules"]` in newterms.toml, a folder read from the filter's
# directory (its Accessible_Paths): the alerts of `newterms scan --rules` on the same folder.
compare_rules() {
  local name=$1 input=$2
  local state=$work/$name/state rules=$repo/guest/tests/data/elastic-rules
  mkdir -p "$state"
  cp -r "$rules" "$state/rules"
  printf 'rules = ["rules"]\n' >"$state/newterms.toml"
  "$newterms" scan --rules "$rules" "$input" >"$work/$name.expected" 2>/dev/null
  local expected
  expected=$(wc -l <"$work/$name.expected")
  run_fb "$name" "$input" "$state" "$expected"
  if [ "$expected" -gt 0 ] && diff <(alert_keys "$work/$name.expected") <(alert_keys "$work/$name/out") >"$work/$name.diff"; then
    pass "$name: $expected alerts of $(ls "$rules" | grep -c '\.toml$') rule files equal newterms scan --rules"
  else
    fail "$name" "expected $expected alerts, got $(count "$work/$name/out") ($(grep -m1 newterms "$work/$name/log") $(head -3 "$work/$name.diff" | tr '\n' ' '))"
  fi
}
compare_rules rules-mixed "$work/mixed_all.ndjson"
compare_rules rules-generated "$work/generated.ndjson"

# SIGKILL, then a restart on the rest of the stream: the alerts of one uninterrupted run, none twice.
# Fluent Bit is killed once the first part's alerts are written out (its journal holds history changes
# not yet folded into the state), so that the check is on the filter's state, not on records Fluent
# Bit itself had in flight: those it loses on SIGKILL whatever the filter does (see README).
python3 "$repo/tests/cross-host/gen_stream.py" --events 150000 --seed 12 >"$work/long.ndjson"
"$newterms" scan "$work/long.ndjson" >"$work/long.expected" 2>/dev/null
total=$(wc -l <"$work/long.expected")
head -n 75000 "$work/long.ndjson" >"$work/long-1.ndjson"
tail -n +75001 "$work/long.ndjson" >"$work/long-2.ndjson"
first_expected=$("$newterms" scan "$work/long-1.ndjson" 2>/dev/null | wc -l)
kill_state=$work/killed/state
mkdir -p "$work/killed" "$kill_state"
start_fb killed-1 "$work/long-1.ndjson" "$kill_state"
wait_for "$work/killed-1/out" "$first_expected" 120
journal_before_kill=$(wc -c <"$kill_state/newterms.journal" 2>/dev/null || echo 0)
kill -KILL "$fb_pid" 2>/dev/null
wait "$fb_pid" 2>/dev/null
first=$(count "$work/killed-1/out")
run_fb killed-2 "$work/long-2.ndjson" "$kill_state" $((total - first))
sort <(alert_keys "$work/killed-1/out" lenient) <(alert_keys "$work/killed-2/out") >"$work/killed.keys"
if [ "$first" -gt 0 ] && [ "$first" -lt "$total" ] && [ "$journal_before_kill" -gt 40 ] \
  && diff <(alert_keys "$work/long.expected") "$work/killed.keys" >"$work/killed.diff"; then
  pass "SIGKILL after $first of $total alerts (journal of $journal_before_kill bytes unfolded), restart on the rest: the alerts of one run, none twice"
else
  fail "SIGKILL and restart" "first run $first of $total, journal $journal_before_kill bytes; $(head -3 "$work/killed.diff" | tr '\n' ' ')"
fi

# A corrupt state file: reported (more than once), left as it is, nothing raised.
corrupt=$work/corrupt/state
mkdir -p "$corrupt"
head -c 300 /dev/urandom >"$corrupt/newterms.state"
cp "$corrupt/newterms.state" "$work/corrupt.orig"
run_fb corrupt "$work/generated.ndjson" "$corrupt" 0
reports=$(grep -c "NOT RUNNING.*cannot be used" "$work/corrupt/log")
if cmp -s "$corrupt/newterms.state" "$work/corrupt.orig" && [ "$(count "$work/corrupt/out")" -eq 0 ] \
  && [ "$reports" -ge 2 ] && [ ! -e "$corrupt/newterms.journal" ]; then
  pass "a corrupt state file is reported ($reports times), left as it is, and nothing is raised"
else
  fail "corrupt state" "reports $reports, alerts $(count "$work/corrupt/out")"
fi

# A configuration it cannot accept: reported with the key, nothing raised, no state written.
badconf=$work/badconf/state
mkdir -p "$badconf"
printf 'profile = "elastic"\nwindoww = "7d"\n' >"$badconf/newterms.toml"
run_fb badconf "$work/generated.ndjson" "$badconf" 0
if grep -q "NOT RUNNING.*windoww" "$work/badconf/log" && [ "$(count "$work/badconf/out")" -eq 0 ] \
  && [ ! -e "$badconf/newterms.state" ] && [ ! -e "$badconf/newterms.journal" ]; then
  pass "a bad newterms.toml is reported by key; nothing raised, no state written"
else
  fail "bad configuration" "$(grep -m1 newterms "$work/badconf/log")"
fi

# Filter -> scan: the first half through the filter, its state folded and given to `newterms scan
# --state` for the second half: together the alerts of one scan.
half=$(($(wc -l <"$work/generated.ndjson") / 2))
head -n "$half" "$work/generated.ndjson" >"$work/first-half.ndjson"
tail -n +"$((half + 1))" "$work/generated.ndjson" >"$work/second-half.ndjson"
"$newterms" scan "$work/generated.ndjson" >"$work/whole.expected" 2>/dev/null
"$newterms" scan "$work/first-half.ndjson" >"$work/first-half.expected" 2>/dev/null
handover=$work/to-scan/state
mkdir -p "$handover"
run_fb to-scan "$work/first-half.ndjson" "$handover" "$(wc -l <"$work/first-half.expected")"
"$newterms" state fold "$handover" 2>/dev/null
# `scan --state` updates the file it is given: the plugin below gets this copy.
cp "$handover/newterms.state" "$work/handover.state"
"$newterms" scan --state "$handover/newterms.state" "$work/second-half.ndjson" >"$work/to-scan.second" 2>/dev/null
cat "$work/to-scan/out" "$work/to-scan.second" >"$work/to-scan.all"
if diff <(alert_keys "$work/whole.expected") <(alert_keys "$work/to-scan.all") >/dev/null \
  && "$newterms" state inspect "$handover/newterms.state" >/dev/null 2>&1; then
  pass "a filter state continues in newterms scan --state"
else
  fail "filter -> scan" "$(count "$work/to-scan/out") + $(wc -l <"$work/to-scan.second") vs $(wc -l <"$work/whole.expected")"
fi

# Filter -> Extism plugin: the same folded state restored in the plugin, which takes the second half:
# the alerts `newterms scan --state` gave above. The Extism runtime is tests/extism/run.sh's.
extism_python=$repo/target/extism/venv/bin/python
if [ -x "$extism_python" ]; then
  "$newterms" component --target extism --output "$work/plugin.wasm" >/dev/null 2>&1
  "$extism_python" - "$work/plugin.wasm" "$work/handover.state" "$work/second-half.ndjson" >"$work/to-plugin.second" <<'EOF'
import sys
import extism
plugin = extism.Plugin(open(sys.argv[1], "rb").read(), wasi=False)
plugin.call("restore", open(sys.argv[2], "rb").read())
sys.stdout.buffer.write(plugin.call("process_ndjson", open(sys.argv[3], "rb").read()))
EOF
  if [ -s "$work/to-scan.second" ] && diff <(alert_keys "$work/to-scan.second") <(alert_keys "$work/to-plugin.second") >/dev/null; then
    pass "a filter state continues in the Extism plugin ($(wc -l <"$work/to-plugin.second") alerts on the second half, as newterms scan)"
  else
    fail "filter -> Extism plugin" "$(wc -l <"$work/to-plugin.second") vs $(wc -l <"$work/to-scan.second")"
  fi
else
  fail "filter -> Extism plugin" "no Extism runtime in target/extism/venv: run tests/extism/run.sh first"
fi

# Scan -> filter: warm up with `newterms scan --learn --state` on the first half, hand the file to the
# filter for the second half: the alerts of one scan over the whole on the second half.
warm=$work/from-scan/state
mkdir -p "$warm"
"$newterms" scan --learn --state "$warm/newterms.state" "$work/first-half.ndjson" >/dev/null 2>&1
"$newterms" scan --state "$work/from-scan.reference" "$work/first-half.ndjson" >/dev/null 2>&1
"$newterms" scan --state "$work/from-scan.reference" "$work/second-half.ndjson" >"$work/from-scan.expected" 2>/dev/null
run_fb from-scan "$work/second-half.ndjson" "$warm" "$(wc -l <"$work/from-scan.expected")"
if [ -s "$work/from-scan.expected" ] && diff <(alert_keys "$work/from-scan.expected") <(alert_keys "$work/from-scan/out") >/dev/null; then
  pass "a state warmed up by newterms scan --learn continues in the filter"
else
  fail "scan -> filter" "$(count "$work/from-scan/out") vs $(wc -l <"$work/from-scan.expected")"
fi

# Compiled ahead of time by WAMR's wamrc (tests/fluent-bit/wamrc.sh; needs LLVM 15), which is how a
# deployment that needs speed runs it: the same alerts.
if wamrc=$("$here/wamrc.sh"); then
  "$wamrc" --target=x86_64 --disable-simd -o "$work/filter.aot" "$work/filter.wasm" >/dev/null
  module=$work/filter.aot compare aot-example-default "$repo/examples/lambda-invocations.ndjson" default
  module=$work/filter.aot compare aot-generated-elastic "$work/generated.ndjson" elastic
else
  fail "ahead of time" "wamrc could not be built (see above)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
