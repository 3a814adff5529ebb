"""The Spark hunt against one `newterms scan` over the same inputs."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import newterms
from newterms import spark

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NEWTERMS = os.environ["NEWTERMS"]
WORK = tempfile.mkdtemp(prefix="newterms-engines.")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok      {name}")
    else:
        failed += 1
        print(f"FAIL    {name}: {detail}"[:2000])


def uuids(lines):
    return sorted(json.loads(line)["kibana"]["alert"]["uuid"] for line in lines if line.strip())


def path(name):
    return os.path.join(WORK, name)


# Inputs: a generated stream split over a plain and a gzip file, a real CloudTrail delivery file (one
# `{"Records": [...]}` document), and the real mixed corpus.
generated = subprocess.run([sys.executable, os.path.join(REPO, "tests", "cross-host", "gen_stream.py"),
                            "--events", "40000", "--seed", "31"], capture_output=True, check=True).stdout
lines = generated.splitlines(keepends=True)
open(path("part-1.ndjson"), "wb").write(b"".join(lines[:20000]))
with gzip.open(path("part-2.ndjson.gz"), "wb") as f:
    f.write(b"".join(lines[20000:]))
fixtures = os.path.join(REPO, "tests", "fixtures", "cloudtrail")
flaws = os.path.join(fixtures, "flaws2")
inputs = [path("part-1.ndjson"), path("part-2.ndjson.gz")]
inputs += [os.path.join(flaws, name) for name in sorted(os.listdir(flaws))[:3]]
with gzip.open(os.path.join(fixtures, "mixed_all.ndjson.gz")) as f:
    open(path("mixed.ndjson"), "wb").write(f.read())
inputs.append(path("mixed.ndjson"))

for profile in ["default", "elastic"]:
    state = path(f"scan-{profile}.state")
    done = subprocess.run([NEWTERMS, "scan", "--profile", profile, "--state", state, *inputs],
                          capture_output=True, check=True)
    expected = uuids(done.stdout.decode().splitlines())
    for partitions in [1, 4]:
        output = path(f"hunt-{profile}-{partitions}")
        state_out = path(f"hunt-{profile}-{partitions}.state")
        shutil.rmtree(output, ignore_errors=True)
        spark.main(["hunt", *inputs, "--output", output, "--partitions", str(partitions),
                    "--profile", profile, "--state-out", state_out])
        got = []
        for name in sorted(os.listdir(output)):
            if name.startswith("part-"):
                got += open(os.path.join(output, name)).read().splitlines()
        got = uuids(got)
        check(f"{profile}, {partitions} bucket(s): {len(got)} alerts = newterms scan's {len(expected)}",
              got == expected and len(expected) > 100, f"{len(got)} vs {len(expected)}")
        # A merge lists terms oldest first, ties by term; scan's state lists them in the order it
        # updated them: the same history, compared in the merge's canonical order.
        check(f"{profile}, {partitions} bucket(s): merged state = scan's state (canonical order), byte for byte",
              open(state_out, "rb").read() == newterms.merge([open(state, "rb").read()]))

print(f"\n{passed} passed, {failed} failed")
if not failed:
    shutil.rmtree(WORK, ignore_errors=True)  # a failed run's files stay, to be looked at
sys.exit(1 if failed else 0)
