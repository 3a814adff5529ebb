#!/usr/bin/env bash
# Fluent Bit's cost per record with and without the newterms filter, on the same input: `tail` (JSON
# parser, Exit_On_Eof) -> [wasm filter] -> `null` output, CPU seconds of the whole process (user +
# sys, from /usr/bin/time), median of RUNS runs each. Beside them, the floor: a module that drops
# every record and does nothing else (tests/fluent-bit/floor), i.e. what `filter_wasm` itself costs
# (encoding each record as JSON, copying it into the module, the call). With wamrc (built by
# tests/fluent-bit/wamrc.sh, when LLVM 15 is installed) the same two modules compiled ahead of time
# too.
#   usage: tests/fluent-bit/bench.sh [INPUT.ndjson] [RUNS]
#   default input: the real mixed corpus (../shared/data/cloudtrail/CORPUS_mixed_all.ndjson) x20
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${NEWTERMS_SHARED:-$repo/../shared}
target=${CARGO_TARGET_DIR:-$repo/target}
runs=${2:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/newterms-fluent-bit-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -n ${1:-} ]]; then
    cp "$1" "$work/in.ndjson"
else
    for _ in $(seq 20); do cat "$shared/data/cloudtrail/CORPUS_mixed_all.ndjson"; done >"$work/in.ndjson"
fi
records=$(wc -l <"$work/in.ndjson")
# The modules are built with the guest profile whatever the host's profile: a debug host writes them.
(cd "$repo" && cargo build --quiet --package newterms)
(cd "$here/floor" && CARGO_TARGET_DIR=$target/fluent-bit-floor cargo build --quiet --release --target wasm32-wasip1 \
    --config 'target.wasm32-wasip1.rustflags=["-Clink-arg=--export=malloc", "-Clink-arg=--export=free"]')
fluent_bit=$("$shared/tools/build-fluent-bit.sh")
"$target/debug/newterms" component --target fluent-bit --output "$work/newterms.wasm" >/dev/null
cp "$target/fluent-bit-floor/wasm32-wasip1/release/newterms_fluent_bit_floor.wasm" "$work/floor.wasm"
modules=(floor.wasm newterms.wasm)
if wamrc=$("$here/wamrc.sh" 2>/dev/null); then
    for module in floor newterms; do
        "$wamrc" --target=x86_64 --disable-simd -o "$work/$module.aot" "$work/$module.wasm" >/dev/null
    done
    modules+=(floor.aot newterms.aot)
else
    echo "(no wamrc: tests/fluent-bit/wamrc.sh says why; the ahead-of-time rows are left out)"
fi
printf '[PARSER]\n    Name json\n    Format json\n' >"$work/parsers.conf"

# config [MODULE]: a configuration file for one run, through MODULE if given.
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
    if [[ -n ${1:-} ]]; then
        cat <<CONF
[FILTER]
    Name wasm
    Match ct
    WASM_Path $work/$1
    Function_Name newterms_filter
    Event_Format json
    Accessible_Paths $work/state
    WASM_Stack_Size 1M
CONF
    fi
    printf '[OUTPUT]\n    Name null\n    Match *\n'
}

# cpu [MODULE]: median CPU seconds over the runs (a fresh state directory each run).
cpu() {
    config "${1:-}" >"$work/run.conf"
    for _ in $(seq "$runs"); do
        rm -rf "$work/state" && mkdir -p "$work/state"
        /usr/bin/time -f "%U %S" -o "$work/time" "$fluent_bit" -c "$work/run.conf" >/dev/null 2>&1
        awk '{print $1 + $2}' "$work/time"
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'
}

alone=$(cpu)
echo "$records records; CPU seconds of Fluent Bit (median of $runs runs); ratio = records/s with the filter / without (target >= 0.5x)"
printf '%-32s %6.2f s %7.1f us/record %9.0f records/s\n' "Fluent Bit alone" "$alone" \
    "$(awk -v s="$alone" -v n="$records" 'BEGIN {print s / n * 1e6}')" \
    "$(awk -v s="$alone" -v n="$records" 'BEGIN {print n / s}')"
for module in "${modules[@]}"; do
    case $module in
        floor.wasm) name="do-nothing module, interpreted" ;;
        newterms.wasm) name="newterms filter, interpreted" ;;
        floor.aot) name="do-nothing module, AOT (wamrc)" ;;
        newterms.aot) name="newterms filter, AOT (wamrc)" ;;
    esac
    seconds=$(cpu "$module")
    awk -v name="$name" -v s="$seconds" -v a="$alone" -v n="$records" 'BEGIN {
        printf "%-32s %6.2f s %7.1f us/record %9.0f records/s  adds %5.1f us/record  ratio %.2fx\n",
            name, s, s / n * 1e6, n / s, (s - a) / n * 1e6, a / s
    }'
done
