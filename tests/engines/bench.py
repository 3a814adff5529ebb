"""Events per second of the Spark hunt on one core, next to Spark doing the same work with a no-op rule
and to `newterms scan` on the same files.

    tests/engines/bench.py [EVENTS]       (in target/engines/venv, after tests/engines/run.sh)

A generated stream of EVENTS (default 200,000) in 4 NDJSON files. Spark runs `local[1]` with one
bucket; the no-op job is the hunt's pipeline (one Arrow record per file and bucket, `mapInArrow`) with
a rule that does nothing: it reads the files, sends each to bucket 0 whole, shuffles, sorts and drops
them: what Spark alone costs for this pipeline. Target: >= 300,000 events/s per core for the hunt.
"""

import os
import shutil
import sys
import tempfile
import time

import bench_stream

events = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
work = tempfile.mkdtemp(prefix="newterms-engines-bench.")
lines, inputs = bench_stream.generated_files(work, events)
scan_seconds = bench_stream.scan_seconds(inputs)

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
from pyspark.sql import SparkSession  # noqa: E402

import newterms  # noqa: E402
from newterms import spark as hunt  # noqa: E402

session = (SparkSession.builder.master("local[1]").appName("newterms bench")
           .config("spark.ui.showConsoleProgress", "false").getOrCreate())
session.sparkContext.setLogLevel("ERROR")


def timed(job):
    start = time.perf_counter()
    job()
    return time.perf_counter() - start


def noop(files=None):
    """The hunt's pipeline with a rule that does nothing: each file one record to bucket 0 (no reading
    of events, no routing), through the shuffle and the sort as Arrow batches, dropped."""
    import pyarrow as pa

    def split(batches):
        for batch in batches:
            count = batch.num_rows
            yield pa.RecordBatch.from_arrays(
                [pa.array([0] * count, pa.int32()), pa.array([0] * count, pa.int32()), batch.column("path"),
                 batch.column("content")],
                names=["bucket", "input", "path", "routed"])

    def drop(batches):
        for _ in batches:
            pass
        yield pa.RecordBatch.from_arrays([pa.array([], pa.string()), pa.array([], pa.binary())],
                                         names=["kind", "payload"])

    loaded = session.read.format("binaryFile").load(files or inputs).select("path", "content")
    routed = loaded.mapInArrow(split, hunt.ROUTED)
    ordered = routed.repartition(1, "bucket").sortWithinPartitions("bucket")
    ordered.mapInArrow(drop, hunt.RESULTS).count()


def rule(files=None):
    output = os.path.join(work, "alerts")
    shutil.rmtree(output, ignore_errors=True)
    hunt.hunt(session, files or inputs, output, 1)


# A job's fixed cost (planning, stages, the Python workers' start), measured on a 100-event file: a
# hunt over an archive pays it once, so the events/s of a large hunt is the marginal rate.
tiny = os.path.join(work, "tiny.ndjson")
open(tiny, "wb").write(b"".join(lines[:100]))
timed(noop)  # warm-up: the JVM and the Python workers
noop_seconds = min(timed(noop) for _ in range(2))
hunt_seconds = min(timed(rule) for _ in range(2))
noop_fixed = min(timed(lambda: noop([tiny])) for _ in range(2))
hunt_fixed = min(timed(lambda: rule([tiny])) for _ in range(2))
session.stop()
shutil.rmtree(work, ignore_errors=True)


def rate(seconds, fixed=0.0):
    return f"{events / seconds:10,.0f} events/s ({seconds:.2f} s)" + (
        f", {events / max(seconds - fixed, 1e-9):10,.0f} events/s past the job's fixed {fixed:.2f} s" if fixed else "")


print(f"{events} generated events in 4 files, one core")
print(f"newterms scan (release):              {rate(scan_seconds)}")
print(f"Spark, the same pipeline, no-op rule: {rate(noop_seconds, noop_fixed)}")
print(f"Spark hunt:                           {rate(hunt_seconds, hunt_fixed)}  (target >= 300,000)")
