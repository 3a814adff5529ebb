//! The rule as data: query, term fields, windows and metadata in one declaration.
//!
//! The engine in [`crate::detector`] knows nothing of Lambda or CloudTrail; another new-terms rule is
//! another [`RuleDefinition`].

use crate::bytes;

/// One clause of a conjunctive KQL query, over ECS field names.
#[derive(Debug, Clone, Copy)]
pub enum Clause {
    /// `field: "value"`: some value of the field equals `value`, case-sensitively.
    Is {
        /// ECS field name.
        field: &'static str,
        /// Exact value.
        value: &'static str,
    },
    /// `field: pattern` with `*` / `?`: some value of the field matches the whole pattern.
    Matches {
        /// ECS field name.
        field: &'static str,
        /// KQL wildcard pattern.
        pattern: &'static str,
    },
    /// `field: *`: the field has a value.
    Exists {
        /// ECS field name.
        field: &'static str,
    },
    /// `not field: *`: the field has no value.
    Absent {
        /// ECS field name.
        field: &'static str,
    },
}

/// A document as the query reads it. A reader that sees only part of a record (the fast path)
/// answers `None` where it cannot tell.
pub trait QueryFields {
    /// Whether some value of `field` passes `test`.
    fn any_value(&self, field: &str, test: impl Fn(&str) -> bool) -> Option<bool>;
    /// Whether `field` has a value.
    fn exists(&self, field: &str) -> Option<bool>;
}

impl Clause {
    /// The ECS field the clause reads.
    pub const fn field(&self) -> &'static str {
        match *self {
            Clause::Is { field, .. }
            | Clause::Matches { field, .. }
            | Clause::Exists { field }
            | Clause::Absent { field } => field,
        }
    }

    /// Whether the clause holds for `document`; `None` when the document cannot tell.
    pub fn holds(&self, document: &impl QueryFields) -> Option<bool> {
        match *self {
            Clause::Is { field, value } => document.any_value(field, |found| {
                bytes::equal(found.as_bytes(), value.as_bytes())
            }),
            Clause::Matches { field, pattern } => {
                document.any_value(field, |found| crate::wildcard::matches(pattern, found))
            }
            Clause::Exists { field } => document.exists(field),
            Clause::Absent { field } => document.exists(field).map(|exists| !exists),
        }
    }
}

/// Whether every clause of a conjunctive query holds for `document`, clause by clause: `None` as
/// soon as a clause cannot be told before one is known to fail.
pub fn query_holds(query: &[Clause], document: &impl QueryFields) -> Option<bool> {
    for clause in query {
        if !clause.holds(document)? {
            return Some(false);
        }
    }
    Some(true)
}

/// A term field: the first of `sources` that has a value gives the term its values.
#[derive(Debug, Clone, Copy)]
pub struct TermField {
    /// The ECS field the term is named after.
    pub name: &'static str,
    /// Fields read in order; the first with any value is used.
    pub sources: &'static [&'static str],
}

/// The profiles a rule can run under (the contract's type, which the host speaks too).
pub use newterms_contract::outcome::Profile;

/// How a rule runs under one profile.
#[derive(Debug, Clone, Copy)]
pub struct ProfileDefinition {
    /// Which profile.
    pub profile: Profile,
    /// History window in milliseconds.
    pub window_ms: u64,
    /// Term fields, in the order alerts list their values.
    pub terms: &'static [TermField],
}

/// A MITRE ATT&CK tactic or technique.
#[derive(Debug, Clone, Copy)]
pub struct AttackReference {
    /// Identifier, e.g. `TA0002`.
    pub id: &'static str,
    /// Name, e.g. `Execution`.
    pub name: &'static str,
    /// Reference URL.
    pub reference: &'static str,
}

/// Everything that makes a new-terms rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleDefinition {
    /// Human-readable name.
    pub name: &'static str,
    /// Stable identifier.
    pub rule_id: &'static str,
    /// Version of the definition.
    pub version: u32,
    /// low, medium, high or critical.
    pub severity: &'static str,
    /// 0 to 100.
    pub risk_score: u32,
    /// MITRE ATT&CK tactic.
    pub tactic: AttackReference,
    /// MITRE ATT&CK techniques.
    pub techniques: &'static [AttackReference],
    /// Tags as published.
    pub tags: &'static [&'static str],
    /// The query as its authors wrote it, for people.
    pub kql: &'static str,
    /// The same query as clauses, all of which must hold.
    pub query: &'static [Clause],
    /// One entry per profile.
    pub profiles: &'static [ProfileDefinition],
}

impl RuleDefinition {
    /// How the rule runs under `profile`.
    pub fn profile(&self, profile: Profile) -> &ProfileDefinition {
        self.profiles
            .iter()
            .find(|candidate| candidate.profile == profile)
            .unwrap_or(&self.profiles[0])
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1_000;

const ACCOUNT: TermField = TermField {
    name: "cloud.account.id",
    // Newer Elastic integrations fall back to the recipient account.
    sources: &["cloud.account.id", "aws.cloudtrail.recipient_account_id"],
};

/// AWS Lambda Function Invoked by an Unusual Principal (Elastic rule 07cd35a6, version 1).
pub const LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL: RuleDefinition = RuleDefinition {
    name: "AWS Lambda Function Invoked by an Unusual Principal",
    rule_id: "07cd35a6-c267-4394-a782-6a9428aea9d3",
    version: 1,
    severity: "medium",
    risk_score: 47,
    tactic: AttackReference {
        id: "TA0002",
        name: "Execution",
        reference: "https://attack.mitre.org/tactics/TA0002/",
    },
    techniques: &[AttackReference {
        id: "T1648",
        name: "Serverless Execution",
        reference: "https://attack.mitre.org/techniques/T1648/",
    }],
    tags: &[
        "Domain: Cloud",
        "Data Source: AWS",
        "Data Source: Amazon Web Services",
        "Data Source: AWS Lambda",
        "Use Case: Threat Detection",
        "Tactic: Execution",
        "Resources: Investigation Guide",
    ],
    kql: "data_stream.dataset: \"aws.cloudtrail\" and event.provider: \"lambda.amazonaws.com\" \
          and event.action: Invoke* and event.outcome: \"success\" \
          and not aws.cloudtrail.user_identity.invoked_by: * and aws.cloudtrail.user_identity.arn: *",
    query: &[
        Clause::Is {
            field: "data_stream.dataset",
            value: "aws.cloudtrail",
        },
        Clause::Is {
            field: "event.provider",
            value: "lambda.amazonaws.com",
        },
        Clause::Matches {
            field: "event.action",
            pattern: "Invoke*",
        },
        Clause::Is {
            field: "event.outcome",
            value: "success",
        },
        Clause::Absent {
            field: "aws.cloudtrail.user_identity.invoked_by",
        },
        Clause::Exists {
            field: "aws.cloudtrail.user_identity.arn",
        },
    ],
    profiles: &[
        ProfileDefinition {
            profile: Profile::Default,
            window_ms: 14 * DAY_MS,
            terms: &[
                ACCOUNT,
                TermField {
                    name: "user.name",
                    // A root identity has no user name: without this it would never alert.
                    sources: &["user.name", "aws.cloudtrail.user_identity.arn"],
                },
            ],
        },
        ProfileDefinition {
            profile: Profile::Elastic,
            window_ms: 7 * DAY_MS,
            terms: &[
                ACCOUNT,
                TermField {
                    name: "user.name",
                    sources: &["user.name"],
                },
            ],
        },
    ],
};
