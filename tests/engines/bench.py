"""Events per second of the Spark hunt on one core, next to Spark doing the same work with a no-op rule
and to `newterms scan` on the same files.

    tests/engines/bench.py [EVENTS]       (in target/engines/venv, after tests/engines/run.sh)

A generated stream of EVENTS (default 200,000) in 4 NDJSON files. Spark runs `local[1]` with one
bucket; the no-op job reads, routes (every event to bucket 0, no rule), sorts and drops the events:
what Spark alone costs for this pipeline. Target: >= 300,000 events/s per core for the hunt.
"""

import os
import shutil
import sys
import tempfile
import time

import bench_stream

events = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
work = tempfile.mkdtemp(prefix="newterms-engines-bench.")
_, inputs = bench_stream.generated_files(work, events)
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


def noop():
    sc = session.sparkContext
    files = sc.union([sc.binaryFiles(path).map(lambda item, index=index: (index, item))
                      for index, path in enumerate(inputs)])
    keyed = files.flatMap(hunt._events_of).map(lambda row: ((0, 0, row[0], row[1]), row[2]))
    ordered = keyed.repartitionAndSortWithinPartitions(numPartitions=1, partitionFunc=lambda key: key[0])
    ordered.foreachPartition(lambda rows: sum(1 for _ in rows))


def rule():
    output = os.path.join(work, "alerts")
    shutil.rmtree(output, ignore_errors=True)
    hunt.hunt(session, inputs, output, 1)


timed(noop)  # warm-up: the JVM and the Python workers
noop_seconds = min(timed(noop) for _ in range(2))
hunt_seconds = min(timed(rule) for _ in range(2))
session.stop()
print(f"{events} generated events in 4 files, one core")
print(f"newterms scan (release):              {events / scan_seconds:10,.0f} events/s ({scan_seconds:.2f} s)")
print(f"Spark, the same pipeline, no-op rule: {events / noop_seconds:10,.0f} events/s ({noop_seconds:.2f} s)")
print(f"Spark hunt:                           {events / hunt_seconds:10,.0f} events/s ({hunt_seconds:.2f} s)"
      f"  (target >= 300,000)")
