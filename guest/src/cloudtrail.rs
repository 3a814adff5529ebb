//! Raw CloudTrail records to ECS, as Elastic's `aws.cloudtrail` ingest pipeline maps the fields this
//! rule reads (see the mapping table in the rule's reference).

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::bytes;
use crate::fields::{self, is_blank, without_blanks};
use crate::lanes::{Lanes, WIDTH};
use crate::time;

/// Whether a JSON object is a raw CloudTrail record rather than an ECS document.
///
/// CloudTrail's own keys are camelCase and ECS has none of them, so one of them decides.
pub fn is_raw_record(document: &Map<String, Value>) -> bool {
    RAW_MARKERS.iter().any(|key| document.contains_key(*key))
}

/// The top-level keys that make a document raw CloudTrail (see [`is_raw_record`]).
pub const RAW_MARKERS: &[&str] = &[
    "eventVersion",
    "eventSource",
    "eventName",
    "eventTime",
    "userIdentity",
];

/// Whether the text of a record may hold one of [`RAW_MARKERS`] as a key the scan reads: spelled
/// as written, between quotes. `false` is certain, since the scan leaves a key with an escape to the
/// parser; an ECS document, whose keys are none of them, is then not scanned as raw at all.
pub fn may_be_raw(text: &[u8]) -> bool {
    // Every marker begins with `e` or `u`: one vector pass finds the quotes followed by either, and
    // only those are compared with the markers (two searches, for `"event` and `"userIdentity"`,
    // each read the whole of an ECS document).
    let quote = Lanes::splat(b'"');
    let (e, u) = (Lanes::splat(b'e'), Lanes::splat(b'u'));
    let mut from = 0;
    while let Some((here, next)) = text.get(from..).and_then(|rest| {
        let next = rest.get(1..)?.first_chunk::<WIDTH>()?;
        Some((rest.first_chunk::<WIDTH>()?, next))
    }) {
        let next = Lanes::load(next);
        let starts = Lanes::load(here).eq(quote).and(next.eq(e).or(next.eq(u)));
        let mut bits = starts.bitmask();
        while bits != 0 {
            if marker_at(text, from + bits.trailing_zeros() as usize) {
                return true;
            }
            bits &= bits - 1;
        }
        from += WIDTH;
    }
    (from..text.len()).any(|at| marker_at(text, at))
}

/// Whether a quote at `at` opens one of [`RAW_MARKERS`], closed by a quote.
fn marker_at(text: &[u8], at: usize) -> bool {
    let Some((b'"', rest)) = text.get(at..).and_then(<[u8]>::split_first) else {
        return false;
    };
    RAW_MARKERS.iter().any(|key| {
        rest.strip_prefix(key.as_bytes())
            .is_some_and(|after| after.first() == Some(&b'"'))
    })
}

/// A field of the raw record that the mapping reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawField {
    /// `eventSource`
    EventSource,
    /// `eventName`
    EventName,
    /// `eventID`
    EventId,
    /// `eventTime`
    EventTime,
    /// `awsRegion`
    AwsRegion,
    /// `errorCode`
    ErrorCode,
    /// `errorMessage`
    ErrorMessage,
    /// `recipientAccountId`
    RecipientAccountId,
    /// `sourceIPAddress`
    SourceIpAddress,
    /// `userAgent`
    UserAgent,
    /// `requestParameters`
    RequestParameters,
    /// `userIdentity.arn`
    IdentityArn,
    /// `userIdentity.type`
    IdentityType,
    /// `userIdentity.accessKeyId`
    IdentityAccessKeyId,
    /// `userIdentity.invokedBy`
    IdentityInvokedBy,
    /// `userIdentity.userName`
    IdentityUserName,
    /// `userIdentity.accountId`
    IdentityAccountId,
    /// `userIdentity.sessionContext.sessionIssuer.userName`
    IssuerUserName,
    /// `userIdentity.principalId`
    IdentityPrincipalId,
    /// `userIdentity.sessionContext.sessionIssuer.arn`
    IssuerArn,
    /// `tlsDetails.clientProvidedHostHeader`
    TlsHostHeader,
    /// `responseElements`
    ResponseElements,
    /// `additionalEventData`
    AdditionalEventData,
    /// `serviceEventDetails`
    ServiceEventDetails,
    /// `resources`
    Resources,
}

impl RawField {
    /// The keys that lead to the field from the top of the record.
    pub const fn path(self) -> &'static [&'static str] {
        match self {
            RawField::EventSource => &["eventSource"],
            RawField::EventName => &["eventName"],
            RawField::EventId => &["eventID"],
            RawField::EventTime => &["eventTime"],
            RawField::AwsRegion => &["awsRegion"],
            RawField::ErrorCode => &["errorCode"],
            RawField::ErrorMessage => &["errorMessage"],
            RawField::RecipientAccountId => &["recipientAccountId"],
            RawField::SourceIpAddress => &["sourceIPAddress"],
            RawField::UserAgent => &["userAgent"],
            RawField::RequestParameters => &["requestParameters"],
            RawField::IdentityArn => &["userIdentity", "arn"],
            RawField::IdentityType => &["userIdentity", "type"],
            RawField::IdentityAccessKeyId => &["userIdentity", "accessKeyId"],
            RawField::IdentityInvokedBy => &["userIdentity", "invokedBy"],
            RawField::IdentityUserName => &["userIdentity", "userName"],
            RawField::IdentityAccountId => &["userIdentity", "accountId"],
            RawField::IssuerUserName => &[
                "userIdentity",
                "sessionContext",
                "sessionIssuer",
                "userName",
            ],
            RawField::IdentityPrincipalId => &["userIdentity", "principalId"],
            RawField::IssuerArn => &["userIdentity", "sessionContext", "sessionIssuer", "arn"],
            RawField::TlsHostHeader => &["tlsDetails", "clientProvidedHostHeader"],
            RawField::ResponseElements => &["responseElements"],
            RawField::AdditionalEventData => &["additionalEventData"],
            RawField::ServiceEventDetails => &["serviceEventDetails"],
            RawField::Resources => &["resources"],
        }
    }
}

/// How the mapping fills one ECS field from the raw record. Fields the record lacks (or holds
/// blank: `null`, `""`) count as absent, as the pipeline drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    /// The first of these raw fields that is present, copied as it is (blank values aside).
    First(&'static [RawField]),
    /// `failure` when any of these raw fields is present, else `success`; except that a
    /// `ConsoleLogin` event's outcome is the sign-in's own answer (`responseElements.ConsoleLogin`,
    /// lowercased) when it has one.
    Outcome(&'static [RawField]),
    /// A constant the pipeline adds.
    Constant(&'static str),
    /// The raw field's string when it parses as an IP address.
    IpAddress(RawField),
    /// The raw field rendered as Java's `toString` would (the pipeline's script).
    JavaString(RawField),
    /// The raw field's time in ISO 8601 with milliseconds (the date processor), kept as it was when
    /// it does not parse.
    Timestamp(RawField),
    /// The raw field as it is (a `flattened` field: every leaf a keyword), unless its Java rendering
    /// is too long for one keyword (the pipeline's script then keeps only that rendering).
    Flattened(RawField),
    /// The raw list of resources, each with `ARN` renamed `arn` and `accountId` renamed
    /// `account_id`, without repeats of the same (arn, account_id, type); items that are not
    /// objects are dropped.
    ResourceList(RawField),
    /// On `ConsoleLogin` events only: `false` when this key of the (flattened) raw object is `No`,
    /// `true` for any other value.
    ConsoleLoginFlag(RawField, &'static str),
}

/// One row of the mapping: an ECS field and how it is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The ECS field.
    pub ecs: &'static str,
    /// Where its value comes from.
    pub derivation: Derivation,
}

/// Defines [`MAPPING`] and [`mapping`] from one list, so that the lookup is a `match` (as fast as
/// the fast path needs) and cannot disagree with the table.
macro_rules! mapping_table {
    ($($ecs:literal => $derivation:expr,)*) => {
        /// Every ECS field the mapping fills, in the order [`to_ecs`] fills them: the one table
        /// both the full path ([`to_ecs`]) and the fast path ([`crate::fastpath`]) read.
        pub const MAPPING: &[Mapping] = &[$(Mapping { ecs: $ecs, derivation: $derivation },)*];

        /// The row of [`MAPPING`] for the ECS field `ecs`, if the mapping fills it.
        pub fn mapping(ecs: &str) -> Option<&'static Mapping> {
            match ecs {
                $($ecs => Some(&Mapping { ecs: $ecs, derivation: $derivation }),)*
                _ => None,
            }
        }
    };
}

use Derivation::{
    ConsoleLoginFlag, Constant, First, Flattened, IpAddress, JavaString, Outcome, ResourceList,
    Timestamp,
};
use RawField::*;

mapping_table! {
    "event.provider" => First(&[EventSource]),
    "event.action" => First(&[EventName]),
    "event.id" => First(&[EventId]),
    "cloud.region" => First(&[AwsRegion]),
    "aws.cloudtrail.user_identity.arn" => First(&[IdentityArn]),
    "aws.cloudtrail.user_identity.type" => First(&[IdentityType]),
    "aws.cloudtrail.user_identity.access_key_id" => First(&[IdentityAccessKeyId]),
    "aws.cloudtrail.user_identity.invoked_by" => First(&[IdentityInvokedBy]),
    "aws.cloudtrail.recipient_account_id" => First(&[RecipientAccountId]),
    "source.address" => First(&[SourceIpAddress]),
    "user_agent.original" => First(&[UserAgent]),
    "user.name" => First(&[IdentityUserName, IssuerUserName]),
    "cloud.account.id" => First(&[IdentityAccountId, RecipientAccountId]),
    "source.ip" => IpAddress(SourceIpAddress),
    "aws.cloudtrail.request_parameters" => JavaString(RequestParameters),
    "@timestamp" => Timestamp(EventTime),
    "event.outcome" => Outcome(&[ErrorCode, ErrorMessage]),
    "event.kind" => Constant("event"),
    "data_stream.dataset" => Constant("aws.cloudtrail"),
    // The integration's index template holds `event.dataset` as a constant, as it does
    // `data_stream.dataset`; some published rules test one, some the other.
    "event.dataset" => Constant("aws.cloudtrail"),
    "user.id" => First(&[IdentityPrincipalId]),
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn" => First(&[IssuerArn]),
    "aws.cloudtrail.error_code" => First(&[ErrorCode]),
    "aws.cloudtrail.error_message" => First(&[ErrorMessage]),
    "aws.cloudtrail.flattened.request_parameters" => Flattened(RequestParameters),
    "aws.cloudtrail.flattened.response_elements" => Flattened(ResponseElements),
    "aws.cloudtrail.flattened.additional_eventdata" => Flattened(AdditionalEventData),
    "aws.cloudtrail.flattened.service_event_details" => Flattened(ServiceEventDetails),
    "aws.cloudtrail.console_login.additional_eventdata.mfa_used" =>
        ConsoleLoginFlag(AdditionalEventData, "MFAUsed"),
    "aws.cloudtrail.console_login.additional_eventdata.mobile_version" =>
        ConsoleLoginFlag(AdditionalEventData, "MobileVersion"),
    "aws.cloudtrail.resources" => ResourceList(Resources),
    "tls.client.server_name" => First(&[TlsHostHeader]),
}

/// Whether [`to_ecs`] copies the values of the ECS field `field` verbatim from the raw record, so
/// that a value of it is spelled in the raw record's text. Constants the mapping adds, computed
/// fields and rewritten ones are not copied.
pub const fn copies_verbatim(field: &str) -> bool {
    let mut index = 0;
    while index < MAPPING.len() {
        if bytes::equal(MAPPING[index].ecs.as_bytes(), field.as_bytes()) {
            return matches!(MAPPING[index].derivation, First(_));
        }
        index += 1;
    }
    false
}

/// The ECS document the ingest pipeline would index for `record` (the rows of [`MAPPING`]).
pub fn to_ecs(record: &Map<String, Value>) -> Value {
    let mut ecs = Map::new();
    for row in MAPPING {
        let value = match row.derivation {
            First(sources) => sources
                .iter()
                .find_map(|source| raw(record, source.path()))
                .map(without_blanks),
            Outcome(errors) => Some(Value::from(outcome(record, errors))),
            Constant(value) => Some(Value::from(value)),
            IpAddress(source) => match raw(record, source.path()) {
                Some(Value::String(address)) if address.parse::<IpAddr>().is_ok() => {
                    Some(Value::String(address.clone()))
                }
                _ => None,
            },
            JavaString(source) => raw(record, source.path()).map(|parameters| {
                let mut rendered = String::new();
                render_java_style(&without_blanks(parameters), &mut rendered);
                Value::String(rendered)
            }),
            // A value the date processor cannot parse is kept as it was, so that the rule reports
            // it instead of guessing.
            Timestamp(source) => raw(record, source.path()).map(|event_time| match event_time {
                Value::String(text) => time::parse_iso8601(text).map_or_else(
                    || event_time.clone(),
                    |millis| time::format_iso8601(millis).into(),
                ),
                other => other.clone(),
            }),
            Flattened(source) => flattened(record, source),
            ResourceList(source) => raw(record, source.path()).map(resources),
            ConsoleLoginFlag(within, key) => console_login(record)
                .then(|| flattened(record, within))
                .flatten()
                .and_then(|object| object.get(key).cloned())
                .map(|flag| Value::Bool(flag != "No")),
        };
        if let Some(value) = value {
            fields::set(&mut ecs, row.ecs, value);
        }
    }
    Value::Object(ecs)
}

/// The length from which the pipeline's script keeps a raw object only as its Java rendering, not
/// as a `flattened` field (the most a keyword holds, 32,766 bytes, counted in characters).
pub(crate) const FLATTENED_LIMIT: usize = 32_766;

/// `source` as the pipeline's `flattened` copy of it (without what the pipeline drops), if it is
/// there and its Java rendering is short enough.
fn flattened(record: &Map<String, Value>, source: RawField) -> Option<Value> {
    let value = without_blanks(raw(record, source.path())?);
    (java_style_chars(&value) < FLATTENED_LIMIT).then_some(value)
}

/// The length in characters of [`render_java_style`]'s rendering, without writing it.
fn java_style_chars(value: &Value) -> usize {
    // `", "` between items, brackets around them.
    let separators = |items: usize| 2 + 2 * items.saturating_sub(1);
    match value {
        Value::Object(map) => {
            separators(map.len())
                + map
                    .iter()
                    .map(|(key, child)| key.chars().count() + 1 + java_style_chars(child))
                    .sum::<usize>()
        }
        Value::Array(items) => {
            separators(items.len()) + items.iter().map(java_style_chars).sum::<usize>()
        }
        Value::String(text) => text.chars().count(),
        Value::Null => 4,
        Value::Bool(_) | Value::Number(_) => value.to_string().len(),
    }
}

/// Whether `record` is a console sign-in, the one event whose outcome and flags the pipeline reads
/// from the sign-in's own data.
fn console_login(record: &Map<String, Value>) -> bool {
    record.get("eventName").and_then(Value::as_str) == Some("ConsoleLogin")
}

/// `event.outcome`: `failure` when any of `errors` is present, else `success`, unless a console
/// sign-in says otherwise in its `ConsoleLogin` answer.
fn outcome(record: &Map<String, Value>, errors: &[RawField]) -> String {
    let answer = console_login(record)
        .then(|| flattened(record, RawField::ResponseElements))
        .flatten();
    // A non-string answer fails the pipeline's `lowercase`; the outcome set before it stays.
    if let Some(Value::String(answer)) = answer
        .as_ref()
        .and_then(|elements| elements.get("ConsoleLogin"))
    {
        return answer.to_lowercase();
    }
    let failed = errors
        .iter()
        .any(|source| raw(record, source.path()).is_some());
    String::from(if failed { "failure" } else { "success" })
}

/// The pipeline's `aws.cloudtrail.resources`: see [`Derivation::ResourceList`]. Repeats keep the
/// place of their first occurrence and the content of their last, as the script's map does.
fn resources(list: &Value) -> Value {
    let Value::Array(items) = list else {
        return without_blanks(list);
    };
    let mut kept: Vec<(String, Map<String, Value>)> = Vec::new();
    for item in items {
        let Value::Object(original) = without_blanks(item) else {
            continue;
        };
        let mut resource = Map::new();
        for (key, value) in original {
            let key = match key.as_str() {
                "ARN" => "arn".to_owned(),
                "accountId" => "account_id".to_owned(),
                _ => key,
            };
            resource.insert(key, value);
        }
        let part = |name: &str| resource.get(name).map(render_key_part).unwrap_or_default();
        let identity = format!("{}_{}_{}", part("arn"), part("account_id"), part("type"));
        match kept.iter_mut().find(|(known, _)| *known == identity) {
            Some((_, earlier)) => *earlier = resource,
            None => kept.push((identity, resource)),
        }
    }
    Value::Array(
        kept.into_iter()
            .map(|(_, resource)| Value::Object(resource))
            .collect(),
    )
}

/// One part of a resource's identity as the script's string concatenation writes it.
fn render_key_part(value: &Value) -> String {
    let mut rendered = String::new();
    render_java_style(value, &mut rendered);
    rendered
}

/// The value at `path` in nested objects, unless the pipeline would drop it.
fn raw<'a>(record: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut object = record;
    for key in parents {
        object = object.get(*key)?.as_object()?;
    }
    object.get(*last).filter(|value| !is_blank(value))
}

/// Renders a value the way the pipeline's script stringifies `requestParameters`: Java's
/// `Map.toString()` (`{key=value, …}`) and `List.toString()` (`[a, b]`). Keys come in the record's
/// order as parsed (sorted), not in Java's hash order.
fn render_java_style(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (index, (key, child)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                render_java_style(child, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                render_java_style(item, out);
            }
            out.push(']');
        }
        Value::String(text) => out.push_str(text),
        Value::Null => out.push_str("null"),
        Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn maps_the_rule_fields() {
        let record = map(json!({
            "eventVersion": "1.08",
            "eventTime": "2024-09-11T09:29:33Z",
            "eventSource": "lambda.amazonaws.com",
            "eventName": "Invoke",
            "eventID": "e-1",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2",
            "recipientAccountId": "111122223333",
            "userIdentity": {
                "type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                "accountId": "111122223333", "accessKeyId": "AKIA1", "userName": "alice"
            },
            "requestParameters": {"functionName": "f", "qualifier": "", "payload": {"a": [1, "b"]}},
        }));
        assert_eq!(
            to_ecs(&record),
            json!({
                "@timestamp": "2024-09-11T09:29:33.000Z",
                "event": {"provider": "lambda.amazonaws.com", "action": "Invoke", "id": "e-1",
                          "outcome": "success", "kind": "event", "dataset": "aws.cloudtrail"},
                "cloud": {"region": "us-east-1", "account": {"id": "111122223333"}},
                "aws": {"cloudtrail": {
                    "user_identity": {"arn": "arn:aws:iam::111122223333:user/alice", "type": "IAMUser",
                                      "access_key_id": "AKIA1"},
                    "recipient_account_id": "111122223333",
                    "request_parameters": "{functionName=f, payload={a=[1, b]}}",
                    "flattened": {"request_parameters": {"functionName": "f", "payload": {"a": [1, "b"]}}},
                }},
                "source": {"address": "203.0.113.7", "ip": "203.0.113.7"},
                "user_agent": {"original": "aws-cli/2"},
                "user": {"name": "alice"},
                "data_stream": {"dataset": "aws.cloudtrail"},
            })
        );
    }

    #[test]
    fn falls_back_for_assumed_roles_and_missing_accounts() {
        let record = map(json!({
            "eventName": "Invoke",
            "recipientAccountId": "999",
            "sourceIPAddress": "states.amazonaws.com",
            "userIdentity": {"type": "AssumedRole", "accountId": "", "userName": null,
                "sessionContext": {"sessionIssuer": {"userName": "deploy-role"}}},
        }));
        let ecs = to_ecs(&record);
        assert_eq!(ecs["user"]["name"], "deploy-role");
        assert_eq!(ecs["cloud"]["account"]["id"], "999");
        assert_eq!(ecs["source"]["address"], "states.amazonaws.com");
        assert!(ecs["source"].get("ip").is_none());
    }

    #[test]
    fn any_error_field_is_a_failure() {
        for error in [
            json!({"errorCode": "AccessDenied"}),
            json!({"errorMessage": "no"}),
        ] {
            let mut record = map(error);
            record.insert("eventName".into(), "Invoke".into());
            assert_eq!(to_ecs(&record)["event"]["outcome"], "failure");
        }
        let record = map(json!({"eventName": "Invoke", "errorCode": "", "errorMessage": null}));
        assert_eq!(to_ecs(&record)["event"]["outcome"], "success");
    }

    #[test]
    fn a_console_sign_in_answers_for_itself() {
        let sign_in = |answer: Value, extra: Value| {
            let mut record = map(json!({
                "eventName": "ConsoleLogin",
                "responseElements": {"ConsoleLogin": answer},
                "additionalEventData": {"MFAUsed": "No", "MobileVersion": "Yes"},
            }));
            record.extend(map(extra));
            to_ecs(&record)
        };
        let failed = sign_in(json!("Failure"), json!({}));
        assert_eq!(failed["event"]["outcome"], "failure");
        let flags = &failed["aws"]["cloudtrail"]["console_login"]["additional_eventdata"];
        assert_eq!(flags["mfa_used"], false);
        assert_eq!(flags["mobile_version"], true);
        // The answer wins over an error field; a non-string answer leaves the error's outcome.
        let answered = sign_in(json!("Success"), json!({"errorMessage": "x"}));
        assert_eq!(answered["event"]["outcome"], "success");
        let odd = sign_in(json!(1), json!({"errorMessage": "x"}));
        assert_eq!(odd["event"]["outcome"], "failure");
        // Other events neither read the answer nor get the flags.
        let mut other = map(json!({
            "eventName": "GetUser",
            "responseElements": {"ConsoleLogin": "Failure"},
            "additionalEventData": {"MFAUsed": "No"},
        }));
        let ecs = to_ecs(&other);
        assert_eq!(ecs["event"]["outcome"], "success");
        assert!(ecs["aws"]["cloudtrail"].get("console_login").is_none());
        other.insert("errorCode".into(), "E".into());
        assert_eq!(to_ecs(&other)["event"]["outcome"], "failure");
    }

    #[test]
    fn resources_are_renamed_and_kept_once() {
        let record = map(json!({
            "eventName": "AssumeRole",
            "resources": [
                {"ARN": "arn:a", "accountId": "1", "type": "AWS::IAM::Role"},
                "not an object",
                {"ARN": "arn:b", "accountId": "", "type": null},
                {"ARN": "arn:a", "accountId": "1", "type": "AWS::IAM::Role"},
            ],
        }));
        assert_eq!(
            to_ecs(&record)["aws"]["cloudtrail"]["resources"],
            json!([
                {"arn": "arn:a", "account_id": "1", "type": "AWS::IAM::Role"},
                {"arn": "arn:b"},
            ])
        );
    }

    #[test]
    fn the_rendering_length_is_counted_without_rendering() {
        for value in [
            json!({}),
            json!([]),
            json!({"a": [1, "é", null, true, {"b": 2.5}], "c": {}}),
            json!("plain"),
        ] {
            let mut rendered = String::new();
            render_java_style(&value, &mut rendered);
            assert_eq!(
                java_style_chars(&value),
                rendered.chars().count(),
                "{value}"
            );
        }
    }

    #[test]
    fn flattened_copies_stop_at_a_keywords_length() {
        let short = map(json!({"requestParameters": {"bucketName": "b", "acl": ""}}));
        assert_eq!(
            to_ecs(&short)["aws"]["cloudtrail"]["flattened"]["request_parameters"],
            json!({"bucketName": "b"})
        );
        let long = map(json!({"requestParameters": {"policy": "x".repeat(FLATTENED_LIMIT)}}));
        let ecs = to_ecs(&long);
        assert!(ecs["aws"]["cloudtrail"].get("flattened").is_none());
        assert!(ecs["aws"]["cloudtrail"]["request_parameters"].is_string());
    }

    #[test]
    fn the_lookup_is_the_table() {
        for row in MAPPING {
            assert_eq!(mapping(row.ecs), Some(row), "{}", row.ecs);
        }
        assert_eq!(mapping("host.name"), None);
        assert!(copies_verbatim("user.name"));
        assert!(!copies_verbatim("event.outcome"));
        assert!(!copies_verbatim("data_stream.dataset"));
    }

    #[test]
    fn tells_raw_from_ecs() {
        assert!(is_raw_record(&map(json!({"eventSource": "x"}))));
        assert!(!is_raw_record(&map(json!({"event": {"provider": "x"}}))));
    }

    #[test]
    fn finds_every_marker_a_raw_record_may_hold() {
        for key in RAW_MARKERS {
            assert!(
                may_be_raw(format!(r#"{{"a":1, "{key}" :"x"}}"#).as_bytes()),
                "{key}"
            );
            assert!(
                !may_be_raw(format!(r#"{{"{key}s":"x"}}"#).as_bytes()),
                "{key}"
            );
        }
        for ecs in [
            r#"{"event":{"action":"x","provider":"y"},"event.outcome":"success"}"#,
            r#"{"event.action":"eventNames","x":"an eventTime"}"#,
            r#"{"event\u0053ource":"x"}"#,
        ] {
            assert!(!may_be_raw(ecs.as_bytes()), "{ecs}");
        }
        // A value spelled as a marker may be one: the scan looks.
        assert!(may_be_raw(br#"{"event.action":"eventName"}"#));
    }

    #[test]
    fn finds_a_marker_wherever_it_starts() {
        // Each marker at every offset, so that it starts in every lane of a vector, across the
        // vectors' edges and in the bytes after the last whole one; and near misses there.
        for key in RAW_MARKERS {
            for padding in 0..40 {
                let spaces = " ".repeat(padding);
                let raw = format!(r#"{{{spaces}"{key}":"x"}}"#);
                assert!(may_be_raw(raw.as_bytes()), "{raw}");
                let cut = format!(r#"{{{spaces}"{key}"#);
                assert!(!may_be_raw(cut.as_bytes()), "{cut}");
                let longer = format!(r#"{{{spaces}"{key}x":"x", "u":"e", "e"}}"#);
                assert!(!may_be_raw(longer.as_bytes()), "{longer}");
            }
        }
    }
}
