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
#: with their times (`Rule.route_file`); `input` is the file's argument, `path` orders the files of
#: one argument (a folder's, by name).
ROUTED = "bucket int, input int, path string, routed binary"
#: The rows of the rule stage: alerts, then per bucket its alert count, refusals and history.
RESULTS = "kind string, payload binary"


def _route(partitions, profile, config):
    """mapInArrow over the input files (input, path, content): each file's events, routed by the rule."""
    import pyarrow as pa

    def route(batches):
        router = newterms.Rule(profile=profile, config=config)
        for files in batches:
            for argument, path, content in zip(files.column("input").to_pylist(), files.column("path").to_pylist(),
                                               files.column("content").to_pylist()):
                routed, errors = router.route_file(content, path, partitions)
                for error in errors:
                    print(f"newterms.spark: {error}", file=sys.stderr)
                yield pa.RecordBatch.from_arrays(
                    [pa.array([bucket for bucket, _ in routed], pa.int32()),
                     pa.array([argument] * len(routed), pa.int32()),
                     pa.array([path] * len(routed), pa.string()),
                     pa.array([events for _, events in routed], pa.binary())],
                    names=["bucket", "input", "path", "routed"])
    return route


def _run(partitions, profile, config):
    """mapInArrow over one Spark partition's routed rows, sorted by bucket: one rule per bucket
    (`partition=(bucket, partitions)`), fed the bucket's events in time, then input order."""
    import pyarrow as pa

    def finish(bucket, parts):
        # The files in input order (argument, then path), numbered for `process_routed`; every
        # bucket numbers them differently, but orders them alike.
        parts.sort(key=lambda part: part[0])
        rule = newterms.Rule(profile=profile, config=config, partition=(bucket, partitions))
        alerts = rule.process_routed([(rank, routed) for rank, (_, routed) in enumerate(parts)])
        counts = f"{len(alerts)} {len(rule.errors())}".encode()
        kinds = ["alert"] * len(alerts) + ["counts", "state"]
        return pa.RecordBatch.from_arrays(
            [pa.array(kinds, pa.string()),
             pa.array([alert.encode() for alert in alerts] + [counts, rule.snapshot()], pa.binary())],
            names=["kind", "payload"])

    def run(batches):
        bucket, parts = None, []
        for batch in batches:
            for row_bucket, argument, path, routed in zip(
                    batch.column("bucket").to_pylist(), batch.column("input").to_pylist(),
                    batch.column("path").to_pylist(), batch.column("routed").to_pylist()):
                if row_bucket != bucket:
                    if parts:
                        yield finish(bucket, parts)
                    bucket, parts = row_bucket, []
                parts.append(((argument, path), routed))
        if parts:
            yield finish(bucket, parts)
    return run


def hunt(spark, inputs, output, partitions, profile=None, config=None, state_out=None):
    """Runs the hunt; returns (alerts, refused events).

    Spark moves one record per input file and bucket (the bucket's events of that file), as Arrow
    batches (`mapInArrow`): never one object per event, so Spark's per-record cost is paid per file
    and bucket. A bucket's events are held in memory while they are put in order: with archives
    larger than the workers' memory, use more buckets (`--partitions`). Two Spark jobs: the alerts
    written, then each bucket's counts and history collected.
    """
    from pyspark.sql import functions

    files = None
    for argument, path in enumerate(inputs):
        # One row per file: its bytes, as `newterms scan` reads them (gzip or not).
        one = (spark.read.format("binaryFile").load(path)
               .select(functions.lit(argument).cast("int").alias("input"), "path", "content"))
        files = one if files is None else files.unionByName(one)
    routed = files.mapInArrow(_route(partitions, profile, config), ROUTED)
    ordered = routed.repartition(partitions, "bucket").sortWithinPartitions("bucket")
    results = ordered.mapInArrow(_run(partitions, profile, config), RESULTS).cache()
    try:
        results.where("kind = 'alert'").selectExpr("cast(payload as string) as value").write.text(output)
        count = refused = 0
        states = []
        for row in results.where("kind != 'alert'").collect():
            if row.kind == "counts":
                alerts, errors = map(int, bytes(row.payload).split())
                count, refused = count + alerts, refused + errors
            else:
                states.append(bytes(row.payload))
        if state_out is not None:
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
