#!/usr/bin/env bash
# Fluent Bit's cost per record with and without the newterms filter, on the same input: `tail` (JSON
# parser, Exit_On_Eof) -> [wasm filter] -> `null` output, CPU seconds of the whole process (user +
# sys, from /usr/bin/time), median of RUNS runs each.
#   usage: tests/fluent-bit/bench.sh [INPUT.ndjson] [RUNS]
#   default input: the real mixed corpus (../shared/data/cloudtrail/CORPUS_mixed_all.ndjson) x20
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${NEWTERMS_SHARED:-$repo/../shared}
runs=${2:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/newterms-fluent-bit-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -n ${1:-} ]]; then
    cp "$1" "$work/in.ndjson"
else
    for _ in $(seq 20); do cat "$shared/data/cloudtrail/CORPUS_mixed_all.ndjson"; done >"$work/in.ndjson"
fi
records=$(wc -l <"$work/in.ndjson")
(cd "$repo" && cargo build --quiet --release --package newterms)
fluent_bit=$("$shared/tools/build-fluent-bit.sh")
"$repo/target/release/newterms" component --target fluent-bit --output "$work/filter.wasm" >/dev/null
printf '[PARSER]\n    Name json\n    Format json\n' >"$work/parsers.conf"

# config NAME WITH_FILTER: a configuration file for one run.
config() {
    cat <<CONF
[SERVICE]
    Flush 1
    Log_Level error
    Parsers_File $work/parsers.conf
[INPUT]
    Name tail
    Path $work/in.ndjson
    Read_from_Head true
    Exit_On_Eof true
    Parser json
    Tag ct
CONF
    if [[ $2 == 1 ]]; then
        cat <<CONF
[FILTER]
    Name wasm
    Match ct
    WASM_Path $work/filter.wasm
    Function_Name newterms_filter
    Event_Format json
    Accessible_Paths $work/state
CONF
    fi
    printf '[OUTPUT]\n    Name null\n    Match *\n'
}
config plain 0 >"$work/plain.conf"
config filter 1 >"$work/filter.conf"

# cpu CONF: median CPU seconds over the runs (a fresh state directory each run).
cpu() {
    for _ in $(seq "$runs"); do
        rm -rf "$work/state" && mkdir -p "$work/state"
        /usr/bin/time -f "%U %S" -o "$work/time" "$fluent_bit" -c "$1" >/dev/null 2>&1
        awk '{print $1 + $2}' "$work/time"
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'
}
plain=$(cpu "$work/plain.conf")
filter=$(cpu "$work/filter.conf")
awk -v n="$records" -v p="$plain" -v f="$filter" 'BEGIN {
    printf "%d records\n", n
    printf "Fluent Bit alone:       %.2f s CPU, %.1f us/record, %.0f records/s\n", p, p / n * 1e6, n / p
    printf "with the newterms filter: %.2f s CPU, %.1f us/record, %.0f records/s\n", f, f / n * 1e6, n / f
    printf "the filter adds %.1f us/record; rate with the filter / without: %.2fx (target >= 0.5x)\n", (f - p) / n * 1e6, p / f
}'
