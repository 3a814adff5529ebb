#!/usr/bin/env python3
"""Writes a deterministic synthetic CloudTrail stream (NDJSON) for the cross-host tests.

Usage: gen_stream.py [--events N] [--seed S] > stream.ndjson

About 70 days of activity: many principals (IAM users, assumed roles with random session names,
root identities) directly invoking Lambda functions in a few accounts, with quiet spells longer than
both windows (7 and 14 days) so that terms expire and alert again, mixed with what the rule must
ignore (calls by AWS services, failed calls, other services' events), ECS documents (nested and
dotted keys), out-of-order and redelivered events, and a few broken lines (malformed JSON, not an
object, missing or invalid time, blank lines) that every host must report and skip the same way.

Only `random.Random(seed).random()` is used, whose sequence Python keeps stable across versions,
so a seed gives the same bytes everywhere.
"""

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
DAYS = 70
ACCOUNTS = ["111122223333", "444455556666", "777788889999", "123456789012"]
SERVICES = ["s3.amazonaws.com", "events.amazonaws.com", "sqs.amazonaws.com", "apigateway.amazonaws.com"]
OTHER_SOURCES = [
    ("s3.amazonaws.com", "GetObject"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("iam.amazonaws.com", "ListRoles"),
    ("lambda.amazonaws.com", "ListFunctions20150331"),
    ("lambda.amazonaws.com", "GetFunction20150331v2"),
]
ACTIONS = ["Invoke", "Invoke", "Invoke", "InvokeAsync", "InvokeWithResponseStream"]
AGENTS = ["aws-cli/2.15.30 Python/3.11.8 Linux/6.1", "Boto3/1.34.69 Python/3.12.2", "aws-sdk-go-v2/1.25.2", "Terraform/1.7.5"]


class Gen:
    def __init__(self, seed):
        import random

        self.rng = random.Random(seed)
        self.counter = 0

    def uniform(self):
        return self.rng.random()

    def below(self, n):
        return min(int(self.uniform() * n), n - 1)

    def pick(self, items):
        return items[self.below(len(items))]

    def hexid(self, n):
        return "".join("0123456789abcdef"[self.below(16)] for _ in range(n))

    def event_id(self):
        self.counter += 1
        return f"{self.hexid(8)}-{self.hexid(4)}-4{self.hexid(3)}-8{self.hexid(3)}-{self.counter:012d}"


def make_principals(gen, count):
    principals = []
    for i in range(count):
        account = gen.pick(ACCOUNTS)
        kind = gen.uniform()
        if kind < 0.5:
            principals.append({"type": "IAMUser", "account": account, "name": f"user-{i:03d}"})
        elif kind < 0.95:
            principals.append({"type": "AssumedRole", "account": account, "name": f"role-{i:03d}"})
        else:
            principals.append({"type": "Root", "account": account, "name": None})
        # Each principal is active on some days only: bursts separated by quiet spells that are
        # sometimes longer than 14 days, sometimes between 7 and 14, sometimes shorter.
        days, day = [], gen.below(10)
        while day < DAYS:
            days.append(day)
            gap = gen.pick([1, 1, 2, 3, 5, 8, 10, 12, 16, 20])
            day += gap
        principals[-1]["days"] = set(days)
    return principals


def user_identity(gen, principal):
    account = principal["account"]
    if principal["type"] == "IAMUser":
        return {
            "type": "IAMUser",
            "principalId": "AIDA" + gen.hexid(16).upper(),
            "arn": f"arn:aws:iam::{account}:user/{principal['name']}",
            "accountId": account,
            "accessKeyId": "AKIA" + gen.hexid(16).upper(),
            "userName": principal["name"],
        }
    if principal["type"] == "Root":
        return {
            "type": "Root",
            "principalId": account,
            "arn": f"arn:aws:iam::{account}:root",
            "accountId": account,
            "accessKeyId": "ASIA" + gen.hexid(16).upper(),
        }
    session = "session-" + gen.hexid(10)
    role = principal["name"]
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{gen.hexid(16).upper()}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIA" + gen.hexid(16).upper(),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROA" + gen.hexid(16).upper(),
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-03-01T00:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def iso(ts, gen):
    # Mix the spellings the rule must read: whole seconds, milliseconds, microseconds.
    style = gen.below(3)
    if style == 0:
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def raw_record(gen, ts, identity, source, action, region, error=False):
    account = identity.get("accountId") or gen.pick(ACCOUNTS)
    function = f"fn-{gen.below(40):02d}"
    record = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": iso(ts, gen),
        "eventSource": source,
        "eventName": action,
        "awsRegion": region,
        "sourceIPAddress": f"203.0.113.{gen.below(255)}" if "invokedBy" not in identity else identity["invokedBy"],
        "userAgent": gen.pick(AGENTS),
        "requestParameters": {"functionName": f"arn:aws:lambda:{region}:{account}:function:{function}", "invocationType": "RequestResponse"},
        "responseElements": None,
        "requestID": gen.event_id(),
        "eventID": gen.event_id(),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": account,
    }
    if error:
        record["errorCode"] = "AccessDenied"
        record["errorMessage"] = "User is not authorized to perform: lambda:InvokeFunction"
    return record


def ecs_document(gen, ts, identity, action, region, dotted):
    """The same event as Elastic's pipeline would index it, nested or with dotted keys."""
    account = identity["accountId"]
    name = identity.get("userName") or identity.get("sessionContext", {}).get("sessionIssuer", {}).get("userName")
    flat = {
        "@timestamp": iso(ts, gen),
        "data_stream.dataset": "aws.cloudtrail",
        "event.provider": "lambda.amazonaws.com",
        "event.action": action,
        "event.outcome": "success",
        "event.id": gen.event_id(),
        "cloud.account.id": account,
        "cloud.region": region,
        "aws.cloudtrail.user_identity.arn": identity["arn"],
        "aws.cloudtrail.user_identity.type": identity["type"],
        "source.ip": f"198.51.100.{gen.below(255)}",
        "user_agent.original": gen.pick(AGENTS),
    }
    if name:
        flat["user.name"] = name
    if dotted:
        return flat
    nested = {}
    for key, value in flat.items():
        if key == "@timestamp":
            nested[key] = value
            continue
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def generate(events, seed, out):
    gen = Gen(seed)
    principals = make_principals(gen, max(50, events // 60))
    lines = []
    emitted = []
    while len(lines) < events:
        ts = START + timedelta(milliseconds=int(gen.uniform() * DAYS * 86_400_000))
        day = (ts - START).days
        roll = gen.uniform()
        region = gen.pick(["us-east-1", "eu-west-1", "ap-southeast-2"])
        if roll < 0.40:
            principal = gen.pick(principals)
            if day not in principal["days"]:
                continue
            identity = user_identity(gen, principal)
            sub = gen.uniform()
            if sub < 0.08:
                doc = ecs_document(gen, ts, identity, gen.pick(ACTIONS), region, dotted=gen.uniform() < 0.5)
            else:
                doc = raw_record(gen, ts, identity, "lambda.amazonaws.com", gen.pick(ACTIONS), region, error=sub > 0.95)
        elif roll < 0.55:
            identity = {"type": "AWSService", "invokedBy": gen.pick(SERVICES)}
            doc = raw_record(gen, ts, identity, "lambda.amazonaws.com", "Invoke", region)
            doc["recipientAccountId"] = gen.pick(ACCOUNTS)
        elif roll < 0.97:
            principal = gen.pick(principals)
            source, action = gen.pick(OTHER_SOURCES)
            doc = raw_record(gen, ts, user_identity(gen, principal), source, action, region, error=gen.uniform() < 0.1)
        elif roll < 0.995 and emitted:
            # Redelivery: an earlier line again, byte for byte.
            lines.append(gen.pick(emitted))
            continue
        else:
            lines.append(broken_line(gen, ts))
            continue
        line = json.dumps(doc, separators=(",", ":") if gen.uniform() < 0.7 else (", ", ": "))
        lines.append(line)
        emitted.append(line)
    # Time mostly moves forward, with local disorder as a real pipeline delivers it.
    keyed = []
    for index, line in enumerate(lines):
        keyed.append((index, line))
    # Sort by the time inside each line (broken lines keep their place), then jiggle.
    def when(item):
        text = item[1]
        for marker in ('"eventTime":"', '"eventTime": "', '"@timestamp":"', '"@timestamp": "'):
            at = text.find(marker)
            if at >= 0:
                return text[at + len(marker): at + len(marker) + 19]
        return "9999"  # broken lines sort last, then move back below
    ordered = sorted((item for item in keyed if when(item) != "9999"), key=when)
    broken = [item for item in keyed if when(item) == "9999"]
    for _ in range(len(ordered) // 20):
        i = gen.below(len(ordered) - 1)
        j = min(len(ordered) - 1, i + 1 + gen.below(30))
        ordered[i], ordered[j] = ordered[j], ordered[i]
    for item in broken:
        ordered.insert(gen.below(len(ordered) + 1), item)
    for _, line in ordered:
        out.write(line)
        out.write("\n")


def broken_line(gen, ts):
    kind = gen.below(7)
    if kind == 0:
        return '{"eventSource": "lambda.amazonaws.com", "eventName": "Invoke"'  # cut short
    if kind == 1:
        return '["not", "an", "object"]'
    if kind == 2:
        return ""  # blank line: skipped by every host without a report
    if kind == 3:
        return "   \t "
    record = {
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/ghost", "accountId": "111122223333", "userName": "ghost"},
        "eventSource": "lambda.amazonaws.com",
        "eventName": "Invoke",
        "eventID": gen.event_id(),
    }
    if kind == 4:
        record["eventTime"] = "yesterday at noon"
    elif kind == 5:
        record["eventTime"] = "2024-13-45T99:00:00Z"
    # kind 6: no time at all
    return json.dumps(record)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    generate(args.events, args.seed, sys.stdout)


if __name__ == "__main__":
    main()
