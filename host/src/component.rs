//! Loading rule components: the one embedded in this crate, or another of the same world.

use std::path::Path;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use crate::bindings::{RulePre, wit};
use crate::error::Error;
use crate::instance::{HostState, RuleInstance};
use crate::provenance::{self, Provenance};
use crate::sandbox::Sandbox;
use crate::types::RuleConfig;

/// The rule component that this crate's build produced from `guest/`.
pub const EMBEDDED_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/newterms_rule.wasm"));

/// A compiled rule component, ready to instantiate any number of times.
#[derive(Clone)]
pub struct RuleComponent {
    sandbox: Sandbox,
    component: Component,
    pre: RulePre<HostState>,
    origin: String,
    provenance: Provenance,
}

impl RuleComponent {
    /// The embedded component.
    pub fn embedded(sandbox: &Sandbox) -> Result<Self, Error> {
        Self::from_bytes(sandbox, EMBEDDED_COMPONENT, "the embedded rule")
    }

    /// A component from a `.wasm` file.
    pub fn from_file(sandbox: &Sandbox, path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(sandbox, &bytes, &path.display().to_string())
    }

    /// A component from its bytes; `origin` names it in errors.
    pub fn from_bytes(sandbox: &Sandbox, bytes: &[u8], origin: &str) -> Result<Self, Error> {
        // Check what the component says it is before compiling any of it.
        let provenance = provenance::read_and_check(bytes).map_err(|why| Error::Incompatible {
            origin: origin.to_owned(),
            source: wasmtime::Error::msg(why),
        })?;
        let component =
            Component::new(sandbox.engine(), bytes).map_err(|source| Error::Compile {
                origin: origin.to_owned(),
                source,
            })?;
        // An empty linker: the component gets no host functions, no WASI, nothing.
        let linker = Linker::new(sandbox.engine());
        let incompatible = |source| Error::Incompatible {
            origin: origin.to_owned(),
            source,
        };
        let pre = linker
            .instantiate_pre(&component)
            .and_then(RulePre::new)
            .map_err(incompatible)?;
        Ok(Self {
            sandbox: sandbox.clone(),
            component,
            pre,
            origin: origin.to_owned(),
            provenance,
        })
    }

    /// What the component says it is (its `newterms:rule` custom section).
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Where the component came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What the component imports, one name per entry (empty for a rule that needs nothing).
    pub fn imports(&self) -> Vec<String> {
        let engine = self.sandbox.engine();
        self.component
            .component_type()
            .imports(engine)
            .map(|(name, item)| describe(name, &item.ty, engine))
            .collect()
    }

    /// What the component exports: each interface with its functions.
    pub fn exports(&self) -> Vec<String> {
        let engine = self.sandbox.engine();
        self.component
            .component_type()
            .exports(engine)
            .map(|(name, item)| describe(name, &item.ty, engine))
            .collect()
    }

    /// A new instance, configured with `config`, with empty history.
    pub fn instantiate(&self, config: &RuleConfig) -> Result<RuleInstance, Error> {
        let mut instance =
            RuleInstance::new(&self.sandbox, &self.pre).map_err(|source| Error::Incompatible {
                origin: self.origin.clone(),
                source,
            })?;
        instance.configure(&wit::Config::from(config))?;
        Ok(instance)
    }
}

fn describe(name: &str, item: &ComponentItem, engine: &wasmtime::Engine) -> String {
    match item {
        ComponentItem::ComponentInstance(instance) => {
            let (functions, types): (Vec<_>, Vec<_>) = instance
                .exports(engine)
                .partition(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)));
            let names = |items: Vec<(&str, _)>| {
                items
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "{name} (functions: {}; types: {})",
                names(functions),
                names(types)
            )
        }
        ComponentItem::ComponentFunc(_) | ComponentItem::CoreFunc(_) => {
            format!("{name} (function)")
        }
        ComponentItem::Module(_) | ComponentItem::Component(_) => format!("{name} (component)"),
        ComponentItem::Type(_) | ComponentItem::Resource(_) => format!("{name} (type)"),
    }
}
