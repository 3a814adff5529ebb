//! The fast path: settles plain raw CloudTrail records that raise nothing without a JSON tree.

use super::Detector;
use super::full::TIME_RANGE;
use crate::definition;
use crate::fastpath::{self, Slot};
use crate::time;

impl Detector {
    /// The fast path for records the prefilter lets through: reads a plain raw CloudTrail record
    /// without building a JSON tree (see [`crate::fastpath`]) and, when it is certain that full
    /// evaluation would raise nothing and report no error, applies its effect on counters and
    /// history and says so. Anything else (ECS documents, escapes, unusual types, exceptions, a bad
    /// time, and any event that raises an alert, whose document only the full path builds) is left
    /// to [`Detector::process_exact`], with nothing changed.
    pub(super) fn decided_quietly(&mut self, text: &[u8]) -> bool {
        let Some(fields) = fastpath::scan_plain(text, &mut self.quotes) else {
            return false;
        };
        if !fields.raw {
            return false;
        }
        match definition::query_holds(self.rule.query, &fields) {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
        }
        // The event matches: the full path would read its time, then exceptions, then terms.
        if !self.config.exceptions.is_empty() {
            return false;
        }
        let Some(time) = fields
            .event_time()
            .and_then(time::parse_iso8601)
            .filter(|millis| TIME_RANGE.contains(millis))
        else {
            return false;
        };
        let mut values = [""; 8];
        if self.profile.terms.len() > values.len() {
            return false;
        }
        for (value, term) in values.iter_mut().zip(self.profile.terms) {
            let mut found = None;
            for source in term.sources {
                match fields.ecs(source) {
                    None => return false,
                    Some(Slot::Text(text)) => {
                        found = Some(text);
                        break;
                    }
                    Some(_) => {}
                }
            }
            match found {
                Some(text) => *value = text,
                None => {
                    // A matching event without a term: counted, nothing else.
                    self.stats.matched += 1;
                    return true;
                }
            }
        }
        self.scratch_key
            .encode(values[..self.profile.terms.len()].iter().copied());
        let key = self.scratch_key.as_bytes();
        if self.config.learn {
            self.history.observe(key, time, self.window_ms);
        } else if !self.history.observe_known(key, time, self.window_ms) {
            return false;
        }
        self.stats.matched += 1;
        true
    }
}
