"""A failure injected into the Flink job, for tests/engines/test_flink.py: a module of its own, because
Flink's Python workers import the function they run by its module (shipped with the job)."""

import glob
import os
import time

from newterms import flink


def completed_checkpoints(checkpoint_dir):
    """Retained checkpoints (D/<job id>/chk-<n> with its metadata), oldest first."""
    found = glob.glob(os.path.join(checkpoint_dir, "*", "chk-*", "_metadata"))
    return sorted((os.path.dirname(found) for found in found), key=checkpoint_number)


def checkpoint_number(checkpoint):
    return int(checkpoint.rsplit("-", 1)[1])


def failing_once(inputs, checkpoint_dir, after, marker):
    """The job's keyed function, made to raise once (across restarts: `marker` says it did) when a
    checkpoint has completed that covers at least `after` events: the failure falls mid-stream with a
    checkpoint of some history to go back to. A checkpoint started after the function had seen `after`
    events covers them; with one checkpoint at a time, the one after the next is such a checkpoint."""
    base = flink.run_buckets({"profile": "default"}, flink.BUCKETS, inputs)

    class FailingOnce(base):
        def open(self, runtime_context):
            super().open(runtime_context)
            self.seen = 0
            self.covering = None

        def process_element(self, value, ctx):
            # Paced, so that the stream lasts several checkpoint intervals, and slower still while it
            # waits for the checkpoint that covers `after` events.
            waiting = self.covering is not None and not os.path.exists(marker)
            time.sleep(0.02 if waiting else 0.002)
            self.seen += len(value[1][2])
            retained = completed_checkpoints(checkpoint_dir)
            if self.covering is None and self.seen >= after:
                self.covering = (checkpoint_number(retained[-1]) if retained else 0) + 2
            if self.covering is not None and retained and checkpoint_number(retained[-1]) >= self.covering:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    with open(marker, "w") as f:
                        f.write(retained[-1])
                    raise RuntimeError(f"injected failure after {self.seen} events")
            yield from super().process_element(value, ctx)

    return FailingOnce()
