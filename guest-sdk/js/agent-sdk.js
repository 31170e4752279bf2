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
// the WIT error's case); throwing AgentError answers the turn with an error. HTTP:
// the standard `fetch` (wasi:http): the host allows only the plugin's origins and
// adds their keys itself. Build with guest-sdk/js/build.sh APP.js OUT.wasm.

import * as wit from 'agent:state/agent-state@0.1.2';
import * as output from 'agent:state/output@0.1.2';

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

/** The component's `handler` export from a turn function `(session, input) => string`
 * (or a Promise of one). */
export function agent({ name, version = '0.1.0' }, handle) {
  return {
    describe() {
      return { name, version };
    },
    async handle(session, input) {
      try {
        const answer = await handle(new Session(session), input);
        if (typeof answer !== 'string') {
          throw new TypeError(`the handler returned ${typeof answer}, not a string`);
        }
        return answer;
      } catch (e) {
        if (e instanceof AgentError || e instanceof StateError) {
          throw e.message;
        }
        throw e;
      }
    },
  };
}
