#!/usr/bin/env node
// Runs the newterms rule component on Node.js (transpiled by jco, see build.mjs): the same scan as
// `newterms scan`, for NDJSON input.
//
//   node scan.mjs [--profile default|elastic] [--state FILE] [--learn] [--batch-size N] [INPUT...]
//
// Alerts go to stdout, one JSON document per line, exactly as the component wrote them; diagnostics
// and a closing summary go to stderr. INPUT is NDJSON (raw CloudTrail records or ECS documents, one
// per line), gzip-compressed or not; `-` or nothing reads standard input. CloudTrail delivery files
// (`{"Records": [...]}`) are reported and skipped: `newterms scan` expands them.
// Exit status: 0 when the scan ran, 1 for an unreadable input or state file or a component failure,
// 2 for a usage error.

import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, openSync, closeSync, readFileSync, renameSync, writeFileSync, fsyncSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

const USAGE = 'usage: node scan.mjs [--profile default|elastic] [--state FILE] [--learn] [--batch-size N] [INPUT...]';

function parseArgs(argv) {
  const options = { profile: 'default', state: null, learn: false, batchSize: 1024, inputs: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--profile') {
      options.profile = value();
      if (!['default', 'elastic'].includes(options.profile)) usage(`unknown profile ${JSON.stringify(options.profile)}`);
    } else if (arg === '--state') {
      options.state = value();
    } else if (arg === '--learn') {
      options.learn = true;
    } else if (arg === '--batch-size') {
      options.batchSize = Number(value());
      if (!Number.isInteger(options.batchSize) || options.batchSize < 1) usage('--batch-size must be at least 1');
    } else if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg.startsWith('--')) {
      usage(`unknown option ${arg}`);
    } else {
      options.inputs.push(arg);
    }
  }
  if (options.inputs.length === 0) options.inputs.push('-');
  return options;
}

function usage(message) {
  process.stderr.write(`newterms-node: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function fail(message) {
  process.stderr.write(`newterms-node: error: ${message}\n`);
  process.exit(1);
}

// WIT variants arrive as { tag, val }: say what they mean, as the Rust host does.
function describeEventError(error) {
  switch (error.tag) {
    case 'malformed-json': return `malformed JSON: ${error.val}`;
    case 'not-an-object': return 'not a JSON object';
    case 'missing-time': return 'matching event without a time (@timestamp or eventTime)';
    case 'invalid-time': return `matching event with an unreadable time ${JSON.stringify(error.val)}`;
    case 'too-many-terms': return `${error.val} term combinations in one event is more than the rule takes`;
    default: return `${error.tag}${error.val === undefined ? '' : ` ${error.val}`}`;
  }
}

function describeVariant(error) {
  return error.val === undefined ? error.tag : `${error.tag}: ${error.val}`;
}

// Opens an input as a stream of bytes, gunzipping it when it starts with gzip's magic number.
async function open(input) {
  const source = input === '-' ? process.stdin : createReadStream(input);
  const head = await new Promise((resolve, reject) => {
    source.once('error', reject);
    source.once('readable', () => resolve(source.read()));
  });
  if (head === null) return [];
  source.unshift(head);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    return pipeline(source, createGunzip(), () => {});
  }
  return source;
}

// Snapshots cross into and out of the component in pieces, as the Rust host moves them: `snapshot`
// and `restore` would copy a whole snapshot into its linear memory, which never shrinks.
const SNAPSHOT_PIECE = 1 << 20;

function readSnapshot(detector) {
  const length = Number(detector.snapshotBegin());
  const snapshot = Buffer.alloc(length);
  let filled = 0;
  for (;;) {
    const piece = detector.snapshotRead(SNAPSHOT_PIECE);
    if (piece.length === 0) break;
    if (filled + piece.length > length) {
      throw new Error(`the component handed out more than the ${length} snapshot bytes it announced`);
    }
    snapshot.set(piece, filled);
    filled += piece.length;
  }
  if (filled !== length) throw new Error(`the component handed out ${filled} of ${length} snapshot bytes`);
  return snapshot;
}

function restoreSnapshot(detector, bytes) {
  detector.restoreBegin(BigInt(bytes.length));
  for (let at = 0; at < bytes.length; at += SNAPSHOT_PIECE) {
    detector.restoreWrite(bytes.subarray(at, at + SNAPSHOT_PIECE));
  }
  detector.restoreEnd();
}

const ASCII_SPACE = new Set([0x20, 0x09, 0x0a, 0x0c, 0x0d]);

// Yields [line number, bytes of the line without surrounding ASCII whitespace].
async function* lines(stream) {
  let carry = Buffer.alloc(0);
  let number = 0;
  for await (const chunk of stream) {
    let data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let newline = data.indexOf(0x0a, start); newline >= 0; newline = data.indexOf(0x0a, start)) {
      yield [++number, trim(data.subarray(start, newline))];
      start = newline + 1;
    }
    carry = Buffer.from(data.subarray(start));
  }
  if (carry.length) yield [++number, trim(carry)];
}

function trim(bytes) {
  let start = 0;
  let end = bytes.length;
  while (start < end && ASCII_SPACE.has(bytes[start])) start++;
  while (end > start && ASCII_SPACE.has(bytes[end - 1])) end--;
  return bytes.subarray(start, end);
}

const DELIVERY = /^\{\s*"Records"/;
// fatal: a line that is not UTF-8 is reported, not repaired; ignoreBOM: keep a BOM for the rule to see.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

async function main() {
  const options = parseArgs(process.argv.slice(2));
  for (const input of options.inputs) {
    if (input === '-') continue;
    try {
      closeSync(openSync(input, 'r'));
    } catch (error) {
      fail(`cannot read ${input}: ${error.message}`);
    }
  }

  let detector;
  try {
    ({ detector } = await import('./out/rule.js'));
  } catch (error) {
    fail(`cannot load the transpiled component (run \`npm run build\` first): ${error.message}`);
  }

  const hashKey = randomBytes(16);
  try {
    detector.configure({
      profile: options.profile,
      windowMs: undefined,
      exceptions: [],
      capacity: undefined,
      learn: options.learn,
      hashKey: [hashKey.readBigUInt64LE(0), hashKey.readBigUInt64LE(8)],
      partition: undefined,
    });
  } catch (error) {
    fail(`configuration refused: ${describeVariant(error.payload ?? error)}`);
  }
  if (options.state !== null && existsSync(options.state)) {
    try {
      restoreSnapshot(detector, readFileSync(options.state));
    } catch (error) {
      fail(`cannot use the state file ${options.state} (left as it is): ${describeVariant(error.payload ?? error)}`);
    }
  }

  let events = 0;
  let alerts = 0;
  let inputErrors = 0;
  let eventErrors = 0;
  let callMs = 0;
  let calls = 0;
  const started = performance.now();
  const report = (message) => process.stderr.write(`newterms-node: ${message}\n`);
  let output = [];
  const flush = async () => {
    if (output.length === 0) return;
    const text = output.join('');
    output = [];
    if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  };

  let batch = [];
  let where = [];
  const run = async () => {
    const before = performance.now();
    const outcomes = detector.processBatch(batch);
    callMs += performance.now() - before;
    calls += 1;
    events += batch.length;
    outcomes.forEach((outcome, index) => {
      if (outcome.tag === 'ok') {
        for (const alert of outcome.val) output.push(alert, '\n');
        alerts += outcome.val.length;
      } else {
        eventErrors += 1;
        report(`${where[index]}: ${describeEventError(outcome.val)}`);
      }
    });
    batch = [];
    where = [];
    await flush();
  };

  for (const input of options.inputs) {
    const name = input === '-' ? '<stdin>' : input;
    let stream;
    try {
      stream = await open(input);
    } catch (error) {
      fail(`cannot read ${name}: ${error.message}`);
    }
    for await (const [number, bytes] of lines(stream)) {
      if (bytes.length === 0) continue;
      let text;
      try {
        text = utf8.decode(bytes);
      } catch {
        inputErrors += 1;
        report(`${name}:${number}: not UTF-8`);
        continue;
      }
      if (DELIVERY.test(text)) {
        inputErrors += 1;
        report(`${name}:${number}: a CloudTrail delivery document: this example reads NDJSON only (newterms scan expands them)`);
        continue;
      }
      batch.push(text);
      where.push(`${name}:${number}`);
      if (batch.length >= options.batchSize) await run();
    }
  }
  if (batch.length) await run();

  if (options.state !== null) {
    let snapshot;
    try {
      snapshot = readSnapshot(detector);
    } catch (error) {
      fail(`cannot save the state: ${error.message}`);
    }
    // Replace the file atomically, as the Rust host does: write a temporary file, then rename.
    const temporary = join(dirname(options.state), `.${basename(options.state)}.${process.pid}.tmp`);
    try {
      writeFileSync(temporary, snapshot);
      const fd = openSync(temporary, 'r+');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(temporary, options.state);
    } catch (error) {
      try { unlinkSync(temporary); } catch { /* already gone */ }
      fail(`cannot save the state: ${error.message}`);
    }
  }
  const stats = detector.stats();
  const seconds = (performance.now() - started) / 1000;
  report(
    `${events} events read, ${stats.matched} matched, ${stats.excepted} excepted, ${alerts} alerts, ` +
      `${inputErrors + eventErrors} errors (${inputErrors} input, ${eventErrors} event) in ${seconds.toFixed(3)} s; ` +
      `${calls} process-batch calls took ${(callMs / 1000).toFixed(3)} s (${rate(events, callMs)} events/s); ` +
      `${stats.terms} terms in history, ${stats.evictions} evicted`,
  );
}

function rate(events, ms) {
  return ms > 0 ? Math.round(events / (ms / 1000)) : 0;
}

process.stdout.on('error', (error) => {
  // The reader went away: its alerts were not delivered, so history must not record them.
  if (error.code === 'EPIPE') {
    process.stderr.write('newterms-node: output closed; state not saved\n');
    process.exit(0);
  }
  throw error;
});

main().catch((error) => fail(error.stack ?? String(error)));
