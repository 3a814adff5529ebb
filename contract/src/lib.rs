//! What the newterms faces and hosts share beside the WIT, with no rule logic, so that a host reads a
//! configuration and reports the rule's errors without linking the rule: the configuration file
//! schema ([`settings`]) and the wording of the rule's refusals ([`wording`]). The snapshot format
//! has a crate of its own (`newterms-snapshot`), with its wording.

#[cfg(feature = "settings")]
pub mod settings;
pub mod wording;
