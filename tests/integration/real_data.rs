//! Real public CloudTrail records (copied from `../shared/data/cloudtrail` into the fixtures, see
//! `tests/fixtures/README.md`).

use crate::support::{event_ids, fixture, newterms};

/// The one direct invocation among the real Lambda data events: an IAM user calling with the AWS
/// CLI (SumoLogic's documentation example). The other seven were made by AWS services.
const DIRECT_CALL: &str = "277a6881-66f4-4f3e-ade5-ba76255b7d93";

fn arg(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn only_the_direct_invocation_among_real_lambda_events_alerts() {
    let corpus = fixture("cloudtrail/lambda_invoke.ndjson");
    for profile in ["default", "elastic"] {
        let run = newterms(&["scan", "--profile", profile, arg(&corpus)], b"");
        assert!(run.status.success(), "{}", run.stderr);
        assert_eq!(event_ids(&run.alerts), [DIRECT_CALL], "{profile}");
        let alert = &run.alerts[0];
        assert_eq!(alert["user"]["name"], "duc");
        assert_eq!(
            alert["kibana"]["alert"]["new_terms"],
            serde_json::json!(["111111111111", "duc"])
        );
        assert!(
            run.stderr.contains("8 events read, 1 matched"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn the_mixed_corpus_yields_the_one_direct_call_and_no_errors() {
    let corpus = fixture("cloudtrail/mixed_all.ndjson.gz");
    let run = newterms(&["scan", arg(&corpus)], b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(event_ids(&run.alerts), [DIRECT_CALL]);
    assert!(
        run.stderr.contains("3896 events read, 1 matched"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(" 0 errors"), "{}", run.stderr);
}

#[test]
fn s3_delivery_files_as_aws_writes_them() {
    let mut args = vec!["scan".to_owned()];
    for directory in ["cloudtrail/flaws2", "cloudtrail/invictus"] {
        let mut files: Vec<_> = std::fs::read_dir(fixture(directory))
            .expect("fixtures")
            .map(|entry| entry.expect("entry").path().display().to_string())
            .collect();
        files.sort();
        args.extend(files);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = newterms(&args, b"");
    assert!(run.status.success(), "{}", run.stderr);
    // flaws2's two Invokes came through API Gateway: normal, no alert.
    assert!(run.alerts.is_empty());
    assert!(
        run.stderr.contains("66 events read, 0 matched"),
        "{}",
        run.stderr
    );
}
