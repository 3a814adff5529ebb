//! The component's vector code (WebAssembly SIMD) decides as the native build of the same rule
//! (x86-64 SSE2), which the guest's own tests hold against the plain definitions: every line of
//! generated buffers gets the same outcome, alerts byte for byte. The lines are built to land the
//! needle, escapes, glued documents, non-ASCII and control bytes at every offset around the 16-byte
//! vectors and the ends of lines.

use newterms::{LineError, RuleConfig};
use newterms_guest::{Config, Detector};

use crate::common::Rng;
use crate::support::rule;

fn record(rng: &mut Rng, index: usize) -> String {
    let direct = rng.below(3) == 0;
    let identity = if direct {
        format!(
            r#"{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u{0}","accountId":"111122223333","userName":"u{0}"}}"#,
            rng.below(40)
        )
    } else {
        r#"{"type":"AWSService","invokedBy":"s3.amazonaws.com"}"#.to_owned()
    };
    let source = [
        "lambda.amazonaws.com",
        "s3.amazonaws.com",
        "lambda\\u002eamazonaws.com",
    ][rng.below(3)];
    // Padding moves every later byte across the vector boundaries.
    let padding = "p".repeat(rng.below(70));
    format!(
        r#"{{"eventVersion":"1.08","note":"{padding}","userIdentity":{identity},"eventTime":"2024-03-{:02}T{:02}:00:00Z","eventSource":"{source}","eventName":"Invoke","eventID":"id-{index}","recipientAccountId":"111122223333","requestParameters":{{"functionName":"f","list":[1,2,{{"a":[]}}]}}}}"#,
        1 + rng.below(28),
        rng.below(24)
    )
}

fn mutate(rng: &mut Rng, text: String) -> String {
    let at = rng.below(text.len() + 1);
    let (head, tail) = text.split_at(at);
    match rng.below(12) {
        0 => head.to_owned(),                                  // truncated
        1 => format!("{text}{text}"),                          // glued
        2 => format!("{text} {text}"),                         // glued with a space
        3 => text.replacen("\"note\":\"", "\"note\":\"é", 1),  // non-ASCII
        4 => text.replacen("\"note\":\"", "\"note\":\"\t", 1), // a control byte in a string
        5 => format!("{head}\\\"{tail}"),                      // a stray escape
        6 => format!("{head}}}{{{tail}"),                      // a glue look-alike inside
        7 => format!("{head}lambda.amazonaws.com{tail}"),      // the needle anywhere
        8 => format!("{head}{{{tail}"),                        // unbalanced
        9 => "x".repeat(rng.below(40)),                        // not JSON, every short length
        _ => text,
    }
}

fn native_outcomes(buffer: &[u8]) -> Vec<(u32, Result<Vec<String>, String>)> {
    let mut detector = Detector::new(Config::default()).expect("default config");
    detector
        .process_ndjson(buffer)
        .into_iter()
        .map(|line| {
            let outcome = line.outcome.map_err(|error| match error {
                newterms_guest::LineError::NotUtf8(at) => format!("not UTF-8 at {at}"),
                newterms_guest::LineError::Event(error) => format!("{error:?}"),
            });
            (line.line, outcome)
        })
        .collect()
}

#[test]
fn component_decides_every_line_as_the_native_build() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut component = rule(&RuleConfig::default());
    let (mut alerts, mut errors, mut lines) = (0, 0, 0);
    for batch in 0..6 {
        let mut buffer = Vec::new();
        for index in 0..1_500 {
            let text = record(&mut rng, batch * 10_000 + index);
            buffer.extend_from_slice(mutate(&mut rng, text).as_bytes());
            buffer.push(b'\n');
            lines += 1;
        }
        // Every native detector starts empty: so does the component's history, per batch.
        let expected = native_outcomes(&buffer);
        let found: Vec<_> = component
            .process_ndjson(&buffer)
            .expect("no trap")
            .into_iter()
            .map(|line| {
                let outcome = line.outcome.map_err(|error| match error {
                    LineError::NotUtf8(at) => format!("not UTF-8 at {at}"),
                    LineError::Event(error) => format!("{error:?}"),
                });
                (line.line, outcome)
            })
            .collect();
        for (found, expected) in found.iter().zip(&expected) {
            assert_eq!(found, expected);
        }
        assert_eq!(found.len(), expected.len());
        alerts += expected
            .iter()
            .filter(|(_, outcome)| outcome.is_ok())
            .count();
        errors += expected
            .iter()
            .filter(|(_, outcome)| outcome.is_err())
            .count();
        component = rule(&RuleConfig::default());
    }
    // The generator reaches both kinds of outcome in numbers.
    assert!(
        alerts > 100 && errors > 1_000,
        "{alerts} alerting lines, {errors} refused, of {lines}"
    );
}
