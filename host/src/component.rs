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

    /// The embedded component, through a cache of precompiled code in `cache_dir` (see
    /// [`RuleComponent::from_bytes_cached`]).
    pub fn embedded_cached(sandbox: &Sandbox, cache_dir: &Path) -> Result<Self, Error> {
        Self::from_bytes_cached(sandbox, EMBEDDED_COMPONENT, "the embedded rule", cache_dir)
    }

    /// A component from its bytes, loaded from precompiled code in `cache_dir` when this host wrote
    /// it there for these very bytes and this engine, else compiled and written there for next time.
    ///
    /// Compiling takes ~70 ms; loading precompiled code a fraction of a millisecond. Loading
    /// precompiled code runs it without validation, so the cache only ever loads a file
    /// this host wrote, in a directory only its user can write. Failing to write the cache is not an
    /// error: the compiled component is returned all the same.
    pub fn from_bytes_cached(
        sandbox: &Sandbox,
        bytes: &[u8],
        origin: &str,
        cache_dir: &Path,
    ) -> Result<Self, Error> {
        let provenance = check_provenance(bytes, origin)?;
        let cache = crate::cache::PrecompiledCache::new(cache_dir, sandbox.engine(), bytes);
        if let Some(component) = cache
            .as_ref()
            .and_then(|cache| cache.load(sandbox.engine()))
        {
            return Self::from_component(sandbox, component, origin, provenance);
        }
        let component = compile(sandbox, bytes, origin)?;
        if let Some(cache) = &cache {
            cache.store(&component);
        }
        Self::from_component(sandbox, component, origin, provenance)
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
        let provenance = check_provenance(bytes, origin)?;
        let component = compile(sandbox, bytes, origin)?;
        Self::from_component(sandbox, component, origin, provenance)
    }

    fn from_component(
        sandbox: &Sandbox,
        component: Component,
        origin: &str,
        provenance: Provenance,
    ) -> Result<Self, Error> {
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
        if config.rules.is_empty() {
            instance.configure(&wit::Config::from(config))?;
        } else {
            instance.configure_rules(&wit::Config::from(config), &config.rules)?;
        }
        Ok(instance)
    }
}

/// What the component says it is, checked before compiling any of it.
fn check_provenance(bytes: &[u8], origin: &str) -> Result<Provenance, Error> {
    provenance::read_and_check(bytes).map_err(|why| Error::Incompatible {
        origin: origin.to_owned(),
        source: wasmtime::Error::msg(why),
    })
}

fn compile(sandbox: &Sandbox, bytes: &[u8], origin: &str) -> Result<Component, Error> {
    Component::new(sandbox.engine(), bytes).map_err(|source| Error::Compile {
        origin: origin.to_owned(),
        source,
    })
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
