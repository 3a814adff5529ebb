#!/usr/bin/env bash
# The Flink job (python -m newterms.flink) on Flink's MiniCluster (PyFlink, Java 17) against one
# `newterms scan` over the same inputs: the same alerts (kibana.alert.uuid sets and counts) at
# parallelism 1 and 2, after a failure recovered from a checkpoint, and after a stop for good and a
# restore at another parallelism.
#   usage: [NEWTERMS=path/to/newterms] tests/engines/flink.sh     (needs cargo, python3 3.9-3.12 and java >= 17; prints "N passed, M failed")
#   Installs apache-flink into its own venv, target/engines/flink-venv (cached: it pins pandas, pyarrow
#   and numpy), and the package built by tests/python/run.sh's way (its Rust build cached in
#   target/python-build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target = /* ]] || target=$repo/$target
command -v java >/dev/null || { echo "tests/engines: java (17 or later) is missing; on Debian: apt-get install -y openjdk-17-jre-headless"; exit 2; }
# The CLI to compare with: NEWTERMS if set (a release build, say), else the debug build.
if [ -z "${NEWTERMS:-}" ]; then
    (cd "$repo" && cargo build --quiet -p newterms)
    NEWTERMS=$target/debug/newterms
fi
venv=$repo/target/engines/flink-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "apache-flink==2.3.*" "maturin>=1.9,<2"
PATH=$venv/bin:$PATH CARGO_TARGET_DIR=$repo/target/python-build "$venv/bin/python" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps "$repo/python"
NEWTERMS=$NEWTERMS "$venv/bin/python" "$here/test_flink.py" "$@"
