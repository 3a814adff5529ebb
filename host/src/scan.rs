//! Feeding a rule from inputs in batches: alerts out, checkpoints along the way, and recovery when
//! the component fails.
//!
//! Reading runs on its own thread, so that a stop request is seen while input is slow, and a slow
//! stream's events are processed as they come rather than when a batch fills. If a call into the
//! component fails (a trap, the CPU deadline, the memory cap, a malformed answer), the scanner makes a
//! new instance, restores the last recovery point, replays the events processed since, and goes
//! through the failed batch one event at a time: the event that fails alone is set aside as a dead
//! letter, and every other event is processed exactly once.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

use crate::component::RuleComponent;
use crate::error::Error;
use crate::handoff::{Giver, Taker, handoff};
use crate::input::{
    InputError, InputReader, Location, Numbering, Placing, Position, Range, RangeRead, Spot,
};
use crate::instance::{EventOutcome, RuleInstance};
use crate::types::{EventError, Extraction, LineError, RuleConfig};

/// How often a waiting scan looks at its stop flag and its checkpoint clock.
const POLL: Duration = Duration::from_millis(50);

/// The shortest journal a scan keeps, in bytes. A short journal is a few batch buffers that the
/// reader fills over and over while they are still in the processor's caches; measured on the mixed
/// stream, an 8 MiB journal made the scan ~35 % faster than a 64 MiB one.
const SHORTEST_JOURNAL: usize = 8 << 20;

/// How many bytes of events a recovery point may cost per byte of snapshot: the journal is kept
/// this many times as long as the last snapshot (within its bounds), so that taking snapshots costs
/// a few percent of the scan.
const JOURNAL_PER_SNAPSHOT_BYTE: usize = 64;

/// Checkpoints by count take at most one part in this many of a scan's time.
const CHECKPOINTS_AT_MOST_ONE_IN: u32 = 10;

/// Batch buffers at most waiting to be filled again by the reader: enough for a whole journal of
/// batches of ~1 KiB events (64 MiB in ~330 KB batches), so that the reader fills the same buffers
/// over and over rather than new memory, which the kernel must first map and clear (with 4, the
/// scan ran ~30 % slower).
const FINISHED_BATCHES: usize = 256;

/// Chunks waiting in each queue between threads (reader to rule, rule to scan): enough that a thread
/// seldom waits for the next, few enough that a stalled scan holds little (a few MB of batches).
/// A thread that finds its queue full is woken once it has drained to half ([`handoff`]), so once
/// per four chunks rather than after each.
const CHUNKS_QUEUED: usize = 8;

/// How events are grouped into calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events per call.
    pub events: usize,
    /// Most bytes of event text per call (a batch holds at least one event).
    pub bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        // Crossing into the component costs ~100 ns per call: a few hundred events amortise it
        // well, and a batch of ~1 KB events (~330 KB) stays in the caches between the reader, which
        // writes it, the copy into the guest's memory and the guest (1,024 made the scan of the
        // mixed stream ~5 % slower, 64 slower still). A plain file's ranges hold three quarters of
        // a batch (`input/ranges.rs`): 340 makes them ~255 events of that stream, the size
        // measured best before ranges (340 against 256 with ranges: 0.95x the wall time with two
        // threads, 0.97x with all 221 rules, 1.00x with one thread; benches/README.md). 8 MiB
        // bounds the copy of long events.
        Self {
            events: 340,
            bytes: 8 << 20,
        }
    }
}

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Batching.
    pub batch: BatchLimits,
    /// Checkpoint once this many events were processed since the last checkpoint (0: not by count),
    /// and the scan has run ten times as long as that checkpoint took.
    pub checkpoint_events: u64,
    /// Checkpoint once this long has passed since the last checkpoint, if events were processed.
    pub checkpoint_interval: Option<Duration>,
    /// Most event bytes kept in memory for replay after a component failure: past it the scan
    /// takes a new recovery point (a snapshot) and forgets them. While the history is small, and a
    /// snapshot cheap, the scan keeps fewer (see [`Scanner::journal_limit`]).
    pub journal_bytes: usize,
    /// When set (from a signal handler, say), the scan finishes its batch, checkpoints and stops.
    pub stop: Option<Arc<AtomicBool>>,
    /// Rule instances extracting batches at once (see [`Scanner::run`]); 1 processes every batch
    /// on the one instance.
    pub threads: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            batch: BatchLimits::default(),
            checkpoint_events: 100_000,
            checkpoint_interval: Some(Duration::from_secs(10)),
            journal_bytes: 64 << 20,
            stop: None,
            threads: 1,
        }
    }
}

/// Something reported about one input item that is not an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// The input could not be read as an event.
    Input(InputError),
    /// The rule refused the event.
    Event {
        /// Where the event was.
        location: Location,
        /// Why.
        error: EventError,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::Input(error) => error.fmt(f),
            Diagnostic::Event { location, error } => write!(f, "{location}: {error}"),
        }
    }
}

/// An event the component failed on, set aside.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    /// Where the event was.
    pub location: &'a Location,
    /// The event's text.
    pub event: &'a str,
    /// How the component failed on it.
    pub error: &'a Error,
}

/// Where a scan's results go.
pub trait Sink {
    /// One alert (a JSON document).
    fn alert(&mut self, alert: &str) -> io::Result<()>;
    /// Called after every batch, with the scan's progress: the alerts so far should reach their
    /// reader now.
    fn flush(&mut self, progress: &ScanSummary) -> io::Result<()>;
    /// Something about the input that is not an alert.
    fn diagnostic(&mut self, diagnostic: Diagnostic);
    /// An event the component cannot process.
    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> io::Result<()>;
    /// Everything before `position` is processed and `snapshot` is the history after it: make the
    /// alerts so far durable, then record both, so that a scan resumed from here loses nothing and
    /// doubles nothing.
    fn checkpoint(&mut self, position: Position, snapshot: &[u8]) -> io::Result<()>;
}

/// What a scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Events handed to the rule.
    pub events: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Input items that were not events (not UTF-8, malformed delivery documents, read errors).
    pub input_errors: u64,
    /// Inputs that could not be opened or were cut short by a read error.
    pub unreadable_inputs: u64,
    /// Events the rule refused.
    pub event_errors: u64,
    /// Events the component failed on, set aside.
    pub dead_letters: u64,
    /// Times a failed component was replaced by a new instance.
    pub recoveries: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every input was read to its end.
    Finished,
    /// Stopped on request, after a checkpoint at this position (none if nothing was read).
    Stopped(Option<Position>),
}

/// Why a scan stopped early.
#[derive(Debug)]
pub enum ScanError {
    /// The rule component failed in a way the scan cannot recover from (for instance, it failed
    /// again while replaying events it had processed before).
    Rule(Error),
    /// Alerts, dead letters or a checkpoint could not be written.
    Output(io::Error),
    /// The thread reading the inputs died (it panicked) before the end of the input: what it had
    /// not read was not processed, so the scan did not finish.
    Reader(String),
    /// A thread extracting batches died (it panicked): the batches it held were not processed.
    Extractor(String),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Rule(_) => f.write_str("the rule failed"),
            ScanError::Output(_) => f.write_str("cannot write the results"),
            ScanError::Reader(why) => write!(f, "reading the input failed: {why}"),
            ScanError::Extractor(why) => write!(f, "a rule thread failed: {why}"),
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScanError::Rule(error) => Some(error),
            ScanError::Output(error) => Some(error),
            ScanError::Reader(_) | ScanError::Extractor(_) => None,
        }
    }
}

impl From<Error> for ScanError {
    fn from(error: Error) -> Self {
        ScanError::Rule(error)
    }
}

impl From<io::Error> for ScanError {
    fn from(error: io::Error) -> Self {
        ScanError::Output(error)
    }
}

/// A rule instance with what it needs to survive its own failures.
pub struct Scanner<'c> {
    component: &'c RuleComponent,
    config: RuleConfig,
    rule: RuleInstance,
    /// The history at the last recovery point (none: empty history).
    recovery: Option<Vec<u8>>,
    /// What the instance was given since the recovery point, to replay on a new instance.
    journal: Vec<Journaled>,
    journal_bytes: usize,
    /// Journal batches given back to the reader thread (while a scan runs) to fill again.
    finished: Option<Finished>,
    /// The inputs' names, by index, for the events' locations.
    names: Vec<Arc<str>>,
    /// Where the items of ranges read apart go in their inputs.
    numbering: Numbering,
    /// The chunk's input errors not said yet, each after how many of its events it came: said in
    /// input order among the events' refusals, wherever the chunk's batch ended.
    input_errors: VecDeque<(usize, InputError)>,
    summary: ScanSummary,
}

impl<'c> Scanner<'c> {
    /// A scanner over a new instance of `component`, with the history of `snapshot` if given.
    pub fn new(
        component: &'c RuleComponent,
        config: &RuleConfig,
        snapshot: Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        let mut rule = component.instantiate(config)?;
        if let Some(snapshot) = &snapshot {
            rule.restore(snapshot)?;
            if !config.rules.is_empty() {
                // A rule pack's state keeps each unchanged rule's history: say what it did not keep.
                for notice in rule.restore_notices()? {
                    eprintln!("newterms: {notice}");
                }
            }
        }
        Ok(Self {
            component,
            config: config.clone(),
            rule,
            recovery: snapshot,
            journal: Vec::new(),
            journal_bytes: 0,
            finished: None,
            names: Vec::new(),
            numbering: Numbering::default(),
            input_errors: VecDeque::new(),
            summary: ScanSummary::default(),
        })
    }

    /// The instance, for snapshots, statistics and metadata.
    pub fn rule(&mut self) -> &mut RuleInstance {
        &mut self.rule
    }

    /// What the scan did so far.
    pub fn summary(&self) -> ScanSummary {
        self.summary
    }

    /// Reads `reader` to its end (or until stopped), processing its events in batches.
    ///
    /// With `options.threads` above 1, each batch is extracted (everything
    /// before the history: prefilter, parse, query, exceptions, time, terms) by one of that many
    /// instances of its own, on its own thread, consecutive batches on different threads (the
    /// reader hands them out); this thread only takes them back and applies the extractions to the
    /// one stateful instance in batch order (`decide`)
    /// and asks it for the alert documents of the rare new terms. Alerts, diagnostics, checkpoints
    /// and the journal are therefore exactly those of one thread. A batch an extracting instance
    /// fails on goes through the stateful instance one event at a time, as a failed batch does on
    /// one thread. One thread splits its batches the same way on its one instance once the history
    /// is large ([`Scanner::splits_alone`]).
    pub fn run(
        &mut self,
        reader: InputReader,
        options: &ScanOptions,
        sink: &mut dyn Sink,
    ) -> Result<ScanEnd, ScanError> {
        let finished = Finished::default();
        self.finished = Some(finished.clone());
        self.names = reader.names().to_vec();
        self.numbering = Numbering::default();
        let limits = options.batch;
        let threads = options.threads.max(1);
        // One queue from the reader to each processing thread: the scan's own with one thread, each
        // extracting thread's with more.
        let (senders, mut queues): (Vec<_>, Vec<_>) =
            (0..threads).map(|_| handoff(CHUNKS_QUEUED)).unzip();
        let reading = thread::Builder::new()
            .name("newterms-reader".into())
            .spawn(move || read_chunks(reader, limits, &senders, &finished))?;
        if threads == 1 {
            let chunks = queues.pop().ok_or_else(|| {
                ScanError::Reader("the reader has no queue to hand chunks to".into())
            })?;
            return self.scan(Source::Reader(chunks), reading, options, sink);
        }
        let component = self.component;
        let config = self.config.clone();
        let over = AtomicBool::new(false);
        thread::scope(|scope| {
            let mut stages = Stages {
                done: Vec::with_capacity(threads),
                collected: 0,
                over: &over,
            };
            let mut extracting = Vec::with_capacity(threads);
            for (index, jobs) in queues.into_iter().enumerate() {
                let (handed, done) = handoff(CHUNKS_QUEUED);
                let config = &config;
                let over = &over;
                extracting.push(
                    thread::Builder::new()
                        .name(format!("newterms-rule-{index}"))
                        .spawn_scoped(scope, move || {
                            extract_chunks(component, config, limits, &jobs, &handed, over);
                        })?,
                );
                stages.done.push(done);
            }
            // The threads end once `scan` drops `stages`; one that panicked is an error (joined
            // here, so that the scope does not panic in turn).
            let scanned = self.scan(Source::Stages(stages), reading, options, sink);
            for thread in extracting {
                if let Err(panic) = thread.join() {
                    let why = panic_message(panic.as_ref());
                    return Err(ScanError::Extractor(format!("it panicked: {why}")));
                }
            }
            scanned
        })
    }

    /// The scan's loop: the next chunk in input order, processed; checkpoints and recovery points
    /// along the way.
    fn scan(
        &mut self,
        mut source: Source<'_>,
        reading: thread::JoinHandle<()>,
        options: &ScanOptions,
        sink: &mut dyn Sink,
    ) -> Result<ScanEnd, ScanError> {
        let mut reading = Some(reading);
        let mut position = None;
        let mut events_since_checkpoint = 0_u64;
        let mut last_checkpoint = Instant::now();
        let mut checkpoint_cost = Duration::ZERO;
        let stop_requested = || {
            options
                .stop
                .as_ref()
                .is_some_and(|stop| stop.load(Ordering::Relaxed))
        };
        // On a stop or an error the reader is not waited for (it may be blocked on a slow stream):
        // it ends at its next hand-over, which fails once `chunks` is dropped.
        loop {
            if stop_requested() {
                if let Some(position) = position {
                    self.checkpoint(position, sink)?;
                }
                return Ok(ScanEnd::Stopped(position));
            }
            match source.next()? {
                Next::Chunk(chunk, extracted) => {
                    events_since_checkpoint +=
                        self.process_chunk(chunk, extracted, &mut position, options, sink)?;
                }
                Next::End => {
                    join_reader(reading.take())?;
                    return Ok(ScanEnd::Finished);
                }
                Next::Waiting => {}
                // The reader went away without saying the input ended: it died, and what it had
                // not read yet was never processed.
                Next::ReaderGone => {
                    join_reader(reading.take())?;
                    return Err(ScanError::Reader(
                        "the reader stopped before the end".into(),
                    ));
                }
            }
            // With a large history a checkpoint is slow (a snapshot, a file): by count, one waits
            // until the scan has run a few times as long, so that they stay a small share of it.
            let by_count = options.checkpoint_events > 0
                && events_since_checkpoint >= options.checkpoint_events
                && last_checkpoint.elapsed() >= checkpoint_cost * CHECKPOINTS_AT_MOST_ONE_IN;
            let by_time = events_since_checkpoint > 0
                && options
                    .checkpoint_interval
                    .is_some_and(|interval| last_checkpoint.elapsed() >= interval);
            if let Some(at) = position
                && (by_count || by_time)
            {
                let started = Instant::now();
                self.checkpoint(at, sink)?;
                events_since_checkpoint = 0;
                last_checkpoint = Instant::now();
                checkpoint_cost = last_checkpoint - started;
            } else if self.journal_bytes > self.journal_limit(options) {
                self.recovery = Some(self.rule.snapshot()?);
                self.forget_journal();
            }
        }
    }

    /// Processes one chunk of items, with its batch's extraction when an extracting thread made
    /// one; returns how many were events.
    fn process_chunk(
        &mut self,
        mut chunk: Chunk,
        extracted: Extracted,
        position: &mut Option<Position>,
        options: &ScanOptions,
        sink: &mut dyn Sink,
    ) -> Result<u64, ScanError> {
        if let Some(placing) = chunk.placing
            && !self.numbering.place(placing, &mut chunk.items)
        {
            // An earlier range lost the rest of its input.
            self.give_back(chunk.batch);
            return Ok(0);
        }
        let mut spots = Vec::with_capacity(chunk.batch.len());
        for item in chunk.items {
            match item {
                Ok(spot) => {
                    *position = Some(spot.next_position());
                    spots.push(spot);
                }
                Err(error) => {
                    *position = Some(error.location.next_position());
                    self.input_errors.push_back((spots.len(), error));
                }
            }
        }
        let batch = chunk.batch;
        let events = batch.len() as u64;
        let processed = self.process_events(batch, extracted, &spots, options, sink);
        // Those after the last event (and all of them if the scan cannot go on).
        self.say_input_errors_before(usize::MAX, sink);
        processed?;
        sink.flush(&self.summary)?;
        Ok(events)
    }

    /// Says the input errors that came before event `index` of the chunk.
    fn say_input_errors_before(&mut self, index: usize, sink: &mut dyn Sink) {
        while let Some((_, error)) = self
            .input_errors
            .pop_front_if(|(before, _)| *before <= index)
        {
            self.summary.input_errors += 1;
            self.summary.unreadable_inputs += u64::from(error.unreadable);
            sink.diagnostic(Diagnostic::Input(error));
        }
    }

    /// A chunk's events: its batch with its extraction when an extracting thread made one.
    fn process_events(
        &mut self,
        batch: Batch,
        extracted: Extracted,
        spots: &[Spot],
        options: &ScanOptions,
        sink: &mut dyn Sink,
    ) -> Result<(), ScanError> {
        if batch.len() > 0 {
            match extracted {
                Ok(None) if !batch.multiline && self.splits_alone(options) => {
                    match self.rule.extract(&batch.text) {
                        Ok(extraction) if in_batch(&extraction, spots) => {
                            self.decide_batch(batch, extraction, spots, sink)?;
                        }
                        // The one instance failed: as a failed batch on one thread.
                        Ok(_) | Err(Error::Guest { .. }) => {
                            self.recover(&batch, spots, sink)?;
                            self.give_back(batch);
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                Ok(None) => self.process_batch(batch, spots, sink)?,
                Ok(Some(extraction)) if in_batch(&extraction, spots) => {
                    self.decide_batch(batch, *extraction, spots, sink)?;
                }
                Ok(Some(_)) | Err(Error::Guest { .. }) => {
                    // The extracting instance failed (it is replaced); the stateful one did not.
                    self.summary.recoveries += 1;
                    self.one_at_a_time(&batch, spots, sink)?;
                    self.give_back(batch);
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Batch,
        spots: &[Spot],
        sink: &mut dyn Sink,
    ) -> Result<(), ScanError> {
        match send(&mut self.rule, &batch) {
            // An outcome for a line that was not sent is a faulty answer, like a trap.
            Ok(outcomes) if outcomes.iter().all(|(index, _)| *index < spots.len()) => {
                self.summary.events += batch.len() as u64;
                for (index, outcome) in outcomes {
                    self.say_input_errors_before(index, sink);
                    self.deliver(outcome, spots[index], sink)?;
                }
                self.remember(batch);
                Ok(())
            }
            Ok(_) | Err(Error::Guest { .. }) => self.recover(&batch, spots, sink),
            Err(other) => Err(other.into()),
        }
    }

    /// Applies a batch's extraction to the history in order and delivers what it raised.
    fn decide_batch(
        &mut self,
        batch: Batch,
        mut extraction: Extraction,
        spots: &[Spot],
        sink: &mut dyn Sink,
    ) -> Result<(), ScanError> {
        match self.decide(&batch, &mut extraction) {
            Ok(outcomes) => {
                self.summary.events += batch.len() as u64;
                for (index, outcome) in outcomes {
                    self.say_input_errors_before(index, sink);
                    self.deliver(outcome, spots[index], sink)?;
                }
                self.remember_decided(extraction);
                self.give_back(batch);
                Ok(())
            }
            // Nothing was delivered: the batch goes as a failed batch does on one thread.
            Err(Error::Guest { .. }) => {
                self.recover(&batch, spots, sink)?;
                self.give_back(batch);
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The stateful instance's part of a batch: `decide`, then the alerts of each line with new
    /// terms; the outcomes by event index, in order, delivered only once all of them are in.
    fn decide(
        &mut self,
        batch: &Batch,
        extraction: &mut Extraction,
    ) -> Result<Vec<(usize, EventOutcome)>, Error> {
        let fresh = self.rule.decide(extraction)?;
        let mut fresh = fresh.into_iter().peekable();
        let mut outcomes = Vec::new();
        for (line, terms) in extraction.lines_with_terms() {
            let index = line.line as usize;
            match &line.outcome {
                Err(error) => outcomes.push((index, Err(event_error(error.clone())))),
                Ok(_) => {
                    let Some(new) = fresh.next_if(|new| new.line == line.line) else {
                        continue;
                    };
                    // `RuleInstance::decide` checked every index against the observation.
                    let keys: Vec<Vec<u8>> = new
                        .terms
                        .iter()
                        .filter_map(|&term| terms.get(term as usize).map(<[u8]>::to_vec))
                        .collect();
                    let alerts = self.rule.alerts_for(&batch.event(index), &keys)?;
                    outcomes.push((index, Ok(alerts)));
                }
            }
        }
        Ok(outcomes)
    }

    /// After a failed batch: a new instance at the state before it, then the batch one event at a
    /// time, setting aside each event that fails alone.
    fn recover(
        &mut self,
        batch: &Batch,
        spots: &[Spot],
        sink: &mut dyn Sink,
    ) -> Result<(), ScanError> {
        self.rebuild()?;
        self.one_at_a_time(batch, spots, sink)
    }

    /// The batch one event at a time on the stateful instance, setting aside each event that
    /// fails alone (and rebuilding the instance after it).
    fn one_at_a_time(
        &mut self,
        batch: &Batch,
        spots: &[Spot],
        sink: &mut dyn Sink,
    ) -> Result<(), ScanError> {
        for (index, (event, &spot)) in batch.events().zip(spots).enumerate() {
            self.say_input_errors_before(index, sink);
            match self.rule.process_event(&event) {
                Ok(outcome) => {
                    self.summary.events += 1;
                    self.deliver(outcome, spot, sink)?;
                    let mut alone = Batch::default();
                    alone.push(&event, spot);
                    self.remember(alone);
                }
                Err(error @ Error::Guest { .. }) => {
                    self.summary.dead_letters += 1;
                    sink.dead_letter(&DeadLetter {
                        location: &self.locate(spot),
                        event: &event,
                        error: &error,
                    })?;
                    self.rebuild()?;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    /// Replaces the instance with a new one at the recovery point plus the journal.
    fn rebuild(&mut self) -> Result<(), Error> {
        self.summary.recoveries += 1;
        let mut rule = self.component.instantiate(&self.config)?;
        if let Some(snapshot) = &self.recovery {
            rule.restore(snapshot)?;
        }
        // Alerts of replayed events were delivered the first time.
        for entry in &mut self.journal {
            match entry {
                Journaled::Events(batch) => {
                    send(&mut rule, batch)?;
                }
                Journaled::Decided(extraction) => {
                    rule.decide(extraction)?;
                }
            }
        }
        self.rule = rule;
        Ok(())
    }

    fn deliver(
        &mut self,
        outcome: EventOutcome,
        spot: Spot,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        match outcome {
            Ok(alerts) => {
                for alert in alerts {
                    sink.alert(&alert)?;
                    self.summary.alerts += 1;
                }
            }
            Err(error) => {
                self.summary.event_errors += 1;
                sink.diagnostic(Diagnostic::Event {
                    location: self.locate(spot),
                    error,
                });
            }
        }
        Ok(())
    }

    /// The full location of an event (every input the reader was given has a name).
    fn locate(&self, spot: Spot) -> Location {
        let source = self
            .names
            .get(spot.input)
            .map_or_else(|| "<input>".into(), Arc::clone);
        spot.located(source)
    }

    /// Whether a batch processed on this thread goes as its extraction and `decide` on the one
    /// instance rather than as one call: once the last snapshot is so large that a journal of
    /// events could not be kept long enough to make recovery points cheap (a 35 MB history took
    /// a snapshot every 64 MiB of events, ~4x the scan's time on the mixed stream), the journal
    /// keeps each batch's terms instead, a few bytes a batch, and recovery points come with the
    /// checkpoints. The same calls as two threads make, on one instance: the same alerts.
    fn splits_alone(&self, options: &ScanOptions) -> bool {
        options.threads.max(1) == 1 && self.journal_wanted() > options.journal_bytes
    }

    /// The bytes of events a journal would hold for recovery points to cost a few percent of the
    /// scan: the last snapshot's, [`JOURNAL_PER_SNAPSHOT_BYTE`] times over.
    fn journal_wanted(&self) -> usize {
        let snapshot = self.recovery.as_ref().map_or(0, Vec::len);
        snapshot.saturating_mul(JOURNAL_PER_SNAPSHOT_BYTE)
    }

    /// How long the journal may grow before a new recovery point: [`Scanner::journal_wanted`],
    /// between [`SHORTEST_JOURNAL`] and `options.journal_bytes`.
    fn journal_limit(&self, options: &ScanOptions) -> usize {
        self.journal_wanted().clamp(
            SHORTEST_JOURNAL.min(options.journal_bytes),
            options.journal_bytes,
        )
    }

    fn remember(&mut self, batch: Batch) {
        self.journal_bytes += batch.text.len();
        self.journal.push(Journaled::Events(batch));
    }

    fn remember_decided(&mut self, extraction: Extraction) {
        self.journal_bytes += extraction_bytes(&extraction);
        self.journal.push(Journaled::Decided(extraction));
    }

    fn forget_journal(&mut self) {
        for entry in std::mem::take(&mut self.journal) {
            if let Journaled::Events(batch) = entry {
                self.give_back(batch);
            }
        }
        self.journal_bytes = 0;
    }

    /// A batch the scan has finished with, back to the reader to fill again.
    fn give_back(&self, batch: Batch) {
        if let Some(finished) = &self.finished {
            finished.give(batch);
        }
    }

    fn checkpoint(&mut self, position: Position, sink: &mut dyn Sink) -> Result<(), ScanError> {
        let snapshot = self.rule.snapshot()?;
        sink.checkpoint(position, &snapshot)?;
        self.summary.checkpoints += 1;
        self.recovery = Some(snapshot);
        self.forget_journal();
        Ok(())
    }
}

/// Whether every line of `extraction` is one of the batch's `spots`: a line past the batch is a
/// faulty answer, like a trap.
fn in_batch(extraction: &Extraction, spots: &[Spot]) -> bool {
    extraction
        .lines
        .iter()
        .all(|line| (line.line as usize) < spots.len())
}

/// Events as the component takes them: their texts in one buffer of lines.
#[derive(Debug, Default)]
struct Batch {
    /// Each event's text (UTF-8) followed by `\n`.
    text: Vec<u8>,
    /// Where each event's text ends in `text` (at its `\n`).
    ends: Vec<usize>,
    /// Whether an event holds a line break (a pretty-printed record of a delivery file; an NDJSON
    /// line has none): such a batch cannot be a buffer of lines and goes as a list of strings.
    multiline: bool,
}

impl Batch {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Appends an event (its text not yet in the buffer).
    fn push(&mut self, event: &str, spot: Spot) {
        let start = self.text.len();
        self.text.extend_from_slice(event.as_bytes());
        self.ended(start, spot);
    }

    /// Ends the event whose text was appended from `start` on.
    fn ended(&mut self, start: usize, spot: Spot) {
        self.multiline |=
            spot.record.is_some() && memchr::memchr(b'\n', &self.text[start..]).is_some();
        self.ends.push(self.text.len());
        self.text.push(b'\n');
    }

    /// The text of event `index` (below [`Batch::len`]).
    fn event(&self, index: usize) -> Cow<'_, str> {
        let start = match index.checked_sub(1) {
            Some(before) => self.ends[before] + 1,
            None => 0,
        };
        String::from_utf8_lossy(&self.text[start..self.ends[index]])
    }

    fn events(&self) -> impl Iterator<Item = Cow<'_, str>> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|end| end + 1));
        // The reader validated every event: borrowed, never replaced.
        starts
            .zip(&self.ends)
            .map(|(start, &end)| String::from_utf8_lossy(&self.text[start..end]))
    }

    /// Empty, keeping its allocations, for `bytes` of text.
    fn reuse(mut self, bytes: usize) -> Self {
        self.text.clear();
        self.text.reserve(bytes);
        self.ends.clear();
        self.multiline = false;
        self
    }
}

/// Calls the component once for a batch; returns the events (by index) that raised alerts or errors.
fn send(rule: &mut RuleInstance, batch: &Batch) -> Result<Vec<(usize, EventOutcome)>, Error> {
    if batch.multiline {
        let events: Vec<String> = batch.events().map(Cow::into_owned).collect();
        let outcomes = rule.process_batch(&events)?;
        return Ok(outcomes
            .into_iter()
            .enumerate()
            .filter(|(_, outcome)| !matches!(outcome, Ok(alerts) if alerts.is_empty()))
            .collect());
    }
    // One buffer crosses into the component in one copy, and only the lines that raised something
    // come back. The reader trimmed every event and dropped blank lines, so line i is event i.
    let outcomes = rule.process_ndjson(&batch.text)?;
    Ok(outcomes
        .into_iter()
        .map(|line| (line.line as usize, line.outcome.map_err(event_error)))
        .collect())
}

/// A line's refusal as an event's: the reader's texts are str, so a line that is not UTF-8 cannot
/// come back from a real component.
fn event_error(error: LineError) -> EventError {
    match error {
        LineError::Event(error) => error,
        LineError::NotUtf8(offset) => {
            EventError::MalformedJson(format!("not UTF-8 (invalid byte at {offset})"))
        }
    }
}

/// Batches the scan has finished with, for the reader to fill again, the last given back taken
/// first: the likeliest to be still in the caches (taken oldest first, as from a queue, two threads
/// took ~1.1x the wall time on the mixed stream, benches/README.md).
#[derive(Clone, Default)]
struct Finished(Arc<std::sync::Mutex<Vec<Batch>>>);

impl Finished {
    /// Keeps `batch` for the reader, unless it has enough already (then it is freed).
    fn give(&self, batch: Batch) {
        if let Ok(mut batches) = self.0.lock()
            && batches.len() < FINISHED_BATCHES
        {
            batches.push(batch);
        }
    }

    /// The batch given back last, if any.
    fn take(&self) -> Option<Batch> {
        self.0.lock().ok()?.pop()
    }
}

/// What the instance was given, kept to replay on a new one.
enum Journaled {
    /// Events it processed.
    Events(Batch),
    /// An extraction it decided.
    Decided(Extraction),
}

/// About the memory an extraction holds, for the journal's bound.
fn extraction_bytes(extraction: &Extraction) -> usize {
    let refusals = extraction
        .lines
        .iter()
        .filter(|line| line.outcome.is_err())
        .count();
    64 + extraction.terms.byte_len()
        + extraction.terms.len() * std::mem::size_of::<u32>()
        + refusals * 64
        + extraction.lines.len() * std::mem::size_of::<crate::types::ExtractedLine>()
}

/// What an extracting thread hands back with a chunk: its batch's extraction, none for a batch it
/// does not extract (events that span lines, which go as a list), or how its instance failed.
/// Boxed: an extraction is large beside the other things handed between threads.
type Extracted = Result<Option<Box<Extraction>>, Error>;

/// The next thing that happens to the scan's loop.
enum Next {
    /// A chunk to process now, in input order, with its extraction (`Ok(None)`: none).
    Chunk(Chunk, Extracted),
    /// Nothing yet (the stop flag and the checkpoint clock are looked at).
    Waiting,
    /// The input ended and everything read was handed over.
    End,
    /// The reader went away without saying the input ended.
    ReaderGone,
}

/// Where the scan's loop takes its chunks from.
enum Source<'s> {
    /// Straight from the reader: one thread processes every batch.
    Reader(Taker<Read>),
    /// Through the extracting threads, in input order.
    Stages(Stages<'s>),
}

impl Source<'_> {
    fn next(&mut self) -> Result<Next, ScanError> {
        match self {
            Source::Reader(chunks) => Ok(match chunks.recv_timeout(POLL) {
                Ok(Read::Chunk(chunk)) => Next::Chunk(chunk, Ok(None)),
                // With one thread the reader reads ranges itself: it hands the scan's thread none.
                Ok(Read::Range(_) | Read::File(_)) => {
                    return Err(ScanError::Reader(
                        "the reader handed a range or a file to the scan's own thread".into(),
                    ));
                }
                Ok(Read::End) => Next::End,
                Err(RecvTimeoutError::Timeout) => Next::Waiting,
                Err(RecvTimeoutError::Disconnected) => Next::ReaderGone,
            }),
            Source::Stages(stages) => stages.next(),
        }
    }
}

/// The extracting threads: the reader hands chunk `i` to thread `i % N`, which hands it back
/// extracted, so that taking the answers from thread after thread gives them in input order. The
/// scan's thread only takes them back: feeding the threads is the reader's, so that they go on
/// while the scan decides.
struct Stages<'s> {
    done: Vec<Taker<Handed>>,
    /// Chunks taken back so far.
    collected: usize,
    /// Set once the scan no longer takes anything back, so that a thread waiting for a chunk from a
    /// reader that is itself waiting (on a slow stream) ends anyway.
    over: &'s AtomicBool,
}

impl Stages<'_> {
    fn next(&mut self) -> Result<Next, ScanError> {
        let turn = self.collected % self.done.len();
        match self.done[turn].recv_timeout(POLL) {
            Ok(Handed::Chunk(chunk, extracted, ends_job)) => {
                self.collected += usize::from(ends_job);
                Ok(Next::Chunk(chunk, extracted))
            }
            Ok(Handed::End) => Ok(Next::End),
            Ok(Handed::ReaderGone) => Ok(Next::ReaderGone),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Waiting),
            Err(RecvTimeoutError::Disconnected) => Err(ScanError::Extractor("it stopped".into())),
        }
    }
}

impl Drop for Stages<'_> {
    fn drop(&mut self) {
        self.over.store(true, Ordering::Relaxed);
    }
}

/// What an extracting thread hands back, in the order the reader handed it chunks.
enum Handed {
    /// A chunk, and whether it is the last of the job it came from (a range may give several).
    Chunk(Chunk, Extracted, bool),
    /// The reader said the input ended, here: every chunk before it was handed back.
    End,
    /// The reader went away without saying so: no chunk after those handed back will come.
    ReaderGone,
}

/// An extracting thread: each chunk's batch extracted by an instance of its own (made at the first
/// batch, and again after one failed), handed back with the chunk.
fn extract_chunks(
    component: &RuleComponent,
    config: &RuleConfig,
    limits: BatchLimits,
    jobs: &Taker<Read>,
    done: &Giver<Handed>,
    over: &AtomicBool,
) {
    let mut rule: Option<RuleInstance> = None;
    // The chunk extracted and handed back, with whether it ends its job; `false` once the scan
    // stopped.
    let mut hand_back = |chunk: Chunk, ends_job: bool| {
        let extracted = if chunk.batch.multiline || chunk.batch.len() == 0 {
            Ok(None)
        } else {
            let instance = match rule.take() {
                Some(instance) => Ok(instance),
                None => component.instantiate(config),
            };
            instance.and_then(|mut instance| {
                let extraction = instance.extract(&chunk.batch.text);
                // An instance that failed is poisoned: the next batch gets a new one.
                if !matches!(extraction, Err(Error::Guest { .. })) {
                    rule = Some(instance);
                }
                extraction.map(|extraction| Some(Box::new(extraction)))
            })
        };
        done.send(Handed::Chunk(chunk, extracted, ends_job)).is_ok()
    };
    loop {
        let handed = match jobs.recv_timeout(POLL) {
            Ok(Read::Chunk(chunk)) => hand_back(chunk, true),
            Ok(Read::Range(job)) => {
                let chunks = job.read(limits);
                let count = chunks.len();
                chunks
                    .into_iter()
                    .enumerate()
                    .all(|(index, chunk)| hand_back(chunk, index + 1 == count))
            }
            // Streamed: a file may hold far more than a batch.
            Ok(Read::File(job)) => job.read(limits, &mut hand_back),
            Ok(Read::End) => {
                let _ = done.send(Handed::End);
                return;
            }
            Err(RecvTimeoutError::Timeout) if over.load(Ordering::Relaxed) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = done.send(Handed::ReaderGone);
                return;
            }
        };
        if !handed {
            return; // the scan stopped
        }
    }
}

/// What the reader thread hands over: chunks, then the end of the input, said explicitly so that a
/// reader that dies is not taken for one that finished.
enum Read {
    Chunk(Chunk),
    /// A range of a plain file, to be read by the thread that extracts it, into the batch given.
    Range(RangeJob),
    /// A whole file that cannot be read in ranges (gzip, a delivery document), to be read by the
    /// thread that extracts it, so that files are read on every extracting thread at once.
    File(Box<FileJob>),
    End,
}

/// A file read whole, apart from the reader, into batches from the scan's finished ones.
struct FileJob {
    reader: InputReader,
    finished: Finished,
}

impl FileJob {
    /// The file read in chunks of at most one batch each (at least one), each handed to `hand`
    /// with whether it is the file's last, as the reader cuts them; `false` once `hand` refuses
    /// one.
    fn read(
        self: Box<Self>,
        limits: BatchLimits,
        hand: &mut impl FnMut(Chunk, bool) -> bool,
    ) -> bool {
        let FileJob {
            mut reader,
            finished,
        } = *self;
        let mut chunk = Chunk::reused(&finished, limits, 0);
        while let Some(full) = read_item(&mut reader, &mut chunk, limits) {
            if full {
                let bytes = chunk.batch.text.len();
                let next = Chunk::reused(&finished, limits, bytes);
                if !hand(std::mem::replace(&mut chunk, next), false) {
                    return false;
                }
            }
        }
        hand(chunk, true)
    }
}

/// A range of a plain file and the batch to read it into.
struct RangeJob {
    range: Range,
    batch: Batch,
}

impl RangeJob {
    /// The range read, in chunks of at most one batch each (at least one), in order; the last
    /// carries the range's counts for [`Numbering`].
    fn read(self, limits: BatchLimits) -> Vec<Chunk> {
        let RangeJob { range, mut batch } = self;
        let RangeRead {
            items,
            ends,
            lines,
            lost,
        } = range.read(&mut batch.text);
        let input = range.input();
        let counts = (lines, items.len() as u64, lost);
        let placing = |last: bool| {
            Some(Placing {
                input,
                range_end: last.then_some(counts),
            })
        };
        batch.ends = ends;
        batch.multiline = false;
        if batch.len() <= limits.events && batch.text.len() <= limits.bytes {
            return vec![Chunk {
                batch,
                items,
                placing: placing(true),
            }];
        }
        // Cut as the reader cuts a batch: full once it holds `limits.events` events or
        // `limits.bytes` bytes. The first batch keeps the range's buffer; the events after it are
        // copied out (ranges are sized to hold about one batch, so they are few).
        let full = |events: usize, bytes: usize| events >= limits.events || bytes >= limits.bytes;
        let mut items = items.into_iter();
        let mut first_items = Vec::new();
        let mut first_events = 0;
        for item in items.by_ref() {
            let ended = item.is_ok();
            first_items.push(item);
            if ended {
                first_events += 1;
                if full(first_events, batch.ends[first_events - 1] + 1) {
                    break;
                }
            }
        }
        let mut chunks = Vec::new();
        let mut part = Chunk {
            batch: Batch::default(),
            items: Vec::new(),
            placing: placing(false),
        };
        let mut event = first_events;
        for item in items {
            let ended = match &item {
                Ok(spot) => {
                    let start = batch.ends[event - 1] + 1;
                    let from = part.batch.text.len();
                    part.batch
                        .text
                        .extend_from_slice(&batch.text[start..batch.ends[event]]);
                    part.batch.ended(from, *spot);
                    event += 1;
                    full(part.batch.len(), part.batch.text.len())
                }
                Err(_) => false,
            };
            part.items.push(item);
            if ended {
                let next = Chunk {
                    batch: Batch::default(),
                    items: Vec::new(),
                    placing: placing(false),
                };
                chunks.push(std::mem::replace(&mut part, next));
            }
        }
        if !part.items.is_empty() {
            chunks.push(part);
        }
        let cut = first_events
            .checked_sub(1)
            .map_or(0, |last| batch.ends[last] + 1);
        batch.text.truncate(cut);
        batch.ends.truncate(first_events);
        chunks.insert(
            0,
            Chunk {
                batch,
                items: first_items,
                placing: placing(false),
            },
        );
        if let Some(last) = chunks.last_mut() {
            last.placing = placing(true);
        }
        chunks
    }
}

/// Waits for the reader thread to end; its panic, if it had one, as an error.
fn join_reader(reading: Option<thread::JoinHandle<()>>) -> Result<(), ScanError> {
    let Some(reading) = reading else {
        return Ok(());
    };
    reading.join().map_err(|panic| {
        let why = panic_message(panic.as_ref());
        ScanError::Reader(format!("the reader panicked: {why}"))
    })
}

/// What a thread's panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|why| (*why).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "it panicked".into())
}

/// The next item of `reader`'s current input into `chunk`: `None` at the end of that input, else
/// whether the chunk is now full (a batch's events or bytes, or an input with nothing more
/// buffered, which is handed over rather than waited on).
fn read_item(reader: &mut InputReader, chunk: &mut Chunk, limits: BatchLimits) -> Option<bool> {
    let start = chunk.batch.text.len();
    let item = reader.next_of_input(&mut chunk.batch.text)?;
    if let Ok(spot) = item {
        chunk.batch.ended(start, spot);
    }
    chunk.items.push(item);
    Some(
        chunk.batch.len() >= limits.events
            || chunk.batch.text.len() >= limits.bytes
            || reader.is_idle(),
    )
}

/// Up to one batch of events and the input errors read among them, in input order.
struct Chunk {
    batch: Batch,
    /// Each item's place: an event's (in batch order) or an input error.
    items: Vec<Result<Spot, InputError>>,
    /// For a part of a range read apart, where its items go (they are numbered within the range).
    placing: Option<Placing>,
}

impl Chunk {
    /// An empty chunk for about `bytes` of text, in a batch the scan has finished with when there
    /// is one (sized like the last chunk: growing it would copy it).
    fn reused(finished: &Finished, limits: BatchLimits, bytes: usize) -> Self {
        Chunk {
            batch: finished.take().unwrap_or_default().reuse(bytes + bytes / 8),
            items: Vec::with_capacity(limits.events),
            placing: None,
        }
    }
}

/// The reader thread: items in chunks of at most one batch, handed over early when an interactive
/// input has nothing more buffered. Event texts go straight into the chunk's buffer, one the scan
/// has finished with when there is one, sized like the last (growing it would copy it).
fn read_chunks(
    mut reader: InputReader,
    limits: BatchLimits,
    queues: &[Giver<Read>],
    finished: &Finished,
) {
    let new_chunk = |bytes: usize| Chunk::reused(finished, limits, bytes);
    // Chunk `i` and then the end go to queue `i % N`.
    let mut handed = 0_usize;
    let mut hand = |read: Read| {
        let queue = &queues[handed % queues.len()];
        handed += 1;
        queue.send(read).is_ok()
    };
    let mut chunk = new_chunk(0);
    loop {
        // A plain file is read in ranges: by the extracting threads when there are any, so that
        // reading runs on every one of them, else here. With extracting threads, a file that
        // cannot be read in ranges (gzip, a delivery document) is read whole by one of them while
        // the next files go to the others; the last input stays here, so that a single such file
        // is still read beside every thread's extracting rather than by one of them alone.
        let plain = reader.plain_file();
        let whole = match plain {
            None if queues.len() > 1 => reader.whole_file(),
            _ => None,
        };
        if (plain.is_some() || whole.is_some()) && !chunk.items.is_empty() {
            let bytes = chunk.batch.text.len();
            let read = std::mem::replace(&mut chunk, new_chunk(bytes));
            if !hand(Read::Chunk(read)) {
                return;
            }
        }
        if let Some(reader) = whole {
            let job = Box::new(FileJob {
                reader,
                finished: finished.clone(),
            });
            if !hand(Read::File(job)) {
                return; // the scan stopped
            }
            continue;
        }
        if let Some(file) = plain {
            let range_bytes = file.range_bytes(limits.events, limits.bytes);
            for range in Arc::new(file).ranges(range_bytes) {
                // Its text is read over as it is, not cleared (see `Range::read`).
                let job = RangeJob {
                    range,
                    batch: finished.take().unwrap_or_default(),
                };
                let handed = if queues.len() == 1 {
                    job.read(limits)
                        .into_iter()
                        .all(|part| hand(Read::Chunk(part)))
                } else {
                    hand(Read::Range(job))
                };
                if !handed {
                    return; // the scan stopped
                }
            }
            continue;
        }
        let Some(full) = read_item(&mut reader, &mut chunk, limits) else {
            if reader.is_done() {
                break;
            }
            continue;
        };
        if full {
            let bytes = chunk.batch.text.len();
            let full = std::mem::replace(&mut chunk, new_chunk(bytes));
            if !hand(Read::Chunk(full)) {
                return; // the scan stopped
            }
        }
    }
    if !chunk.items.is_empty() && !hand(Read::Chunk(chunk)) {
        return;
    }
    hand(Read::End);
}
