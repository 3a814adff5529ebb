//! What the newterms faces and hosts share beside the WIT, with no rule logic, so that a host reads a
//! configuration and reports the rule's errors without linking the rule: the types of what the rule
//! reports and how it is configured ([`outcome`]), their wording ([`wording`]), the configuration
//! file schema ([`settings`]) and how rule files are found ([`rule_files`]). The snapshot format
//! has a crate of its own (`newterms-snapshot`), with its wording.

pub mod outcome;
pub mod rule_files;
#[cfg(feature = "settings")]
pub mod settings;
pub mod wording;
