//! The wasmtime engine and the limits every rule instance runs under: a memory cap and a CPU deadline
//! per call. Both are on by default; a component that exceeds one is stopped with an error that names
//! the limit, and only that call is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, ResourceLimiter};

use crate::error::Error;

/// How often the engine's epoch advances: the granularity of the CPU deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resource limits of one rule instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory the guest may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Longest one call into the guest may run before it is interrupted.
    pub call_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A million terms take ~100 MiB in the guest; a snapshot of them briefly doubles that.
            max_memory_bytes: 1 << 30,
            // A batch of 1,024 events takes about a millisecond; a 10 MB event about 100 ms.
            call_deadline: Duration::from_secs(5),
        }
    }
}

/// Enforces [`Limits::max_memory_bytes`] and remembers that it did, so that the error can say so.
pub struct MemoryLimiter {
    max_memory_bytes: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(max_memory_bytes: usize) -> Self {
        Self {
            max_memory_bytes,
            exceeded: false,
        }
    }

    /// Whether a growth was refused since the last call to this.
    pub(crate) fn take_exceeded(&mut self) -> bool {
        std::mem::take(&mut self.exceeded)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "the component asked for {desired} bytes of memory, over its limit of {}",
                self.max_memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A Rust guest's one table holds its function pointers: a few hundred entries.
        Ok(desired <= 100_000)
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
    _ticker: Arc<EpochTicker>,
}

impl Sandbox {
    /// A sandbox with `limits`. Starts a thread that advances the engine's epoch, which is how a
    /// call that runs past its deadline is interrupted.
    pub fn new(limits: Limits) -> Result<Self, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(Error::Engine)?;
        let ticker = EpochTicker::start(&engine).map_err(|error| {
            Error::Engine(wasmtime::Error::msg(format!(
                "cannot start the thread that enforces the CPU deadline: {error}"
            )))
        })?;
        Ok(Self {
            _ticker: Arc::new(ticker),
            engine,
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

    /// The call deadline in epoch ticks (rounded up, plus the tick under way).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        let ticks = self.limits.call_deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// Advances an engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let stopped = Arc::clone(&stop);
        thread::Builder::new()
            .name("newterms-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
