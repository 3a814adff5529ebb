//! Events per second through the rule: the native logic, the component called per event, and the
//! component called in batches, on a realistic mixed stream and on the real public corpus.
//!
//! `cargo bench --bench throughput`; criterion prints time per stream and the element and byte rates.

#![allow(clippy::expect_used, missing_docs)] // a benchmark harness: criterion's macros define the items

use std::io::Read;
use std::path::PathBuf;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use newterms::{Limits, RuleComponent, RuleConfig, Sandbox};
use serde_json::json;

/// The real public CloudTrail records bundled as a test fixture (3,896 records, 53 services).
fn real_corpus() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/cloudtrail/mixed_all.ndjson.gz");
    let file = std::fs::File::open(&path).expect("corpus fixture");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("corpus decompresses");
    text.lines().map(str::to_owned).collect()
}

/// A Lambda `Invoke`: every 5th by a user directly, the rest triggered by S3.
fn lambda_invoke(index: usize, time: &str) -> String {
    let identity = if index.is_multiple_of(5) {
        json!({"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/user-{}", index % 50),
               "accountId": "123456789012", "accessKeyId": "AKIAEXAMPLE", "userName": format!("user-{}", index % 50)})
    } else {
        json!({"type": "AWSService", "invokedBy": "s3.amazonaws.com"})
    };
    json!({
        "eventVersion": "1.09", "userIdentity": identity, "eventTime": time,
        "eventSource": "lambda.amazonaws.com", "eventName": "Invoke", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.1", "userAgent": "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21",
        "requestParameters": {"functionName": "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer",
                              "invocationType": "Event"},
        "responseElements": null,
        "additionalEventData": {"functionVersion": "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer:$LATEST"},
        "requestID": format!("5d1a2c3e-0000-4000-8000-{index:012}"), "eventID": format!("e0e0e0e0-0000-4000-8000-{index:012}"),
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": false,
        "recipientAccountId": "123456789012", "eventCategory": "Data",
        "resources": [{"accountId": "123456789012", "type": "AWS::Lambda::Function",
                       "ARN": "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer"}],
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": "lambda.us-east-1.amazonaws.com"}
    })
    .to_string()
}

/// ~3 % Lambda `Invoke` (one in five of those direct), the rest real records of 53 services.
fn mixed_stream(corpus: &[String], events: usize) -> Vec<String> {
    (0..events)
        .map(|index| {
            if index.is_multiple_of(33) {
                let minute = index / 33;
                let time = format!(
                    "2024-05-{:02}T{:02}:{:02}:00Z",
                    1 + minute / 1440 % 28,
                    minute / 60 % 24,
                    minute % 60
                );
                lambda_invoke(index, &time)
            } else {
                corpus[index % corpus.len()].clone()
            }
        })
        .collect()
}

fn bytes(events: &[String]) -> u64 {
    events.iter().map(|event| event.len() as u64 + 1).sum()
}

fn throughput(c: &mut Criterion) {
    let corpus = real_corpus();
    let streams = [
        ("mixed", mixed_stream(&corpus, 20_000)),
        ("real-corpus", corpus.clone()),
    ];
    let sandbox = Sandbox::new(Limits::default()).expect("engine");
    let component = RuleComponent::embedded(&sandbox).expect("component");
    let config = RuleConfig::default();

    for (name, events) in &streams {
        let lambda_share = events
            .iter()
            .filter(|event| event.contains("lambda.amazonaws.com"))
            .count();
        eprintln!(
            "stream {name}: {} events, {:.0} bytes/event, {:.1} % mention Lambda",
            events.len(),
            bytes(events) as f64 / events.len() as f64,
            100.0 * lambda_share as f64 / events.len() as f64
        );
        let mut group = c.benchmark_group(format!("throughput/{name}"));
        group.sample_size(10);
        group.warm_up_time(std::time::Duration::from_secs(1));
        group.measurement_time(std::time::Duration::from_secs(4));
        group.throughput(Throughput::Elements(events.len() as u64));

        group.bench_function("native", |b| {
            b.iter_batched(
                || {
                    newterms_guest::Detector::new(newterms_guest::Config::default())
                        .expect("config")
                },
                |mut detector| {
                    for event in events {
                        let _ = detector.process(event);
                    }
                    detector
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function("component/per-event", |b| {
            b.iter_batched(
                || component.instantiate(&config).expect("instance"),
                |mut rule| {
                    for event in events {
                        rule.process_event(event).expect("no trap").ok();
                    }
                    rule
                },
                BatchSize::PerIteration,
            )
        });
        for batch in [64, 1024] {
            group.bench_with_input(
                BenchmarkId::new("component/batch", batch),
                &batch,
                |b, &batch| {
                    b.iter_batched(
                        || component.instantiate(&config).expect("instance"),
                        |mut rule| {
                            for chunk in events.chunks(batch) {
                                rule.process_batch(chunk).expect("no trap");
                            }
                            rule
                        },
                        BatchSize::PerIteration,
                    )
                },
            );
        }
        group.finish();

        let mut bytes_group = c.benchmark_group(format!("bytes/{name}"));
        bytes_group.sample_size(10);
        bytes_group.measurement_time(std::time::Duration::from_secs(3));
        bytes_group.throughput(Throughput::Bytes(bytes(events)));
        bytes_group.bench_function("component/batch/1024", |b| {
            b.iter_batched(
                || component.instantiate(&config).expect("instance"),
                |mut rule| {
                    for chunk in events.chunks(1024) {
                        rule.process_batch(chunk).expect("no trap");
                    }
                    rule
                },
                BatchSize::PerIteration,
            )
        });
        bytes_group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
