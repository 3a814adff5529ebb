//! Elastic detection rules written in KQL: the query language as Kibana parses it ([`parse`]), its
//! evaluation over JSON documents with keyword semantics ([`eval`]), and rule files in Elastic's
//! detection-rules TOML ([`rule`]).
//!
//! Rule files are configuration from outside the sandbox: nothing here panics, recursion and sizes
//! are bounded, and every refusal is a typed error saying where (line and column) and why.

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
