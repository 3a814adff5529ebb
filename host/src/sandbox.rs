//! The wasmtime engine and the limits every rule instance runs under.

use wasmtime::{Config, Engine, StoreLimits, StoreLimitsBuilder};

use crate::error::Error;

/// Resource limits of one rule instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory the guest may grow to, in bytes.
    pub max_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A million terms take ~100 MiB in the guest; a snapshot of them briefly doubles that.
            max_memory_bytes: 1 << 30,
        }
    }
}

impl Limits {
    pub(crate) fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.max_memory_bytes)
            .instances(4)
            .tables(8)
            .memories(2)
            .trap_on_grow_failure(true)
            .build()
    }
}

/// A compiler and runtime for rule components, with the limits their instances get.
///
/// Components get no capabilities: the linker is empty, so a component that imports anything at all
/// fails to instantiate.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
}

impl Sandbox {
    /// A sandbox with `limits`.
    pub fn new(limits: Limits) -> Result<Self, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        Ok(Self {
            engine: Engine::new(&config).map_err(Error::Engine)?,
            limits,
        })
    }

    /// The engine components are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits instances get.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}
