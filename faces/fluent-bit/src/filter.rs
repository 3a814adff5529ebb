//! The filter: one [`Filter`] per Fluent Bit instance, fed one record at a time. Everything the rule
//! decides comes from the rule crate; this holds the configuration file, the state files and the
//! answer buffer.
//!
//! # State and crashes
//! The directory holds [`STATE_FILE`], a snapshot in the rule's own format (what `newterms scan
//! --state` reads and writes), and [`JOURNAL_FILE`], the records that changed the history since (the
//! format, and why a torn or stale journal is safe: [`newterms_snapshot::journal`]); each entry is
//! appended before its record's alert is handed back. At start the snapshot is restored and the
//! journal replayed through the rule, then both are folded into a new snapshot: written to a
//! temporary file and renamed over the old one, then a new empty journal naming it, also by rename.
//! The journal is folded every [`FOLD_ENTRIES`] entries too.

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use newterms_guest::settings::Settings;
use newterms_guest::{Config, Engine};
use newterms_snapshot::journal;

/// The configuration, the history (in the rule's snapshot format) and the history's changes since,
/// in the filter's directory.
pub use newterms_snapshot::journal::{CONFIG_FILE, JOURNAL_FILE, STATE_FILE};
/// Journal entries that trigger a fold into the snapshot.
pub const FOLD_ENTRIES: u64 = 20_000;
/// Journal bytes that trigger a fold into the snapshot.
pub const FOLD_BYTES: u64 = 32 << 20;
/// A filter that cannot run says why on its first record and then every this many records.
pub const REPORT_EVERY: u64 = 1_000;

/// What the filter has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records received.
    pub records: u64,
    /// Records that are not events (not UTF-8, not JSON, too deep, no time...): nothing raised.
    pub refused: u64,
    /// Records answered with alerts.
    pub alerting: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Records that changed the history (journal entries written).
    pub journaled: u64,
}

/// The filter of one Fluent Bit instance.
pub struct Filter {
    dir: PathBuf,
    phase: Phase,
    counters: Counters,
    /// The answer, NUL-terminated: Fluent Bit copies it and never frees it.
    output: Vec<u8>,
    /// One journal entry, reused.
    entry: Vec<u8>,
}

enum Phase {
    /// No record yet: configuration and state are read at the first.
    Start,
    Running(Box<Running>),
    /// Raises nothing, writes nothing; the reason is repeated on stderr.
    Stopped(String),
}

struct Running {
    engine: Engine,
    journal: File,
    journal_entries: u64,
    journal_bytes: u64,
}

impl Filter {
    /// A filter keeping its configuration and state in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            phase: Phase::Start,
            counters: Counters::default(),
            output: Vec::new(),
            entry: Vec::new(),
        }
    }

    /// What the filter has seen.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Why the filter raises nothing, if it cannot run.
    pub fn stopped(&self) -> Option<&str> {
        match &self.phase {
            Phase::Stopped(why) => Some(why),
            _ => None,
        }
    }

    /// Takes one record (JSON text) and answers Fluent Bit, NUL-terminated: the alert document, or
    /// `{"alerts": [...]}` when the record raises several, or nothing (the record is dropped).
    pub fn filter(&mut self, record: &[u8]) -> &[u8] {
        self.output.clear();
        self.counters.records += 1;
        if matches!(self.phase, Phase::Start) {
            self.phase = match self.start() {
                Ok(running) => Phase::Running(Box::new(running)),
                // One line per report: parser messages (TOML's) span several.
                Err(why) => Phase::Stopped(why.split_whitespace().collect::<Vec<_>>().join(" ")),
            };
        }
        match &mut self.phase {
            Phase::Running(running) => {
                if let Err(why) = step(
                    running,
                    &self.dir,
                    record,
                    &mut self.counters,
                    &mut self.output,
                    &mut self.entry,
                ) {
                    self.output.clear();
                    self.phase = Phase::Stopped(why);
                }
            }
            Phase::Start => {}
            Phase::Stopped(_) => {}
        }
        if let Phase::Stopped(why) = &self.phase
            && (self.counters.records - 1).is_multiple_of(REPORT_EVERY)
        {
            eprintln!(
                "newterms filter: NOT RUNNING: {why} (record {}; the filter raises nothing and writes no state until this is fixed and Fluent Bit restarted)",
                self.counters.records
            );
        }
        self.output.push(0);
        &self.output
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads the configuration and the state, and folds the journal.
    fn start(&mut self) -> Result<Running, String> {
        let config_path = self.path(CONFIG_FILE);
        let settings = match fs::read_to_string(&config_path) {
            Ok(text) => toml::from_str::<Settings>(&text)
                .map_err(|error| format!("{}: {error}", config_path.display()))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Settings::default(),
            Err(error) => return Err(format!("cannot read {}: {error}", config_path.display())),
        };
        let config = newterms_guest::settings::config_of(&settings)
            .map_err(|error| format!("{}: {error}", config_path.display()))?;
        let config = Config {
            hash_key: random_hash_key(),
            ..config
        };
        let mut engine = if settings.rules.is_empty() {
            Engine::built_in(config)
                .map_err(|error| format!("{}: {error:?}", config_path.display()))?
        } else {
            // Rule files from the configuration file's folder (readable through the filter's
            // `Accessible_Paths`); a refused one stops the filter, named.
            let paths = settings.rules.iter().map(PathBuf::from);
            let files = newterms_guest::rule_pack::read_rule_files(&self.dir, paths)
                .map_err(|why| format!("{}: {why}", config_path.display()))?;
            Engine::from_files(&files, config)
                .map_err(|why| format!("{}: rule file {why}", config_path.display()))?
        };

        let state_path = self.path(STATE_FILE);
        let base = match fs::read(&state_path) {
            Ok(bytes) => {
                let notices = engine.restore(&bytes).map_err(|error| {
                    format!(
                        "state file {} cannot be used ({error:?}); it is left as it is",
                        state_path.display()
                    )
                })?;
                for notice in notices {
                    eprintln!("newterms filter: {notice}");
                }
                journal::base_of(&bytes)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => journal::NO_SNAPSHOT,
            Err(error) => return Err(format!("cannot read {}: {error}", state_path.display())),
        };

        let journal_path = self.path(JOURNAL_FILE);
        match fs::read(&journal_path) {
            Ok(bytes) => replay(&mut engine, &bytes, &base).map_err(|why| {
                format!(
                    "journal {} {why}; it is left as it is",
                    journal_path.display()
                )
            })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot read {}: {error}", journal_path.display())),
        }
        let journal = fold(&self.dir, &engine)?;
        Ok(Running {
            engine,
            journal,
            journal_entries: 0,
            journal_bytes: 0,
        })
    }
}

/// One record through a running filter. An error stops the filter (no answer for this record).
fn step(
    running: &mut Running,
    dir: &Path,
    record: &[u8],
    counters: &mut Counters,
    output: &mut Vec<u8>,
    entry: &mut Vec<u8>,
) -> Result<(), String> {
    let before = history_changes(&running.engine);
    // Not UTF-8, not an event: refused below, and it changes nothing.
    let outcome = running.engine.process_bytes(record);
    if history_changes(&running.engine) != before {
        // Written before the alert leaves: a restart replays it and does not raise it again.
        journal::entry(record, entry);
        running
            .journal
            .write_all(entry)
            .map_err(|error| format!("cannot append to {JOURNAL_FILE}: {error}"))?;
        counters.journaled += 1;
        running.journal_entries += 1;
        running.journal_bytes += entry.len() as u64;
    }
    match outcome {
        Err(_) => refused(counters),
        Ok(alerts) => answer(&alerts, output, counters),
    }
    if running.journal_entries >= FOLD_ENTRIES || running.journal_bytes >= FOLD_BYTES {
        running.journal = fold(dir, &running.engine)?;
        running.journal_entries = 0;
        running.journal_bytes = 0;
    }
    Ok(())
}

/// How many matching events the history has taken in: it changes when (and only when) an event may
/// have changed the history (a matching event without a term is counted too, harmlessly).
fn history_changes(engine: &Engine) -> u64 {
    let stats = engine.stats();
    stats.matched - stats.excepted
}

fn refused(counters: &mut Counters) {
    counters.refused += 1;
    // Counted, and said on stderr at 1, 10, 100... so a broken input is noticed without a flood.
    let n = counters.refused;
    if n == 1 || (n.is_power_of_two() && n >= 1024) || is_power_of_ten(n) {
        eprintln!(
            "newterms filter: {n} record(s) refused so far (not an event: not UTF-8 or JSON, nested too deep, no valid time...)"
        );
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// The answer for one record's alerts: one document, or several in `{"alerts": [...]}`.
fn answer(alerts: &[String], output: &mut Vec<u8>, counters: &mut Counters) {
    match alerts {
        [] => {}
        [alert] => output.extend_from_slice(alert.as_bytes()),
        several => {
            output.extend_from_slice(b"{\"alerts\":[");
            for (i, alert) in several.iter().enumerate() {
                if i > 0 {
                    output.push(b',');
                }
                output.extend_from_slice(alert.as_bytes());
            }
            output.extend_from_slice(b"]}");
        }
    }
    if !alerts.is_empty() {
        counters.alerting += 1;
        counters.alerts += alerts.len() as u64;
    }
}

/// Replays the journal's records when it continues the snapshot `base`.
fn replay(engine: &mut Engine, bytes: &[u8], base: &[u8; 32]) -> Result<(), String> {
    let records = journal::records(bytes, base).map_err(|error| error.to_string())?;
    for record in records {
        // Replayed as it ran: its alerts were handed back then, its errors counted then.
        let _ = engine.process_bytes(record);
    }
    Ok(())
}

/// Writes the history as the snapshot and starts an empty journal naming it, each by an atomic
/// replace; returns the journal, open for appending.
fn fold(dir: &Path, engine: &Engine) -> Result<File, String> {
    let snapshot = engine.snapshot();
    replace(&dir.join(STATE_FILE), &snapshot)?;
    let journal_path = dir.join(JOURNAL_FILE);
    replace(&journal_path, &journal::header(&snapshot))?;
    OpenOptions::new()
        .append(true)
        .open(&journal_path)
        .map_err(|error| format!("cannot open {}: {error}", journal_path.display()))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    written.map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Keys the history's hash with random bits (WASI `random_get` in the module), as the host does.
fn random_hash_key() -> (u64, u64) {
    let state = RandomState::new();
    (
        state.hash_one(0x6e65_7774_u64),
        state.hash_one(0x6572_6d73_u64),
    )
}
