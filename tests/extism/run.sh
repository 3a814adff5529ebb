#!/usr/bin/env bash
# The Extism plugin (faces/extism) under the real Extism runtime: PyPI `extism`, which brings the
# native runtime (extism-sys). tests/extism/test_plugin.py compares it with `newterms scan` on the
# same inputs: alerts, diagnostics, counters, configuration, snapshots moved both ways, bad
# configurations and snapshots, hostile input.
#
# Usage: tests/extism/run.sh      (from anywhere; needs cargo and python3; with node and npm, the
#        plugin also runs in Node.js's Extism host)
# Environment: NEWTERMS=path/to/newterms (default: the workspace's debug build, brought up to date),
#              EXTISM_EVENTS=N (events in the generated stream, default 12000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
events=${EXTISM_EVENTS:-12000}
work=$(mktemp -d "${TMPDIR:-/tmp}/extism.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -z ${NEWTERMS:-} ]]; then
    echo "building the Rust host (cargo build -p newterms)"
    (cd "$root" && cargo build --quiet -p newterms)
fi
newterms=${NEWTERMS:-$target/debug/newterms}
echo "building the plugin"
"$newterms" component --target extism --output "$work/newterms.extism.wasm" >/dev/null
echo "        $(wc -c <"$work/newterms.extism.wasm") bytes"

echo "preparing the Extism runtime (venv, pip install extism)"
venv=$root/target/extism/venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

# Inputs: lines the rule refuses, the README's example, the real records bundled as fixtures, a generated stream and its
# two halves (as tests/cross-host/run.sh splits it).
cp "$root/examples/lambda-invocations.ndjson" "$work/example.ndjson"
gunzip -c "$root/tests/fixtures/cloudtrail/mixed_all.ndjson.gz" >"$work/real-mixed.ndjson"
# Lines the rule refuses (not UTF-8, broken JSON, not an object, a matching event with an unreadable
# and with no time), around the example's first event, which alerts.
event=$(head -n 1 "$root/examples/lambda-invocations.ndjson")
{
    printf '%s\n' "${event/duc/$'\xff'}" "${event:0:200}" '[1,2]' "$event"
    printf '%s\n' "${event/2017-11-27T19:05:20.524Z/yesterday}" "${event/\"eventTime\":/\"eventTim\":}"
} >"$work/broken.ndjson"
python3 "$root/tests/cross-host/gen_stream.py" --events "$events" --seed 4 >"$work/generated.ndjson"
half=$(($(wc -l <"$work/generated.ndjson") / 2))
head -n "$half" "$work/generated.ndjson" >"$work/first-half.ndjson"
tail -n +"$((half + 1))" "$work/generated.ndjson" >"$work/second-half.ndjson"

echo
"$venv/bin/python" "$here/test_plugin.py" "$work/newterms.extism.wasm" "$newterms" "$work" | tee "$work/python.log" |
    grep -v ' passed, .* failed$' || true
read -r passed failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$work/python.log") || true
if [[ -z ${passed:-} ]]; then
    echo "FAILED  the Python checks did not finish"
    passed=0 failed=1
fi
pass() { passed=$((passed + 1)); printf 'ok      %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAILED  %s\n' "$1"; }

# A second Extism host, Node.js (@extism/extism on V8), when node is installed: the same plugin file
# gives the same alerts and snapshots there.
echo
if command -v node >/dev/null && command -v npm >/dev/null; then
    echo "in a second Extism host: Node.js (@extism/extism)"
    node_dir=$root/target/extism/node
    mkdir -p "$node_dir"
    if [[ ! -f $node_dir/node_modules/@extism/extism/package.json ]]; then
        npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error @extism/extism@1.0.3 >/dev/null
    fi
    cp "$here/node-host.mjs" "$node_dir/"
    for profile in default elastic; do
        if ! (cd "$work" && "$newterms" scan --profile "$profile" generated.ndjson >"whole.$profile.out" 2>/dev/null &&
            "$newterms" scan --profile "$profile" --state "node-in.$profile" first-half.ndjson >/dev/null 2>&1); then
            fail "node $profile: newterms scan makes the reference"
            continue
        fi
        if node "$node_dir/node-host.mjs" "$work/newterms.extism.wasm" "$profile" "$work/first-half.ndjson" \
            "$work/node-in.$profile" "$work/node-out.$profile" "$work/second-half.ndjson" \
            >"$work/node.$profile.out" 2>"$work/node.$profile.err"; then
            if cmp -s "$work/whole.$profile.out" "$work/node.$profile.out"; then
                pass "node $profile: first half, then second half after newterms scan's state = one scan run ($(wc -l <"$work/node.$profile.out") alerts)"
            else
                fail "node $profile: first half, then second half after newterms scan's state = one scan run"
            fi
            if cmp -s "$work/node-in.$profile" "$work/node-out.$profile"; then
                pass "node $profile: snapshot after the first half = newterms scan's state file"
            else
                fail "node $profile: snapshot after the first half = newterms scan's state file"
            fi
            if grep -q "not a newterms snapshot" "$work/node.$profile.err"; then
                pass "node $profile: a bad snapshot is an error that says why"
            else
                fail "node $profile: a bad snapshot is an error that says why"
            fi
        else
            fail "node $profile: the plugin runs ($(tail -n 1 "$work/node.$profile.err"))"
        fi
    done
else
    echo "node and npm are not installed: the Node.js host is not checked"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
