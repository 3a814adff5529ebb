"""What the engines' benchmarks share: a generated stream in NDJSON files, and `newterms scan` timed on them."""

import os
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def generated_files(work, events, parts=4, seed=41):
    """A generated stream of `events` (tests/cross-host/gen_stream.py) cut into `parts` NDJSON files in
    `work`: (its lines, the files)."""
    stream = subprocess.run([sys.executable, os.path.join(REPO, "tests", "cross-host", "gen_stream.py"),
                             "--events", str(events), "--seed", str(seed)], capture_output=True, check=True).stdout
    lines = stream.splitlines(keepends=True)
    files = []
    for part in range(parts):
        path = os.path.join(work, f"part-{part}.ndjson")
        with open(path, "wb") as f:
            f.write(b"".join(lines[part * len(lines) // parts:(part + 1) * len(lines) // parts]))
        files.append(path)
    return lines, files


def scan_seconds(inputs):
    """Seconds `newterms scan` (release: NEWTERMS_RELEASE, else target/release, built when missing) takes
    over `inputs`."""
    binary = os.environ.get("NEWTERMS_RELEASE", os.path.join(REPO, "target", "release", "newterms"))
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "-p", "newterms"], cwd=REPO, check=True)
    start = time.perf_counter()
    subprocess.run([binary, "scan", *inputs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start
