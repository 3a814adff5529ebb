"""A hunt over an archive with Apache Spark: the rule over every event, one instance per bucket of terms.

    python -m newterms.spark hunt INPUT... --output DIR [--partitions N] [--profile P]
                                          [--config FILE] [--state-out FILE]

INPUTs are NDJSON or CloudTrail delivery files (`{"Records": [...]}`), gzip or not, read by the rule's
host exactly as `newterms scan` reads them. Each event goes to the buckets of its terms, which the rule
computes (`Rule.route_file`); the events of each of the N buckets are ordered by event time, then input
order (input, then position in it), and run through one rule configured with that bucket
(`Rule(partition=(i, N))`, `Rule.process_routed`), which keeps and alerts on only its own terms; N is also
the number of Spark partitions. Spark moves one Arrow record per file and bucket (`mapInArrow`). The alerts are written as
NDJSON files in DIR (Spark's `part-*` files); the buckets' histories are merged into one state file
(`--state-out`) that `newterms scan --state` and a stream job can start from. Spark runs locally
(`local[N]`) unless `spark.master` says otherwise (`PYSPARK_SUBMIT_ARGS`, `spark-submit`).
"""

import argparse
import os
import sys

import newterms

#: The rows of the routing stage: one per input file and bucket, the bucket's events of that file
#: with their times (`Rule.route_file`).
ROUTED = "bucket int, input int, routed binary"
#: The rows of the rule stage: alerts, then per bucket its refusals and its history.
RESULTS = "kind string, payload binary"


def _route(order, partitions, profile, config):
    """mapInArrow over the input files (path, content): each file's events, routed by the rule;
    `order` gives each file's place in the input."""
    import pyarrow as pa

    def route(batches):
        router = newterms.Rule(profile=profile, config=config)
        for files in batches:
            for path, content in zip(files.column("path").to_pylist(), files.column("content").to_pylist()):
                routed, errors = router.route_file(content, path, partitions)
                for error in errors:
                    print(f"newterms.spark: {error}", file=sys.stderr)
                yield pa.RecordBatch.from_arrays(
                    [pa.array([bucket for bucket, _ in routed], pa.int32()),
                     pa.array([order[path]] * len(routed), pa.int32()),
                     pa.array([events for _, events in routed], pa.binary())],
                    names=["bucket", "input", "routed"])
    return route


def _run(partitions, profile, config):
    """mapInArrow over one Spark partition's routed rows, sorted by bucket: one rule per bucket
    (`partition=(bucket, partitions)`), fed the bucket's events in time, then input order."""
    import pyarrow as pa

    def results(kinds, payloads):
        return pa.RecordBatch.from_arrays([pa.array(kinds, pa.string()), pa.array(payloads, pa.binary())],
                                          names=["kind", "payload"])

    def finish(bucket, parts):
        rule = newterms.Rule(profile=profile, config=config, partition=(bucket, partitions))
        alerts = rule.process_routed(parts)
        refused = len(rule.errors())
        kinds = ["alert"] * len(alerts) + ["refused", "state"]
        return results(kinds, [alert.encode() for alert in alerts] + [str(refused).encode(), rule.snapshot()])

    def run(batches):
        bucket, parts = None, []
        for batch in batches:
            for row_bucket, row_input, routed in zip(batch.column("bucket").to_pylist(),
                                                     batch.column("input").to_pylist(),
                                                     batch.column("routed").to_pylist()):
                if row_bucket != bucket:
                    if parts:
                        yield finish(bucket, parts)
                    bucket, parts = row_bucket, []
                parts.append((row_input, routed))
        if parts:
            yield finish(bucket, parts)
    return run


def hunt(spark, inputs, output, partitions, profile=None, config=None, state_out=None):
    """Runs the hunt; returns (alerts, refused events).

    Spark moves one record per input file and bucket (the bucket's events of that file), as Arrow
    batches (`mapInArrow`): never one object per event, so Spark's per-record cost is paid per file
    and bucket. A bucket's events are held in memory while they are put in order: with archives
    larger than the workers' memory, use more buckets (`--partitions`).
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
    ordered = routed.repartition(partitions, "bucket").sortWithinPartitions("bucket")
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
