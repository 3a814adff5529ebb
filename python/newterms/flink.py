"""A stream job with Apache Flink: the rule over every event, one instance per bucket of terms, exactly once.

    python -m newterms.flink run INPUT... --output DIR [--parallelism N] [--buckets B] [--profile P]
                                         [--config FILE] [--checkpoint-dir D] [--checkpoint-interval MS]
                                         [--restore CHECKPOINT] [--set KEY=VALUE]...

INPUTs are NDJSON or CloudTrail delivery files (`{"Records": [...]}`), gzip or not, read by the rule's
host exactly as `newterms scan` reads them, in the order given. One reader reads them in order, cuts the
events into chunks, and sends each event to the buckets of its terms, which the rule computes
(`Rule.route`): one Flink record per bucket per chunk, so that Flink's cost per record is paid once for
hundreds of events. An event with no bucket changes no history: the reader's rule reports it if it is
refused, and it is not shipped. The job is keyed by bucket (B buckets, B = Flink's max parallelism, fixed for a
checkpoint's life); each bucket runs one rule configured with that bucket (`Rule(partition=(i, B))`),
which keeps and alerts on only its own terms, in input order. The bucket's rule is its keyed state: Flink
pickles it before every checkpoint barrier (the end of a bundle of the Python worker), and pickling takes
the rule's snapshot. Alerts go to a `FileSink` in DIR (NDJSON `part-*` files), committed when a
checkpoint completes: with aligned checkpoints and a replayable source, each alert is written once, also
after a failure (Flink restarts from the last checkpoint) and after a restore (`--restore` of a retained
checkpoint, at any parallelism up to B). Flink runs its MiniCluster locally; `flink run -pym newterms.flink`
submits it to a cluster, and `--set` passes any Flink setting.
"""

import argparse
import os
import shutil
import sys
import tempfile

import newterms

#: Buckets of terms, which is also Flink's max parallelism: fixed for a checkpoint's life.
BUCKETS = 128
#: Events read and routed together; each bucket's share of a chunk is one Flink record.
CHUNK = 65536
#: Milliseconds between checkpoints: alerts are committed to DIR at each.
CHECKPOINT_INTERVAL = 2000


class BucketRule:
    """One bucket's rule, held in Flink's keyed state: pickling it takes its snapshot, unpickling makes a
    rule for the same bucket and restores the snapshot."""

    def __init__(self, rule_args, bucket, buckets, snapshot=None):
        self.rule_args = rule_args
        self.bucket = bucket
        self.buckets = buckets
        self.rule = newterms.Rule(**rule_args, partition=(bucket, buckets))
        if snapshot is not None:
            self.rule.restore(snapshot)

    def __reduce__(self):
        return (BucketRule, (self.rule_args, self.bucket, self.buckets, self.rule.snapshot()))


def refused(path, spot, why):
    """Says that an event was refused, where `newterms scan` would: `path:line (record r): why`."""
    line, record = spot
    where = f"{path}:{line}" + (f" (record {record})" if record is not None else "")
    print(f"newterms.flink: {where}: {why}", file=sys.stderr)


def read_and_route(inputs, buckets, rule_args, chunk):
    """The reader's function: an input's index -> (bucket, (input, spots, events)) records, in
    input order. An event with no bucket changes no history (it cannot match, is refused, excepted, or
    has no term): the reader's own rule takes it, to report a refusal, and it goes no further, so that
    the noise of a stream is not shipped through Flink."""
    from pyflink.datastream import FlatMapFunction

    class ReadAndRoute(FlatMapFunction):
        def open(self, runtime_context):
            self.router = newterms.Rule(**rule_args)

        def flat_map(self, index):
            path = inputs[index]
            with open(path, "rb") as f:
                events, spots, errors = newterms.located_events(f.read(), path)
            for error in errors:
                print(f"newterms.flink: {error}", file=sys.stderr)
            for start in range(0, len(events), chunk):
                piece = events[start:start + chunk]
                shares = {}
                unrouted = []
                for number, (text, (targets, _)) in enumerate(zip(piece, self.router.route(piece, buckets)),
                                                              start):
                    if not targets:
                        unrouted.append(number)
                    for bucket in targets:
                        where, texts = shares.setdefault(bucket, ([], []))
                        where.append(spots[number])
                        texts.append(text)
                if unrouted:
                    self.take_unrouted(path, [spots[number] for number in unrouted],
                                       [events[number] for number in unrouted])
                for bucket, (where, texts) in shares.items():
                    yield bucket, (index, where, texts)

        def take_unrouted(self, path, where, texts):
            if self.router.process(texts):
                # The rule's route and its processing disagree: no alert may be dropped here.
                raise RuntimeError(f"{path}: an event the rule routes nowhere raised an alert")
            for at, why in self.router.errors():
                refused(path, where[at], why)

    return ReadAndRoute()


def run_buckets(rule_args, buckets, inputs):
    """The keyed function: each record's events through its bucket's rule, whose state is the bucket's
    history; yields the alerts. Tests subclass the class it returns (`RunBucket`)."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction
    from pyflink.datastream.state import ValueStateDescriptor

    class RunBucket(KeyedProcessFunction):
        def open(self, runtime_context):
            self.state = runtime_context.get_state(ValueStateDescriptor("rule", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, value, ctx):
            bucket, (index, where, texts) = value
            held = self.state.value()
            if held is None:
                held = BucketRule(rule_args, bucket, buckets)
            alerts = held.rule.process(texts)
            for at, why in held.rule.errors():
                refused(inputs[index], where[at], why)
            # Marks the bucket changed: Flink pickles it (takes its snapshot) when the bundle ends,
            # which it forces before every checkpoint barrier.
            self.state.update(held)
            yield from alerts

    return RunBucket


def build(env, inputs, output, buckets=BUCKETS, rule_args=None, chunk=CHUNK, reader=None, process=None):
    """Adds the job to `env`: inputs -> reader (one, in order) -> keyed by bucket -> rules -> FileSink.
    `reader` and `process` replace the reader's and the keyed function (a `run_buckets` subclass that
    injects a failure, the benchmark's no-ops)."""
    from pyflink.common import Encoder, Types
    from pyflink.common.watermark_strategy import WatermarkStrategy
    from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig, RollingPolicy
    from pyflink.datastream.connectors.number_seq import NumberSequenceSource

    rule_args = dict(rule_args or {})
    inputs = list(inputs)
    # The source is the inputs' indexes, checkpointed by Flink: a restart reads again from the first
    # input the last checkpoint had not passed (the reader's output for an input is all before the
    # barrier that follows it, so a checkpoint never holds half an input).
    indexes = env.from_source(NumberSequenceSource(0, len(inputs) - 1), WatermarkStrategy.no_watermarks(),
                              "inputs", Types.LONG()).set_parallelism(1).uid("newterms-inputs")
    reader = reader if reader is not None else read_and_route(inputs, buckets, rule_args, chunk)
    routed = indexes.flat_map(reader,
                              Types.TUPLE([Types.INT(), Types.PICKLED_BYTE_ARRAY()])
                              ).set_parallelism(1).uid("newterms-route").name("read and route")
    function = process if process is not None else run_buckets(rule_args, buckets, inputs)()
    alerts = routed.key_by(lambda record: record[0], Types.INT()) \
        .process(function, Types.STRING()).uid("newterms-rule").name("rule per bucket")
    sink = FileSink.for_row_format(output, Encoder.simple_string_encoder()) \
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner()) \
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy()) \
        .with_output_file_config(OutputFileConfig.builder().with_part_suffix(".ndjson").build()) \
        .build()
    alerts.sink_to(sink).uid("newterms-alerts").name("alerts")


def environment(parallelism=None, buckets=BUCKETS, checkpoint_dir=None, interval=CHECKPOINT_INTERVAL,
                restore=None, settings=(), temporary=None):
    """A StreamExecutionEnvironment for the job: streaming, aligned exactly-once checkpoints retained when
    the job is cancelled or fails, max parallelism = buckets, the Python worker in process mode (its
    state cache is what writes a bucket's rule before each barrier). `settings` are (key, value) Flink
    settings, applied last."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    config = Configuration()
    config.set_string("execution.runtime-mode", "STREAMING")
    config.set_string("python.execution-mode", "process")
    config.set_string("python.executable", sys.executable)
    config.set_string("pipeline.max-parallelism", str(buckets))
    config.set_string("execution.checkpointing.interval", f"{interval} ms")
    config.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
    config.set_string("execution.checkpointing.unaligned.enabled", "false")
    config.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if checkpoint_dir is not None:
        config.set_string("execution.checkpointing.dir", _uri(checkpoint_dir))
    if restore is not None:
        config.set_string("execution.state-recovery.path", _uri(restore))
    if temporary is not None:
        # Flink's spill files and the Python worker's files go here, not to /tmp, and go with it.
        config.set_string("io.tmp.dirs", temporary)
    for key, value in settings:
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if parallelism is not None:
        env.set_parallelism(parallelism)
    return env


def _uri(path):
    return path if "://" in path else "file://" + os.path.abspath(path)


def _setting(text):
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m newterms.flink", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the rule over a stream of inputs")
    run.add_argument("inputs", nargs="+", metavar="INPUT")
    run.add_argument("--output", required=True, metavar="DIR", help="where the alert files go")
    run.add_argument("--parallelism", type=int, default=None, metavar="N",
                     help="rule tasks (default: Flink's, the cores here); at most --buckets")
    run.add_argument("--buckets", type=int, default=BUCKETS, metavar="B",
                     help=f"buckets of terms = Flink's max parallelism, fixed for a checkpoint's life "
                          f"(default {BUCKETS})")
    run.add_argument("--profile", default=None, help="default or elastic")
    run.add_argument("--config", default=None, metavar="FILE", help="the keys of newterms scan --config")
    run.add_argument("--checkpoint-dir", default=None, metavar="D",
                     help="where checkpoints go, and stay when the job fails or is cancelled "
                          "(default: a temporary folder, removed after a finished run)")
    run.add_argument("--checkpoint-interval", type=int, default=CHECKPOINT_INTERVAL, metavar="MS",
                     help=f"milliseconds between checkpoints, when alerts are committed (default "
                          f"{CHECKPOINT_INTERVAL})")
    run.add_argument("--restore", default=None, metavar="CHECKPOINT",
                     help="start from a retained checkpoint (D/<job id>/chk-<n>) or a savepoint, with the "
                          "same inputs and --buckets: what it covers is not read again")
    run.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                     help="a Flink setting (repeatable), e.g. restart-strategy.type=none")
    args = parser.parse_args(argv)
    if args.parallelism is not None and not 1 <= args.parallelism <= args.buckets:
        parser.error(f"--parallelism must be between 1 and --buckets ({args.buckets})")

    rule_args = {key: value for key, value in (("profile", args.profile), ("config", args.config))
                 if value is not None}
    # A bad configuration, or an input that cannot be read, is said here, before Flink starts.
    newterms.Rule(**rule_args)
    inputs = [os.path.abspath(path) for path in args.inputs]
    for path in inputs:
        if not os.access(path, os.R_OK) or os.path.isdir(path):
            parser.error(f"{path}: not a readable file")

    temporary = tempfile.mkdtemp(prefix="newterms-flink.")
    checkpoint_dir = args.checkpoint_dir or os.path.join(temporary, "checkpoints")
    try:
        env = environment(args.parallelism, args.buckets, checkpoint_dir, args.checkpoint_interval,
                          args.restore, args.set, temporary)
        output = args.output if "://" in args.output else os.path.abspath(args.output)
        build(env, inputs, output, args.buckets, rule_args)
        env.execute("newterms")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    counted = "" if "://" in args.output else f"{count_alerts(args.output)} alerts in "
    print(f"newterms.flink: {counted}{args.output}, {args.buckets} buckets", file=sys.stderr)
    return 0


def count_alerts(output):
    """Alerts in DIR's committed part files (Flink's in-progress files start with a dot)."""
    count = 0
    for folder, _, names in os.walk(output):
        for name in names:
            if name.startswith("part-"):
                with open(os.path.join(folder, name), "rb") as f:
                    count += sum(1 for line in f if line.strip())
    return count


if __name__ == "__main__":
    # The job's functions are pickled for Flink's Python workers by reference to their module: run
    # them from `newterms.flink`, which the workers import, not from `__main__`.
    from newterms.flink import main as main_of_module

    sys.exit(main_of_module())
