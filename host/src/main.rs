//! `newterms`: run the Lambda new-terms detection rule over CloudTrail logs, sandboxed.

mod scan_command;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use newterms::settings::{self, ARN_FIELD, Settings, parse_duration_ms};

use newterms::scan::BatchLimits;
use newterms::{
    EMBEDDED_COMPONENT, Exception, Limits, Profile, RuleComponent, RuleConfig, Sandbox,
};
use newterms::{faces, snapshots};
use newterms_snapshot::journal;

/// Runs the "AWS Lambda Function Invoked by an Unusual Principal" new-terms rule, a sandboxed
/// WebAssembly component, over CloudTrail records or ECS documents.
#[derive(Parser)]
#[command(name = "newterms", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read events and print an alert (one JSON document per line) for every new term.
    Scan(ScanArgs),
    /// Print the rule's metadata and the component's imports and exports; with --target, the size,
    /// imports and exports of that build of the rule.
    Info {
        #[command(flatten)]
        rule: RuleArgs,
        /// Which build of the rule to describe.
        #[arg(long, value_enum, default_value = "component")]
        target: Target,
    },
    /// Write the embedded rule component (or another build of the rule), for loading into another
    /// host.
    Component {
        /// Which build: the component, the Fluent Bit filter module, or the Extism plugin.
        #[arg(long, value_enum, default_value = "component")]
        target: Target,
        /// Where to write it.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Look into saved first-seen histories, or merge them.
    #[command(subcommand)]
    State(StateCommand),
}

/// A build of the rule for one kind of host.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// The WebAssembly component of the `newterms:rule` world (imports nothing).
    Component,
    /// A Fluent Bit `filter_wasm` module (Fluent Bit 4.1 and later).
    FluentBit,
    /// An Extism plugin.
    Extism,
}

impl Target {
    fn bytes(self) -> Result<&'static [u8]> {
        match self {
            Target::Component => Ok(EMBEDDED_COMPONENT),
            Target::FluentBit => Ok(faces::FLUENT_BIT_MODULE),
            Target::Extism => Ok(faces::EXTISM_MODULE),
        }
    }
}

#[derive(Subcommand)]
enum StateCommand {
    /// What a state file holds: terms, oldest and newest, terms per account, evictions.
    Inspect {
        /// A state file written by `scan --state`.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fold a Fluent Bit filter's journal into its state file (DIR/newterms.state), while Fluent Bit
    /// is stopped, so that `scan --state` and `state inspect` see all of its history.
    Fold {
        /// The filter's directory (the first of its `Accessible_Paths`).
        dir: PathBuf,
    },
    /// Merge the states of workers that each saw a share of a stream (latest time wins per term).
    Merge {
        /// State files of the same rule and profile.
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Where to write the merged state (atomically).
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Args)]
struct RuleArgs {
    /// Rule profile: `default` (14-day window, root identities seen by ARN) or `elastic` (as
    /// published: 7 days).
    #[arg(long)]
    profile: Option<Profile>,
    /// TOML configuration: profile, window, capacity, exclude_arns, [[exceptions]], learn.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// History window, e.g. `14d`, `36h`, `90m` (overrides the profile's).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    window: Option<u64>,
    /// How many terms the history keeps (least recently seen evicted first).
    #[arg(long, value_name = "TERMS")]
    capacity: Option<u32>,
    /// Drop events by this principal ARN (`*` and `?` wildcards); repeatable.
    #[arg(long = "exclude-arn", value_name = "ARN")]
    exclude_arns: Vec<String>,
    /// Elastic detection-rules file (`new_terms`, KQL), or a folder of `*.toml` ones, run in place
    /// of the built-in rule, all in one pass; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Run another component of the newterms:rule world instead of the embedded one.
    #[arg(long, value_name = "FILE.wasm")]
    rule: Option<PathBuf>,
    /// Refuse the --rule component unless its SHA-256 is this (hex), as its publisher printed it.
    #[arg(long, value_name = "HEX", requires = "rule")]
    rule_sha256: Option<String>,
    /// Most linear memory the component may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_memory_bytes >> 20)]
    max_memory: usize,
    /// Longest one call into the component may run, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = Limits::default().call_deadline.as_millis() as u64)]
    cpu_deadline_ms: u64,
}

impl RuleArgs {
    /// The embedded rule, its default configuration and the default limits.
    fn embedded_defaults() -> Self {
        let limits = Limits::default();
        RuleArgs {
            profile: None,
            config: None,
            window: None,
            capacity: None,
            exclude_arns: Vec::new(),
            rules: Vec::new(),
            rule: None,
            rule_sha256: None,
            max_memory: limits.max_memory_bytes >> 20,
            cpu_deadline_ms: limits.call_deadline.as_millis() as u64,
        }
    }
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    rule: RuleArgs,
    /// Restore first-seen history from this file if it exists, and save it back at the end; with it,
    /// the scan checkpoints to PATH.checkpoint and a killed scan resumes when run again.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Write alerts to this file instead of stdout (created afresh; exactly once across crashes
    /// with --state).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Where events the component fails on are set aside (default: beside --state or --output).
    #[arg(long, value_name = "FILE")]
    dead_letter: Option<PathBuf>,
    /// Start with an empty history when the state or its checkpoint cannot be used (they are
    /// overwritten at the end).
    #[arg(long)]
    reset_state: bool,
    /// Checkpoint after this many events (later if checkpoints would take over a tenth of the
    /// scan's time, as they can with a very large history).
    #[arg(long, value_name = "EVENTS", default_value_t = 100_000)]
    checkpoint_events: u64,
    /// Alert format: `ecs` (Elastic Security) or `ocsf` (OCSF Detection Finding).
    #[arg(long, value_enum, default_value = "ecs")]
    format: scan_command::AlertFormat,
    /// Checkpoint after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    checkpoint_interval: f64,
    /// Build history and raise no alerts: the warm-up before a first-seen rule goes live.
    #[arg(long)]
    learn: bool,
    /// Most events per call into the component.
    #[arg(long, value_name = "EVENTS", default_value_t = BatchLimits::default().events)]
    batch_size: usize,
    /// Rule instances extracting batches at once, each on its own core; the first-seen decision
    /// stays on one, in input order, so the alerts are those of one thread. Default: the machine's
    /// cores. Rules from rule files (`--rules`) run on one.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// NDJSON or CloudTrail delivery files, gzip or not; `-` or nothing for standard input.
    #[arg(value_name = "INPUT")]
    inputs: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Scan(args) => run_scan(args),
        Command::Info {
            rule,
            target: Target::Component,
        } => run_info(rule).map(|()| ExitCode::SUCCESS),
        Command::Info { target, .. } => run_module_info(target).map(|()| ExitCode::SUCCESS),
        Command::Component { target, output } => {
            write_component(target, &output).map(|()| ExitCode::SUCCESS)
        }
        Command::State(command) => run_state(command).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("newterms: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The rule component the arguments name, and its configuration (the `--config` file, then the
/// flags), checked by the rule itself: a value it refuses is reported with the key it came from.
fn configured_rule(args: &RuleArgs, learn: bool) -> Result<(RuleComponent, RuleConfig)> {
    let settings = match &args.config {
        Some(path) => read_config_file(path)?,
        None => Settings::default(),
    };
    let in_file = || format!("in configuration file {}", config_path(args));
    let file = settings::rule_config(&settings).with_context(in_file)?;
    let mut exceptions = file.exceptions;
    if !args.exclude_arns.is_empty() {
        // One exception on the ARN field, as `exclude_arns` in the file makes.
        match exceptions.last_mut() {
            // `exclude_arns` in the file made the last exception: the flags add to it.
            Some(arns) if !settings.exclude_arns.is_empty() => {
                arns.patterns.extend(args.exclude_arns.iter().cloned());
            }
            _ => exceptions.push(Exception {
                field: ARN_FIELD.into(),
                patterns: args.exclude_arns.clone(),
            }),
        }
    }
    let config = RuleConfig {
        profile: args.profile.unwrap_or(file.profile),
        window_ms: args.window.or(file.window_ms),
        exceptions,
        capacity: args.capacity.or(file.capacity),
        learn: learn || file.learn,
        partition: None,
        rules: rule_files(&args.rules, &settings.rules, args.config.as_deref())?,
    };
    let component = load_component(args)?;
    match component.instantiate(&config) {
        Err(newterms::Error::Config(error)) if args.config.is_some() => {
            Err(settings::refused_key(&settings, &config, &error)).with_context(in_file)
        }
        Err(error) => Err(error.into()),
        Ok(_) => Ok((component, config)),
    }
}

/// The rule files of `--rules` and of the configuration file's `rules` (relative to its folder).
fn rule_files(
    flags: &[PathBuf],
    in_file: &[String],
    config: Option<&Path>,
) -> Result<Vec<newterms::RuleFile>> {
    let base = config
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let from_file = in_file.iter().map(|path| base.join(path));
    let given = flags.iter().cloned().chain(from_file);
    settings::read_rule_files(Path::new(""), given).map_err(anyhow::Error::msg)
}

fn config_path(args: &RuleArgs) -> String {
    args.config
        .as_deref()
        .unwrap_or(Path::new("?"))
        .display()
        .to_string()
}

fn read_config_file(path: &Path) -> Result<Settings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in configuration file {}", path.display()))
}

fn load_component(args: &RuleArgs) -> Result<RuleComponent> {
    let limits = Limits {
        max_memory_bytes: args.max_memory.saturating_mul(1 << 20),
        call_deadline: Duration::from_millis(args.cpu_deadline_ms),
    };
    let sandbox = Sandbox::new(limits)?;
    Ok(match &args.rule {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if let Some(expected) = &args.rule_sha256 {
                let actual = sha256_hex(&bytes);
                if !actual.eq_ignore_ascii_case(expected.trim()) {
                    bail!(
                        "{} has SHA-256 {actual}, not the {} given with --rule-sha256: refusing to run it",
                        path.display(),
                        expected.trim()
                    );
                }
            }
            let origin = path.display().to_string();
            match cache_dir() {
                Some(cache) => RuleComponent::from_bytes_cached(&sandbox, &bytes, &origin, &cache)?,
                None => RuleComponent::from_bytes(&sandbox, &bytes, &origin)?,
            }
        }
        None => match cache_dir() {
            Some(cache) => RuleComponent::embedded_cached(&sandbox, &cache)?,
            None => RuleComponent::embedded(&sandbox)?,
        },
    })
}

/// Where compiled components are kept between runs (compiling takes ~200 ms, loading ~2 ms; see
/// `benches/README.md`):
/// `$XDG_CACHE_HOME/newterms`, else `~/.cache/newterms`. The cache only loads files this host wrote
/// there for the same component and engine; without a home, every run compiles.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("newterms"))
}

fn run_scan(args: ScanArgs) -> Result<ExitCode> {
    let stop = scan_command::stop_on_signals()?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let (component, config) = configured_rule(&args.rule, args.learn)?;
    let request = scan_command::ScanRequest {
        inputs: args.inputs,
        state: args.state,
        output: args.output,
        dead_letter: args.dead_letter,
        reset_state: args.reset_state,
        batch_size: args.batch_size,
        threads,
        checkpoint_events: args.checkpoint_events,
        checkpoint_interval: Duration::from_secs_f64(args.checkpoint_interval),
        stop,
        format: args.format,
    };
    scan_command::run(request, &component, &config)
}

/// `info --rules`: each rule file as the component loads it, or why it refuses it.
fn run_rules_info(args: &RuleArgs, rules: Vec<newterms::RuleFile>) -> Result<()> {
    let component = load_component(args)?;
    let mut rule = component.instantiate(&RuleConfig::default())?;
    let mut out = io::stdout().lock();
    let mut refused = 0;
    for (file, checked) in rules.iter().zip(rule.check_rules(&rules)?) {
        match checked {
            Ok(summary) => {
                writeln!(out, "{}", file.name)?;
                writeln!(out, "  rule id:   {}", summary.rule_id)?;
                writeln!(out, "  name:      {}", summary.name)?;
                writeln!(
                    out,
                    "  query:     {}",
                    summary.query.trim().replace('\n', "\n             ")
                )?;
                writeln!(out, "  new terms: {}", summary.term_fields.join(" + "))?;
                writeln!(
                    out,
                    "  window:    {} ({} ms)",
                    summary.history_window_start, summary.window_ms
                )?;
                if !summary.enrichment.is_empty() {
                    writeln!(
                        out,
                        "  enrichment: reads {}, which only enriched ECS documents carry",
                        summary.enrichment.join(", ")
                    )?;
                }
            }
            Err(why) => {
                refused += 1;
                writeln!(out, "refused: {why}")?;
            }
        }
    }
    writeln!(
        out,
        "{} rules loaded, {refused} refused",
        rules.len() - refused
    )?;
    if refused > 0 {
        bail!("{refused} rule files refused");
    }
    Ok(())
}

fn run_info(args: RuleArgs) -> Result<()> {
    let settings = match &args.config {
        Some(path) => read_config_file(path)?,
        None => Settings::default(),
    };
    let rules = rule_files(&args.rules, &settings.rules, args.config.as_deref())?;
    if !rules.is_empty() {
        return run_rules_info(&args, rules);
    }
    let (component, config) = configured_rule(&args, false)?;
    let mut rule = component.instantiate(&config)?;
    let metadata = rule.metadata()?;
    let mut out = io::stdout().lock();
    let techniques: Vec<String> = metadata
        .techniques
        .iter()
        .map(|technique| {
            format!(
                "{} {} ({})",
                technique.id, technique.name, technique.reference
            )
        })
        .collect();
    let imports = component.imports();
    writeln!(out, "rule:            {}", metadata.name)?;
    writeln!(
        out,
        "rule id:         {} (version {})",
        metadata.rule_id, metadata.rule_version
    )?;
    writeln!(
        out,
        "severity:        {} (risk score {})",
        metadata.severity, metadata.risk_score
    )?;
    writeln!(
        out,
        "MITRE ATT&CK:    {} {} ({})",
        metadata.tactic.id, metadata.tactic.name, metadata.tactic.reference
    )?;
    writeln!(out, "technique:       {}", techniques.join("; "))?;
    writeln!(out, "tags:            {}", metadata.tags.join(", "))?;
    writeln!(out, "query:           {}", metadata.query)?;
    writeln!(out, "profile:         {}", metadata.profile.name())?;
    writeln!(out, "window:          {} ms", metadata.window_ms)?;
    writeln!(out, "new terms:       {}", metadata.term_fields.join(" + "))?;
    writeln!(out, "capacity:        {} terms", metadata.capacity)?;
    writeln!(out, "snapshot format: {}", metadata.snapshot_format)?;
    let provenance = component.provenance();
    writeln!(out, "component:       {}", component.origin())?;
    if args.rule.is_none() {
        writeln!(out, "size:            {} bytes", EMBEDDED_COMPONENT.len())?;
    }
    writeln!(
        out,
        "implements:      {} ({} v{}, snapshot format {})",
        provenance.wit, provenance.rule_id, provenance.rule_version, provenance.snapshot_format
    )?;
    if imports.is_empty() {
        writeln!(out, "imports:         none")?;
    } else {
        writeln!(out, "imports:         {}", imports.join("; "))?;
    }
    for export in component.exports() {
        writeln!(out, "exports:         {export}")?;
    }
    Ok(())
}

/// `state fold DIR`: what the Fluent Bit filter does when it starts, run through the rule component
/// (the one this host embeds) rather than the filter's native code: restore `newterms.state`, replay
/// the journal's records over it, write the snapshot and an empty journal naming it, each atomically.
/// The configuration is the filter's own `newterms.toml`, when there is one.
fn fold_filter_state(dir: &Path) -> Result<()> {
    let config_file = dir.join(journal::CONFIG_FILE);
    let args = RuleArgs {
        config: config_file.exists().then_some(config_file),
        ..RuleArgs::embedded_defaults()
    };
    let (component, config) = configured_rule(&args, false)?;
    let mut rule = component.instantiate(&config)?;
    let state_path = dir.join(journal::STATE_FILE);
    let base = match std::fs::read(&state_path) {
        Ok(bytes) => {
            rule.restore(&bytes)
                .with_context(|| format!("{} cannot be used", state_path.display()))?;
            journal::base_of(&bytes)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => journal::NO_SNAPSHOT,
        Err(error) => return Err(error).context(format!("cannot read {}", state_path.display())),
    };
    let journal_path = dir.join(journal::JOURNAL_FILE);
    let mut replayed = 0u64;
    match std::fs::read(&journal_path) {
        Ok(bytes) => {
            let records = journal::records(&bytes, &base)
                .map_err(|error| anyhow::anyhow!("journal {} {error}", journal_path.display()))?;
            for record in records {
                // As the filter replays: its alerts were handed back and its refusal counted when
                // it first ran; a record that is not UTF-8 was refused and changed nothing.
                if let Ok(text) = std::str::from_utf8(record) {
                    let _outcome = rule.process_event(text)?;
                }
                replayed += 1;
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).context(format!("cannot read {}", journal_path.display())),
    }
    let snapshot = rule.snapshot()?;
    newterms::durable::write_atomically(&state_path, &snapshot)
        .with_context(|| format!("cannot write {}", state_path.display()))?;
    newterms::durable::write_atomically(&journal_path, &journal::header(&snapshot))
        .with_context(|| format!("cannot write {}", journal_path.display()))?;
    eprintln!(
        "newterms: folded {} ({replayed} records) into {}",
        journal_path.display(),
        state_path.display()
    );
    Ok(())
}

fn run_state(command: StateCommand) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    match command {
        StateCommand::Inspect { file, json } => {
            let summary = snapshots::inspect(&read(&file)?)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{} is not a usable state", file.display()))?;
            let mut out = io::stdout().lock();
            if json {
                let document = serde_json::json!({
                    "format": summary.format,
                    "rule_id": summary.rule_id,
                    "term_signature": summary.term_signature,
                    "terms": summary.terms,
                    "evictions": summary.evictions,
                    "oldest": summary.oldest,
                    "newest": summary.newest,
                    "terms_per_account": summary.per_first_field,
                });
                writeln!(out, "{document}")?;
                return Ok(());
            }
            writeln!(out, "format:     {}", summary.format)?;
            writeln!(out, "rule id:    {}", summary.rule_id)?;
            writeln!(out, "terms of:   {}", summary.term_signature)?;
            writeln!(out, "terms:      {}", summary.terms)?;
            writeln!(out, "evictions:  {}", summary.evictions)?;
            writeln!(
                out,
                "oldest:     {}",
                summary.oldest.as_deref().unwrap_or("-")
            )?;
            writeln!(
                out,
                "newest:     {}",
                summary.newest.as_deref().unwrap_or("-")
            )?;
            for (account, terms) in &summary.per_first_field {
                writeln!(out, "account {account}: {terms} terms")?;
            }
            Ok(())
        }
        StateCommand::Fold { dir } => fold_filter_state(&dir)
            .with_context(|| format!("cannot fold the filter state in {}", dir.display())),
        StateCommand::Merge { inputs, output } => {
            let parts = inputs
                .iter()
                .map(|path| read(path))
                .collect::<Result<Vec<_>>>()?;
            let merged = snapshots::merge(&parts)
                .map_err(anyhow::Error::msg)
                .context("cannot merge these states")?;
            newterms::StateStore::save(&newterms::FileStateStore::new(&output), &merged)?;
            let summary = snapshots::inspect(&merged).map_err(anyhow::Error::msg)?;
            eprintln!(
                "newterms: merged {} states into {}: {} terms",
                inputs.len(),
                output.display(),
                summary.terms
            );
            Ok(())
        }
    }
}

fn write_component(target: Target, output: &Path) -> Result<()> {
    let bytes = target.bytes()?;
    std::fs::write(output, bytes).with_context(|| format!("cannot write {}", output.display()))?;
    // The digest on stdout, so that a publisher can hand it to whoever runs the module.
    println!("{}  {}", sha256_hex(bytes), output.display());
    if target == Target::Component {
        eprintln!(
            "newterms: wrote {} ({} bytes); run it elsewhere with --rule {} --rule-sha256 <the digest>",
            output.display(),
            bytes.len(),
            output.display()
        );
    } else {
        eprintln!(
            "newterms: wrote {} ({} bytes)",
            output.display(),
            bytes.len()
        );
    }
    Ok(())
}

/// `info --target T` for a core-module build: size, digest, imports and exports.
fn run_module_info(target: Target) -> Result<()> {
    let bytes = target.bytes()?;
    let summary = faces::summarize_module(bytes).map_err(anyhow::Error::msg)?;
    let mut out = io::stdout().lock();
    writeln!(out, "size:            {} bytes", bytes.len())?;
    writeln!(out, "sha256:          {}", sha256_hex(bytes))?;
    for import in &summary.imports {
        writeln!(out, "imports:         {import}")?;
    }
    for export in &summary.exports {
        writeln!(out, "exports:         {export}")?;
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
