#!/usr/bin/env bash
# The Python package (python/, PyO3 + maturin) built the way a user builds it, `pip install ./python`,
# into its own venv (target/python/venv; maturin from PyPI), then checked against `newterms scan`:
# the same alerts byte for byte, refused lines, snapshots both ways, merge, typed exceptions.
#   usage: tests/python/run.sh      (needs cargo and python3 >= 3.9; prints "N passed, M failed")
#   The release build of the extension is cached in target/python-build (~10 minutes the first time).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target = /* ]] || target=$repo/$target
(cd "$repo" && cargo build --quiet -p newterms)
venv=$repo/target/python/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade "maturin>=1.9,<2"
# --no-build-isolation: the venv's maturin builds it; the Rust build is cached beside the others.
PATH=$venv/bin:$PATH CARGO_TARGET_DIR=$repo/target/python-build "$venv/bin/python" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps "$repo/python"
NEWTERMS=$target/debug/newterms "$venv/bin/python" "$here/test_package.py" "$@"
