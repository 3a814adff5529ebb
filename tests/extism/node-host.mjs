// The plugin in a second Extism host, Node.js (@extism/extism, which runs it on V8): configure,
// process_ndjson, snapshot, restore and an error, so that the Python checks are not one runtime's.
// Usage: node node-host.mjs PLUGIN.wasm PROFILE EVENTS.ndjson SNAPSHOT_IN SNAPSHOT_OUT REST.ndjson
// Prints the alerts of EVENTS, then (after restoring SNAPSHOT_IN) those of REST; writes the
// snapshot taken after EVENTS to SNAPSHOT_OUT; a refused restore's message goes to stderr.
import createPlugin from "@extism/extism";
import { readFileSync, writeFileSync } from "node:fs";

const [wasm, profile, events, snapshotIn, snapshotOut, rest] = process.argv.slice(2);
const manifest = { wasm: [{ data: readFileSync(wasm) }], config: { hash_key: "00112233445566778899aabbccddeeff" } };
const open = async () => {
    const plugin = await createPlugin(manifest, { useWasi: false, runInWorker: false });
    await plugin.call("configure", JSON.stringify({ profile }));
    return plugin;
};
const text = (output) => (output ? output.text() : "");

const first = await open();
process.stdout.write(text(await first.call("process_ndjson", readFileSync(events))));
writeFileSync(snapshotOut, (await first.call("snapshot")).bytes());
try {
    await first.call("restore", "not a snapshot");
} catch (error) {
    console.error(error.message);
}
const second = await open();
await second.call("restore", readFileSync(snapshotIn));
process.stdout.write(text(await second.call("process_ndjson", readFileSync(rest))));
