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
        exports[0].starts_with("newterms:rule/detector@0.1.0 "),
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
        Err(Error::Compile { .. })
    ));
    // A valid component that exports nothing: compiles, but is not a rule.
    let empty_component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    assert!(matches!(
        RuleComponent::from_bytes(&sandbox, &empty_component, "empty"),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        RuleComponent::from_file(&sandbox, std::path::Path::new("/nonexistent.wasm")),
        Err(Error::Io { .. })
    ));
}
