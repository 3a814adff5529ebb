//! The prefilter never changes what the rule reports: a differential test of `process` (prefilter on)
//! against `process_exact` (every record parsed) over many generated records, including escaped
//! spellings of values and keys, dotted and mixed ECS keys, arrays, and broken JSON; and of
//! `process_ndjson` against `process` line by line.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use newterms_guest::{Config, Detector, Engine, EventError, LineError, LineOutcome};
use serde_json::{Value, json};

mod common;
use common::{Rng, process_in_stages};

const NEEDLE: &str = "lambda.amazonaws.com";

fn time(rng: &mut Rng) -> String {
    format!(
        "2024-05-{:02}T{:02}:{:02}:00Z",
        1 + rng.below(28),
        rng.below(24),
        rng.below(60)
    )
}

fn raw_record(rng: &mut Rng) -> Value {
    let user = format!("user-{}", rng.below(4000));
    let source = match rng.below(4) {
        0 => json!("s3.amazonaws.com"),
        1 => json!(["s3.amazonaws.com", NEEDLE]),
        _ => json!(NEEDLE),
    };
    let mut identity = json!({
        "type": "IAMUser", "arn": format!("arn:aws:iam::1111:user/{user}"),
        "accountId": "1111", "userName": user,
    });
    if rng.chance(40) {
        identity["invokedBy"] = json!(if rng.chance(80) {
            "s3.amazonaws.com"
        } else {
            ""
        });
    }
    let name = ["Invoke", "InvokeAsync", "GetFunction", "invoke"][rng.below(4)];
    let mut record = json!({
        "eventVersion": "1.08", "eventTime": time(rng), "eventSource": source,
        "eventName": name,
        "eventID": format!("id-{}", rng.next()), "recipientAccountId": "1111",
        "userIdentity": identity,
        "requestParameters": {"functionName": "f", "count": -12.5, "flags": [true, false, null, 0]},
        "resources": [{"ARN": "arn:aws:lambda:us-east-1:1111:function:f", "nested": [[{}], []]}],
    });
    if rng.chance(30) {
        record["requestParameters"]["note"] = json!("a}{b \\ c \" d");
    }
    if rng.chance(10) {
        record["errorCode"] =
            [json!("AccessDenied"), json!(null), json!(""), json!({})][rng.below(4)].clone();
    }
    if rng.chance(5) {
        record.as_object_mut().unwrap().remove("eventTime");
    }
    if rng.chance(5) {
        record["eventTime"] = [
            "2024-13-01T00:00:00Z",
            "1714521600000",
            "",
            "0000-01-01T00:00:00Z",
        ][rng.below(4)]
        .into();
    }
    if rng.chance(3) {
        record["userIdentity"] = [json!("root"), json!(null), json!([])][rng.below(3)].clone();
    }
    record
}

fn ecs_record(rng: &mut Rng) -> Value {
    let user = format!("user-{}", rng.below(4000));
    let provider = if rng.chance(80) {
        json!(NEEDLE)
    } else {
        json!([null, NEEDLE])
    };
    match rng.below(3) {
        0 => json!({
            "@timestamp": time(rng),
            "data_stream": {"dataset": "aws.cloudtrail"},
            "event": {"provider": provider, "action": "Invoke", "outcome": "success"},
            "cloud": {"account": {"id": "2222"}}, "user": {"name": user},
            "aws": {"cloudtrail": {"user_identity": {"arn": format!("arn:{user}")}}},
        }),
        1 => json!({
            "@timestamp": time(rng), "data_stream.dataset": "aws.cloudtrail",
            "event.provider": provider, "event.action": "InvokeWithResponseStream",
            "event.outcome": "success", "cloud.account.id": "2222", "user.name": user,
            "aws.cloudtrail.user_identity.arn": format!("arn:{user}"),
        }),
        _ => json!({
            "@timestamp": time(rng), "data_stream": {"dataset": "aws.cloudtrail"},
            "event": {"provider": provider}, "event.action": "Invoke",
            "event": {"outcome": "success"},
            "cloud": [{"account.id": "2222"}], "user": {"name": [user, ""]},
            "aws.cloudtrail": {"user_identity.arn": format!("arn:{user}")},
        }),
    }
}

/// `\u`-escapes one character of `text` (lower or upper case hex).
fn escape_one(rng: &mut Rng, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = rng.below(chars.len());
    let mut out = String::new();
    for (index, ch) in chars.into_iter().enumerate() {
        if index == at {
            let code = format!("{:04x}", ch as u32);
            out.push_str("\\u");
            out.push_str(&if rng.chance(50) {
                code
            } else {
                code.to_uppercase()
            });
        } else {
            out.push(ch);
        }
    }
    out
}

/// Whether the mutation may break the JSON while the text still starts with `{` and ends with `}`
/// (the documented trade-off: such a record, if it cannot match, is skipped instead of reported).
struct Generated {
    text: String,
    broken_inside: bool,
}

fn generate(rng: &mut Rng) -> Generated {
    let document = match rng.below(10) {
        0..=5 => raw_record(rng),
        6..=8 => ecs_record(rng),
        _ => json!({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
                    "eventTime": "2024-05-01T00:00:00Z"}),
    };
    let mut text = document.to_string();
    let mut broken_inside = false;
    // Escaped spellings of the needle, of keys, and of unrelated text.
    if rng.chance(25) {
        let escaped = escape_one(rng, NEEDLE);
        text = text.replacen(&format!("\"{NEEDLE}\""), &format!("\"{escaped}\""), 1);
    }
    if rng.chance(15) {
        for key in [
            "eventSource",
            "event.provider",
            "userIdentity",
            "invokedBy",
            "eventTime",
            "@timestamp",
        ] {
            if rng.chance(50) {
                let escaped = escape_one(rng, key);
                text = text.replacen(&format!("\"{key}\""), &format!("\"{escaped}\""), 1);
            }
        }
    }
    if rng.chance(10) {
        text = text.replacen(NEEDLE, "lambda.amazonaws.co", 1);
    }
    if rng.chance(5) {
        text = text.replacen("\"f\"", "\"\\u0066\"", 1);
    }
    // Duplicate keys (the last one wins), numbers with exponents, whitespace and broken shapes.
    if rng.chance(5) && text.ends_with('}') {
        text.pop();
        text.push_str(
            r#","userIdentity":{"type":"Root","arn":"arn:aws:iam::1111:root","accountId":"1111"}}"#,
        );
    }
    if rng.chance(3) {
        text = text.replacen("-12.5", "-1.25e1", 1);
    }
    match rng.below(30) {
        0 => text = format!(" \t{text}\r "),
        1 => {
            text.truncate(rng.below(text.len()));
            // A cut that happens to end in `}` keeps the object's edges.
            broken_inside = true;
        }
        2 => {
            // Glued: broken, but an object at its edges.
            text = format!("{text}{text}");
            broken_inside = true;
        }
        3 => {
            text = format!("{text} \t {text}");
            broken_inside = true;
        }
        4 => text = format!("[{text}]"),
        5 => text = "42".into(),
        6 => text = String::new(),
        7 => {
            // Broken inside, object shape kept.
            text = text.replacen(':', "::", 1);
            broken_inside = true;
        }
        8 => {
            text = text.replacen(',', ",,", 1);
            broken_inside = true;
        }
        9 => text = format!("{text}\u{c}"),
        _ => {}
    }
    Generated {
        text,
        broken_inside,
    }
}

/// The only difference allowed: a record broken within an object's edges, which cannot match (no
/// needle, no escape), is skipped rather than reported as malformed.
fn allowed_difference(generated: &Generated, exact: &Result<Vec<String>, EventError>) -> bool {
    generated.broken_inside
        && matches!(exact, Err(EventError::MalformedJson(_)))
        && !generated.text.contains(NEEDLE)
        && !generated.text.contains("\\u")
}

#[test]
fn the_prefilter_never_changes_an_outcome() {
    let mut fast = 0;
    for config in [
        Config::default(),
        Config {
            profile: newterms_guest::Profile::Elastic,
            ..Config::default()
        },
        Config {
            learn: true,
            ..Config::default()
        },
        Config {
            exceptions: vec![newterms_guest::Exception {
                field: "user.name".into(),
                patterns: vec!["user-1*".into()],
            }],
            capacity: Some(500),
            ..Config::default()
        },
    ] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut filtered = Detector::new(config.clone()).unwrap();
        let mut exact = Detector::new(config).unwrap();
        let (mut alerts, mut skipped_broken, mut escaped_alerts) = (0, 0, 0);
        for _ in 0..20_000 {
            let generated = generate(&mut rng);
            if newterms_guest::fastpath::scan(&generated.text).is_some()
                && generated.text.contains(NEEDLE)
            {
                fast += 1;
            }
            let expected = exact.process_exact(&generated.text);
            let found = filtered.process(&generated.text);
            if found != expected {
                assert!(
                    allowed_difference(&generated, &expected) && found == Ok(vec![]),
                    "outcome changed for {}:\nexact {expected:?}\nprefiltered {found:?}",
                    generated.text
                );
                skipped_broken += 1;
                // Keep the two histories identical: the skipped record changed nothing in `exact`.
                continue;
            }
            if let Ok(raised) = &expected {
                alerts += raised.len();
                if !raised.is_empty() && generated.text.contains("\\u") {
                    escaped_alerts += 1;
                }
            }
        }
        let (a, b) = (filtered.stats(), exact.stats());
        assert_eq!(
            (a.events, a.matched, a.alerts),
            (b.events, b.matched, b.alerts)
        );
        assert_eq!(a.errors + skipped_broken, b.errors);
        // The generator really exercises the interesting cases.
        assert!(alerts > 100 || config_learns(&filtered), "{alerts} alerts");
        assert!(
            escaped_alerts > 10 || config_learns(&filtered),
            "{escaped_alerts} alerts from escaped records"
        );
        assert!(skipped_broken > 10, "{skipped_broken} trade-off cases");
    }
    // Most Lambda records take the fast path, which this test therefore holds to account too.
    assert!(fast > 12_000, "{fast} records on the fast path");
}

fn config_learns(detector: &Detector) -> bool {
    detector.config().learn
}

#[test]
fn escaped_spellings_still_alert() {
    let record = |source: &str, key: &str| {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-05-01T00:00:00Z","{key}":"{source}","eventName":"Invoke","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/a","accountId":"1","userName":"a"}}}}"#
        )
    };
    for (source, key) in [
        ("lambda\\u002eamazonaws.com", "eventSource"),
        ("lambda\\u002Eamazonaws.com", "eventSource"),
        ("\\u006cambda.amazonaws.com", "eventSource"),
        ("lambda.amazonaws.com", "event\\u0053ource"),
    ] {
        let mut rule = Detector::new(Config::default()).unwrap();
        let text = record(source, key);
        assert_eq!(rule.process(&text).unwrap().len(), 1, "{text}");
    }
}

#[test]
fn ndjson_reports_only_lines_with_something_to_say() {
    let mut rng = Rng(42);
    let generated: Vec<Generated> = (0..5_000).map(|_| generate(&mut rng)).collect();
    let mut buffer = Vec::new();
    for (index, record) in generated.iter().enumerate() {
        // Newlines inside a record would split it: keep those records out of the buffer.
        let text = record.text.replace('\n', " ");
        buffer.extend_from_slice(text.as_bytes());
        buffer.extend_from_slice(if index % 7 == 0 { b"\r\n" } else { b"\n" });
        if index % 50 == 0 {
            buffer.extend_from_slice(b"  \n");
        }
        if index % 97 == 0 {
            buffer.extend_from_slice(b"{\"eventName\": \"\xff\"}\n");
        }
    }
    let mut batched = Detector::new(Config::default()).unwrap();
    let found = batched.process_ndjson(&buffer);

    // `process` is `process_exact` but for the prefilter, which the test above holds to account.
    let mut one_by_one = Detector::new(Config::default()).unwrap();
    let mut expected = Vec::new();
    for (index, line) in buffer.split(|&byte| byte == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let outcome = match std::str::from_utf8(line) {
            Err(error) => Err(LineError::NotUtf8(error.valid_up_to() as u32)),
            Ok(text) => one_by_one.process(text).map_err(LineError::Event),
        };
        if outcome.as_ref().is_ok_and(Vec::is_empty) {
            continue;
        }
        expected.push(LineOutcome {
            line: index as u32,
            outcome,
        });
    }
    assert!(expected.len() > 100);
    for (found, expected) in found.iter().zip(&expected) {
        assert_eq!(found.line, expected.line, "{found:?}\n{expected:?}");
        assert_eq!(found, expected, "line {}", expected.line);
    }
    assert_eq!(found.len(), expected.len());
}

#[test]
fn extract_then_decide_is_processing() {
    for config in [
        Config::default(),
        Config {
            profile: newterms_guest::Profile::Elastic,
            ..Config::default()
        },
        Config {
            learn: true,
            ..Config::default()
        },
        Config {
            exceptions: vec![newterms_guest::Exception {
                field: "user.name".into(),
                patterns: vec!["user-1*".into()],
            }],
            capacity: Some(500),
            ..Config::default()
        },
        Config {
            partition: Some(newterms_guest::detector::Partition { index: 1, count: 3 }),
            ..Config::default()
        },
    ] {
        let mut rng = Rng(7);
        let mut processing = Detector::new(config.clone()).unwrap();
        let mut extractor = Engine::built_in(config.clone()).unwrap();
        let mut decider = Engine::built_in(config).unwrap();
        let mut alerts = 0;
        for _ in 0..40 {
            let mut buffer = Vec::new();
            for index in 0..500 {
                buffer.extend_from_slice(generate(&mut rng).text.replace('\n', " ").as_bytes());
                buffer.extend_from_slice(b"\n");
                if index % 97 == 0 {
                    buffer.extend_from_slice(b"\n{\"eventName\": \"\xff\"}\n");
                }
            }
            let expected = processing.process_ndjson(&buffer);
            let found = process_in_stages(&mut extractor, &mut decider, &buffer);
            assert_eq!(found, expected);
            alerts += expected
                .iter()
                .filter_map(|line| line.outcome.as_ref().ok())
                .map(Vec::len)
                .sum::<usize>();
        }
        assert!(alerts > 100 || processing.config().learn, "{alerts} alerts");
        let (a, b) = (decider.stats(), processing.stats());
        assert_eq!(a, b);
        assert_eq!(decider.snapshot(), processing.snapshot());
    }
}

/// `value` written as JSON, with as many spaces at each place between tokens as `space` says,
/// given what is written so far.
fn spaced(value: &serde_json::Value, space: &mut impl FnMut(&str) -> usize, out: &mut String) {
    fn gap(space: &mut impl FnMut(&str) -> usize, out: &mut String) {
        for _ in 0..space(out) {
            out.push(' ');
        }
    }
    let (open, close, items): (char, char, Vec<(Option<&String>, &serde_json::Value)>) = match value
    {
        serde_json::Value::Object(members) => (
            '{',
            '}',
            members
                .iter()
                .map(|(key, item)| (Some(key), item))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            ('[', ']', items.iter().map(|item| (None, item)).collect())
        }
        scalar => return out.push_str(&scalar.to_string()),
    };
    out.push(open);
    for (index, (key, item)) in items.into_iter().enumerate() {
        if index > 0 {
            gap(space, out);
            out.push(',');
        }
        gap(space, out);
        if let Some(key) = key {
            out.push_str(&serde_json::Value::from(key.as_str()).to_string());
            gap(space, out);
            out.push(':');
            gap(space, out);
        }
        spaced(item, space, out);
    }
    gap(space, out);
    out.push(close);
}

/// What the rule reads of a scanned record: every row of the mapping, and whether it is raw.
fn reading(text: &str) -> Option<String> {
    let fields = newterms_guest::fastpath::scan(text)?;
    let rows: Vec<_> = newterms_guest::cloudtrail::MAPPING
        .iter()
        .map(|row| (row.ecs, fields.derive(row)))
        .collect();
    Some(format!("{} {rows:?}", fields.raw))
}

/// Real records (the committed corpus, written here without whitespace, as CloudTrail delivers
/// them) read alike with spaces between their tokens: one at every place, none in the first
/// members but some after (read twice), at random, one after each `:` and `,` (as many serialisers
/// write), and there a second one now and then (read twice); and a space inside a number is
/// refused by every reading.
#[test]
fn whitespace_between_tokens_reads_alike() {
    let corpus =
        common::read_corpus(&common::repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut read = 0;
    for line in corpus.lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let mut compact = String::new();
        spaced(&record, &mut |_| 0, &mut compact);
        let expected = reading(&compact);
        read += usize::from(expected.is_some());
        let mut everywhere = String::new();
        spaced(&record, &mut |_| 1, &mut everywhere);
        let mut places = 0;
        let mut later = String::new();
        let mut after_six = |_: &str| {
            places += 1;
            usize::from(places > 6 && places % 5 == 0)
        };
        spaced(&record, &mut after_six, &mut later);
        let mut anywhere = String::new();
        spaced(
            &record,
            &mut |_| usize::from(rng.below(7) == 0),
            &mut anywhere,
        );
        // As many serialisers write (`": "`, `", "`), then with a second space now and then there,
        // where the reading that passes one must give way.
        let after_separator = |out: &str| usize::from(out.ends_with([':', ',']));
        let mut separated = String::new();
        spaced(&record, &mut |out| after_separator(out), &mut separated);
        let mut doubled = String::new();
        spaced(
            &record,
            &mut |out| after_separator(out) * (1 + usize::from(rng.below(9) == 0)),
            &mut doubled,
        );
        for text in [&everywhere, &later, &anywhere, &separated, &doubled] {
            assert_eq!(reading(text), expected, "{text}");
        }
        // A space inside a number ends no token: refused by every reading.
        let bytes = compact.as_bytes();
        let number = (3..bytes.len()).find(|&at| {
            bytes.get(at - 3..at) != Some(b"\\\":")
                && bytes.get(at - 2..at) == Some(b"\":")
                && bytes
                    .get(at..at + 2)
                    .is_some_and(|two| two.iter().all(u8::is_ascii_digit))
        });
        if let Some(at) = number {
            let mut broken = compact.clone();
            broken.insert(at + 1, ' ');
            assert_eq!(reading(&broken), None, "{broken}");
        }
    }
    assert!(read > 2000, "{read} records read");
}
