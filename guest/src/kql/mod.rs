//! Elastic detection rules written in KQL: the query language as Kibana parses it ([`parse`]), its
//! evaluation over JSON documents with keyword semantics ([`eval`]), and rule files in Elastic's
//! detection-rules TOML ([`rule`]).
//!
//! Rule files are configuration from outside the sandbox: nothing here panics, recursion and sizes
//! are bounded, and every refusal is a typed error saying where (line and column) and why.
//!
//! # Semantics (Kibana's parse, Elasticsearch's keyword matching)
//! - Every field is a keyword: exact, case-sensitive; numbers and booleans compare by their JSON
//!   text (`445` matches `"445"`); `null`, `""` and `[]` are no value; a clause on an array holds
//!   when any value matches, its `not` when none does. Keys may be nested, dotted or mixed.
//! - Only an unquoted, unescaped `*` is a wildcard; `?` is itself. `field: *` is "has a value".
//! - `field.caseless` matches `field` case-insensitively (the integrations' lowercase normalizer).
//! - A field whose last name part is `ip` is an IP field: a value with `/` is a CIDR block, an
//!   address matches the same address in any spelling (IPv4 and IPv4-mapped IPv6 alike).
//! - Ranges compare numerically when the bound is a number, as times when it is an ISO 8601
//!   date-time or a `YYYY-MM-DD` day (the whole day, as Elasticsearch rounds it), else as text; a
//!   bound relative to the wall clock (`now-1d`) is refused.
//! - `path: { query }` holds when the whole inner query holds for one object at `path`.
//! - Refused, since they need an index mapping or the wall clock: field-name patterns (`f*: x`),
//!   values without a field, `field: null`, date math.
//! - A rule's `index` patterns filter nothing (a stream has no indices); its `filters` do.

pub mod eval;
pub mod ip;
pub mod pack;
pub mod parse;
pub mod pattern;
pub mod require;
pub mod rule;

pub use eval::{CompileError, Compiled};
pub use pack::Pack;
pub use parse::{ParseError, Query, parse};
pub use require::{Needle, Requirement};
#[cfg(feature = "rule-toml")]
pub use rule::load_rule;
pub use rule::{Rule, RuleError, load_rule_tree};
