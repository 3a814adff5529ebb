//! `newterms scan`: inputs to alerts, with a state that survives crashes and restarts.
//!
//! With `--state S`, the scan holds `S.lock`, checkpoints to `S.checkpoint` (the rule's history, the
//! input position and the lengths of its output files) every N events and every T seconds, and at the
//! end saves the history to `S` and removes the checkpoint. Killed at any moment and run again with
//! the same arguments, it finds the checkpoint, cuts its output files back to their checkpointed
//! lengths and goes on from there: the files end exactly as after an uninterrupted run. Alerts on
//! stdout cannot be taken back, so there they are at least once (a replay repeats an alert with the
//! same `kibana.alert.uuid`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use newterms::checkpoint::{Checkpoint, RunIdentity};
use newterms::input::{Input, InputReader, Position};
use newterms::scan::{
    self, BatchLimits, DeadLetter, Diagnostic, ScanEnd, ScanError, ScanOptions, ScanSummary,
    Scanner,
};
use newterms::state::sibling;
use newterms::{Error, FileStateStore, RuleComponent, RuleConfig, StateLock, StateStore};

/// What `scan` was asked to do, beyond the rule's configuration.
pub struct ScanRequest {
    pub inputs: Vec<String>,
    pub state: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub dead_letter: Option<PathBuf>,
    pub reset_state: bool,
    pub batch_size: usize,
    pub checkpoint_events: u64,
    pub checkpoint_interval: Duration,
    /// Raised by SIGINT or SIGTERM (registered before anything slow happens).
    pub stop: Arc<AtomicBool>,
    /// How alerts are written.
    pub format: AlertFormat,
}

/// How alerts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertFormat {
    /// Elastic Security alerts (ECS), as the rule raises them.
    Ecs,
    /// OCSF 1.1 Detection Findings (class 2004), for AWS Security Lake.
    Ocsf,
}

/// Stops the scan at its next batch on SIGINT or SIGTERM, instead of dying mid-write.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    Ok(stop)
}

pub fn run(
    request: ScanRequest,
    component: &RuleComponent,
    config: &RuleConfig,
) -> Result<ExitCode> {
    let inputs: Vec<Input> = if request.inputs.is_empty() {
        vec![Input::Stdin]
    } else {
        request
            .inputs
            .iter()
            .map(|arg| Input::from_arg(arg))
            .collect()
    };
    // Refuse unreadable files before anything is processed, so that nothing is half done.
    for input in &inputs {
        if let Input::File(path) = input {
            File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        }
    }
    let identity = RunIdentity {
        inputs: inputs.iter().map(input_name).collect(),
        output: request
            .output
            .as_ref()
            .map(|path| path.display().to_string()),
    };

    let _lock = request
        .state
        .as_deref()
        .map(StateLock::acquire)
        .transpose()?;
    let state_store = request.state.as_ref().map(FileStateStore::new);
    let checkpoint_store = request
        .state
        .as_ref()
        .map(|state| FileStateStore::new(sibling(state, "checkpoint")));
    let resumed = match &checkpoint_store {
        Some(store) if !request.reset_state => load_checkpoint(store, &identity)?,
        _ => None,
    };

    let initial = match (&resumed, &state_store) {
        (Some(checkpoint), _) => Some(checkpoint.snapshot.clone()),
        (None, Some(store)) if !request.reset_state => store.load()?,
        _ => None,
    };
    let mut scanner = match Scanner::new(component, config, initial) {
        Err(Error::Restore(error)) => {
            let source = match (&resumed, &checkpoint_store, &state_store) {
                (Some(_), Some(store), _) | (None, _, Some(store)) => {
                    store.path().display().to_string()
                }
                _ => "the state".into(),
            };
            bail!(
                "cannot use {source}: {error}; it is left as it is (--reset-state starts with an empty history)"
            );
        }
        other => other?,
    };

    let dead_letter_path = request.dead_letter.clone().or_else(|| {
        request
            .state
            .as_ref()
            .or(request.output.as_ref())
            .map(|path| sibling(path, "dead-letter.ndjson"))
    });
    let alerts = match &request.output {
        Some(path) => Output::file(path, resumed.as_ref().and_then(|c| c.output_len))?,
        None => Output::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
    };
    if let (Some(path), Some(len)) = (
        &dead_letter_path,
        resumed.as_ref().and_then(|c| c.dead_letter_len),
    ) {
        cut_back(path, len)?;
    }
    let mut sink = CliSink {
        format: request.format,
        progress: std::io::IsTerminal::is_terminal(&io::stderr()).then(Progress::new),
        alerts,
        dead_letters: None,
        dead_letter_path,
        checkpoints: checkpoint_store
            .clone()
            .map(|store| (store, identity.clone())),
    };

    let options = ScanOptions {
        batch: BatchLimits {
            events: request.batch_size,
            ..BatchLimits::default()
        },
        checkpoint_events: request.checkpoint_events,
        checkpoint_interval: Some(request.checkpoint_interval),
        stop: Some(Arc::clone(&request.stop)),
        ..ScanOptions::default()
    };
    let reader = match &resumed {
        Some(checkpoint) => {
            eprintln!(
                "newterms: resuming an interrupted scan at input {} item {}",
                checkpoint.position.input + 1,
                checkpoint.position.items
            );
            InputReader::resume(inputs.clone(), checkpoint.position)
        }
        None => InputReader::new(inputs.clone()),
    };

    let started = Instant::now();
    let end = match scanner.run(reader, &options, &mut sink) {
        Ok(end) => end,
        Err(ScanError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            // The reader went away: its alerts were not delivered, so history must not record them.
            eprintln!("newterms: output closed; state not saved");
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error.into()),
    };
    sink.finish()?;

    let only_stdin = inputs.iter().all(Input::is_stream);
    let summary = scanner.summary();
    let stats = scanner.rule().stats()?;
    let mut finished_checkpoint = None;
    match end {
        ScanEnd::Stopped(_) if !only_stdin && checkpoint_store.is_some() => {
            eprintln!("newterms: stopped; run the same command again to resume");
        }
        ScanEnd::Stopped(_) if !only_stdin => eprintln!("newterms: stopped"),
        // A stream that was stopped has ended: there is nothing to resume in it.
        ScanEnd::Stopped(_) | ScanEnd::Finished => {
            if let Some(store) = &state_store {
                let snapshot = scanner.rule().snapshot()?;
                store.save(&snapshot).context("cannot save the state")?;
            }
            finished_checkpoint = checkpoint_store
                .as_ref()
                .map(|store| store.path().to_owned());
        }
    }
    print_summary(&summary, &stats, started.elapsed().as_secs_f64());
    // The checkpoint goes last, with the instance already dropped: a run killed before this point
    // resumes and rewrites nothing; the moment after it holds only the process's own exit.
    drop(scanner);
    if let Some(path) = finished_checkpoint {
        remove_if_present(&path)?;
    }
    Ok(if summary.unreadable_inputs > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn input_name(input: &Input) -> String {
    match input {
        Input::Stdin => "-".into(),
        Input::File(path) => path.display().to_string(),
        Input::Stream(stream) => format!("{stream:?}"),
    }
}

fn load_checkpoint(store: &FileStateStore, identity: &RunIdentity) -> Result<Option<Checkpoint>> {
    let Some(bytes) = store.load()? else {
        return Ok(None);
    };
    let path = store.path().display();
    let checkpoint = Checkpoint::decode(&bytes).map_err(|why| {
        anyhow::anyhow!(
            "the checkpoint {path} is unusable ({why}); it is left as it is (--reset-state discards it)"
        )
    })?;
    if checkpoint.run != *identity {
        bail!(
            "{path} holds an interrupted scan of {} with output {}: run that scan again to finish \
             it, or pass --reset-state to discard it",
            checkpoint.run.inputs.join(" "),
            checkpoint.run.output.as_deref().unwrap_or("stdout"),
        );
    }
    Ok(Some(checkpoint))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Where alerts go.
enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(TrackedFile),
}

impl Output {
    /// The alert file: created afresh for a new scan, cut back to its checkpointed length when
    /// resuming one.
    fn file(path: &Path, resume_len: Option<u64>) -> Result<Self> {
        if let Some(len) = resume_len {
            cut_back(path, len)?;
        }
        let file = TrackedFile::open(path, resume_len.is_none())
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Output::File(file))
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(writer) => writer,
            Output::File(file) => file,
        }
    }
}

/// An output file whose length is known at every moment, so that a checkpoint can record it.
struct TrackedFile {
    writer: BufWriter<File>,
    len: u64,
}

impl TrackedFile {
    /// Opens `path` for writing at its end, creating it, or emptying it first when `truncate`.
    fn open(path: &Path, truncate: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!truncate)
            .truncate(truncate)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            writer: BufWriter::with_capacity(1 << 16, file),
            len,
        })
    }

    /// Flushed and on disk.
    fn sync(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()
    }
}

/// Cuts a file back to the length a checkpoint recorded: what was written after the checkpoint is
/// written again by the resumed scan.
fn cut_back(path: &Path, len: u64) -> Result<()> {
    let file = match OpenOptions::new().write(true).open(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound && len == 0 => return Ok(()),
        other => other.with_context(|| format!("cannot open {}", path.display()))?,
    };
    let found = file.metadata()?.len();
    if found < len {
        bail!(
            "{} is shorter ({found} bytes) than at the checkpoint ({len} bytes): it was changed \
             since, so the scan cannot resume without losing what it held",
            path.display()
        );
    }
    file.set_len(len)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot cut {} back", path.display()))
}

/// The current length of a file that may not exist yet.
fn current_len(path: &Path) -> io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(metadata.len()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

impl Write for TrackedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.writer.write(bytes)?;
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

struct CliSink {
    format: AlertFormat,
    /// A status line on stderr, when stderr is a terminal.
    progress: Option<Progress>,
    alerts: Output,
    /// Opened at the first dead letter, appending: earlier scans' dead letters are kept.
    dead_letters: Option<TrackedFile>,
    dead_letter_path: Option<PathBuf>,
    checkpoints: Option<(FileStateStore, RunIdentity)>,
}

impl CliSink {
    /// Everything written is on disk (or handed to stdout).
    fn finish(&mut self) -> io::Result<()> {
        if self.progress.take().is_some() {
            eprint!("\r\x1b[K");
        }
        match &mut self.alerts {
            Output::Stdout(writer) => writer.flush()?,
            Output::File(file) => file.sync()?,
        }
        if let Some(file) = &mut self.dead_letters {
            file.sync()?;
        }
        Ok(())
    }
}

impl scan::Sink for CliSink {
    fn alert(&mut self, alert: &str) -> io::Result<()> {
        let converted;
        let alert = match self.format {
            AlertFormat::Ecs => alert,
            AlertFormat::Ocsf => {
                converted = newterms::ocsf::detection_finding(alert).map_err(io::Error::other)?;
                &converted
            }
        };
        let writer = self.alerts.writer();
        writer.write_all(alert.as_bytes())?;
        writer.write_all(b"\n")
    }

    fn flush(&mut self, progress: &ScanSummary) -> io::Result<()> {
        if let Some(line) = &mut self.progress {
            line.show(progress);
        }
        self.alerts.writer().flush()
    }

    fn diagnostic(&mut self, diagnostic: Diagnostic) {
        let _ = writeln!(io::stderr().lock(), "newterms: {diagnostic}");
    }

    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> io::Result<()> {
        let reason = error_chain(letter.error);
        eprintln!("newterms: {}: event set aside: {reason}", letter.location);
        if self.dead_letters.is_none()
            && let Some(path) = &self.dead_letter_path
        {
            self.dead_letters = Some(TrackedFile::open(path, false)?);
        }
        if let Some(file) = &mut self.dead_letters {
            let line = json!({
                "location": letter.location.to_string(),
                "reason": reason,
                "event": letter.event,
            });
            writeln!(file, "{line}")?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, position: Position, snapshot: &[u8]) -> io::Result<()> {
        let output_len = match &mut self.alerts {
            Output::Stdout(writer) => {
                writer.flush()?;
                None
            }
            Output::File(file) => {
                file.sync()?;
                Some(file.len)
            }
        };
        let dead_letter_len = match (&mut self.dead_letters, &self.dead_letter_path) {
            (Some(file), _) => {
                file.sync()?;
                Some(file.len)
            }
            (None, Some(path)) => Some(current_len(path)?),
            (None, None) => None,
        };
        let Some((store, run)) = &self.checkpoints else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            run: run.clone(),
            position,
            output_len,
            dead_letter_len,
            snapshot: snapshot.to_vec(),
        };
        store.save(&checkpoint.encode()).map_err(io::Error::other)
    }
}

/// A status line for long scans on a terminal: events, alerts and rate, redrawn a few times a second.
struct Progress {
    started: Instant,
    drawn: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            drawn: now,
        }
    }

    fn show(&mut self, progress: &ScanSummary) {
        if self.drawn.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.drawn = Instant::now();
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r\x1b[Knewterms: {} events, {} alerts, {:.0} events/s",
            progress.events,
            progress.alerts,
            progress.events as f64 / seconds
        );
    }
}

/// The error with its causes, as one line.
fn error_chain(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn print_summary(summary: &ScanSummary, stats: &newterms::Stats, seconds: f64) {
    let rate = if seconds > 0.0 {
        summary.events as f64 / seconds
    } else {
        0.0
    };
    let mut line = format!(
        "newterms: {} events read, {} matched, {} excepted, {} alerts, {} errors ({} input, {} event) \
         in {seconds:.3} s ({rate:.0} events/s); {} terms in history, {} evicted",
        summary.events,
        stats.matched,
        stats.excepted,
        summary.alerts,
        summary.input_errors + summary.event_errors,
        summary.input_errors,
        summary.event_errors,
        stats.terms,
        stats.evictions,
    );
    if summary.dead_letters > 0 || summary.recoveries > 0 {
        line.push_str(&format!(
            "; {} events set aside, {} recoveries",
            summary.dead_letters, summary.recoveries
        ));
    }
    eprintln!("{line}");
}
