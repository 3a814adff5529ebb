//! The component as a sandboxed artefact: what it imports, exports and says about itself.

use newterms::{
    ConfigError, Error, Exception, Limits, Profile, RuleComponent, RuleConfig, Sandbox,
};

use crate::support::{component, rule};

#[test]
fn imports_nothing_at_all() {
    assert_eq!(component().imports(), Vec::<String>::new());
}

#[test]
fn exports_the_detector_interface() {
    let exports = component().exports();
    assert_eq!(exports.len(), 1, "{exports:?}");
    assert!(
        exports[0].starts_with("newterms:rule/detector@0.4.0 "),
        "{exports:?}"
    );
    for function in [
        "configure",
        "process-event",
        "process-batch",
        "snapshot",
        "restore",
        "metadata",
        "stats",
    ] {
        assert!(
            exports[0].contains(function),
            "{function} missing from {exports:?}"
        );
    }
}

#[test]
fn metadata_describes_the_rule_and_the_configuration() {
    let mut default = rule(&RuleConfig::default());
    let metadata = default.metadata().expect("metadata");
    assert_eq!(
        metadata.name,
        "AWS Lambda Function Invoked by an Unusual Principal"
    );
    assert_eq!(metadata.rule_id, "07cd35a6-c267-4394-a782-6a9428aea9d3");
    assert_eq!(
        (metadata.severity.as_str(), metadata.risk_score),
        ("medium", 47)
    );
    assert_eq!(metadata.tactic.id, "TA0002");
    assert_eq!(metadata.techniques[0].id, "T1648");
    assert_eq!(metadata.profile, Profile::Default);
    assert_eq!(metadata.window_ms, 14 * 86_400_000);
    assert_eq!(metadata.term_fields, ["cloud.account.id", "user.name"]);
    assert!(
        metadata
            .query
            .starts_with("data_stream.dataset: \"aws.cloudtrail\"")
    );

    let mut elastic = rule(&RuleConfig {
        profile: Profile::Elastic,
        capacity: Some(10),
        learn: true,
        ..RuleConfig::default()
    });
    let metadata = elastic.metadata().expect("metadata");
    assert_eq!(
        (metadata.profile, metadata.window_ms),
        (Profile::Elastic, 7 * 86_400_000)
    );
    assert_eq!((metadata.capacity, metadata.learn), (10, true));

    let mut custom = rule(&RuleConfig {
        window_ms: Some(3_600_000),
        ..RuleConfig::default()
    });
    assert_eq!(custom.metadata().expect("metadata").window_ms, 3_600_000);
}

#[test]
fn refuses_bad_configuration_with_typed_errors() {
    let refused = |config: RuleConfig| match component().instantiate(&config) {
        Err(Error::Config(error)) => error,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("configuration accepted"),
    };
    assert_eq!(
        refused(RuleConfig {
            capacity: Some(0),
            ..RuleConfig::default()
        }),
        ConfigError::ZeroCapacity
    );
    assert_eq!(
        refused(RuleConfig {
            window_ms: Some(0),
            ..RuleConfig::default()
        }),
        ConfigError::InvalidWindow(0)
    );
    let exception = Exception {
        field: String::new(),
        patterns: vec!["x".into()],
    };
    assert!(matches!(
        refused(RuleConfig {
            exceptions: vec![exception],
            ..RuleConfig::default()
        }),
        ConfigError::InvalidException(_)
    ));
}

#[test]
fn a_component_written_out_loads_again() {
    let directory = crate::support::scratch("component-roundtrip");
    let path = directory.join("rule.wasm");
    let run = crate::support::newterms(
        &["component", "--output", path.to_str().expect("path")],
        b"",
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&path).expect("written"),
        newterms::EMBEDDED_COMPONENT
    );
    let sandbox = Sandbox::new(Limits::default()).expect("engine");
    let loaded = RuleComponent::from_file(&sandbox, &path).expect("loads");
    assert!(loaded.imports().is_empty());

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/lambda-invocations.ndjson"
    );
    let embedded = crate::support::newterms(&["scan", example], b"");
    let from_file = crate::support::newterms(
        &["scan", "--rule", path.to_str().expect("path"), example],
        b"",
    );
    assert!(from_file.status.success(), "{}", from_file.stderr);
    assert_eq!(from_file.alerts, embedded.alerts);
}

#[test]
fn refuses_what_is_not_a_rule_component() {
    let sandbox = Sandbox::new(Limits::default()).expect("engine");
    assert!(matches!(
        RuleComponent::from_bytes(&sandbox, b"not wasm", "junk"),
        Err(Error::Incompatible { .. })
    ));
    // What it says it is holds, but its code is damaged: wasmtime refuses to compile it.
    let mut damaged = newterms::EMBEDDED_COMPONENT.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle..middle + 64].fill(0xff);
    assert!(matches!(
        RuleComponent::from_bytes(&sandbox, &damaged, "damaged"),
        Err(Error::Compile { .. })
    ));
    // A valid component that exports nothing: compiles, but is not a rule.
    let mut empty_component = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let name = b"newterms:rule";
    let data = br#"{"wit":"newterms:rule@0.4.0","rule_id":"x","rule_name":"x","rule_version":1,"snapshot_format":1}"#;
    empty_component.extend([0, (1 + name.len() + data.len()) as u8, name.len() as u8]);
    empty_component.extend(name);
    empty_component.extend(data);
    match RuleComponent::from_bytes(&sandbox, &empty_component, "empty") {
        Err(Error::Incompatible { source, .. }) => {
            assert!(source.to_string().contains("detector"), "{source}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a component that exports nothing was accepted"),
    }
    assert!(matches!(
        RuleComponent::from_file(&sandbox, std::path::Path::new("/nonexistent.wasm")),
        Err(Error::Io { .. })
    ));
}

/// The embedded component with `from` replaced by `to` (same length) in its bytes.
fn patched(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let bytes = newterms::EMBEDDED_COMPONENT;
    let at = bytes
        .windows(from.len())
        .rposition(|window| window == from.as_bytes())
        .expect("pattern in the component");
    let mut patched = bytes.to_vec();
    patched[at..at + to.len()].copy_from_slice(to.as_bytes());
    patched
}

#[test]
fn refuses_a_component_of_another_contract_before_compiling_it() {
    let sandbox = Sandbox::new(Limits::default()).expect("engine");
    let refusal = |bytes: &[u8]| match RuleComponent::from_bytes(&sandbox, bytes, "patched") {
        Err(Error::Incompatible { source, .. }) => source.to_string(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("accepted"),
    };
    let newer = refusal(&patched(
        "\"wit\":\"newterms:rule@0.4.0\"",
        "\"wit\":\"newterms:rule@0.5.0\"",
    ));
    assert!(newer.contains("implements newterms:rule@0.5.0"), "{newer}");
    let unmarked = refusal(&patched("\x0dnewterms:rule{", "\x0dnewterms:xxxx{"));
    assert!(unmarked.contains("no newterms:rule section"), "{unmarked}");
    let embedded = component().provenance();
    assert_eq!(embedded.wit, "newterms:rule@0.4.0");
}

#[test]
fn the_published_digest_guards_a_third_party_rule() {
    let directory = crate::support::scratch("digest");
    let path = directory.join("rule.wasm");
    let path = path.to_str().expect("path");
    let written = crate::support::newterms(&["component", "--output", path], b"");
    let digest = written
        .stdout
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned();
    assert_eq!(digest.len(), 64, "{}", written.stdout);
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/lambda-invocations.ndjson"
    );
    let trusted = crate::support::newterms(
        &["scan", "--rule", path, "--rule-sha256", &digest, example],
        b"",
    );
    assert!(trusted.status.success(), "{}", trusted.stderr);
    assert_eq!(trusted.alerts.len(), 6);
    let mut wrong = digest.clone();
    wrong.replace_range(0..1, if digest.starts_with('0') { "1" } else { "0" });
    let refused = crate::support::newterms(
        &["scan", "--rule", path, "--rule-sha256", &wrong, example],
        b"",
    );
    assert!(!refused.status.success());
    assert!(refused.alerts.is_empty());
    assert!(
        refused.stderr.contains("refusing to run it"),
        "{}",
        refused.stderr
    );
}

/// `route` through the component gives the buckets the rule crate gives natively, and instances
/// configured with partitions, fed by it, raise exactly the alerts of one instance; a partition that
/// does not exist is refused.
#[test]
fn partitions_routed_by_the_component_raise_the_alerts_of_one_instance() {
    use newterms::Partition;

    let events: Vec<String> = (0..400)
        .map(|index| {
            let time = format!("2024-03-{:02}T{:02}:00:00Z", 1 + index % 28, index % 24);
            let mut event = crate::support::direct_invoke(&format!("user-{}", index % 37), &time);
            if index % 5 == 0 {
                // Several principals in one ECS-like event is rare in raw CloudTrail; an unmatched
                // line and a refused one stand in for the other kinds.
                event = serde_json::json!({"eventSource": "s3.amazonaws.com", "eventTime": time});
            }
            event.to_string()
        })
        .chain(["not json".to_owned()])
        .collect();
    let count = 4;
    let mut native = newterms_guest::Detector::default();
    let mut routed_by_component = rule(&RuleConfig::default());
    let routes = routed_by_component.route(&events, count).expect("route");
    let expected: Vec<_> = events
        .iter()
        .map(|event| native.route(event, count))
        .collect();
    assert_eq!(routes, expected);
    assert!(
        routes
            .iter()
            .all(|route| route.time.is_some() != route.buckets.is_empty())
    );
    let buckets: Vec<Vec<u32>> = routes.into_iter().map(|route| route.buckets).collect();
    assert!(buckets.iter().any(|b| b == &[3]) && buckets.iter().any(Vec::is_empty));

    let mut one = rule(&RuleConfig::default());
    let mut parts: Vec<_> = (0..count)
        .map(|index| {
            rule(&RuleConfig {
                partition: Some(Partition { index, count }),
                ..RuleConfig::default()
            })
        })
        .collect();
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    for (event, buckets) in events.iter().zip(&buckets) {
        expected.extend(one.process_event(event).expect("call").unwrap_or_default());
        for bucket in if buckets.is_empty() {
            &[0][..]
        } else {
            buckets
        } {
            got.extend(
                parts[*bucket as usize]
                    .process_event(event)
                    .expect("call")
                    .unwrap_or_default(),
            );
        }
    }
    expected.sort();
    got.sort();
    assert!(expected.len() > 30);
    assert_eq!(got, expected);

    let refused = component().instantiate(&RuleConfig {
        partition: Some(Partition { index: 4, count: 4 }),
        ..RuleConfig::default()
    });
    assert!(
        matches!(
            &refused,
            Err(Error::Config(ConfigError::InvalidPartition {
                index: 4,
                count: 4
            }))
        ),
        "{:?}",
        refused.err()
    );
}

#[test]
fn decide_lends_the_extraction_and_leaves_it_as_it_was() {
    let events: Vec<String> = (0..60)
        .map(|index| {
            let time = format!("2024-03-{:02}T00:00:00Z", 1 + index % 28);
            crate::support::direct_invoke(&format!("user-{}", index % 7), &time).to_string()
        })
        .chain(["not json".to_owned()])
        .collect();
    let buffer = events.join("\n");
    let mut extracting = rule(&RuleConfig::default());
    let mut extraction = extracting.extract(buffer.as_bytes()).expect("extract");
    let before = extraction.clone();
    assert!(extraction.counts_add_up());
    assert!(extraction.terms.len() >= 7, "{extraction:?}");
    let mut deciding = rule(&RuleConfig::default());
    let fresh = deciding.decide(&mut extraction).expect("decide");
    assert_eq!(extraction, before, "every term given back");
    assert_eq!(fresh.len(), 7, "one line per principal is new");
    // The same extraction decided again, as a journal replays it, by a new instance: the same.
    let mut replaying = rule(&RuleConfig::default());
    assert_eq!(replaying.decide(&mut extraction).expect("decide"), fresh);
    assert_eq!(extraction, before);
}
