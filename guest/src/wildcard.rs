//! Exception patterns (`exclude_arns`, `[[exceptions]]`): `*` matches any run of characters (none
//! included), `?` exactly one; every other character matches itself, case-sensitively, and the
//! pattern covers the whole value. Not KQL: in a rule's query only `*` is a wildcard (`kql::pattern`).

/// Whether the whole of `value` matches `pattern`.
///
/// Backtracks only to the last `*`, so the cost is at most the product of the two lengths, never
/// exponential, whatever an attacker puts in either.
pub fn matches(pattern: &str, value: &str) -> bool {
    let (mut at_value, mut at_pattern) = (0, 0);
    // Where the last `*` was, and how much of the value it has swallowed so far.
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(actual) = value[at_value..].chars().next() {
        match pattern[at_pattern..].chars().next() {
            Some('*') => {
                last_star = Some((at_pattern, at_value));
                at_pattern += 1;
            }
            Some(wanted) if wanted == '?' || wanted == actual => {
                at_value += actual.len_utf8();
                at_pattern += wanted.len_utf8();
            }
            _ => match last_star {
                Some((star, swallowed_to)) => {
                    let swallowed = value[swallowed_to..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                    at_pattern = star + 1;
                    at_value = swallowed_to + swallowed;
                    last_star = Some((star, at_value));
                }
                None => return false,
            },
        }
    }
    pattern[at_pattern..].chars().all(|c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_prefix_as_kql_reads_it() {
        for action in [
            "Invoke",
            "InvokeAsync",
            "InvokeWithResponseStream",
            "InvokeExecution",
        ] {
            assert!(matches("Invoke*", action), "{action}");
        }
        for action in ["invoke", "XInvoke", "Invok", "", "GetFunction20150331v2"] {
            assert!(!matches("Invoke*", action), "{action}");
        }
    }

    #[test]
    fn question_mark_is_one_character() {
        assert!(matches("a?c", "abc"));
        assert!(matches("a?c", "aéc"));
        assert!(!matches("a?c", "ac"));
        assert!(!matches("a?c", "abbc"));
    }

    #[test]
    fn stars_backtrack() {
        assert!(matches(
            "arn:*:role/*-deploy",
            "arn:aws:iam::1:role/ci-x-deploy"
        ));
        assert!(!matches(
            "arn:*:role/*-deploy",
            "arn:aws:iam::1:role/ci-x-deploy2"
        ));
        assert!(matches("*", ""));
        assert!(matches("**a**", "bab"));
        assert!(matches("*é", "ééé"));
        assert!(!matches("", "a"));
        assert!(!matches("a", ""));
    }

    #[test]
    fn long_hostile_input_stays_fast() {
        let value = "a".repeat(5_000);
        assert!(!matches("*a*a*a*a*b", &value));
    }
}
