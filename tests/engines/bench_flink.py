"""Events per second of the Flink job on one core, next to Flink doing the same work with a no-op function
and to `newterms scan` on the same files.

    tests/engines/bench_flink.py [EVENTS] [--set KEY=VALUE]...
        (in target/engines/flink-venv, after tests/engines/flink.sh)

A generated stream of EVENTS (default 400,000) in 4 NDJSON files. Everything runs pinned to one core
(the JVM, the Python worker, newterms scan), parallelism 1. The no-op job reads the events as the job
does, ships every one of them in chunks spread over the buckets (no rule: no route, so no event is
left out) and drops them: what Flink alone costs to carry the stream; the same no-op with one record
per event (the shape without batching) runs over a tenth of the stream. The job itself ships only the
events that have a bucket. Reading and routing alone (the reader's calls, without Flink) bound the job
from above. Each Flink job pays a start (MiniCluster, Python worker): measured on a one-event input and
taken off, so that the figures are the stream's rate. Target: >= 100,000 events/s per core.
"""

import os
import shutil
import sys
import tempfile
import time

import bench_stream
from newterms import flink


def noop_reader(inputs, chunk):
    """The reader without the rule: each input's events in chunks, spread over the buckets in turn."""
    import newterms
    from pyflink.datastream import FlatMapFunction

    class Spread(FlatMapFunction):
        def flat_map(self, index):
            with open(inputs[index], "rb") as f:
                events, _ = newterms.events(f.read(), inputs[index])
            for start in range(0, len(events), chunk):
                piece = events[start:start + chunk]
                for bucket in range(min(flink.BUCKETS, len(piece))):
                    texts = piece[bucket::flink.BUCKETS]
                    yield bucket, (index, list(range(len(texts))), texts)

    return Spread()


def noop_function():
    from pyflink.datastream import KeyedProcessFunction

    class Drop(KeyedProcessFunction):
        def process_element(self, value, ctx):
            return iter(())

    return Drop()


def main():
    arguments = sys.argv[1:]
    settings = []
    while "--set" in arguments:
        at = arguments.index("--set")
        key, _, value = arguments[at + 1].partition("=")
        settings.append((key, value))
        del arguments[at:at + 2]
    events = int(arguments[0]) if arguments else 400_000
    # One core for everything, the processes Flink starts included.
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    work = tempfile.mkdtemp(prefix="newterms-flink-bench.")
    lines, inputs = bench_stream.generated_files(work, events)
    tenth = os.path.join(work, "tenth.ndjson")
    open(tenth, "wb").write(b"".join(lines[:len(lines) // 10]))
    one = os.path.join(work, "one.ndjson")
    open(one, "wb").write(lines[0])

    scan_seconds = bench_stream.scan_seconds(inputs)

    # The reader's rule call alone, no Flink: reading and routing every event.
    import newterms
    router = newterms.Rule()
    start = time.perf_counter()
    for path in inputs:
        with open(path, "rb") as f:
            read, _ = newterms.events(f.read(), path)
        for at in range(0, len(read), flink.CHUNK):
            router.route(read[at:at + flink.CHUNK], flink.BUCKETS)
    route_seconds = time.perf_counter() - start

    def job(files, process=None, chunk=flink.CHUNK):
        output = os.path.join(work, "alerts")
        shutil.rmtree(output, ignore_errors=True)
        env = flink.environment(1, settings=settings, temporary=os.path.join(work, "tmp"),
                                checkpoint_dir=os.path.join(work, "checkpoints"))
        flink.build(env, files, output, chunk=chunk, process=process,
                    reader=None if process is None else noop_reader(files, chunk))
        start = time.perf_counter()
        env.execute("newterms bench")
        return time.perf_counter() - start

    # The refusals the generated stream holds on purpose would flood the terminal.
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    try:
        job([one])  # warm-up: the JVM's classes, the Python worker's imports
        fixed = min(job([one]) for _ in range(2))
        noop = job(inputs, noop_function())
        per_event = job([tenth], noop_function(), chunk=1)
        rule = job(inputs)
    finally:
        os.dup2(saved, 2)
    shutil.rmtree(work, ignore_errors=True)

    def rate(count, seconds):
        return f"{count / max(seconds - fixed, 1e-9):10,.0f} events/s ({seconds:.2f} s, {seconds - fixed:.2f} s after the start)"

    print(f"{events} generated events in 4 files, one core, parallelism 1, chunks of {flink.CHUNK} events")
    print(f"newterms scan (release):                    {events / scan_seconds:10,.0f} events/s ({scan_seconds:.2f} s)")
    print(f"read and route only (no Flink):             {events / route_seconds:10,.0f} events/s ({route_seconds:.2f} s)")
    print(f"Flink job start (one event):                {fixed:.2f} s, taken off the jobs below")
    print(f"Flink, no-op, one record per event:         {rate(len(lines) // 10, per_event)}")
    print(f"Flink, no-op, one record per bucket per chunk: {rate(events, noop)}")
    print(f"Flink job (the rule):                       {rate(events, rule)}  (target >= 100,000)")


if __name__ == "__main__":
    main()
