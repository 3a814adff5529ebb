"""Events per second of the Python package against `newterms scan`, on the same mixed stream, one core.

    tests/python/bench.py [REPEAT]        (after tests/python/run.sh has installed the package)

The stream is the real mixed CloudTrail fixture (tests/fixtures/cloudtrail/mixed_all.ndjson.gz)
repeated REPEAT times (default 50: ~195,000 events). `newterms scan` is the release binary
(target/release/newterms, built if missing), timed on the file and on an empty file (its start:
process, precompiled component from the cache), so that both rates are of events once running. The
package is timed on `Rule.process_ndjson` over the same bytes, after creating the Rule. Best of 5.
Target: the package at >= 0.8x `newterms scan`.
"""

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time

import newterms

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 50
work = tempfile.mkdtemp(prefix="newterms-python-bench.")
with gzip.open(os.path.join(REPO, "tests", "fixtures", "cloudtrail", "mixed_all.ndjson.gz")) as f:
    data = f.read() * repeat
events = data.count(b"\n")
stream = os.path.join(work, "mixed.ndjson")
open(stream, "wb").write(data)
empty = os.path.join(work, "empty.ndjson")
open(empty, "wb").close()

binary = os.environ.get("NEWTERMS_RELEASE", os.path.join(REPO, "target", "release", "newterms"))
if not os.path.exists(binary):
    subprocess.run(["cargo", "build", "--release", "-p", "newterms"], cwd=REPO, check=True)


def best(run, times=5):
    return min(run() for _ in range(times))


def scan(path):
    def run():
        start = time.perf_counter()
        subprocess.run([binary, "scan", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - start
    return run


scan_start = best(scan(empty))
scan_total = best(scan(stream))
scan_rate = events / (scan_total - scan_start)


def package():
    rule = newterms.Rule()
    start = time.perf_counter()
    rule.process_ndjson(data)
    return time.perf_counter() - start


package_rate = events / best(package)
print(f"{events} events of the real mixed CloudTrail fixture x{repeat} ({len(data) / events:.0f} B/event)")
print(f"newterms scan (release, minus its {scan_start * 1000:.0f} ms start): {scan_rate / 1e6:.2f} M events/s")
print(f"Python package, Rule.process_ndjson:             {package_rate / 1e6:.2f} M events/s")
print(f"package / scan: {package_rate / scan_rate:.2f}x (target >= 0.8x)")
shutil.rmtree(work, ignore_errors=True)
