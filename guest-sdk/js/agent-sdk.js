// Write agent plugins for agent-host in JavaScript (componentize-js).
//
//   import { agent, Session } from 'agent-sdk';
//   export const handler = agent({ name: 'echo', version: '0.1.0' }, (session, input) => {
//     const turns = (session.load() ?? 0) + 1;
//     session.save(turns);
//     session.append(input);
//     return `turn ${turns}: ${input}`;
//   });
//
// Values are JSON. A state call the host refuses throws a StateError (its `kind` is
// the WIT error's case); throwing AgentError answers the turn with an error. Any
// other exception, or an answer that is not a string, crashes the turn (nothing is
// written; the error names the exception, its stack is on stderr). HTTP:
// the standard `fetch` (wasi:http): the host allows only the plugin's origins and
// adds their keys itself. `schedule` runs turns later on their own. Build with
// guest-sdk/js/build.sh APP.js OUT.wasm.

import * as wit from 'agent:state/agent-state@0.1.3';
import * as output from 'agent:state/output@0.1.3';
import * as witSchedule from 'agent:state/schedule@0.1.3';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encode = (value) => encoder.encode(JSON.stringify(value));
const decode = (bytes) => JSON.parse(decoder.decode(bytes));

/** A state call the host refused or failed. */
export class StateError extends Error {
  constructor(kind, detail) {
    super(detail === undefined ? kind : `${kind}: ${detail}`);
    this.name = 'StateError';
    this.kind = kind;
    this.detail = detail;
  }
}

/** Throw it to answer the turn with an error message for the caller. */
export class AgentError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AgentError';
  }
}

function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const error = e && e.payload;
    if (error && typeof error.tag === 'string') {
      throw new StateError(error.tag, error.val);
    }
    throw e;
  }
}

/**
 * Shows `chunk` to the caller now, while the turn runs (a caller that asked for a
 * stream gets it at once; others only the answer). It is shown before the turn
 * commits: if the turn then fails, it was seen but not stored.
 */
export function emit(chunk) {
  call(output.emit, String(chunk));
}

const seconds = (ttl) => (ttl === undefined || ttl === null ? undefined : Math.max(1, Math.round(ttl)));

/** One session: its state document, its history, its expiry. */
export class Session {
  constructor(id) {
    this.id = id;
  }
  load() {
    const entry = this.loadVersioned();
    return entry === undefined ? undefined : entry.value;
  }
  loadVersioned() {
    const entry = call(wit.load, this.id);
    return entry === undefined ? undefined : { value: decode(entry.value), version: entry.version };
  }
  save(value, { ttl, ifVersion } = {}) {
    return call(wit.save, this.id, encode(value), { ttlSeconds: seconds(ttl), ifVersion });
  }
  delete() {
    return call(wit.delete, this.id);
  }
  append(...items) {
    return call(wit.append, this.id, items.map(encode));
  }
  last(n) {
    return call(wit.items, this.id, n).map(decode);
  }
  history() {
    return call(wit.items, this.id, undefined).map(decode);
  }
  pop() {
    const item = call(wit.pop, this.id);
    return item === undefined ? undefined : decode(item);
  }
  touch(ttl) {
    return call(wit.touch, this.id, seconds(ttl));
  }
  ttl() {
    return call(wit.ttl, this.id);
  }
  clear() {
    return call(wit.clear, this.id);
  }
}

/** Every live session of the plugin, in byte order. */
export function sessions() {
  const found = [];
  let cursor;
  do {
    const page = call(wit.listSessions, cursor, 1000);
    found.push(...page.sessions);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return found;
}

/** Plugin-wide values, not tied to a session. */
export const values = {
  get(key) {
    const bytes = call(wit.get, key);
    return bytes === undefined ? undefined : decode(bytes);
  },
  set(key, value, ttl) {
    call(wit.set, key, encode(value), seconds(ttl));
  },
  remove(key) {
    return call(wit.remove, key);
  },
  increment(key, delta = 1) {
    return Number(call(wit.increment, key, BigInt(delta)));
  },
};

const sessionId = (session) => (session instanceof Session ? session.id : session);
const u64 = (n) => BigInt(Math.max(0, Math.round(n)));

/**
 * Turns that run later on their own (WIT agent:state/schedule, since 0.1.3).
 *
 * A schedule made by a turn is written with that turn's commit, like its state
 * writes: a turn that answers or throws AgentError/StateError keeps its schedules
 * and cancels (so a turn that hit a model's rate limit can throw its error and
 * schedule its own retry); a turn that throws anything else, runs out of time or
 * memory, or conflicts schedules and cancels nothing. When it is due, the host
 * runs a turn of its session with its input, once; a run that fails is retried
 * with backoff up to the operator's `schedule_retries`. The due time must be 1 s
 * to 366 days from now (else StateError 'invalid-argument'); past the plugin's
 * pending schedules or schedules per turn, 'quota-exceeded'. A session is a
 * Session or its id.
 */
export const schedule = {
  /** Runs a turn of `session` with `input` at `when` (unix ms, or a Date); returns
   * the schedule's id (24 lowercase hex digits). */
  at(session, when, input) {
    const ms = when instanceof Date ? when.getTime() : Number(when);
    return call(witSchedule.at, sessionId(session), u64(ms), input);
  },
  /** Runs a turn of `session` with `input` after `seconds` (counted in ms);
   * returns the schedule's id. */
  after(session, seconds, input) {
    return call(witSchedule.after, sessionId(session), u64(seconds * 1000), input);
  },
  /** Cancels a pending schedule of the plugin; false if there is none with this id
   * (it ran, was cancelled, or never was). */
  cancel(id) {
    return call(witSchedule.cancel, id);
  },
  /** The session's pending schedules, soonest first, this turn's own included:
   * `{ id, session, atMs, input, attempts }`, `atMs` in unix ms. */
  pending(session) {
    return call(witSchedule.pending, sessionId(session)).map(scheduled);
  },
};

/** A WIT `scheduled` record, with its time as a number. */
const scheduled = ({ id, session, atMs, input, attempts }) => ({
  id,
  session,
  atMs: Number(atMs),
  input,
  attempts,
});

/** The component's `handler` export from a turn function `(session, input) => string`
 * (or a Promise of one).
 *
 * AgentError and StateError answer the turn with their message (a plugin error; the
 * turn's writes are committed). Anything else thrown (or a rejected Promise), and
 * an answer that is not a string, crash the turn like a Rust panic: nothing of it
 * is written, the stack goes to stderr, and the host's error ends with the
 * exception (`TypeError: x`). */
export function agent({ name, version = '0.1.0' }, handle) {
  return {
    // The turn function itself, for agent-sdk/testing's Store#run.
    [Symbol.for('agent-sdk.turn')]: handle,
    describe() {
      return { name, version };
    },
    async handle(session, input) {
      let answer;
      try {
        answer = await handle(new Session(session), input);
      } catch (e) {
        if (e instanceof AgentError || e instanceof StateError) {
          // componentize-js makes a thrown string the WIT `err`.
          throw e.message;
        }
        crash(thrown(e), stackOf(e));
      }
      if (typeof answer !== 'string') {
        const hint = answer === undefined ? ' (is a `return` missing?)' : '';
        crash(`TypeError: the handler returned ${shown(answer)}, not a string${hint}`);
      }
      return answer;
    },
  };
}

// The line that ends what the SDK writes to stderr before it crashes a turn; the
// host names the crash "an uncaught exception" and leaves out what follows (the
// engine's abort). Keep in sync with host/src/outcome.rs.
const CRASH_MARKER = 'agent-sdk: uncaught exception; the turn crashes and writes nothing';

/** Writes `summary` (and `stack`) to stderr and crashes the turn. */
function crash(summary, stack) {
  try {
    if (stack) {
      console.error(`Stack (most recent call first):\n${stack}`);
    }
    // One line, so the host's error (which ends with it) holds all of it.
    console.error(summary.replace(/\r?\n/g, '\\n'));
    console.error(CRASH_MARKER);
  } catch {
    // Nothing more can be said; the crash still happens.
  }
  // componentize-js aborts the instance when an export throws something that is
  // neither a string nor carries one: a trap, so the turn writes nothing.
  throw undefined;
}

/** A thrown value in one line: `TypeError: x` for an Error, a string as it is. */
function thrown(e) {
  try {
    if (typeof e === 'string') {
      return e;
    }
    if (e instanceof Error || (e && typeof e.message === 'string' && typeof e.name === 'string')) {
      const name = typeof e.name === 'string' && e.name ? e.name : 'Error';
      return e.message ? `${name}: ${e.message}` : name;
    }
    return `${shown(e)} was thrown`;
  } catch {
    return 'a value that cannot be shown was thrown';
  }
}

/** The stack of an Error, each frame on its own indented line, or ''. */
function stackOf(e) {
  try {
    const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack : '';
    return stack
      .split('\n')
      .filter((frame) => frame.trim() !== '')
      .map((frame) => `  ${frame}`)
      .join('\n');
  } catch {
    return '';
  }
}

/** Any value, short, with its type: `42 (a number)`, `{"a":1} (an object)`. */
function shown(value) {
  const cut = (text) => (text.length > 80 ? `${text.slice(0, 80)}...` : text);
  try {
    switch (typeof value) {
      case 'undefined':
        return 'undefined';
      case 'string':
        return `${JSON.stringify(cut(value))} (a string)`;
      case 'number':
      case 'boolean':
        return `${value} (a ${typeof value})`;
      case 'bigint':
        return `${value}n (a bigint)`;
      case 'symbol':
        return `${value.toString()} (a symbol)`;
      case 'function':
        return `${value.name || 'an anonymous function'} (a function)`;
      default: {
        if (value === null) {
          return 'null';
        }
        const kind = Array.isArray(value) ? 'an array' : 'an object';
        const json = JSON.stringify(value);
        return json === undefined ? kind : `${cut(json)} (${kind})`;
      }
    }
  } catch {
    return `a value of type ${typeof value}`;
  }
}
