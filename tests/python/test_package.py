"""The Python package against `newterms scan`: the same alerts, refusals, states and merges."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import newterms

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NEWTERMS = os.environ["NEWTERMS"]
WORK = tempfile.mkdtemp(prefix="newterms-python.")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok      {name}")
    else:
        failed += 1
        print(f"FAIL    {name}: {detail}"[:2000])


def scan(*args):
    done = subprocess.run([NEWTERMS, "scan", *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-800:])
    return done.stdout.decode().splitlines()


def path(*parts):
    return os.path.join(WORK, *parts)


# Inputs: the bundled example, a real CloudTrail fixture, the real mixed corpus, a generated stream.
example = os.path.join(REPO, "examples", "lambda-invocations.ndjson")
fixture = os.path.join(REPO, "tests", "fixtures", "cloudtrail", "lambda_invoke.ndjson")
mixed = path("mixed.ndjson")
with gzip.open(os.path.join(REPO, "tests", "fixtures", "cloudtrail", "mixed_all.ndjson.gz")) as f:
    open(mixed, "wb").write(f.read())
generated = path("generated.ndjson")
with open(generated, "wb") as out:
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "cross-host", "gen_stream.py"),
                    "--events", "30000", "--seed", "21"], stdout=out, check=True)

print("alerts equal newterms scan, byte for byte")
for name, source in [("example", example), ("fixture", fixture), ("mixed", mixed), ("generated", generated)]:
    data = open(source, "rb").read()
    for profile in ["default", "elastic"]:
        expected = scan("--profile", profile, source)
        got = newterms.Rule(profile=profile).process_ndjson(data)
        check(f"{name} {profile}: {len(expected)} alerts (process_ndjson)", got == expected,
              f"{len(got)} vs {len(expected)}")
    lines = [line for line in data.decode().splitlines() if line.strip()]
    got = newterms.Rule().process(lines)
    check(f"{name}: process(list of str) = process_ndjson", got == scan(source))

# A configuration file and keyword arguments: the keys of --config, the same alerts.
config = path("rule.toml")
open(config, "w").write('profile = "elastic"\nwindow = "3d"\nexclude_arns = ["arn:aws:iam::*:user/deploy-*"]\n')
expected = scan("--config", config, generated)
check("config file = scan --config", newterms.Rule(config=config).process_ndjson(open(generated, "rb").read()) == expected)
check("keyword arguments = scan --config",
      newterms.Rule(profile="elastic", window="3d", exclude_arns=["arn:aws:iam::*:user/deploy-*"])
      .process_ndjson(open(generated, "rb").read()) == expected)

print("\nrefused lines")
bad = path("bad.ndjson")
open(bad, "wb").write(b'{"eventSource": "lambda.amazonaws.com", "eventName": "Invoke"\nnot json\n\n[1]\n'
                      + open(example, "rb").read())
rule = newterms.Rule()
alerts = rule.process_ndjson(open(bad, "rb").read())
errors = rule.errors()
check("alerts of the good lines", alerts == scan(example))
check("refused lines with their index", [line for line, _ in errors] == [0, 1, 3], errors)
check("and why", all(isinstance(why, str) and why for _, why in errors), errors)
# Across the calls a buffer is cut into, each refused line keeps its index in the whole buffer.
many = open(generated, "rb").read().splitlines(keepends=True)[:1500]
many[700:700] = [b"not json\n"]
one_by_one = newterms.Rule()
expected_lines = []
for index, line in enumerate(many):
    if not line.strip():
        continue  # a blank line is no event in NDJSON
    one_by_one.process([line.decode()])
    expected_lines += [index] * len(one_by_one.errors())
whole = newterms.Rule()
whole.process_ndjson(b"".join(many))
got_lines = [line for line, _ in whole.errors()]
check(f"refused lines across calls keep their index ({len(got_lines)}, 700 among them)",
      got_lines == expected_lines and 700 in got_lines, f"{got_lines} vs {expected_lines}")

print("\nsnapshots move between the package and newterms scan --state")
half = 15000
lines = open(generated, "rb").read().splitlines(keepends=True)
first, second = path("first.ndjson"), path("second.ndjson")
open(first, "wb").write(b"".join(lines[:half]))
open(second, "wb").write(b"".join(lines[half:]))
state = path("state")
scan("--state", state, first)
rule = newterms.Rule()
rule.process_ndjson(open(first, "rb").read())
check("after the first half, snapshot = scan's state file", rule.snapshot() == open(state, "rb").read())
first_half_state = open(state, "rb").read()
expected_second = scan("--state", state, second)  # updates the state file to the whole
restored = newterms.Rule()
restored.restore(first_half_state)
check("restored, the second half raises scan's alerts", restored.process_ndjson(open(second, "rb").read()) == expected_second)
check("and its state is scan's after the whole", restored.snapshot() == open(state, "rb").read())

print("\npartitions routed by the rule raise the alerts of one rule, and merge into its state")
events = [line for line in open(generated).read().splitlines() if line.strip()]
one = newterms.Rule()
expected = sorted(one.process(events))
for count in [1, 3, 4]:
    router = newterms.Rule()
    buckets = [targets for targets, _ in router.route(events, count)]
    parts = [newterms.Rule(partition=(index, count)) for index in range(count)]
    shares = [[] for _ in range(count)]
    for event, targets in zip(events, buckets):
        for bucket in targets or [0]:
            shares[bucket].append(event)
    got = sorted(alert for part, share in zip(parts, shares) for alert in part.process(share))
    check(f"{count} partitions: {len(got)} alerts = one rule's", got == expected, f"{len(got)} vs {len(expected)}")
    # A merge lists terms oldest first, ties by term; one rule lists them in the order it updated
    # them: the same history, compared in the merge's canonical order.
    merged = newterms.merge([part.snapshot() for part in parts])
    check(f"{count} partitions: merged state = one rule's state (canonical order), byte for byte",
          merged == newterms.merge([one.snapshot()]))
    check(f"{count} partitions: and holds its terms", newterms.inspect(merged)["terms"] == one.stats()["terms"])
try:
    newterms.Rule(partition=(3, 3))
    check("a partition that does not exist", False, "accepted")
except newterms.ConfigError as e:
    check(f"a partition that does not exist: ConfigError ({e})", "partition" in str(e), str(e))

print("\nmerge and inspect")
a, b = newterms.Rule(), newterms.Rule()
a.process_ndjson(open(first, "rb").read())
b.process_ndjson(open(second, "rb").read())
sa, sb = path("a.state"), path("b.state")
open(sa, "wb").write(a.snapshot())
open(sb, "wb").write(b.snapshot())
subprocess.run([NEWTERMS, "state", "merge", sa, sb, "--output", path("merged.state")], check=True, capture_output=True)
check("merge = newterms state merge", newterms.merge([a.snapshot(), b.snapshot()]) == open(path("merged.state"), "rb").read())
summary = newterms.inspect(a.snapshot())
check("inspect counts the terms", summary["terms"] == a.stats()["terms"] > 0, summary)

print("\ntyped exceptions")
for name, kwargs, error, says in [
    ("unknown profile", {"profile": "strict"}, newterms.ConfigError, "profile"),
    ("bad window", {"window": "7 days"}, newterms.ConfigError, "window"),
    ("zero capacity", {"capacity": 0}, newterms.ConfigError, "capacity"),
    ("empty exception", {"exceptions": [("user.name", [])]}, newterms.ConfigError, "exceptions[1]"),
]:
    try:
        newterms.Rule(**kwargs)
        check(name, False, "accepted")
    except error as e:
        check(f"{name}: {type(e).__name__} naming `{says}`", says in str(e), str(e))
for name, snapshot, says in [("bytes that are no snapshot", b"not a snapshot", "magic"),
                             ("a truncated snapshot", a.snapshot()[:50], "truncated")]:
    rule = newterms.Rule()
    try:
        rule.restore(snapshot)
        check(name, False, "accepted")
    except newterms.RestoreError as e:
        check(f"{name}: RestoreError ({e})", says in str(e).lower(), str(e))
print("routed files (route_file, process_routed): one partition's work as a hunt does it")
inputs = [mixed, generated, example]
for count in [1, 3]:
    router = newterms.Rule()
    parts = {}
    for index, source in enumerate(inputs):
        routed, problems = router.route_file(open(source, "rb").read(), source, count)
        for bucket, events in routed:
            parts.setdefault(bucket, []).append((index, events))
    got = []
    for bucket, bucket_parts in sorted(parts.items()):
        got += newterms.Rule(partition=(bucket, count)).process_routed(bucket_parts)
    expected = scan(*inputs)
    key = lambda alert: json.loads(alert)["kibana"]["alert"]["uuid"]
    check(f"{count} bucket(s): {len(got)} alerts, the uuids of newterms scan's {len(expected)}",
          sorted(map(key, got)) == sorted(map(key, expected)) and len(expected) > 0)
try:
    newterms.Rule().process_routed([(0, b"not routed bytes")])
    check("bytes route_file did not make", False, "accepted")
except ValueError as e:
    check(f"bytes route_file did not make: ValueError ({e})", True)

print("rule files, as newterms scan --rules")
rule_folder = os.path.join(REPO, "guest", "tests", "data", "elastic-rules")
for name, source in [("mixed", mixed), ("generated", generated)]:
    expected = scan("--rules", rule_folder, source)
    got = newterms.Rule(rules=[rule_folder]).process_ndjson(open(source, "rb").read())
    check(f"{name}: {len(expected)} alerts of the rule folder's rules", got == expected and len(expected) > 0,
          f"{len(got)} vs {len(expected)}")
rules_config = path("rules.toml")
os.symlink(rule_folder, path("my-rules"))
open(rules_config, "w").write('rules = ["my-rules"]\n')
check("`rules` in a configuration file, from its folder",
      newterms.Rule(config=rules_config).process_ndjson(open(mixed, "rb").read()) == scan("--rules", rule_folder, mixed))
state = path("rules.state")
scan("--rules", rule_folder, "--state", state, mixed)
pack = newterms.Rule(rules=[rule_folder])
pack.process_ndjson(open(mixed, "rb").read())
check("and the pack's state is scan's, byte for byte", pack.snapshot() == open(state, "rb").read())
# A pack's histories are not partitioned: route_file keeps every event in bucket 0, and that
# bucket's pack raises scan's alerts.
router = newterms.Rule(rules=[rule_folder])
routed, _ = router.route_file(open(mixed, "rb").read(), mixed, 4)
got = newterms.Rule(rules=[rule_folder]).process_routed([(0, events) for _, events in routed])
expected = scan("--rules", rule_folder, mixed)
uuid = lambda alert: json.loads(alert)["kibana"]["alert"]["uuid"]
check("a pack's route_file: one bucket, scan's alerts",
      [bucket for bucket, _ in routed] == [0] and len(expected) > 0
      and sorted(map(uuid, got)) == sorted(map(uuid, expected)),
      f"buckets {[bucket for bucket, _ in routed]}, {len(got)} alerts")
bad = path("bad-rule.toml")
open(bad, "w").write("[rule]\nname = 1\n")
for name, given, says in [("a rule file that does not exist", [path("nope.toml")], "nope.toml"),
                          ("a rule file the rule refuses", [bad], "bad-rule.toml")]:
    try:
        newterms.Rule(rules=given)
        check(name, False, "accepted")
    except newterms.ConfigError as e:
        check(f"{name}: ConfigError naming it ({e})", says in str(e), str(e))
check("all are NewtermsError", issubclass(newterms.ConfigError, newterms.NewtermsError)
      and issubclass(newterms.RestoreError, newterms.NewtermsError) and issubclass(newterms.RuleFault, newterms.NewtermsError))
check("the sandbox's memory cap is the package's too",
      newterms.Rule(max_memory_mib=64).process_ndjson(open(example, "rb").read()) == scan(example))

print(f"\n{passed} passed, {failed} failed")
if not failed:
    shutil.rmtree(WORK, ignore_errors=True)  # a failed run's files stay, to be looked at
sys.exit(1 if failed else 0)
