#!/usr/bin/env bash
# Cross-host tests: the rule component gives the same alerts in every component host.
#
# The Rust host (`newterms scan`), Node.js (the component transpiled by jco, examples/node) and Python
# (wasmtime-py, examples/python) run the same component over the same inputs, with both profiles,
# and must print byte-identical alerts, the same diagnostics and the same counters. Then a snapshot
# taken in one host must restore in another: for every ordered pair of hosts (A, B), A scans the
# first half of a stream saving its state, B restores that state and scans the second half, and
# the two outputs together must equal one Rust run over the whole stream.
#
# Usage: tests/cross-host/run.sh      (from anywhere; needs cargo, node >= 20 with npm, python3)
# Environment: NEWTERMS=path/to/newterms (default target/debug/newterms, built if missing),
#              CROSS_HOST_EVENTS=N (events in the generated stream, default 12000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
events=${CROSS_HOST_EVENTS:-12000}
work=$(mktemp -d "${TMPDIR:-/tmp}/cross-host.XXXXXX")
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok      %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAILED  %s\n' "$1"; }

# Shows where two outputs part: line counts, then the first differing line of each around the first
# differing character (an alert is a few kilobytes of JSON on one line).
show_difference() {
    python3 - "$1" "$2" <<'EOF'
import sys
a, b = (open(path, "rb").read().split(b"\n") for path in sys.argv[1:3])
print(f"        {len(a) - 1} lines expected, {len(b) - 1} lines found")
for number, (x, y) in enumerate(zip(a, b), start=1):
    if x != y:
        at = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
        print(f"        first difference: line {number}, character {at + 1}")
        print(f"        - ...{x[max(0, at - 80):at + 80].decode(errors='replace')}...")
        print(f"        + ...{y[max(0, at - 80):at + 80].decode(errors='replace')}...")
        break
EOF
}

same() { # same NAME EXPECTED ACTUAL
    if cmp -s "$2" "$3"; then
        pass "$1"
    else
        fail "$1"
        show_difference "$2" "$3" || true
    fi
}

# ---------------------------------------------------------------------------------------------
# The three hosts
# ---------------------------------------------------------------------------------------------
newterms=${NEWTERMS:-$root/target/debug/newterms}
if [[ ! -x $newterms ]]; then
    echo "building the Rust host (cargo build)"
    (cd "$root" && cargo build --quiet)
fi
"$newterms" component --output "$work/rule.wasm" 2>/dev/null

echo "preparing the Node.js host (npm ci, jco transpile)"
(
    cd "$root/examples/node"
    # npm ci starts from an empty node_modules (~340 MB, a minute here): skip it when the installed
    # tree came from this very lockfile.
    if ! cmp -s package-lock.json node_modules/.installed-from-lock 2>/dev/null; then
        npm ci --no-audit --no-fund --loglevel=error >/dev/null
        cp package-lock.json node_modules/.installed-from-lock
    fi
    npm run --silent build -- "$work/rule.wasm" >/dev/null
)

echo "preparing the Python host (venv, pip install wasmtime)"
venv=$root/target/cross-host/venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/examples/python/requirements.txt"

# run HOST PROFILE OUT ERR [scan options and inputs...]
run() {
    local host=$1 profile=$2 out=$3 err=$4
    shift 4
    case $host in
        rust) "$newterms" scan --profile "$profile" "$@" >"$out" 2>"$err" ;;
        node) node "$root/examples/node/scan.mjs" --profile "$profile" "$@" >"$out" 2>"$err" ;;
        python) "$venv/bin/python" "$root/examples/python/scan.py" --rule "$work/rule.wasm" \
            --profile "$profile" "$@" >"$out" 2>"$err" ;;
    esac
}

# Diagnostics without the host's name, and the summary's counters (what follows " in " is timing).
diagnostics() { sed -E 's/^newterms(-node|-python)?: //' "$1" | grep -v ' events read, ' || true; }
counters() { sed -E 's/^newterms(-node|-python)?: //' "$1" | { grep ' events read, ' || true; } | sed -E 's/ in [0-9.]+ s.*//'; }

# ---------------------------------------------------------------------------------------------
# Inputs: the real records bundled as fixtures, the README's example, a generated stream
# ---------------------------------------------------------------------------------------------
inputs=$work/inputs
mkdir -p "$inputs"
cp "$root/tests/fixtures/cloudtrail/lambda_invoke.ndjson" "$inputs/real-lambda.ndjson"
gunzip -c "$root/tests/fixtures/cloudtrail/mixed_all.ndjson.gz" >"$inputs/real-mixed.ndjson"
cp "$root/examples/lambda-invocations.ndjson" "$inputs/example.ndjson"
python3 "$here/gen_stream.py" --events "$events" --seed 4 >"$inputs/generated.ndjson"

cd "$inputs" # diagnostics name inputs as given: relative names are the same for every host
echo
echo "same input, same alerts, same diagnostics, same counters"
for input in real-lambda real-mixed example generated; do
    for profile in default elastic; do
        for host in rust node python; do
            run "$host" "$profile" "$work/$input.$profile.$host.out" "$work/$input.$profile.$host.err" "$input.ndjson" || {
                fail "$host exits with an error on $input ($profile)"
                sed 's/^/        /' "$work/$input.$profile.$host.err" | tail -n 5
            }
        done
        reference=$work/$input.$profile.rust
        for host in node python; do
            actual=$work/$input.$profile.$host
            same "$input $profile: $host alerts = rust alerts ($(wc -l <"$reference.out") alerts)" "$reference.out" "$actual.out"
            for view in diagnostics counters; do
                "$view" "$reference.err" >"$reference.$view"
                "$view" "$actual.err" >"$actual.$view"
                same "$input $profile: $host $view = rust $view" "$reference.$view" "$actual.$view"
            done
        done
    done
done

# The generated stream must exercise what it is for: alerts, and terms alerting again after their
# window expired (the same term in two alerts).
for profile in default elastic; do
    if python3 - "$work/generated.$profile.rust.out" <<'EOF'
import collections, json, sys
def new_terms(alert):  # nested objects or dotted keys
    return alert["kibana.alert.new_terms"] if "kibana.alert.new_terms" in alert else alert["kibana"]["alert"]["new_terms"]
terms = collections.Counter(tuple(new_terms(json.loads(line))) for line in open(sys.argv[1]))
again = sum(1 for count in terms.values() if count > 1)
print(f"        {sum(terms.values())} alerts on {len(terms)} terms, {again} terms alerted again after their window")
sys.exit(0 if sum(terms.values()) >= 100 and again >= 10 else 1)
EOF
    then pass "generated $profile: raises alerts and expires terms"
    else fail "generated $profile: raises alerts and expires terms"
    fi
done

# ---------------------------------------------------------------------------------------------
# Snapshot portability: half a stream in host A, the rest in host B with A's state
# ---------------------------------------------------------------------------------------------
echo
echo "a snapshot taken in one host restores in another"
total=$(wc -l <generated.ndjson)
half=$((total / 2))
head -n "$half" generated.ndjson >first-half.ndjson
tail -n +"$((half + 1))" generated.ndjson >second-half.ndjson
for profile in default elastic; do
    whole=$work/generated.$profile.rust.out
    # The state after the first half is the same bytes whichever host wrote it.
    for host in rust node python; do
        run "$host" "$profile" "$work/first.$profile.$host.out" /dev/null --state "$work/state.$profile.$host" first-half.ndjson ||
            fail "$host exits with an error on the first half ($profile)"
    done
    same "$profile: node state file = rust state file ($(wc -c <"$work/state.$profile.rust") bytes)" \
        "$work/state.$profile.rust" "$work/state.$profile.node"
    same "$profile: python state file = rust state file" "$work/state.$profile.rust" "$work/state.$profile.python"
    for a in rust node python; do
        for b in rust node python; do
            [[ $a == "$b" ]] && continue
            state=$work/pair.$profile.$a.$b.state
            cp "$work/state.$profile.$a" "$state" 2>/dev/null || rm -f "$state"
            run "$b" "$profile" "$work/second.$profile.$a.$b.out" "$work/second.$profile.$a.$b.err" --state "$state" second-half.ndjson ||
                fail "$b exits with an error on the second half after $a ($profile): $(tail -n 1 "$work/second.$profile.$a.$b.err")"
            cat "$work/first.$profile.$a.out" "$work/second.$profile.$a.$b.out" >"$work/split.$profile.$a.$b.out"
            same "$profile: first half in $a, second half in $b = one rust run" "$whole" "$work/split.$profile.$a.$b.out"
        done
    done
done

# ---------------------------------------------------------------------------------------------
# A state larger than one snapshot piece (1 MiB): every host restores and saves it in pieces
# ---------------------------------------------------------------------------------------------
echo
echo "a state of several snapshot pieces"
python3 - >many-principals.ndjson <<'EOF'
for n in range(40000):
    print('{"eventVersion":"1.09","eventTime":"2024-03-01T%02d:%02d:%02dZ","eventSource":"lambda.amazonaws.com",'
          '"eventName":"Invoke","recipientAccountId":"123456789012","userIdentity":{"type":"IAMUser",'
          '"arn":"arn:aws:iam::123456789012:user/u%06d","accountId":"123456789012","userName":"u%06d"}}'
          % (n // 3600 % 24, n // 60 % 60, n % 60, n, n))
EOF
tail -n 1 many-principals.ndjson | sed 's/u039999/newcomer/g; s/T11:06:39Z/T12:00:00Z/' >one-more.ndjson
run rust default /dev/null /dev/null --learn --state "$work/large.learned" many-principals.ndjson ||
    fail "rust cannot learn the large state"
for host in rust node python; do
    cp "$work/large.learned" "$work/large.$host"
    run "$host" default "$work/large.$host.out" "$work/large.$host.err" --state "$work/large.$host" one-more.ndjson ||
        fail "$host cannot restore the large state: $(tail -n 1 "$work/large.$host.err")"
done
if [[ $(wc -l <"$work/large.rust.out") -eq 1 ]]; then
    pass "rust, after the large state, raises the newcomer's one alert"
else
    fail "rust, after the large state, raises $(wc -l <"$work/large.rust.out") alerts, not 1"
fi
for host in node python; do
    same "$host restores and saves a $(wc -c <"$work/large.learned")-byte state as rust does" \
        "$work/large.rust" "$work/large.$host"
    same "$host alerts on the one newcomer after it as rust does" "$work/large.rust.out" "$work/large.$host.out"
done

# ---------------------------------------------------------------------------------------------
# The pipelines' spool runner (examples/pipelines): batches scanned in turn = one run
# ---------------------------------------------------------------------------------------------
echo
echo "the pipelines' spool runner"
spool=$work/spool
mkdir -p "$spool"
cp first-half.ndjson "$spool/20240301T0000.ndjson"
cp second-half.ndjson "$spool/20240301T0001.ndjson"
echo '{"eventSource": "lambda.amazonaws.com"}' >"$spool/current.ndjson"
touch -d '1 minute ago' "$spool"/2024*.ndjson
NEWTERMS=$newterms SPOOL_CURRENT=current.ndjson "$root/examples/pipelines/newterms-spool.sh" "$spool" "$work/spool.state" \
    >"$work/spool.out" 2>"$work/spool.err" || fail "newterms-spool.sh exits with an error: $(tail -n 1 "$work/spool.err")"
same "spool: two settled batches = one rust run" "$work/generated.default.rust.out" "$work/spool.out"
leftover=$(cd "$spool" && ls)
if [[ $leftover == batch-*.ndjson ]]; then
    pass "spool: scanned batches deleted, the fresh one renamed and kept for the next run"
else
    fail "spool: scanned batches deleted, the fresh one renamed and kept for the next run (left: $leftover)"
fi

# ---------------------------------------------------------------------------------------------
# Throughput on the generated stream (informational: the hosts' own summaries)
# ---------------------------------------------------------------------------------------------
echo
echo "throughput on generated.ndjson ($total lines, default profile)"
for host in rust node python; do
    summary=$(sed -E 's/^newterms(-node|-python)?: //' "$work/generated.default.$host.err" | grep ' events read, ' || true)
    printf '        %-7s %s\n' "$host" "$(sed -E 's/.* in ([0-9.]+ s)/\1/; s/; [0-9]+ terms in history.*//' <<<"$summary")"
done

echo
echo "took ${SECONDS} s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
