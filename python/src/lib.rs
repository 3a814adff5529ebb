//! `newterms._native`: the newterms host library (sandbox, embedded component, snapshots) for Python.
//! Everything the rule decides happens in the component, as in `newterms scan`; this is glue: Python
//! values in, the host's calls, Python values and typed exceptions out.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use newterms::input::{Input, InputReader, Stream};
use newterms::scan::BatchLimits;
use newterms::settings::{ExceptionSettings, Settings};
use newterms::{
    Error, Limits, Partition, RuleComponent, RuleConfig, RuleInstance, Sandbox, snapshots,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

mod routed;

create_exception!(
    _native,
    NewtermsError,
    PyException,
    "Any error of newterms."
);
create_exception!(
    _native,
    ConfigError,
    NewtermsError,
    "A configuration the rule refuses."
);
create_exception!(
    _native,
    RestoreError,
    NewtermsError,
    "A snapshot the rule refuses; its state is unchanged."
);
create_exception!(
    _native,
    RuleFault,
    NewtermsError,
    "The component failed (trap, deadline, memory cap): this Rule cannot be used again."
);

/// The embedded component compiled once per process, for rules with the default limits.
fn shared() -> Result<&'static (Sandbox, RuleComponent), Error> {
    static SHARED: OnceLock<(Sandbox, RuleComponent)> = OnceLock::new();
    if let Some(shared) = SHARED.get() {
        return Ok(shared);
    }
    let sandbox = Sandbox::new(Limits::default())?;
    let component = RuleComponent::embedded(&sandbox)?;
    Ok(SHARED.get_or_init(|| (sandbox, component)))
}

fn fault(error: Error) -> PyErr {
    match error {
        Error::Config(error) => ConfigError::new_err(error.to_string()),
        Error::Restore(error) => RestoreError::new_err(error.to_string()),
        // A refused rule file is configuration too; the message names the file.
        Error::Rules(why) => ConfigError::new_err(why),
        other => RuleFault::new_err(other.to_string()),
    }
}

/// One rule instance with its own first-seen history: the rule `newterms scan` runs.
#[pyclass(module = "newterms")]
struct Rule {
    inner: Mutex<Inner>,
}

struct Inner {
    instance: RuleInstance,
    /// Whether the instance runs rules from rule files, whose histories are not partitioned: their
    /// `route` sends every event to bucket 0, and so must `route_file`.
    rule_files: bool,
    /// The lines or events the last call refused: (index, why).
    errors: Vec<(u64, String)>,
}

impl Rule {
    fn with<T>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut Inner) -> Result<T, Error> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        py.detach(|| {
            let mut inner = self
                .inner
                .lock()
                .map_err(|_| RuleFault::new_err("a previous call failed"))?;
            work(&mut inner).map_err(fault)
        })
    }
}

#[pymethods]
impl Rule {
    /// A rule configured with the keys of `newterms scan --config`: `config` names a TOML file of
    /// them, and the other arguments (the same keys) override it. `max_memory_mib` and
    /// `cpu_deadline_ms` are the sandbox's limits (default: 1024 MiB, 5000 ms a call).
    #[new]
    #[pyo3(signature = (*, config=None, profile=None, window=None, capacity=None, learn=None, exclude_arns=None, exceptions=None, rules=None, partition=None, max_memory_mib=None, cpu_deadline_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: Option<std::path::PathBuf>,
        profile: Option<String>,
        window: Option<String>,
        capacity: Option<u32>,
        learn: Option<bool>,
        exclude_arns: Option<Vec<String>>,
        exceptions: Option<Vec<(String, Vec<String>)>>,
        rules: Option<Vec<std::path::PathBuf>>,
        partition: Option<(u32, u32)>,
        max_memory_mib: Option<usize>,
        cpu_deadline_ms: Option<u64>,
    ) -> PyResult<Self> {
        let mut settings = match &config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::new_err(format!("cannot read {}: {error}", path.display()))
                })?;
                toml::from_str::<Settings>(&text)
                    .map_err(|error| ConfigError::new_err(format!("{}: {error}", path.display())))?
            }
            None => Settings::default(),
        };
        settings.profile = profile.or(settings.profile);
        settings.window = window.or(settings.window);
        settings.capacity = capacity.or(settings.capacity);
        settings.learn = learn.or(settings.learn);
        if let Some(arns) = exclude_arns {
            settings.exclude_arns = arns;
        }
        if let Some(exceptions) = exceptions {
            settings.exceptions = exceptions
                .into_iter()
                .map(|(field, values)| ExceptionSettings { field, values })
                .collect();
        }
        // As `newterms scan`: the file's `rules` from its folder, then the argument's.
        let base = config
            .as_deref()
            .and_then(std::path::Path::parent)
            .unwrap_or(std::path::Path::new(""));
        let rule_paths = settings
            .rules
            .iter()
            .map(|path| base.join(path))
            .chain(rules.unwrap_or_default());
        let rule_files = newterms::settings::read_rule_files(std::path::Path::new(""), rule_paths)
            .map_err(ConfigError::new_err)?;
        let mut rule_config: RuleConfig = newterms::settings::rule_config(&settings)
            .map_err(|error| ConfigError::new_err(error.to_string()))?;
        rule_config.partition = partition.map(|(index, count)| Partition { index, count });
        rule_config.rules = rule_files;
        let instance = py.detach(|| -> Result<RuleInstance, Error> {
            if max_memory_mib.is_none() && cpu_deadline_ms.is_none() {
                return shared()?.1.instantiate(&rule_config);
            }
            let defaults = Limits::default();
            let sandbox = Sandbox::new(Limits {
                max_memory_bytes: max_memory_mib
                    .map_or(defaults.max_memory_bytes, |mib| mib.saturating_mul(1 << 20)),
                call_deadline: cpu_deadline_ms
                    .map_or(defaults.call_deadline, Duration::from_millis),
            })?;
            RuleComponent::embedded(&sandbox)?.instantiate(&rule_config)
        });
        let instance = match instance {
            Err(Error::Config(error)) => {
                let key = newterms::settings::refused_key(&settings, &rule_config, &error);
                return Err(ConfigError::new_err(key.to_string()));
            }
            other => other.map_err(fault)?,
        };
        let runs_rule_files = !rule_config.rules.is_empty();
        Ok(Rule {
            inner: Mutex::new(Inner {
                instance,
                rule_files: runs_rule_files,
                errors: Vec::new(),
            }),
        })
    }

    /// Newline-delimited events (raw CloudTrail or ECS, one a line) in order: the alerts they raise,
    /// as the JSON documents `newterms scan` prints. Refused lines are in `errors()` afterwards.
    fn process_ndjson(&self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<String>> {
        self.with(py, |inner| {
            inner.errors.clear();
            let mut alerts = Vec::new();
            let mut start = 0;
            let mut first_line: u64 = 0;
            // In the scan's batches: a batch that stays in the caches from here into the guest
            // (one home for the size: the host's `BatchLimits`).
            let limits = BatchLimits::default();
            while start < data.len() {
                let rest = &data[start..];
                let mut lines = 0;
                let mut end = rest.len();
                // Where the lines counted so far end.
                let mut after_last = 0;
                for at in memchr::memchr_iter(b'\n', rest) {
                    if lines > 0 && at >= limits.bytes {
                        end = after_last;
                        break;
                    }
                    lines += 1;
                    after_last = at + 1;
                    if lines == limits.events {
                        end = after_last;
                        break;
                    }
                }
                let piece = &rest[..end];
                for outcome in inner.instance.process_ndjson(piece)? {
                    let line = first_line + u64::from(outcome.line);
                    match outcome.outcome {
                        Ok(raised) => alerts.extend(raised),
                        Err(error) => inner.errors.push((line, error.to_string())),
                    }
                }
                // Every line break counted above is inside the piece.
                first_line += lines as u64;
                start += end;
            }
            Ok(alerts)
        })
    }

    /// Events (JSON texts) in order: the alerts they raise. Refused events are in `errors()`.
    fn process(&self, py: Python<'_>, events: Vec<String>) -> PyResult<Vec<String>> {
        self.with(py, |inner| {
            inner.errors.clear();
            let mut alerts = Vec::new();
            for (chunk_index, chunk) in events.chunks(BatchLimits::default().events).enumerate() {
                for (index, outcome) in inner.instance.process_batch(chunk)?.into_iter().enumerate()
                {
                    match outcome {
                        Ok(raised) => alerts.extend(raised),
                        Err(error) => inner.errors.push((
                            (chunk_index * BatchLimits::default().events + index) as u64,
                            error.to_string(),
                        )),
                    }
                }
            }
            Ok(alerts)
        })
    }

    /// For each event, where an engine running `count` rules, each made with
    /// `partition=(index, count)`, sends it: `(buckets, time)`, the buckets of its terms (sorted,
    /// computed by the rule itself; usually one, several for array-valued term fields, each rule
    /// then taking its own terms; none for an event that changes no history: send it to one rule,
    /// bucket 0 say) and its time in milliseconds since the epoch (`None` without buckets).
    #[allow(clippy::type_complexity)]
    fn route(
        &self,
        py: Python<'_>,
        events: Vec<String>,
        count: u32,
    ) -> PyResult<Vec<(Vec<u32>, Option<i64>)>> {
        self.with(py, |inner| {
            let mut routes = Vec::with_capacity(events.len());
            for chunk in events.chunks(BatchLimits::default().events) {
                routes.extend(
                    inner
                        .instance
                        .route(chunk, count)?
                        .into_iter()
                        .map(|route| (route.buckets, route.time)),
                );
            }
            Ok(routes)
        })
    }

    /// A file's events routed to `count` buckets, for an engine that moves them as a few large
    /// records rather than one per event: `([(bucket, routed)], errors)`, where `routed` holds the
    /// bucket's events of this file in input order with their times (opaque bytes: only
    /// `process_routed` reads them), and `errors` what is not an event, as `events()` says. The file
    /// is read as `newterms scan` reads it (NDJSON or a CloudTrail delivery file, gzip or not).
    #[allow(clippy::type_complexity)]
    fn route_file<'py>(
        &self,
        py: Python<'py>,
        data: Vec<u8>,
        name: &str,
        count: u32,
    ) -> PyResult<(Vec<(u32, Bound<'py, PyBytes>)>, Vec<String>)> {
        let name = name.to_owned();
        let (routed, errors) = self.with(py, move |inner| {
            let stream = Stream::new(&name, std::io::Cursor::new(data));
            let mut reader = InputReader::new([Input::Stream(stream)]);
            let mut routed = routed::Routed::default();
            let mut errors = Vec::new();
            let limits = BatchLimits::default();
            // The file's events in NDJSON batches, as the scan cuts them: (text, where each ends).
            let mut batch: Vec<u8> = Vec::new();
            let mut ends: Vec<usize> = Vec::new();
            let mut position: u64 = 0;
            loop {
                let item = reader.next_into(&mut batch);
                match &item {
                    Some(Ok(_)) => {
                        ends.push(batch.len());
                        batch.push(b'\n');
                    }
                    Some(Err(error)) => errors.push(error.to_string()),
                    None => {}
                }
                let full = ends.len() >= limits.events || batch.len() >= limits.bytes;
                if (full || item.is_none()) && !ends.is_empty() {
                    route_batch(
                        &mut inner.instance,
                        inner.rule_files,
                        &batch,
                        &ends,
                        count,
                        position,
                        &mut routed,
                    )?;
                    position += ends.len() as u64;
                    batch.clear();
                    ends.clear();
                }
                if item.is_none() {
                    break;
                }
            }
            Ok((routed.into_buckets(), errors))
        })?;
        let routed = routed
            .into_iter()
            .map(|(bucket, bytes)| (bucket, PyBytes::new(py, &bytes)))
            .collect();
        Ok((routed, errors))
    }

    /// One bucket's events from several files (`[(input index, routed)]`, the `routed` bytes of
    /// `route_file`), run in the order a hunt takes them: event time (events without one first),
    /// then input, then place in the input. Returns the alerts; refused events are in `errors()`,
    /// numbered in that order.
    fn process_routed(&self, py: Python<'_>, parts: Vec<(u32, Vec<u8>)>) -> PyResult<Vec<String>> {
        let events = routed::ordered(&parts).map_err(pyo3::exceptions::PyValueError::new_err)?;
        self.with(py, move |inner| {
            inner.errors.clear();
            let mut alerts = Vec::new();
            let limits = BatchLimits::default();
            let mut ndjson: Vec<u8> = Vec::new();
            for (chunk_index, chunk) in events.chunks(limits.events).enumerate() {
                let first = (chunk_index * limits.events) as u64;
                // As the scan does: one NDJSON buffer, unless an event spans lines (a pretty-printed
                // delivery record), then a list.
                let outcomes: Vec<(u64, Result<Vec<String>, String>)> =
                    if chunk.iter().any(|text| text.contains(&b'\n')) {
                        let texts: Vec<String> = chunk
                            .iter()
                            .map(|text| String::from_utf8_lossy(text).into_owned())
                            .collect();
                        (0..)
                            .zip(inner.instance.process_batch(&texts)?)
                            .map(|(index, outcome)| (index, outcome.map_err(|e| e.to_string())))
                            .collect()
                    } else {
                        ndjson.clear();
                        for text in chunk {
                            ndjson.extend_from_slice(text);
                            ndjson.push(b'\n');
                        }
                        inner
                            .instance
                            .process_ndjson(&ndjson)?
                            .into_iter()
                            .map(|line| {
                                (
                                    u64::from(line.line),
                                    line.outcome.map_err(|e| e.to_string()),
                                )
                            })
                            .collect()
                    };
                for (index, outcome) in outcomes {
                    match outcome {
                        Ok(raised) => alerts.extend(raised),
                        Err(why) => inner.errors.push((first + index, why)),
                    }
                }
            }
            Ok(alerts)
        })
    }

    /// What the last `process_ndjson` or `process` refused: (0-based line or event index, why).
    fn errors(&self) -> PyResult<Vec<(u64, String)>> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| RuleFault::new_err("a previous call failed"))?;
        Ok(inner.errors.clone())
    }

    /// The first-seen history, in the format `newterms scan --state` reads and writes.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(py, |inner| inner.instance.snapshot())?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Replaces the history with a snapshot's; a refused one raises `RestoreError` and changes nothing.
    fn restore(&self, py: Python<'_>, snapshot: &[u8]) -> PyResult<()> {
        self.with(py, |inner| inner.instance.restore(snapshot))
    }

    /// The counters: events, matched, excepted, alerts, errors, terms, evictions.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.with(py, |inner| inner.instance.stats())?;
        let dict = PyDict::new(py);
        dict.set_item("events", stats.events)?;
        dict.set_item("matched", stats.matched)?;
        dict.set_item("excepted", stats.excepted)?;
        dict.set_item("alerts", stats.alerts)?;
        dict.set_item("errors", stats.errors)?;
        dict.set_item("terms", stats.terms)?;
        dict.set_item("evictions", stats.evictions)?;
        Ok(dict)
    }

    /// The rule's identity and the configuration in force.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let metadata = self.with(py, |inner| inner.instance.metadata())?;
        let dict = PyDict::new(py);
        dict.set_item("name", metadata.name)?;
        dict.set_item("rule_id", metadata.rule_id)?;
        dict.set_item("rule_version", metadata.rule_version)?;
        dict.set_item("severity", metadata.severity)?;
        dict.set_item("risk_score", metadata.risk_score)?;
        dict.set_item("query", metadata.query)?;
        dict.set_item("profile", metadata.profile.name())?;
        dict.set_item("window_ms", metadata.window_ms)?;
        dict.set_item("term_fields", metadata.term_fields)?;
        dict.set_item("capacity", metadata.capacity)?;
        dict.set_item("learn", metadata.learn)?;
        dict.set_item("snapshot_format", metadata.snapshot_format)?;
        Ok(dict)
    }
}

/// The events of one input as `newterms scan` reads them: `data` is a file's bytes (NDJSON, or a
/// CloudTrail delivery file `{"Records": [...]}`; gzip or not), `name` names it in errors. Returns
/// `(events, errors)`: the events' JSON texts in order, and what is not an event, as text.
#[pyfunction]
#[pyo3(signature = (data, name = "input"))]
fn events(py: Python<'_>, data: Vec<u8>, name: &str) -> (Vec<String>, Vec<String>) {
    let name = name.to_owned();
    py.detach(move || {
        let (events, _, errors) = read_located(&name, data);
        (events, errors)
    })
}

/// Routes one batch of a file's events (`batch`, each ending at its `ends` entry before a line
/// break) into `routed`, numbering them from `position`. The rule's stateless `extract` reads the
/// NDJSON as processing does and reports each line's time and terms, whose buckets are the rule's
/// (`bucket_of`); a batch with an event over several lines (a pretty-printed delivery record), or
/// under rule files (`rule_files`: one bucket takes every event, as their `route` says), goes
/// through `route`.
fn route_batch(
    instance: &mut RuleInstance,
    rule_files: bool,
    batch: &[u8],
    ends: &[usize],
    count: u32,
    position: u64,
    routed: &mut routed::Routed,
) -> Result<(), Error> {
    let starts = std::iter::once(0).chain(ends.iter().map(|end| end + 1));
    let texts: Vec<&str> = starts
        .zip(ends)
        .map(|(start, &end)| std::str::from_utf8(&batch[start..end]).unwrap_or_default())
        .collect();
    let multiline = texts.iter().any(|text| text.contains('\n'));
    let extraction = if multiline || rule_files {
        None
    } else {
        Some(instance.extract(batch)?)
    };
    let Some(extraction) = extraction else {
        let owned: Vec<String> = texts.iter().map(|text| (*text).to_owned()).collect();
        for (offset, (text, route)) in texts.iter().zip(instance.route(&owned, count)?).enumerate()
        {
            routed.add(&route.buckets, route.time, position + offset as u64, text);
        }
        return Ok(());
    };
    let mut observed = extraction.lines_with_terms().peekable();
    for (offset, text) in texts.iter().enumerate() {
        let line = observed.next_if(|(line, _)| line.line as usize == offset);
        match line.map(|(line, terms)| (&line.outcome, terms)) {
            Some((Ok(observation), terms)) => {
                let mut buckets: Vec<u32> = terms
                    .iter()
                    .map(|key| newterms::bucket_of(key, count))
                    .collect();
                buckets.sort_unstable();
                buckets.dedup();
                routed.add(
                    &buckets,
                    Some(observation.time),
                    position + offset as u64,
                    text,
                );
            }
            // Refused, or nothing observed: no history changes; bucket 0 takes it.
            _ => routed.add(&[], None, position + offset as u64, text),
        }
    }
    Ok(())
}

/// One input's events as `newterms scan` reads them, where each is (1-based line; for a record of a
/// delivery document, its 1-based index in `Records`), and what is not an event, as text.
#[allow(clippy::type_complexity)]
fn read_located(name: &str, data: Vec<u8>) -> (Vec<String>, Vec<(u64, Option<u64>)>, Vec<String>) {
    let stream = Stream::new(name, std::io::Cursor::new(data));
    let (mut events, mut spots, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for item in InputReader::new([Input::Stream(stream)]) {
        match item {
            Ok(record) => {
                spots.push((record.location.spot.line, record.location.spot.record));
                events.push(record.text);
            }
            Err(error) => errors.push(error.to_string()),
        }
    }
    (events, spots, errors)
}

/// [`events`] with where each event is: `(events, spots, errors)`, `spots[i]` the 1-based line of
/// `events[i]` and, for a record of a delivery document, its 1-based index in `Records` (else
/// `None`), so that a refusal can be reported at `name:line` as `newterms scan` reports it.
#[pyfunction]
#[pyo3(signature = (data, name = "input"))]
#[allow(clippy::type_complexity)]
fn located_events(
    py: Python<'_>,
    data: Vec<u8>,
    name: &str,
) -> (Vec<String>, Vec<(u64, Option<u64>)>, Vec<String>) {
    let name = name.to_owned();
    py.detach(move || read_located(&name, data))
}

/// The union of workers' histories (latest time wins per term): what `newterms state merge` writes.
#[pyfunction]
fn merge<'py>(py: Python<'py>, snapshots: Vec<Vec<u8>>) -> PyResult<Bound<'py, PyBytes>> {
    let merged =
        snapshots::merge(&snapshots).map_err(|error| RestoreError::new_err(error.to_string()))?;
    Ok(PyBytes::new(py, &merged))
}

/// What a snapshot holds: format, rule id, terms, evictions, oldest and newest, terms per account.
#[pyfunction]
fn inspect<'py>(py: Python<'py>, snapshot: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let summary =
        snapshots::inspect(snapshot).map_err(|error| RestoreError::new_err(error.to_string()))?;
    let dict = PyDict::new(py);
    dict.set_item("format", summary.format)?;
    dict.set_item("rule_id", summary.rule_id)?;
    dict.set_item("term_signature", summary.term_signature)?;
    dict.set_item("terms", summary.terms)?;
    dict.set_item("evictions", summary.evictions)?;
    dict.set_item("oldest", summary.oldest)?;
    dict.set_item("newest", summary.newest)?;
    dict.set_item("terms_per_account", summary.per_first_field)?;
    Ok(dict)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Rule>()?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(events, m)?)?;
    m.add_function(wrap_pyfunction!(located_events, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add("NewtermsError", m.py().get_type::<NewtermsError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("RestoreError", m.py().get_type::<RestoreError>())?;
    m.add("RuleFault", m.py().get_type::<RuleFault>())?;
    Ok(())
}
