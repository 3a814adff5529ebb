"""A hunt over an archive with Apache Spark: the rule over every event, one instance per bucket of terms.

    python -m newterms.spark hunt INPUT... --output DIR [--partitions N] [--profile P]
                                          [--config FILE] [--state-out FILE]

INPUTs are NDJSON or CloudTrail delivery files (`{"Records": [...]}`), gzip or not, read by the rule's
host exactly as `newterms scan` reads them. Each event goes to the buckets of its terms, which the rule
computes (`Rule.route`); the events of each of the N buckets are ordered by event time, then input order
(input, then position in it), and run through one rule configured with that bucket
(`Rule(partition=(i, N))`), which keeps and alerts on only its own terms; N is also the number of Spark
partitions. Events move between Spark and Python as Arrow batches (`mapInArrow`). The alerts are written as
NDJSON files in DIR (Spark's `part-*` files); the buckets' histories are merged into one state file
(`--state-out`) that `newterms scan --state` and a stream job can start from. Spark runs locally
(`local[N]`) unless `spark.master` says otherwise (`PYSPARK_SUBMIT_ARGS`, `spark-submit`).
"""

import argparse
import os
import sys

import newterms

#: Events handed to the rule in one call, and rows in one Arrow batch.
BATCH = 4096
#: The sort key of an event with no bucket (it changes no history): before the others.
NO_TIME = -(2**63)
#: The rows of the routing stage: an event once per bucket of its terms.
ROUTED = "bucket int, time long, input int, position long, event binary"
#: The rows of the rule stage: alerts, then per bucket its refusals and its history.
RESULTS = "kind string, payload binary"


def _route(order, partitions, profile, config):
    """mapInArrow over the input files (path, content): each file's events, routed; `order` gives each
    file's place in the input."""
    import pyarrow as pa

    def route(batches):
        router = newterms.Rule(profile=profile, config=config)
        for files in batches:
            for path, content in zip(files.column("path").to_pylist(), files.column("content").to_pylist()):
                index = order[path]
                events, errors = newterms.events(content, path)
                for error in errors:
                    print(f"newterms.spark: {error}", file=sys.stderr)
                for start in range(0, len(events), BATCH):
                    chunk = events[start:start + BATCH]
                    columns = ([], [], [], [], [])
                    for offset, (text, (buckets, time)) in enumerate(zip(chunk, router.route(chunk, partitions))):
                        # An event with no bucket changes no history: bucket 0 takes it (and reports
                        # its refusal once).
                        for bucket in buckets or [0]:
                            columns[0].append(bucket)
                            columns[1].append(NO_TIME if time is None else time)
                            columns[2].append(index)
                            columns[3].append(start + offset)
                            columns[4].append(text.encode())
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(columns[0], pa.int32()), pa.array(columns[1], pa.int64()),
                         pa.array(columns[2], pa.int32()), pa.array(columns[3], pa.int64()),
                         pa.array(columns[4], pa.binary())],
                        names=["bucket", "time", "input", "position", "event"])
    return route


def _run(partitions, profile, config):
    """mapInArrow over one Spark partition's events, sorted by bucket, time, input, position: one rule
    per bucket (`partition=(bucket, partitions)`), fed the bucket's events in that order."""
    import pyarrow as pa

    def results(kinds, payloads):
        return pa.RecordBatch.from_arrays([pa.array(kinds, pa.string()), pa.array(payloads, pa.binary())],
                                          names=["kind", "payload"])

    def run(batches):
        bucket, rule, refused = None, None, 0

        def finish():
            return results(["refused", "state"], [str(refused).encode(), rule.snapshot()])

        for batch in batches:
            buckets = batch.column("bucket").to_pylist()
            events = batch.column("event").to_pylist()
            start = 0
            while start < len(events):
                if buckets[start] != bucket:
                    if rule is not None:
                        yield finish()
                    bucket, refused = buckets[start], 0
                    rule = newterms.Rule(profile=profile, config=config, partition=(bucket, partitions))
                end = start
                while end < len(events) and buckets[end] == bucket:
                    end += 1
                alerts = rule.process_ndjson(b"\n".join(events[start:end]))
                refused += len(rule.errors())
                if alerts:
                    yield results(["alert"] * len(alerts), [alert.encode() for alert in alerts])
                start = end
        if rule is not None:
            yield finish()
    return run


def hunt(spark, inputs, output, partitions, profile=None, config=None, state_out=None):
    """Runs the hunt; returns (alerts, refused events).

    Events travel as Arrow batches between Spark and the Python workers (`mapInArrow`), never as one
    pickled object per event: Spark's own per-row cost is then its shuffle's, in the JVM.
    """
    # Every file, in input order (a folder's files in name order): its index orders its events.
    paths = []
    for path in inputs:
        found = spark.read.format("binaryFile").load(path).select("path").collect()
        paths.extend(sorted(row.path for row in found))
    order = {path: index for index, path in enumerate(paths)}
    # One row per file: its bytes, as `newterms scan` reads them (gzip or not).
    files = spark.read.format("binaryFile").load(paths).select("path", "content")
    routed = files.repartition(max(len(paths), 1)).mapInArrow(_route(order, partitions, profile, config), ROUTED)
    ordered = (routed.repartition(partitions, "bucket")
               .sortWithinPartitions("bucket", "time", "input", "position"))
    results = ordered.mapInArrow(_run(partitions, profile, config), RESULTS).cache()
    try:
        alerts = results.where("kind = 'alert'").selectExpr("cast(payload as string) as value")
        alerts.write.text(output)
        count = results.where("kind = 'alert'").count()
        refused = sum(int(row.payload) for row in results.where("kind = 'refused'").collect())
        if state_out is not None:
            states = [bytes(row.payload) for row in results.where("kind = 'state'").collect()]
            merged = newterms.merge(states)
            temporary = f"{state_out}.tmp"
            with open(temporary, "wb") as f:
                f.write(merged)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, state_out)
    finally:
        results.unpersist()
    return count, refused


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m newterms.spark", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("hunt", help="run the rule over an archive")
    run.add_argument("inputs", nargs="+", metavar="INPUT")
    run.add_argument("--output", required=True, metavar="DIR", help="where the alert files go (must not exist)")
    run.add_argument("--partitions", type=int, default=None, metavar="N",
                     help="buckets of terms, one Spark partition each (default: Spark's parallelism)")
    run.add_argument("--profile", default=None, help="default or elastic")
    run.add_argument("--config", default=None, metavar="FILE", help="the keys of newterms scan --config")
    run.add_argument("--state-out", default=None, metavar="FILE", help="write the merged history here")
    args = parser.parse_args(argv)

    # A bad configuration is said here, before Spark starts.
    newterms.Rule(profile=args.profile, config=args.config)
    from pyspark.sql import SparkSession

    partitions = args.partitions
    builder = SparkSession.builder.appName("newterms hunt").config("spark.ui.showConsoleProgress", "false")
    if "spark.master" not in os.environ.get("PYSPARK_SUBMIT_ARGS", "") and not os.environ.get("SPARK_MASTER"):
        builder = builder.master(f"local[{partitions or os.cpu_count() or 1}]")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        partitions = partitions or spark.sparkContext.defaultParallelism
        inputs = [os.path.abspath(path) if "://" not in path else path for path in args.inputs]
        count, refused = hunt(spark, inputs, args.output, partitions, args.profile, args.config, args.state_out)
    finally:
        spark.stop()
    print(f"newterms.spark: {count} alerts in {args.output} over {partitions} buckets; {refused} events refused",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
