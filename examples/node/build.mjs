// Transpiles the rule component to JavaScript with jco: `npm run build [-- path/to/rule.wasm]`.
//
// The output (`out/rule.js` and its core modules) is an ES module. jco writes no package.json of
// its own, so Node would read `out/rule.js` as CommonJS wherever no enclosing package.json says
// `"type": "module"`: write one into `out/` so that the directory can be copied anywhere.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// `npm run` changes to this directory; resolve a relative argument against where it was typed.
const userDir = process.env.INIT_CWD ?? process.cwd();
const wasm = resolve(userDir, process.argv[2] ?? join(here, 'rule.wasm'));
const out = join(here, 'out');
const jco = join(here, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js');

execFileSync(process.execPath, [jco, 'transpile', wasm, '--name', 'rule', '--out-dir', out], {
  stdio: 'inherit',
});
writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
