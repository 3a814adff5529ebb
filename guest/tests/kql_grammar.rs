//! KQL as Kibana parses and Elasticsearch evaluates it on keyword fields.

use newterms_guest::kql::parse::{Field, Query, RangeOp, Value};
use newterms_guest::kql::{Compiled, parse};
use serde_json::{Value as Json, json};

fn is(field: &str, text: &str) -> Query {
    value_of(field, text, false)
}

fn quoted(field: &str, text: &str) -> Query {
    value_of(field, text, true)
}

fn value_of(field: &str, text: &str, quoted: bool) -> Query {
    Query::Is {
        field: Some(Field {
            name: field.to_owned(),
            wildcard: false,
        }),
        value: Value::Literal {
            text: text.to_owned(),
            quoted,
        },
    }
}

fn not(query: Query) -> Query {
    Query::Not(Box::new(query))
}

fn parsed(text: &str) -> Query {
    parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn matches(query: &str, document: Json) -> bool {
    let compiled = Compiled::new(&parsed(query)).unwrap_or_else(|error| panic!("{error}"));
    compiled.matches(&document)
}

#[test]
fn or_is_lowest_then_and_then_not() {
    assert_eq!(
        parsed("a:1 or b:2 and c:3"),
        Query::Or(vec![
            is("a", "1"),
            Query::And(vec![is("b", "2"), is("c", "3")])
        ])
    );
    assert_eq!(
        parsed("not a:1 and b:2"),
        Query::And(vec![not(is("a", "1")), is("b", "2")])
    );
    assert_eq!(
        parsed("(a:1 or b:2) and c:3"),
        Query::And(vec![
            Query::Or(vec![is("a", "1"), is("b", "2")]),
            is("c", "3")
        ])
    );
    assert_eq!(parsed("a:1 OR b:2"), parsed("a:1 or b:2"));
    assert_eq!(parsed("a:1 AnD b:2"), parsed("a:1 and b:2"));
}

#[test]
fn value_lists_apply_the_field_to_each_value() {
    assert_eq!(
        parsed("f:(a or b and not c)"),
        Query::Or(vec![
            is("f", "a"),
            Query::And(vec![is("f", "b"), not(is("f", "c"))])
        ])
    );
    assert!(matches("f:(a or b)", json!({"f": "b"})));
    assert!(!matches("f:(a and b)", json!({"f": "b"})));
    assert!(matches("f:(a and b)", json!({"f": ["b", "a"]})));
}

#[test]
fn unquoted_values_hold_spaces_until_a_keyword() {
    assert_eq!(parsed("f: hello world"), is("f", "hello world"));
    assert_eq!(parsed("f: hello world  "), is("f", "hello world"));
    assert_eq!(parsed("f: a or"), is("f", "a or"));
    assert_eq!(
        parsed("f: orange and g: x"),
        Query::And(vec![is("f", "orange"), is("g", "x")])
    );
    // `not` and a space end an unquoted value anywhere, even inside a word, as in Kibana.
    assert!(parse("f: cannot be").is_err());
    assert!(parse("not not f: a").is_err());
    assert!(parse("not(f: a)").is_err());
}

#[test]
fn quoted_values_are_literal() {
    assert_eq!(parsed(r#"f: "a*b""#), quoted("f", "a*b"));
    assert_eq!(parsed(r#"f: "a\"b""#), quoted("f", "a\"b"));
    assert_eq!(parsed(r#"f: "C:\Windows\n""#), quoted("f", "C:\\Windows\n"));
    assert_eq!(parsed(r#"f: "a\\b""#), quoted("f", "a\\b"));
    assert_eq!(parsed(r#"f: "\u0041 or b""#), quoted("f", "A or b"));
    assert!(matches(r#"f: "a*b""#, json!({"f": "a*b"})));
    assert!(!matches(r#"f: "a*b""#, json!({"f": "aXb"})));
}

#[test]
fn backslash_escapes_in_unquoted_values() {
    assert_eq!(parsed(r"f: a\:b"), is("f", "a:b"));
    assert_eq!(parsed(r"f: \*"), is("f", "*"));
    assert_eq!(parsed(r"f: \(x\)"), is("f", "(x)"));
    assert_eq!(parsed(r"f: \or"), is("f", "or"));
    assert_eq!(parsed(r"f: C\:\\Windows"), is("f", "C:\\Windows"));
    assert_eq!(parsed(r"f: a\tb"), is("f", "a\tb"));
    // A backslash before anything else is not an escape: the value ends there.
    assert!(parse(r"f: a\d").is_err());
    assert!(matches(r"f: \*", json!({"f": "*"})));
    assert!(!matches(r"f: \*", json!({"f": "x"})));
}

#[test]
fn only_the_star_is_a_wildcard() {
    assert_eq!(parsed("f: a?c"), is("f", "a?c"));
    assert!(matches("f: a?c", json!({"f": "a?c"})));
    assert!(!matches("f: a?c", json!({"f": "abc"})));
    assert!(matches("f: Invoke*", json!({"f": "InvokeAsync"})));
    assert!(!matches("f: Invoke*", json!({"f": "invoke"})));
    assert!(matches("f: *a?c*", json!({"f": "xa?cx"})));
    assert!(!matches("f: *a?c*", json!({"f": "xabcx"})));
}

#[test]
fn exists_and_absent_values() {
    assert!(parsed("f: *").eq(&Query::Is {
        field: Some(Field {
            name: "f".into(),
            wildcard: false
        }),
        value: Value::Wildcard(vec![String::new(), String::new()]),
    }));
    for absent in [
        json!({}),
        json!({"f": null}),
        json!({"f": ""}),
        json!({"f": []}),
        json!({"f": [null, ""]}),
        json!({"f": {"g": 1}}),
    ] {
        assert!(!matches("f: *", absent.clone()), "{absent}");
        assert!(matches("not f: *", absent.clone()), "{absent}");
    }
    assert!(matches("f: *", json!({"f": 0})));
    assert!(matches("f: *", json!({"f": false})));
    assert!(matches(r#"f: (* and not "")"#, json!({"f": "x"})));
}

#[test]
fn arrays_match_any_element_and_not_none() {
    let document = json!({"f": ["a", "b"]});
    assert!(matches("f: a", document.clone()));
    assert!(matches("f: b", document.clone()));
    assert!(!matches("not f: a", document.clone()));
    assert!(matches("not f: c", document));
    assert!(matches(
        "f: a",
        json!({"x": [{"f": "z"}, {"f": "a"}]})
            .get("x")
            .cloned()
            .unwrap_or_default()
    ));
}

#[test]
fn numbers_and_booleans_compare_by_their_json_text() {
    assert!(matches("port: 445", json!({"port": 445})));
    assert!(matches("port: 445", json!({"port": "445"})));
    assert!(matches(r#"port: "445""#, json!({"port": 445})));
    assert!(!matches("port: 445", json!({"port": 445.0})));
    assert!(matches("ok: true", json!({"ok": true})));
    assert!(matches("ok: true", json!({"ok": "true"})));
    assert!(!matches("ok: true", json!({"ok": "True"})));
}

#[test]
fn nested_dotted_and_mixed_keys() {
    for document in [
        json!({"event": {"action": "x"}}),
        json!({"event.action": "x"}),
        json!({"a": {"b.c": {"d": "x"}}, "event": {"action": "x"}}),
    ] {
        assert!(matches("event.action: x", document.clone()), "{document}");
    }
    assert!(matches("a.b.c.d: x", json!({"a": {"b.c": {"d": "x"}}})));
    assert!(matches(
        "a.b.c.d: x",
        json!({"a.b": [{"c": {"d": ["y", "x"]}}]})
    ));
}

/// Each query on each document, and whether it must match.
fn cases(cases: &[(&str, Json, bool)]) {
    for (query, document, expected) in cases {
        assert_eq!(
            matches(query, document.clone()),
            *expected,
            "{query} on {document}"
        );
    }
}

#[test]
fn caseless_fields_match_the_base_field_case_insensitively() {
    let upper = json!({"process": {"name": "CMD.EXE"}});
    cases(&[
        ("process.name.caseless: cmd.exe", upper.clone(), true),
        (
            "process.name.caseless: CMD*",
            json!({"process": {"name": "cmd.exe"}}),
            true,
        ),
        ("process.name: cmd.exe", upper, false),
        (
            "process.name.caseless: cmd.exe",
            json!({"process": {"name": "cmd.exe2"}}),
            false,
        ),
    ]);
}

#[test]
fn ip_fields_match_cidr_blocks_and_any_spelling() {
    let source = |ip: &str| json!({"source": {"ip": ip}});
    cases(&[
        ("source.ip: 10.0.0.0/8", source("10.20.30.40"), true),
        ("source.ip: 10.0.0.0/8", source("11.0.0.1"), false),
        ("source.ip: 10.0.0.0/8", source("::ffff:10.0.0.1"), true),
        (r#"source.ip: "FC00::/7""#, source("fd00::1"), true),
        (r#"source.ip: "::1""#, source("0:0:0:0:0:0:0:1"), true),
        ("source.ip: 10.0.0.0/8", source("not-an-ip"), false),
        // Not an IP field: the text is compared as it is.
        (
            "source.address: 10.0.0.0/8",
            json!({"source": {"address": "10.0.0.1"}}),
            false,
        ),
    ]);
    assert!(Compiled::new(&parsed("source.ip: nonsense")).is_err());
}

#[test]
fn ranges_on_numbers_and_dates() {
    assert_eq!(
        parsed("network.bytes >= 256"),
        Query::Range {
            field: Field {
                name: "network.bytes".into(),
                wildcard: false
            },
            op: RangeOp::Gte,
            value: "256".into()
        }
    );
    assert!(matches("n >= 256", json!({"n": 256})));
    assert!(matches("n >= 256", json!({"n": "1000"})));
    assert!(!matches("n > 256", json!({"n": 256})));
    assert!(matches("n < 256", json!({"n": [1000, 3]})));
    assert!(!matches("n <= 1023", json!({"n": "abc"})));
    assert!(matches("n <= 1.5", json!({"n": 1.5})));
    let date = r#"t >= "2024-01-01T00:00:00Z""#;
    assert!(matches(date, json!({"t": "2024-01-01T01:00:00+01:00"})));
    assert!(!matches(date, json!({"t": "2023-12-31T23:59:59.999Z"})));
    assert!(Compiled::new(&parsed("t >= now-1d")).is_err());
    // A date alone covers its whole day, as Elasticsearch rounds the bounds.
    let end_of_day = json!({"t": "2024-01-01T23:59:59.999Z"});
    let next_day = json!({"t": "2024-01-02T00:00:00Z"});
    let start_of_day = json!({"t": "2024-01-01T00:00:00Z"});
    assert!(matches("t <= 2024-01-01", end_of_day.clone()));
    assert!(!matches("t <= 2024-01-01", next_day.clone()));
    assert!(!matches("t > 2024-01-01", end_of_day.clone()));
    assert!(matches("t > 2024-01-01", next_day));
    assert!(matches("t >= 2024-01-01", start_of_day.clone()));
    assert!(!matches("t < 2024-01-01", start_of_day));
    assert!(matches("t < 2024-01-02", end_of_day));
}

#[test]
fn nested_queries_hold_for_one_object() {
    let query = "p: { a: 1 and b: 2 }";
    assert!(!matches(
        query,
        json!({"p": [{"a": 1, "b": 3}, {"a": 3, "b": 2}]})
    ));
    assert!(matches(
        query,
        json!({"p": [{"a": 1, "b": 3}, {"a": 1, "b": 2}]})
    ));
    assert!(matches(query, json!({"p": {"a": "1", "b": "2"}})));
    assert!(matches(query, json!({"p.a": 1, "p.b": 2})));
    assert!(matches("x.p: { a: 1 }", json!({"x.p": [{"a": 1}]})));
    assert!(matches(
        "p: { q: { a: 1 } }",
        json!({"p": [{"q": [{"a": 1}]}]})
    ));
}

#[test]
fn empty_query_matches_everything() {
    assert_eq!(parsed(""), Query::All);
    assert_eq!(parsed("  \n"), Query::All);
    assert!(matches(" ", json!({})));
}

#[test]
fn errors_say_where() {
    let error = parse("a: b and\n  c: (d or").err();
    assert!(error.as_ref().is_some_and(|e| e.line == 2), "{error:?}");
    let error = parse("a: b\nand c: )").err();
    assert!(error.is_some_and(|e| e.line == 2 && e.column == 8));
    assert!(Compiled::new(&parsed("just a value")).is_err());
    assert!(Compiled::new(&parsed("f*: x")).is_err());
    assert!(Compiled::new(&parsed("f: null")).is_err());
}

#[test]
fn hostile_queries_are_refused_not_crashed() {
    for text in [
        "(".repeat(100_000),
        format!("{}a:1{}", "(".repeat(1_000), ")".repeat(1_000)),
        format!("{}a:1", "not (".repeat(5_000)),
        format!("f:{}a", "(".repeat(10_000)),
        format!("p:{}", "{q:".repeat(10_000)),
        "a:b ".repeat(100_000),
        "\\".repeat(10_001),
        "\"".repeat(10_001),
    ] {
        assert!(parse(&text).is_err(), "{}", &text[..text.len().min(40)]);
    }
    // Nesting within the limit still parses.
    assert!(parse(&format!("{}a:1{}", "(".repeat(50), ")".repeat(50))).is_ok());
}

#[test]
fn a_field_name_of_more_parts_than_the_limit_is_refused() {
    let name = |parts: usize| vec!["a"; parts].join(".");
    let limit = newterms_guest::kql::parse::MAX_FIELD_PARTS;
    assert!(parse(&format!("{}: x", name(limit))).is_ok());
    for text in [
        format!("{}: x", name(limit + 1)),
        format!("b: x and \"{}\": *", name(60_000)),
        format!("n: {{ {}: x }}", name(limit + 1)),
    ] {
        let error = parse(&text).err().map(|error| error.to_string());
        assert!(
            error
                .as_ref()
                .is_some_and(|error| error.contains(&format!("more than {limit}"))),
            "{error:?}"
        );
    }
}
