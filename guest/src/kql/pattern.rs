//! Wildcard patterns compiled once: KQL's (only `*` is special, every other character, `?` included,
//! matches itself) and Elasticsearch `wildcard` queries' (`*`, `?` for one character, `\` escapes).

use crate::bytes;

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    /// This character.
    Char(char),
    /// Exactly one character.
    One,
    /// Any run of characters, none included.
    Any,
}

/// A pattern that must cover the whole value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    tokens: Vec<Token>,
    case_insensitive: bool,
    /// For a case-sensitive pattern of characters and `*` only: its literal runs between the
    /// stars, matched on the value's bytes without decoding it (the same answer: a run of UTF-8
    /// found in UTF-8 text starts and ends on character boundaries).
    runs: Option<Vec<String>>,
}

impl Pattern {
    /// A pattern from its tokens; with `case_insensitive`, characters compare by [`fold`].
    pub fn new(tokens: Vec<Token>, case_insensitive: bool) -> Self {
        let tokens = if case_insensitive {
            tokens
                .into_iter()
                .map(|token| match token {
                    Token::Char(c) => Token::Char(fold_char(c)),
                    other => other,
                })
                .collect()
        } else {
            tokens
        };
        let runs = (!case_insensitive && !tokens.contains(&Token::One)).then(|| {
            tokens
                .split(|token| *token == Token::Any)
                .map(|run| {
                    run.iter()
                        .filter_map(|token| match token {
                            Token::Char(c) => Some(*c),
                            Token::One | Token::Any => None,
                        })
                        .collect()
                })
                .collect()
        });
        Self {
            tokens,
            case_insensitive,
            runs,
        }
    }

    /// An Elasticsearch `wildcard` query value: `*` any run, `?` one character, `\` takes the next
    /// character literally (a trailing `\` is itself).
    pub fn elasticsearch(value: &str, case_insensitive: bool) -> Self {
        let mut tokens = Vec::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => Token::Char(chars.next().unwrap_or('\\')),
                other => Token::Char(other),
            });
        }
        Self::new(tokens, case_insensitive)
    }

    /// The tokens, folded when the pattern is case-insensitive.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether characters compare case-insensitively.
    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// Whether matching searches through the value: not an equality, a prefix or a suffix (a
    /// pattern with at most one `*`, matched by comparing ends).
    pub fn searches(&self) -> bool {
        self.runs.as_ref().is_none_or(|runs| runs.len() > 2)
    }

    /// Whether the whole of `value` matches. Backtracks only to the last `*`: at most the product of
    /// the two lengths, never exponential.
    pub fn matches(&self, value: &str) -> bool {
        if let Some(runs) = &self.runs {
            return matches_runs(runs, value);
        }
        if self.case_insensitive {
            let folded: Vec<char> = value.chars().map(fold_char).collect();
            self.matches_chars(&folded)
        } else {
            let chars: Vec<char> = value.chars().collect();
            self.matches_chars(&chars)
        }
    }

    fn matches_chars(&self, value: &[char]) -> bool {
        let tokens = &self.tokens;
        let (mut at_value, mut at_token) = (0, 0);
        let mut last_star: Option<(usize, usize)> = None;
        while at_value < value.len() {
            match tokens.get(at_token) {
                Some(Token::Any) => {
                    last_star = Some((at_token, at_value));
                    at_token += 1;
                }
                Some(Token::One) => {
                    at_value += 1;
                    at_token += 1;
                }
                Some(Token::Char(c)) if *c == value[at_value] => {
                    at_value += 1;
                    at_token += 1;
                }
                _ => match last_star {
                    Some((star, swallowed_to)) => {
                        at_token = star + 1;
                        at_value = swallowed_to + 1;
                        last_star = Some((star, at_value));
                    }
                    None => return false,
                },
            }
        }
        tokens[at_token.min(tokens.len())..]
            .iter()
            .all(|token| *token == Token::Any)
    }
}

/// Whether `value` is the runs with anything between them: the first a prefix, the last a suffix,
/// the others found in order, each leftmost (which finds a match whenever there is one).
fn matches_runs(runs: &[String], value: &str) -> bool {
    let (Some((first, rest)), Some(last)) = (runs.split_first(), runs.last()) else {
        return value.is_empty();
    };
    if runs.len() == 1 {
        return value == first;
    }
    let (value, first, last) = (value.as_bytes(), first.as_bytes(), last.as_bytes());
    // `bytes::equal`, not `starts_with`: the runs are short, most are empty (`*text*`), and a
    // `memcmp` call for each was a tenth of a rule pack's time.
    let Some(mut middle) = value
        .get(..first.len())
        .filter(|prefix| bytes::equal(prefix, first))
        .and_then(|_| value.get(first.len()..))
        .and_then(|after| {
            let split = after.len().checked_sub(last.len())?;
            bytes::equal(after.get(split..)?, last).then(|| after.get(..split))?
        })
    else {
        return false;
    };
    // `*text*`, the usual pattern, without a loop: in the sandbox each loop entered costs a check
    // of its deadline.
    if let [_, run, _] = runs {
        return bytes::find(middle, run.as_bytes()).is_some();
    }
    for run in rest.iter().take(rest.len().saturating_sub(1)) {
        match bytes::find(middle, run.as_bytes()) {
            Some(at) => middle = middle.get(at + run.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// Case folding as Lucene's lowercase normalizer does it: one character to one character (the first
/// of a longer lowercase mapping, which is Java's simple mapping for the cases that differ).
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// `text` folded by [`fold_char`].
pub fn fold(text: &str) -> String {
    text.chars().map(fold_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kql(pattern: &str) -> Pattern {
        Pattern::new(
            pattern
                .chars()
                .map(|c| if c == '*' { Token::Any } else { Token::Char(c) })
                .collect(),
            false,
        )
    }

    #[test]
    fn kql_question_mark_is_literal() {
        assert!(kql("a?c").matches("a?c"));
        assert!(!kql("a?c").matches("abc"));
        assert!(kql("Invoke*").matches("InvokeAsync"));
        assert!(!kql("Invoke*").matches("XInvoke"));
        assert!(kql("*").matches(""));
        assert!(kql("**a**").matches("bab"));
        assert!(!kql("*a*a*a*a*b").matches(&"a".repeat(5_000)));
    }

    #[test]
    fn elasticsearch_wildcards_and_escapes() {
        let pattern = Pattern::elasticsearch("?:\\\\Program Files\\\\*.exe", true);
        assert!(pattern.matches("C:\\Program Files\\x\\y.EXE"));
        assert!(!pattern.matches("C:\\Program Files (x86)\\y.dll"));
        assert!(Pattern::elasticsearch("a\\*", false).matches("a*"));
        assert!(!Pattern::elasticsearch("a\\*", false).matches("ab"));
        assert!(Pattern::elasticsearch("a\\", false).matches("a\\"));
    }

    #[test]
    fn runs_match_as_characters_do() {
        // Every pattern of up to 5 tokens over a small alphabet (a multi-byte letter included),
        // against every value of up to 5 letters: the byte runs agree with the character matcher.
        let alphabet = ['a', 'b', 'é', '*'];
        let texts = |length: usize, letters: &[char]| -> Vec<String> {
            let mut out = vec![String::new()];
            for _ in 0..length {
                let longer: Vec<String> = out
                    .iter()
                    .flat_map(|text| letters.iter().map(move |c| format!("{text}{c}")))
                    .collect();
                out.extend(longer);
            }
            out.sort();
            out.dedup();
            out
        };
        let values = texts(5, &alphabet[..3]);
        let mut checked = 0;
        for pattern in texts(5, &alphabet) {
            let with_runs = kql(&pattern);
            assert!(with_runs.runs.is_some());
            let by_chars = Pattern {
                runs: None,
                ..with_runs.clone()
            };
            for value in &values {
                assert_eq!(
                    with_runs.matches(value),
                    by_chars.matches(value),
                    "{pattern} on {value}"
                );
                checked += 1;
            }
        }
        assert!(checked > 100_000);
    }
}
