#!/usr/bin/env python3
"""Runs the newterms rule component on Python with wasmtime-py: the same scan as `newterms scan`,
for NDJSON input.

    python scan.py [--rule rule.wasm] [--profile default|elastic] [--state FILE] [--learn]
                   [--batch-size N] [INPUT...]

Alerts go to stdout, one JSON document per line, exactly as the component wrote them; diagnostics
and a closing summary go to stderr. INPUT is NDJSON (raw CloudTrail records or ECS documents, one per
line), gzip-compressed or not; `-` or nothing reads standard input. CloudTrail delivery files
(`{"Records": [...]}`) are reported and skipped: `newterms scan` expands them.
Exit status: 0 when the scan ran, 1 for an unreadable input or state file or a component failure,
2 for a usage error.
"""

import argparse
import gzip
import os
import re
import secrets
import sys
import time
from pathlib import Path

from wasmtime import Engine, Store, Trap, WasmtimeError
from wasmtime.component import Component, Linker, Record, Variant

HERE = Path(__file__).resolve().parent
INTERFACE = "newterms:rule/detector@0.4.0"
DELIVERY = re.compile(rb"^\{\s*\"Records\"")
ASCII_SPACE = b" \t\n\x0c\r"


def _install_fast_bytes():
    """Makes `list<u8>` cross in one copy instead of one Python call per byte.

    wasmtime-py 50 converts a `bytes` argument or result element by element (~6 µs per byte here:
    10 s to restore a 1.6 MB snapshot). Its C API holds such a list as an array of tagged values
    (`kind` byte, then the value), so the whole array can be built or read with strided slices.
    Checked against the pinned version's layout; anything unexpected keeps the library's own path.
    """
    import ctypes

    from wasmtime import _ffi as ffi
    from wasmtime.component import _types

    val = ffi.wasmtime_component_val_t
    size = ctypes.sizeof(val)
    kind_at = val.kind.offset
    value_at = val.of.offset
    if ctypes.sizeof(ffi.wasmtime_component_valkind_t) != 1:
        return
    u8 = ffi.WASMTIME_COMPONENT_U8.value
    list_kind = ffi.WASMTIME_COMPONENT_LIST
    original_to_c = _types.ListType.convert_to_c
    original_from_c = _types.ListType.convert_from_c

    def convert_to_c(self, store, value, ptr):
        if not (isinstance(value, (bytes, bytearray)) and self._is_bytes()):
            return original_to_c(self, store, value, ptr)
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, len(value))
        if value:
            array = bytearray(len(value) * size)
            array[kind_at::size] = bytes([u8]) * len(value)
            array[value_at::size] = value
            ctypes.memmove(raw.data, (ctypes.c_char * len(array)).from_buffer(array), len(array))
        ptr.contents.kind = list_kind
        ptr.contents.of.list = raw

    def convert_from_c(self, c):
        if not self._is_bytes():
            return original_from_c(self, c)
        try:
            count = c.of.list.size
            if count == 0:
                return b""
            array = ctypes.string_at(c.of.list.data, count * size)
            if array[kind_at::size] != bytes([u8]) * count:
                raise TypeError("list<u8> holding values of another kind")
            return array[value_at::size]
        finally:
            ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))

    _types.ListType.convert_to_c = convert_to_c
    _types.ListType.convert_from_c = convert_from_c


_install_fast_bytes()


class Rule:
    """One instance of the rule component: its own Store, so its own history."""

    def __init__(self, path):
        engine = Engine()
        self.store = Store(engine)
        component = Component.from_file(engine, str(path))
        instance = Linker(engine).instantiate(self.store, component)  # it imports nothing
        detector = instance.get_export_index(self.store, INTERFACE)
        if detector is None:
            raise RuntimeError(f"{path} does not export {INTERFACE}")

        def function(name):
            index = instance.get_export_index(self.store, name, detector)
            return instance.get_func(self.store, index)

        self._configure = function("configure")
        self._restore_begin = function("restore-begin")
        self._restore_write = function("restore-write")
        self._restore_end = function("restore-end")
        self._process_batch = function("process-batch")
        self._snapshot_begin = function("snapshot-begin")
        self._snapshot_read = function("snapshot-read")
        self._stats = function("stats")

    def _call(self, func, *args):
        result = func(self.store, *args)
        func.post_return(self.store)
        return result

    def configure(self, profile, learn):
        config = Record()
        # Records are plain objects whose attributes carry the WIT (kebab-case) field names.
        for name, value in {
            "profile": profile,
            "window-ms": None,
            "exceptions": [],
            "capacity": None,
            "learn": learn,
            "hash-key": (secrets.randbits(64), secrets.randbits(64)),
            "partition": None,
        }.items():
            setattr(config, name, value)
        return refusal(self._call(self._configure, config))

    # Snapshots cross in pieces, as the Rust host moves them: `snapshot` and `restore` would copy a
    # whole snapshot into the component's linear memory, which never shrinks.
    SNAPSHOT_PIECE = 1 << 20

    def restore(self, snapshot):
        # `list<u8>` takes a Python `bytes`; it still crosses element by element (see README).
        self._call(self._restore_begin, len(snapshot))
        for at in range(0, len(snapshot), self.SNAPSHOT_PIECE):
            refused = refusal(self._call(self._restore_write, snapshot[at : at + self.SNAPSHOT_PIECE]))
            if refused is not None:
                return refused
        return refusal(self._call(self._restore_end))

    def process_batch(self, events):
        # One outcome per event: a list of alert strings, or an event-error Variant.
        return self._call(self._process_batch, events)

    def snapshot(self):
        length = self._call(self._snapshot_begin)
        pieces = []
        read = 0
        while read < length:
            piece = bytes(self._call(self._snapshot_read, self.SNAPSHOT_PIECE))
            if not piece:
                break
            pieces.append(piece)
            read += len(piece)
        if read != length:
            raise OSError(f"the component handed out {read} of {length} snapshot bytes")
        return b"".join(pieces)

    def stats(self):
        return self._call(self._stats)


def describe_event_error(error):
    tag, value = error.tag, error.payload
    if tag == "malformed-json":
        return f"malformed JSON: {value}"
    if tag == "not-an-object":
        return "not a JSON object"
    if tag == "missing-time":
        return "matching event without a time (@timestamp or eventTime)"
    if tag == "invalid-time":
        return f"matching event with an unreadable time {rust_debug(value)}"
    if tag == "too-many-terms":
        return f"{value} term combinations in one event is more than the rule takes"
    return tag if value is None else f"{tag} {value}"


def rust_debug(text):
    """A string quoted as the Rust host's `{:?}` quotes it (for the common characters)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def refusal(result):
    """What a `result<_, E>` call refused, described, or None when it succeeded.

    wasmtime-py returns a result bare (None, or the error value) when Python types tell its cases
    apart, and as `Variant("ok")` / `Variant("err", error)` when they do not; the same goes for the
    error variant itself (a `Variant`, or only its payload). Accept every shape.
    """
    if result is None or (isinstance(result, Variant) and result.tag == "ok"):
        return None
    if isinstance(result, Variant) and result.tag == "err":
        result = result.payload
    if isinstance(result, Variant):
        return result.tag if result.payload is None else f"{result.tag}: {result.payload}"
    return repr(result)


def open_input(name):
    raw = sys.stdin.buffer if name == "-" else open(name, "rb")
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)
    return raw


def save_atomically(path, data):
    """Replaces the state file as the Rust host does: write a temporary file, sync, rename."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def main():
    parser = argparse.ArgumentParser(prog="scan.py", description="Run the newterms rule over NDJSON with wasmtime-py.")
    parser.add_argument("--rule", default=str(HERE / "rule.wasm"), help="the rule component (default: rule.wasm next to this script)")
    parser.add_argument("--profile", choices=["default", "elastic"], default="default")
    parser.add_argument("--state", help="restore history from FILE if it exists, save it back at the end")
    parser.add_argument("--learn", action="store_true", help="build history, raise no alerts")
    parser.add_argument("--batch-size", type=int, default=1024, help="most events per call (default 1024)")
    parser.add_argument("inputs", nargs="*", metavar="INPUT")
    args = parser.parse_args()
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    inputs = args.inputs or ["-"]

    def fail(message):
        print(f"newterms-python: error: {message}", file=sys.stderr)
        sys.exit(1)

    def report(message):
        print(f"newterms-python: {message}", file=sys.stderr)

    for name in inputs:
        if name != "-":
            try:
                open(name, "rb").close()
            except OSError as error:
                fail(f"cannot read {name}: {error.strerror}")

    try:
        rule = Rule(args.rule)
    except Exception as error:  # noqa: BLE001 - any failure to load is reported the same way
        fail(f"cannot load the rule component {args.rule}: {error}")
    refused = rule.configure(args.profile, args.learn)
    if refused is not None:
        fail(f"configuration refused: {refused}")
    if args.state and os.path.exists(args.state):
        with open(args.state, "rb") as file:
            refused = rule.restore(file.read())
        if refused is not None:
            fail(f"cannot use the state file {args.state} (left as it is): {refused}")

    out = sys.stdout.buffer
    counts = {"events": 0, "alerts": 0, "input": 0, "event": 0, "calls": 0}
    call_seconds = 0.0
    started = time.perf_counter()
    batch, where = [], []

    def run():
        nonlocal call_seconds, batch, where
        before = time.perf_counter()
        try:
            outcomes = rule.process_batch(batch)
        except (Trap, WasmtimeError) as error:
            # A trap poisons the instance: stop without saving the state (history stays as it was).
            fail(f"the rule failed: {error}")
        call_seconds += time.perf_counter() - before
        counts["calls"] += 1
        counts["events"] += len(batch)
        chunks = []
        for outcome, location in zip(outcomes, where):
            if isinstance(outcome, Variant):
                counts["event"] += 1
                report(f"{location}: {describe_event_error(outcome)}")
            else:
                for alert in outcome:
                    chunks.append(alert.encode())
                    chunks.append(b"\n")
                counts["alerts"] += len(outcome)
        out.write(b"".join(chunks))
        out.flush()
        batch, where = [], []

    try:
        for name in inputs:
            label = "<stdin>" if name == "-" else name
            stream = open_input(name)
            for number, line in enumerate(stream, start=1):
                line = line.strip(ASCII_SPACE)
                if not line:
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    counts["input"] += 1
                    report(f"{label}:{number}: not UTF-8")
                    continue
                if DELIVERY.match(line):
                    counts["input"] += 1
                    report(f"{label}:{number}: a CloudTrail delivery document: this example reads NDJSON only (newterms scan expands them)")
                    continue
                batch.append(text)
                where.append(f"{label}:{number}")
                if len(batch) >= args.batch_size:
                    run()
        if batch:
            run()
    except BrokenPipeError:
        # The reader went away: its alerts were not delivered, so history must not record them.
        report("output closed; state not saved")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as error:
        fail(f"cannot read: {error}")

    if args.state:
        try:
            save_atomically(args.state, rule.snapshot())
        except OSError as error:
            fail(f"cannot save the state: {error}")
    stats = rule.stats()
    seconds = time.perf_counter() - started
    events = counts["events"]
    rate = round(events / call_seconds) if call_seconds > 0 else 0
    report(
        f"{events} events read, {stats.matched} matched, {stats.excepted} excepted, {counts['alerts']} alerts, "
        f"{counts['input'] + counts['event']} errors ({counts['input']} input, {counts['event']} event) in {seconds:.3f} s; "
        f"{counts['calls']} process-batch calls took {call_seconds:.3f} s ({rate} events/s); "
        f"{stats.terms} terms in history, {stats.evictions} evicted"
    )


if __name__ == "__main__":
    main()
