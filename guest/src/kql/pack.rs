//! Many rules over one document: every field any rule reads is read from the document once, in a
//! field table shared by the rules' compiled queries.

use serde_json::Value as Json;

use super::eval::{CompileError, Compiled, Document};
use super::rule::Rule;

/// Rules evaluated together.
pub struct Pack {
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
    fields: Vec<String>,
}

impl Pack {
    /// The rules, their queries compiled against one field table.
    pub fn new(rules: Vec<Rule>) -> Result<Self, CompileError> {
        let mut fields = Vec::new();
        let compiled = rules
            .iter()
            .map(|rule| Compiled::new_in(&rule.query, &mut fields))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            compiled,
            fields,
        })
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The distinct fields the rules' queries read.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Appends to `out` the index of every rule whose query and filters `document` (ECS) matches.
    pub fn matching(&self, document: &Json, out: &mut Vec<usize>) {
        let mut shared = Document::new(document, &self.fields);
        for (index, (rule, compiled)) in self.rules.iter().zip(&self.compiled).enumerate() {
            if compiled.matches_in(&mut shared)
                && rule.filters.iter().all(|filter| filter.passes(document))
            {
                out.push(index);
            }
        }
    }
}
