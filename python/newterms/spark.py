"""A hunt over an archive with Apache Spark: the rule over every event, one instance per bucket of terms.

    python -m newterms.spark hunt INPUT... --output DIR [--partitions N] [--profile P]
                                          [--config FILE] [--state-out FILE]

INPUTs are NDJSON or CloudTrail delivery files (`{"Records": [...]}`), gzip or not, read by the rule's
host exactly as `newterms scan` reads them. Each event goes to the buckets of its terms, which the rule
computes (`Rule.route`); each of the N buckets is one Spark partition, ordered by event time, then input
order (input, then position in it), and run through one rule configured with that bucket
(`Rule(partition=(i, N))`), which keeps and alerts on only its own terms. The alerts are written as
NDJSON files in DIR (Spark's `part-*` files); the buckets' histories are merged into one state file
(`--state-out`) that `newterms scan --state` and a stream job can start from. Spark runs locally
(`local[N]`) unless `spark.master` says otherwise (`PYSPARK_SUBMIT_ARGS`, `spark-submit`).
"""

import argparse
import os
import sys

import newterms

#: Events handed to the rule in one call.
BATCH = 4096
#: The sort key of an event with no bucket (it changes no history): before the others.
NO_TIME = -(2**63)


def _events_of(item):
    """(input index, (path, bytes)) -> ((bucket, time, input, position), text) for each bucket."""
    index, (path, data) = item
    events, errors = newterms.events(data, path)
    for error in errors:
        print(f"newterms.spark: {error}", file=sys.stderr)
    return [(index, position, text) for position, text in enumerate(events)]


def _route(partitions, profile, config):
    def route(rows):
        router = newterms.Rule(profile=profile, config=config)
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                yield from _routed(router, batch, partitions)
                batch = []
        if batch:
            yield from _routed(router, batch, partitions)
    return route


def _routed(router, batch, partitions):
    routes = router.route([text for _, _, text in batch], partitions)
    for (index, position, text), (buckets, time) in zip(batch, routes):
        # An event with no bucket changes no history: bucket 0 takes it (and reports a refusal once).
        for bucket in buckets or [0]:
            yield ((bucket, NO_TIME if time is None else time, index, position), text)


def _run(partitions, profile, config):
    def run(bucket, rows):
        rule = newterms.Rule(profile=profile, config=config, partition=(bucket, partitions))
        batch = []
        refused = 0
        for _, text in rows:
            batch.append(text)
            if len(batch) == BATCH:
                for alert in rule.process(batch):
                    yield ("alert", alert.encode())
                refused += len(rule.errors())
                batch = []
        if batch:
            for alert in rule.process(batch):
                yield ("alert", alert.encode())
            refused += len(rule.errors())
        yield ("refused", str(refused).encode())
        yield ("state", rule.snapshot())
    return run


def hunt(spark, inputs, output, partitions, profile=None, config=None, state_out=None):
    """Runs the hunt; returns (alerts, refused events)."""
    sc = spark.sparkContext
    files = sc.union([
        sc.binaryFiles(path, minPartitions=1).map(lambda item, index=index: (index, item))
        for index, path in enumerate(inputs)
    ])
    keyed = files.flatMap(_events_of).mapPartitions(_route(partitions, profile, config))
    ordered = keyed.repartitionAndSortWithinPartitions(
        numPartitions=partitions, partitionFunc=lambda key: key[0])
    results = ordered.mapPartitionsWithIndex(_run(partitions, profile, config)).cache()
    alerts = results.filter(lambda kind_value: kind_value[0] == "alert").map(lambda kv: kv[1].decode())
    alerts.saveAsTextFile(output)
    count = alerts.count()
    refused = results.filter(lambda kv: kv[0] == "refused").map(lambda kv: int(kv[1])).sum()
    if state_out is not None:
        states = results.filter(lambda kv: kv[0] == "state").map(lambda kv: bytes(kv[1])).collect()
        merged = newterms.merge(states)
        temporary = f"{state_out}.tmp"
        with open(temporary, "wb") as f:
            f.write(merged)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, state_out)
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
