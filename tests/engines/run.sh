#!/usr/bin/env bash
# The engines with the rule: a Spark hunt (python -m newterms.spark, PySpark in local mode, Java 17)
# against one `newterms scan` over the same inputs: the same alerts (kibana.alert.uuid sets and counts)
# at 1 and 4 buckets, and the buckets' merged state byte-identical to scan's state; then the Flink job
# (tests/engines/flink.sh, its own venv).
#   usage: tests/engines/run.sh     (needs cargo, python3 >= 3.9 and java >= 17; prints "N passed, M failed")
#   Installs PySpark and pyarrow into target/engines/venv (cached) and the package built by
#   tests/python/run.sh's way (its Rust build cached in target/python-build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target = /* ]] || target=$repo/$target
command -v java >/dev/null || { echo "tests/engines: java (17 or later) is missing; on Debian: apt-get install -y openjdk-17-jre-headless"; exit 2; }
(cd "$repo" && cargo build --quiet -p newterms)
venv=$repo/target/engines/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "pyspark==4.0.*" pyarrow pandas "maturin>=1.9,<2"
PATH=$venv/bin:$PATH CARGO_TARGET_DIR=$repo/target/python-build "$venv/bin/python" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps "$repo/python"
export PYSPARK_PYTHON=$venv/bin/python PYSPARK_DRIVER_PYTHON=$venv/bin/python
status=0
NEWTERMS=$target/debug/newterms "$venv/bin/python" "$here/test_spark.py" "$@" || status=1
"$here/flink.sh" || status=1
exit $status
