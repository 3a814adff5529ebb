//! Events per second through the rule: the native logic, the component called per event, and the
//! component called in batches (`list<string>` and one NDJSON buffer), on a realistic mixed stream,
//! an all-`Invoke` stream and the real public corpus.
//!
//! `cargo bench --bench throughput`; criterion prints time per stream and the element and byte rates.

#![allow(clippy::expect_used, missing_docs)] // a benchmark harness: criterion's macros define the items

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use newterms::{Limits, RuleComponent, RuleConfig, Sandbox};

#[path = "streams.rs"]
mod streams;

use streams::bytes;

fn throughput(c: &mut Criterion) {
    let corpus = streams::real_corpus();
    let streams = [
        ("mixed", streams::mixed_stream(&corpus, 20_000)),
        ("all-invoke", streams::all_invoke_stream(20_000)),
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
        group.bench_function("component/ndjson/1024", |b| {
            let buffers = streams::ndjson_buffers(events, 1024);
            b.iter_batched(
                || component.instantiate(&config).expect("instance"),
                |mut rule| {
                    for buffer in &buffers {
                        rule.process_ndjson(buffer).expect("no trap");
                    }
                    rule
                },
                BatchSize::PerIteration,
            )
        });
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
