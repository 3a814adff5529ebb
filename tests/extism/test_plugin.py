#!/usr/bin/env python3
"""The Extism plugin under the real Extism runtime (PyPI `extism`, native extism-sys).

Usage: test_plugin.py PLUGIN.wasm NEWTERMS WORKDIR   (tests/extism/run.sh prepares all three)

Every check compares the plugin with `newterms scan` (the component in the wasmtime host) on the
same input: alerts byte for byte, diagnostics, counters, and snapshots moved between the two.
Prints one line per check and, last, `N passed, M failed`; exits 1 if any failed.
"""

import json
import os
import re
import subprocess
import sys

import extism

PLUGIN, NEWTERMS, WORK = sys.argv[1:4]
WASM = open(PLUGIN, "rb").read()

NL = b"\n"
passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok      {name}")
    else:
        failed += 1
        print(f"FAILED  {name}")
        if detail:
            for line in str(detail).splitlines()[:8]:
                print(f"        {line[:300]}")


def first_difference(expected, actual):
    a, b = expected.split(b"\n"), actual.split(b"\n")
    for number, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return f"line {number}:\n- {x[:200]!r}\n+ {y[:200]!r}"
    return f"{len(a) - 1} lines expected, {len(b) - 1} found"


def plugin(config=None, manifest_config=None):
    instance = extism.Plugin(WASM, wasi=False, config=manifest_config)
    if config is not None:
        instance.call("configure", json.dumps(config).encode())
    return instance


def scan(*args):
    """`newterms scan ARGS`: (alerts, stderr lines)."""
    done = subprocess.run([NEWTERMS, "scan", *args], capture_output=True, cwd=WORK, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"newterms scan {' '.join(args)} failed: {done.stderr.decode()[-500:]}")
    return done.stdout, done.stderr.decode().splitlines()


def lines_of(path):
    with open(os.path.join(WORK, path), "rb") as f:
        return f.read().splitlines(keepends=True)


def run_batches(instance, lines, batch):
    """Feeds `lines` in calls of `batch` lines: (alerts, refused lines numbered in the whole input)."""
    alerts, errors = b"", []
    for start in range(0, len(lines), batch):
        alerts += instance.call("process_ndjson", b"".join(lines[start:start + batch]))
        for line in instance.call("errors", b"").splitlines():
            error = json.loads(line)
            errors.append((start + error["line"], error["error"]))
    return alerts, errors


def scan_summary(stderr):
    """The counters of scan's summary line: matched, excepted, alerts, event errors."""
    for line in stderr:
        found = re.search(r"(\d+) matched, (\d+) excepted, (\d+) alerts, \d+ errors \(\d+ input, (\d+) event\)", line)
        if found:
            return tuple(int(n) for n in found.groups())
    return None


# ---------------------------------------------------------------------------------------------
print("same input, same alerts, same diagnostics, same counters as newterms scan")
for name in ["broken", "example", "generated", "real-mixed"]:
    path = f"{name}.ndjson"
    lines = lines_of(path)
    for profile in ["default", "elastic"]:
        expected, stderr = scan("--profile", profile, path)
        for batch in [len(lines) or 1, 1000, 1]:
            if batch == 1 and len(lines) > 3000:
                continue  # one call per line is slow in the native runtime's copies only
            instance = plugin({"profile": profile})
            alerts, errors = run_batches(instance, lines, batch)
            check(f"{name} {profile}, {batch} lines a call: alerts = newterms scan "
                  f"({expected.count(NL)} alerts)", alerts == expected, first_difference(expected, alerts))
        # Diagnostics: scan says `FILE:LINE: message` for each refused event; the plugin lists the
        # same lines with the same words.
        expected_diagnostics = [l.removeprefix("newterms: ") for l in stderr if l.startswith(f"newterms: {path}:")]
        actual_diagnostics = [f"{path}:{line}: {message}" for line, message in errors]
        check(f"{name} {profile}: errors = scan's diagnostics ({len(expected_diagnostics)})",
              actual_diagnostics == expected_diagnostics,
              f"expected {expected_diagnostics[:3]}\nfound    {actual_diagnostics[:3]}")
        stats = json.loads(instance.call("stats", b""))
        actual = (stats["matched"], stats["excepted"], stats["alerts"], stats["errors"])
        check(f"{name} {profile}: stats = scan's summary {actual}", actual == scan_summary(stderr),
              f"scan: {scan_summary(stderr)}")

# The generated stream must exercise what it is for.
alerts = plugin({"profile": "default"}).call("process_ndjson", b"".join(lines_of("generated.ndjson")))
check(f"the generated stream raises alerts ({alerts.count(NL)})", alerts.count(NL) >= 100)

# ---------------------------------------------------------------------------------------------
print("\nthe configuration: the keys of --config, as JSON")
config = {"profile": "elastic", "window": "3d", "capacity": 50, "learn": False,
          "exclude_arns": ["arn:aws:iam::*:user/u0*"],
          "exceptions": [{"field": "source.ip", "values": ["10.*"]}]}
with open(os.path.join(WORK, "config.toml"), "w") as f:
    f.write('profile = "elastic"\nwindow = "3d"\ncapacity = 50\nlearn = false\n'
            'exclude_arns = ["arn:aws:iam::*:user/u0*"]\n'
            '[[exceptions]]\nfield = "source.ip"\nvalues = ["10.*"]\n')
expected, _ = scan("--config", "config.toml", "generated.ndjson")
alerts = plugin(config).call("process_ndjson", b"".join(lines_of("generated.ndjson")))
check(f"every key set: alerts = newterms scan --config with the same TOML ({expected.count(NL)})",
      alerts == expected, first_difference(expected, alerts))
metadata = json.loads(plugin(config).call("metadata", b""))
check("metadata shows the configuration in force",
      (metadata["profile"], metadata["window_ms"], metadata["capacity"], metadata["learn"])
      == ("elastic", 3 * 86_400_000, 50, False), metadata)
check("metadata names the rule and its term fields",
      metadata["rule_id"] == "07cd35a6-c267-4394-a782-6a9428aea9d3" and len(metadata["term_fields"]) >= 2
      and isinstance(metadata["snapshot_format"], int), metadata)
learned = plugin({"learn": True})
check("learn mode raises nothing",
      learned.call("process_ndjson", b"".join(lines_of("generated.ndjson"))) == b"")

for bad, says in [
    ({"capacity": 0}, "capacity"),
    ({"capacity": "many"}, "capacity"),
    ({"window": "3y"}, "window"),
    ({"window": "0d"}, "window"),
    ({"profile": "strict"}, "profile"),
    ({"learn": "yes"}, "learn"),
    ({"exclude_arn": ["x"]}, "exclude_arn"),
    ({"exceptions": [{"field": "user.name"}]}, "exceptions"),
    ({"exceptions": [{"field": "", "values": ["x"]}]}, "exceptions"),
    ([1, 2], "JSON object"),
]:
    instance = plugin({"profile": "elastic"})
    try:
        instance.call("configure", json.dumps(bad).encode())
        check(f"configure {json.dumps(bad)} is refused", False, "accepted")
    except extism.Error as error:
        check(f"configure {json.dumps(bad)} is refused: {error}", says in str(error))
    # The refused configuration changed nothing.
    check(f"  ... and the configuration in force stays",
          json.loads(instance.call("metadata", b""))["profile"] == "elastic")
keyed = plugin({"profile": "elastic"}, {"hash_key": os.urandom(16).hex()})
alerts = keyed.call("process_ndjson", b"".join(lines_of("generated.ndjson")))
expected = scan("--profile", "elastic", "generated.ndjson")[0]
check("a random hash key in the manifest's config gives the same alerts", alerts == expected,
      first_difference(expected, alerts))
try:
    plugin({}, {"hash_key": "not hex"})
    check("a hash_key that is not 32 hex digits is refused", False, "accepted")
except extism.Error as error:
    check(f"a hash_key that is not 32 hex digits is refused: {error}", "hash_key" in str(error))
try:
    plugin().call("configure", b"{not json")
    check("configure with text that is not JSON is refused", False, "accepted")
except extism.Error as error:
    check(f"configure with text that is not JSON is refused: {error}", "not JSON" in str(error))

# ---------------------------------------------------------------------------------------------
print("\nsnapshots move between the plugin and newterms scan --state")
whole = {profile: scan("--profile", profile, "generated.ndjson")[0] for profile in ["default", "elastic"]}
first, second = lines_of("first-half.ndjson"), lines_of("second-half.ndjson")
for profile in ["default", "elastic"]:
    state = os.path.join(WORK, f"state.{profile}")
    scan_first, _ = scan("--profile", profile, "--state", state, "first-half.ndjson")

    a = plugin({"profile": profile})
    plugin_first = a.call("process_ndjson", b"".join(first))
    snapshot = a.call("snapshot", b"")
    check(f"{profile}: after the first half, plugin snapshot = scan's state file ({len(snapshot)} bytes)",
          snapshot == open(state, "rb").read())

    # plugin -> scan
    moved = os.path.join(WORK, f"from-plugin.{profile}")
    with open(moved, "wb") as f:
        f.write(snapshot)
    scan_second, _ = scan("--profile", profile, "--state", moved, "second-half.ndjson")
    check(f"{profile}: first half in the plugin, second in newterms scan = one run over the whole",
          plugin_first + scan_second == whole[profile], first_difference(whole[profile], plugin_first + scan_second))

    # scan -> plugin
    b = plugin({"profile": profile})
    b.call("restore", open(state, "rb").read())
    plugin_second = b.call("process_ndjson", b"".join(second))
    check(f"{profile}: first half in newterms scan, second in the plugin = one run over the whole",
          scan_first + plugin_second == whole[profile], first_difference(whole[profile], scan_first + plugin_second))

    # plugin -> plugin (another instance) -> scan: the plugin's snapshot after the whole stream
    # is the state scan saves after the whole stream
    c = plugin({"profile": profile})
    c.call("restore", snapshot)
    c.call("process_ndjson", b"".join(second))
    scan("--profile", profile, "--state", os.path.join(WORK, f"whole.{profile}"), "generated.ndjson")
    check(f"{profile}: restored plugin's snapshot after the rest = scan's state after the whole",
          c.call("snapshot", b"") == open(os.path.join(WORK, f"whole.{profile}"), "rb").read())

# A state learned by scan (the warm-up before going live) warms the plugin up.
learned_state = os.path.join(WORK, "learned.default")
scan("--learn", "--state", learned_state, "first-half.ndjson")
d = plugin({"profile": "default"})
d.call("restore", open(learned_state, "rb").read())
learned_second = d.call("process_ndjson", b"".join(second))
expected_after_learning, _ = scan("--state", learned_state, "second-half.ndjson")
check("a state learned by newterms scan --learn warms the plugin up as it does scan",
      learned_second == expected_after_learning, first_difference(expected_after_learning, learned_second))

# A state of many terms (tests/cross-host's 40,000 principals, a 1.3 MB snapshot): restored and
# saved whole, and the plugin alerts on the one newcomer after it as scan does.
with open(os.path.join(WORK, "many-principals.ndjson"), "w") as f:
    for n in range(40000):
        f.write('{"eventVersion":"1.09","eventTime":"2024-03-01T%02d:%02d:%02dZ","eventSource":"lambda.amazonaws.com",'
                '"eventName":"Invoke","recipientAccountId":"123456789012","userIdentity":{"type":"IAMUser",'
                '"arn":"arn:aws:iam::123456789012:user/u%06d","accountId":"123456789012","userName":"u%06d"}}\n'
                % (n // 3600 % 24, n // 60 % 60, n % 60, n, n))
newcomer = lines_of("many-principals.ndjson")[-1].replace(b"u039999", b"newcomer").replace(b"T11:06:39Z", b"T12:00:00Z")
with open(os.path.join(WORK, "one-more.ndjson"), "wb") as f:
    f.write(newcomer)
large = os.path.join(WORK, "large.state")
scan("--learn", "--state", large, "many-principals.ndjson")
large_bytes = open(large, "rb").read()
e = plugin({"profile": "default"})
e.call("restore", large_bytes)
check(f"a {len(large_bytes)}-byte state restores and saves the same bytes", e.call("snapshot", b"") == large_bytes)
expected_newcomer, _ = scan("--state", large, "one-more.ndjson")
actual_newcomer = e.call("process_ndjson", newcomer)
check("after it, the newcomer's one alert, as scan raises it",
      expected_newcomer.count(NL) == 1 and actual_newcomer == expected_newcomer,
      first_difference(expected_newcomer, actual_newcomer))
check("and the state after it is scan's", e.call("snapshot", b"") == open(large, "rb").read())

print("\na bad snapshot is an Extism error that says why, and changes nothing")
good = open(os.path.join(WORK, "state.default"), "rb").read()
flipped = bytearray(good)
flipped[len(flipped) // 2] ^= 0x40
for name, bad, says in [
    ("an empty snapshot", b"", "magic"),
    ("bytes that are no snapshot", b"this is not a snapshot at all", "magic"),
    ("a truncated snapshot", good[: len(good) // 2], "truncated"),
    ("a snapshot with one byte flipped", bytes(flipped), "checksum"),
    ("the other profile's snapshot", open(os.path.join(WORK, "state.elastic"), "rb").read(), "does not fit"),
]:
    instance = plugin({"profile": "default"})
    instance.call("restore", good)
    try:
        instance.call("restore", bad)
        check(f"restore of {name} is refused", False, "accepted")
    except extism.Error as error:
        check(f"restore of {name} is refused: {error}", says in str(error))
    check("  ... and the history stays the one restored before", instance.call("snapshot", b"") == good)

# ---------------------------------------------------------------------------------------------
print("\nno input traps the plugin")
hostile = [
    ("deep nesting", b'{"eventSource":"lambda.amazonaws.com","a":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001 + b"\n"),
    ("deep arrays in a matching event", b'{"eventSource":"lambda.amazonaws.com","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"),
    ("invalid UTF-8", b'{"eventSource":"lambda.amazonaws.com","\xff\xfe":1}\n'),
    ("NUL bytes", b"\x00" * 1000 + b"\n"),
    ("a 4 MB record", b'{"eventSource":"lambda.amazonaws.com","pad":"' + b"x" * 4_000_000 + b'"}\n'),
    ("a lone brace", b"{\n}\n{{{{\n"),
]
instance = plugin({"profile": "default"})
for name, text in hostile:
    try:
        out = instance.call("process_ndjson", text)
        errors = instance.call("errors", b"").splitlines()
        check(f"{name}: no alert, {len(errors)} refused line(s), no trap", out == b"", errors[:2])
    except extism.Error as error:
        check(f"{name}: no trap", False, error)
for export in ["restore", "configure"]:
    try:
        instance.call(export, os.urandom(1 << 16))
    except extism.Error:
        pass
    except Exception as error:  # anything else would be the runtime's, e.g. a trap
        check(f"{export} of random bytes: no trap", False, error)
alerts = instance.call("process_ndjson", b"".join(lines_of("example.ndjson")))
check("after all that the instance still works (example's alerts)",
      alerts == scan("example.ndjson")[0], first_difference(scan("example.ndjson")[0], alerts))

# ---------------------------------------------------------------------------------------------
print("\nElastic rule files (configure_rules), as newterms scan --rules")
RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "guest", "tests", "data", "elastic-rules")
rule_paths = sorted(os.path.join(RULES, name) for name in os.listdir(RULES) if name.endswith(".toml"))
rule_files = [{"name": path, "text": open(path).read()} for path in rule_paths]


def pack(config=None, files=None):
    instance = extism.Plugin(WASM, wasi=False)
    instance.call("configure_rules", json.dumps({"config": config or {}, "rules": files or rule_files}).encode())
    return instance


for name in ["real-mixed", "generated"]:
    expected, _ = scan("--rules", RULES, f"{name}.ndjson")
    lines = lines_of(f"{name}.ndjson")
    for batch in [len(lines), 1000]:
        alerts, _ = run_batches(pack(), lines, batch)
        check(f"{name}, {batch} lines a call: the rule files' alerts = newterms scan --rules "
              f"({expected.count(NL)} alerts)", alerts == expected and expected.count(NL) > 0,
              first_difference(expected, alerts))
scan("--rules", RULES, "--state", "pack-first.state", "first-half.ndjson")
scan("--rules", RULES, "--state", "pack.state", "first-half.ndjson")
expected_second, _ = scan("--rules", RULES, "--state", "pack.state", "second-half.ndjson")
instance = pack()
instance.call("process_ndjson", b"".join(lines_of("first-half.ndjson")))
with open(os.path.join(WORK, "pack-first.state"), "rb") as f:
    check("after the first half, the plugin's snapshot = scan --rules' state file", instance.call("snapshot", b"") == f.read())
resumed = pack()
with open(os.path.join(WORK, "pack-first.state"), "rb") as f:
    notices = resumed.call("restore", f.read())
check("scan's pack state restores in the plugin, nothing dropped", notices == b"", notices)
alerts = resumed.call("process_ndjson", b"".join(lines_of("second-half.ndjson")))
check(f"and the second half raises scan's alerts ({expected_second.count(NL)})", alerts == expected_second,
      first_difference(expected_second, alerts))
fewer = pack(files=rule_files[1:])
with open(os.path.join(WORK, "pack-first.state"), "rb") as f:
    notices = fewer.call("restore", f.read()).decode()
check(f"a rule removed since: its history dropped, said ({notices.strip()[:120]})",
      "no longer in the pack" in notices, notices)
metadata = json.loads(pack().call("metadata", b""))
check(f"metadata lists the {len(rule_files)} rules with their term fields",
      len(metadata["rules"]) == len(rule_files) and all(rule["term_fields"] for rule in metadata["rules"]), metadata)
for name, given, says in [
    ("a rule file the rule refuses", [{"name": "bad.toml", "text": "[rule]\nname = 1\n"}], "bad.toml"),
    ("a rule entry without text", [{"name": "x.toml"}], "rules[0]"),
]:
    try:
        pack(files=given)
        check(f"configure_rules with {name} is refused", False, "accepted")
    except extism.Error as error:
        check(f"configure_rules with {name} is refused, naming it: {error}", says in str(error), error)
try:
    plugin({"rules": ["some.toml"]})
    check("configure with `rules` (file names) is refused", False, "accepted")
except extism.Error as error:
    check(f"configure with `rules` (file names) is refused: {error}", "configure_rules" in str(error), error)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
