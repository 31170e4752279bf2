#!/usr/bin/env node
// Builds a JavaScript agent plugin into a component:
//   agent-sdk-build APP.js OUT.wasm
//
// Bundles APP.js with everything it imports (the author's own modules, packages
// from the project's node_modules, and this SDK: `agent-sdk` is always this
// package, so the SDK and the WIT it was written for match), then builds the world
// agent:state/agent-plugin-http with componentize-js from the WIT packaged here
// (wit/). WIT imports (agent:..., wasi:...) stay imports of the component.
//
// A failed build prints one line where it can, FILE:LINE:COLUMN: ERROR (a syntax
// error, found by node's own parser in APP.js, by the bundler in other modules),
// and exits with status 1; usage errors exit with 2.

import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WORLD = 'agent-plugin-http';

class BuildError extends Error {}

/** `agent-sdk` and its subpaths (`agent-sdk/llm`) as files of this package. */
function sdkEntries() {
  const pkg = JSON.parse(readFileSync(join(SDK, 'package.json'), 'utf8'));
  const entries = new Map();
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    const file = typeof target === 'string' ? target : target.default;
    entries.set(`${pkg.name}${subpath.slice(1)}`, join(SDK, file));
  }
  return entries;
}

/** A path as the author knows it: relative to where the build was started. */
function shown(file) {
  const path = relative(process.cwd(), file);
  return path.startsWith(`..${sep}..`) || path === '' ? file : path;
}

/** APP.js parsed as an ES module by node; its syntax error as FILE:LINE:COLUMN. */
function checkSyntax(app, appArg) {
  let source;
  try {
    source = readFileSync(app);
  } catch (error) {
    throw new BuildError(`${appArg}: cannot read it: ${error.code ?? error.message}`);
  }
  const checked = spawnSync(process.execPath, ['--input-type=module', '--check'], {
    input: source,
    encoding: 'utf8',
  });
  if (checked.error) throw new BuildError(`cannot run node: ${checked.error.message}`);
  if (checked.status === 0) return;
  const log = checked.stderr;
  const line = /^\[stdin\]:(\d+)$/m.exec(log)?.[1];
  const caret = log.split('\n').find((l) => /^ *\^/.test(l));
  const column = caret === undefined ? undefined : caret.indexOf('^') + 1;
  const error = /^[A-Za-z]*Error: .*$/m.exec(log)?.[0];
  if (line && error) {
    throw new BuildError(`${appArg}:${line}${column ? `:${column}` : ''}: ${error}`);
  }
  throw new BuildError(withoutStacks(log));
}

function withoutStacks(text) {
  return text
    .split('\n')
    .filter((l) => !/^ {4}at /.test(l) && !/^Node\.js v/.test(l))
    .join('\n')
    .trim();
}

/**
 * A failed bundle as FILE:LINE:COLUMN: ERROR when rolldown names a place (its
 * report frames it as "╭─[ FILE:LINE:COLUMN ]", FILE relative to `dir`).
 */
function bundleError(error, dir) {
  const text = String(error.message ?? error);
  const place = /╭─\[ *([^\]]+?):(\d+):(\d+) *\]/.exec(text);
  const [, code, said] = /^\[([A-Z_]+)\] (.*)$/m.exec(text) ?? [];
  const message = code === 'PARSE_ERROR' ? `SyntaxError: ${said}` : said;
  if (place && message) {
    return `${shown(resolve(dir, place[1]))}:${place[2]}:${place[3]}: ${message.trim()}`;
  }
  return withoutStacks(message ?? text);
}

async function bundle(app, out) {
  const { rolldown } = await import('rolldown');
  const entries = sdkEntries();
  const unresolved = [];
  try {
    const built = await rolldown({
      input: app,
      cwd: dirname(app),
      external: [/^agent:/, /^wasi:/],
      plugins: [{ name: 'agent-sdk', resolveId: (source) => entries.get(source) ?? null }],
      onLog(level, log) {
        if (log.code === 'UNRESOLVED_IMPORT') unresolved.push(log);
      },
    });
    // Modules are read and parsed here: syntax errors outside APP.js come from it.
    await built.write({ file: out, format: 'esm' });
    await built.close();
  } catch (error) {
    throw new BuildError(bundleError(error, dirname(app)));
  }
  // Left external, an import nothing provides fails only when the component
  // starts: say which now.
  if (unresolved.length > 0) {
    const log = unresolved[0];
    const name = /["']([^"']+)["']/.exec(log.message)?.[1] ?? log.message;
    const where = log.id ? `${shown(log.id)}: ` : '';
    throw new BuildError(
      `${where}cannot resolve the import ${JSON.stringify(name)}: is the file there, or the package installed (npm install)?`,
    );
  }
}

function componentize(work, out) {
  // Its CLI, as a process of its own, from the bundle's directory: componentize-js
  // maps the source's path from the current directory (stack frames then name
  // bundle.js), and this process keeps its own.
  const cli = join(dirname(fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js'))), 'cli.js');
  // componentize-js reads the source and the WIT through a WASI sandbox: both
  // live under one directory.
  cpSync(join(SDK, 'wit'), join(work, 'wit'), { recursive: true });
  const done = spawnSync(
    process.execPath,
    [cli, 'bundle.js', '--wit', 'wit', '--world-name', WORLD, '-o', out],
    { cwd: work, encoding: 'utf8' },
  );
  if (done.error) throw new BuildError(`cannot run componentize-js: ${done.error.message}`);
  if (done.status !== 0) {
    // From node's report of the error on: its first lines quote componentize-js.
    // Its place is in bundle.js, the app bundled with the SDK.
    const log = done.stderr;
    const from = log.search(/^Error: /m);
    throw new BuildError(withoutStacks(from >= 0 ? log.slice(from) : log));
  }
}

async function main(args) {
  if (args.length !== 2 || args[0].startsWith('-')) {
    process.stderr.write('usage: agent-sdk-build APP.js OUT.wasm\n');
    return 2;
  }
  const [appArg, outArg] = args;
  const app = resolve(appArg);
  const out = resolve(outArg);
  const work = mkdtempSync(join(tmpdir(), 'agent-sdk-build-'));
  try {
    checkSyntax(app, appArg);
    await bundle(app, join(work, 'bundle.js'));
    mkdirSync(dirname(out), { recursive: true });
    componentize(work, out);
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  process.stderr.write(`agent-sdk-build: built ${outArg}\n`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
