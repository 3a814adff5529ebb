//! `newterms scan`: inputs to alerts, with a state that survives crashes and restarts.
//!
//! With `--state S`, the scan holds `S.lock`, checkpoints to `S.checkpoint` (the rule's history, the
//! input position and the lengths of its output files) every N events and every T seconds, and at the
//! end saves the history to `S` and removes the checkpoint. Killed at any moment and run again with
//! the same arguments, it finds the checkpoint, cuts its output files back to their checkpointed
//! lengths and goes on from there: the files end exactly as after an uninterrupted run. Alerts on
//! stdout cannot be taken back, so there they are at least once (a replay repeats an alert with the
//! same `kibana.alert.uuid`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use newterms::checkpoint::{Completion, Fingerprint, RunIdentity};
use newterms::durable::{DurableRun, TrackedFile, sibling};
use newterms::input::{Input, InputReader, Position};
use newterms::scan::{
    self, BatchLimits, DeadLetter, Diagnostic, ScanEnd, ScanError, ScanOptions, ScanSummary,
    Scanner,
};
use newterms::{Error, RuleComponent, RuleConfig};

/// What `scan` was asked to do, beyond the rule's configuration.
pub struct ScanRequest {
    pub inputs: Vec<String>,
    pub state: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub dead_letter: Option<PathBuf>,
    pub reset_state: bool,
    pub batch_size: usize,
    /// Rule instances extracting batches at once.
    pub threads: usize,
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

    // What this scan is when its inputs are all files: a scan of them records that it ended.
    let completion = inputs
        .iter()
        .map(|input| match input {
            Input::File(path) => Fingerprint::of(path).ok(),
            Input::Stdin | Input::Stream(_) => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|files| Completion {
            files,
            rule: format!(
                "{} {} version {} {config:?}",
                component.origin(),
                component.provenance().rule_id,
                component.provenance().rule_version
            ),
        });
    let durable = DurableRun::open(
        request.state.as_deref(),
        identity,
        completion.as_ref(),
        request.reset_state,
    )?;
    if durable.completed() {
        eprintln!(
            "newterms: this scan of these files already ended (its alerts are written, its state saved): nothing to do; to scan them again, remove {}",
            request
                .state
                .as_deref()
                .map(|state| sibling(state, "checkpoint").display().to_string())
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (initial, source) = durable.history()?;
    let source = source.map(|path| path.display().to_string());
    let mut scanner = match Scanner::new(component, config, initial) {
        Err(Error::Restore(error)) => {
            let source = source.unwrap_or_else(|| "the state".into());
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
        Some(path) => Output::File(durable.output(path)?),
        None => Output::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
    };
    if let Some(path) = &dead_letter_path {
        durable.dead_letters(path)?;
    }
    let mut sink = CliSink {
        format: request.format,
        progress: std::io::IsTerminal::is_terminal(&io::stderr()).then(Progress::new),
        alerts,
        dead_letters: None,
        dead_letter_path,
        durable: &durable,
    };

    let options = ScanOptions {
        batch: BatchLimits {
            events: request.batch_size,
            ..BatchLimits::default()
        },
        checkpoint_events: request.checkpoint_events,
        checkpoint_interval: Some(request.checkpoint_interval),
        stop: Some(Arc::clone(&request.stop)),
        threads: request.threads,
        ..ScanOptions::default()
    };
    let reader = match durable.resumed() {
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
    let finished = match end {
        ScanEnd::Stopped(_) if !only_stdin && durable.has_state() => {
            eprintln!("newterms: stopped; run the same command again to resume");
            false
        }
        ScanEnd::Stopped(_) if !only_stdin => {
            eprintln!("newterms: stopped");
            false
        }
        // A stream that was stopped has ended: there is nothing to resume in it.
        ScanEnd::Stopped(_) | ScanEnd::Finished => true,
    };
    let history = if finished && durable.has_state() {
        Some(scanner.rule().snapshot()?)
    } else {
        None
    };
    print_summary(&summary, &stats, started.elapsed().as_secs_f64());
    drop(sink);
    // The instance is dropped before the checkpoint goes: a run killed before that point resumes
    // and rewrites nothing; the moment after it holds only the process's own exit.
    drop(scanner);
    if finished {
        // A scan that could not read an input to its end is not one to skip when run again.
        let completion = completion.filter(|_| summary.unreadable_inputs == 0);
        durable
            .finish(history.as_deref(), completion)
            .context("cannot save the state")?;
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

/// Where alerts go.
enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(TrackedFile),
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(writer) => writer,
            Output::File(file) => file,
        }
    }
}

struct CliSink<'d> {
    format: AlertFormat,
    /// A status line on stderr, when stderr is a terminal.
    progress: Option<Progress>,
    alerts: Output,
    /// Opened at the first dead letter, appending: earlier scans' dead letters are kept.
    dead_letters: Option<TrackedFile>,
    dead_letter_path: Option<PathBuf>,
    durable: &'d DurableRun,
}

impl CliSink<'_> {
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

impl scan::Sink for CliSink<'_> {
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
        let alerts = match &mut self.alerts {
            Output::Stdout(writer) => {
                writer.flush()?;
                None
            }
            Output::File(file) => Some(file),
        };
        self.durable.checkpoint(
            position,
            snapshot,
            alerts,
            self.dead_letters.as_mut(),
            self.dead_letter_path.as_deref(),
        )
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
