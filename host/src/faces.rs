//! The rule's faces other than the component: core modules built from the same rule crate for hosts
//! that cannot load components (see `host/build.rs` and `faces/`), embedded so that `newterms
//! component --target T` writes them and `newterms info --target T` describes them.

use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef, ValType};

/// The Fluent Bit `filter_wasm` module (`faces/fluent-bit`, `wasm32-wasip1`, no SIMD).
pub const FLUENT_BIT_MODULE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/newterms_fluent_bit.wasm"));

/// The Extism plugin (`faces/extism`, `wasm32-unknown-unknown`, no SIMD).
pub const EXTISM_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/newterms_extism.wasm"));

/// What a core module imports and exports, one line each (`module.name: func(i32) -> i32`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSummary {
    /// Imports, as `module.name: kind`.
    pub imports: Vec<String>,
    /// Exports, as `name: kind`.
    pub exports: Vec<String>,
}

/// Reads a core module's imports and exports, with function signatures.
pub fn summarize_module(bytes: &[u8]) -> Result<ModuleSummary, String> {
    let mut summary = ModuleSummary::default();
    let mut signatures: Vec<String> = Vec::new();
    // Function index to signature: imported functions first, then defined ones.
    let mut functions: Vec<usize> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|error| format!("not a WebAssembly module: {error}"))? {
            Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            } => return Err("a component, not a core module".into()),
            Payload::TypeSection(reader) => {
                for group in reader {
                    let group = group.map_err(|error| error.to_string())?;
                    for ty in group.into_types() {
                        signatures.push(match &ty.composite_type.inner {
                            CompositeInnerType::Func(func) => format!(
                                "func({}) -> ({})",
                                list(func.params()),
                                list(func.results())
                            ),
                            _ => "type".into(),
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|error| error.to_string())?;
                    let kind = match import.ty {
                        TypeRef::Func(index) => {
                            functions.push(index as usize);
                            signature(&signatures, index as usize)
                        }
                        TypeRef::Memory(_) => "memory".into(),
                        TypeRef::Table(_) => "table".into(),
                        TypeRef::Global(_) => "global".into(),
                        _ => "other".into(),
                    };
                    summary
                        .imports
                        .push(format!("{}.{}: {kind}", import.module, import.name));
                }
            }
            Payload::FunctionSection(reader) => {
                for index in reader {
                    functions.push(index.map_err(|error| error.to_string())? as usize);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|error| error.to_string())?;
                    let kind = match export.kind {
                        ExternalKind::Func => functions
                            .get(export.index as usize)
                            .map(|&ty| signature(&signatures, ty))
                            .unwrap_or_else(|| "func".into()),
                        ExternalKind::Memory => "memory".into(),
                        ExternalKind::Table => "table".into(),
                        ExternalKind::Global => "global".into(),
                        _ => "other".into(),
                    };
                    summary.exports.push(format!("{}: {kind}", export.name));
                }
            }
            _ => {}
        }
    }
    Ok(summary)
}

fn signature(signatures: &[String], index: usize) -> String {
    signatures
        .get(index)
        .cloned()
        .unwrap_or_else(|| "func".into())
}

fn list(types: &[ValType]) -> String {
    types
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fluent_bit_module_exports_the_filter_abi_and_imports_only_wasi() {
        let summary = summarize_module(FLUENT_BIT_MODULE).unwrap();
        assert!(
            summary
                .exports
                .contains(&"newterms_filter: func(i32, i32, i32, i32, i32, i32) -> (i32)".into()),
            "{summary:?}"
        );
        assert!(
            summary
                .exports
                .contains(&"malloc: func(i32) -> (i32)".into())
        );
        assert!(summary.exports.contains(&"free: func(i32) -> ()".into()));
        assert!(!summary.imports.is_empty());
        assert!(
            summary
                .imports
                .iter()
                .all(|import| import.starts_with("wasi_snapshot_preview1.")),
            "{summary:?}"
        );
    }

    #[test]
    fn a_component_is_not_a_core_module() {
        assert!(summarize_module(crate::EMBEDDED_COMPONENT).is_err());
    }
}
