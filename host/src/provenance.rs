//! What a rule component says about itself, in a custom section that the build writes into it:
//! the WIT package it implements and the rule it is. The host reads it before compiling the
//! component, and refuses one built for another version of the contract.

use serde::{Deserialize, Serialize};

/// Name of the custom section.
pub const SECTION: &str = "newterms:rule";
/// The WIT package this host speaks.
pub const WIT_PACKAGE: &str = env!("NEWTERMS_WIT_PACKAGE");

/// The content of the `newterms:rule` custom section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The WIT package the component implements, e.g. `newterms:rule@0.4.0`.
    pub wit: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The rule definition's version.
    pub rule_version: u32,
    /// The snapshot format the component writes.
    pub snapshot_format: u32,
}

/// Reads the section from a component's top level, and checks that this host can run it.
pub fn read_and_check(component: &[u8]) -> Result<Provenance, String> {
    let data = find_section(component, SECTION)?.ok_or_else(|| {
        format!("it has no {SECTION} section: it was not built as a newterms rule component")
    })?;
    let provenance: Provenance = serde_json::from_slice(data)
        .map_err(|error| format!("its {SECTION} section is unreadable: {error}"))?;
    if !compatible(&provenance.wit, WIT_PACKAGE) {
        return Err(format!(
            "it implements {}, and this host speaks {WIT_PACKAGE}",
            provenance.wit
        ));
    }
    Ok(provenance)
}

/// Same package, and the same release line: `0.1.x` with `0.1.y`, `1.x` with `1.y`.
fn compatible(found: &str, ours: &str) -> bool {
    let split = |package: &str| -> Option<(String, Vec<u64>)> {
        let (name, version) = package.split_once('@')?;
        let numbers = version
            .split('.')
            .map(|part| part.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        Some((name.to_owned(), numbers))
    };
    let (Some((found_name, found)), Some((our_name, ours))) = (split(found), split(ours)) else {
        return false;
    };
    let line = |version: &[u64]| match version {
        [0, minor, ..] => (0, *minor),
        [major, ..] => (*major, 0),
        [] => (u64::MAX, u64::MAX),
    };
    found_name == our_name && found.len() == 3 && line(&found) == line(&ours)
}

/// The data of the first top-level custom section named `name`, walking the component's sections
/// without compiling anything.
fn find_section<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let mut rest = bytes
        .strip_prefix(&COMPONENT_HEADER)
        .ok_or("it is not a WebAssembly component")?;
    while let Some((&id, after_id)) = rest.split_first() {
        let (size, after_size) = leb128(after_id).ok_or("its sections are malformed")?;
        if size > after_size.len() {
            return Err("its sections are malformed".into());
        }
        let (content, after) = after_size.split_at(size);
        if id == 0 {
            let (name_len, after_name_len) =
                leb128(content).ok_or("a custom section is malformed")?;
            if name_len <= after_name_len.len() && &after_name_len[..name_len] == name.as_bytes() {
                return Ok(Some(&after_name_len[name_len..]));
            }
        }
        rest = after;
    }
    Ok(None)
}

fn leb128(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: usize = 0;
    for (index, &byte) in bytes.iter().enumerate().take(5) {
        value |= usize::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[index + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compatible_within_a_release_line() {
        assert!(compatible("newterms:rule@0.1.0", "newterms:rule@0.1.3"));
        assert!(!compatible("newterms:rule@0.4.0", "newterms:rule@0.1.0"));
        assert!(!compatible("other:rule@0.1.0", "newterms:rule@0.1.0"));
        assert!(compatible("newterms:rule@1.4.0", "newterms:rule@1.0.2"));
        assert!(!compatible("newterms:rule@2.0.0", "newterms:rule@1.0.2"));
        assert!(!compatible("newterms:rule", "newterms:rule@0.1.0"));
    }

    #[test]
    fn the_embedded_component_says_what_it_is() {
        let provenance = read_and_check(crate::EMBEDDED_COMPONENT).expect("readable");
        assert_eq!(provenance.wit, WIT_PACKAGE);
        assert_eq!(provenance.rule_id, "07cd35a6-c267-4394-a782-6a9428aea9d3");
        assert_eq!(provenance.snapshot_format, 1);
    }
}
