//! The event streams the benchmarks run on, shared by `throughput` and `report`.

// Shared by several benches, each of which uses a subset.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use serde_json::json;

/// The real public CloudTrail records bundled as a test fixture (3,896 records, 53 services).
pub fn real_corpus() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/cloudtrail/mixed_all.ndjson.gz");
    let file = std::fs::File::open(&path).expect("corpus fixture");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("corpus decompresses");
    text.lines().map(str::to_owned).collect()
}

fn time_of(minute: usize) -> String {
    format!(
        "2024-05-{:02}T{:02}:{:02}:00Z",
        1 + minute / 1440 % 28,
        minute / 60 % 24,
        minute % 60
    )
}

/// A Lambda `Invoke` (~1.3 KB): every 5th by one of 50 users directly, the rest triggered by S3.
pub fn lambda_invoke(index: usize, time: &str) -> String {
    let identity = if index.is_multiple_of(5) {
        direct(index % 50)
    } else {
        json!({"type": "AWSService", "invokedBy": "s3.amazonaws.com"})
    };
    invoke_by(index, time, identity)
}

/// IAM user `user-{user}` calling directly.
fn direct(user: usize) -> serde_json::Value {
    json!({"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/user-{user}"),
           "accountId": "123456789012", "accessKeyId": "AKIAEXAMPLE", "userName": format!("user-{user}")})
}

/// Every record a Lambda `Invoke` by a user never seen before: every record raises an alert (a
/// first deployment without learning, or a burst of new principals).
pub fn new_term_stream(events: usize) -> Vec<String> {
    (0..events)
        .map(|index| invoke_by(index, &time_of(index / 1000), direct(index)))
        .collect()
}

fn invoke_by(index: usize, time: &str, identity: serde_json::Value) -> String {
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
                       "clientProvidedHostHeader": "lambda.us-east-1.amazonaws.com"},
        "sessionCredentialFromConsole": null,
        "edgeDeviceDetails": null,
        "vpcEndpointId": "vpce-0a1b2c3d4e5f67890",
        "vpcEndpointAccountId": "123456789012",
        "annotation": "thumbnail generation for uploads bucket, batch pipeline v3"
    })
    .to_string()
}

/// ~3 % Lambda `Invoke` (one in five of those direct), the rest real records of 53 services.
pub fn mixed_stream(corpus: &[String], events: usize) -> Vec<String> {
    (0..events)
        .map(|index| {
            if index.is_multiple_of(33) {
                lambda_invoke(index, &time_of(index / 33))
            } else {
                corpus[index % corpus.len()].clone()
            }
        })
        .collect()
}

/// Every record a Lambda `Invoke` (the worst case: every record needs real parsing).
pub fn all_invoke_stream(events: usize) -> Vec<String> {
    (0..events)
        .map(|index| lambda_invoke(index, &time_of(index)))
        .collect()
}

/// The real corpus repeated to `events` records.
pub fn real_stream(corpus: &[String], events: usize) -> Vec<String> {
    corpus.iter().cycle().take(events).cloned().collect()
}

/// Bytes of the stream as NDJSON.
pub fn bytes(events: &[String]) -> u64 {
    events.iter().map(|event| event.len() as u64 + 1).sum()
}

/// The stream as NDJSON buffers of `per_buffer` lines each.
pub fn ndjson_buffers(events: &[String], per_buffer: usize) -> Vec<Vec<u8>> {
    events
        .chunks(per_buffer)
        .map(|chunk| {
            let mut buffer = Vec::with_capacity(chunk.iter().map(|e| e.len() + 1).sum());
            for event in chunk {
                buffer.extend_from_slice(event.as_bytes());
                buffer.push(b'\n');
            }
            buffer
        })
        .collect()
}
