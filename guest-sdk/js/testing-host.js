// The host, in memory, for a plugin's unit tests under plain node (see testing.js):
// the functions of the WIT interfaces agent:state/agent-state, agent:state/output,
// agent:state/schedule and wasi:cli/environment's getEnvironment, with
// componentize-js's conventions (u64 and s64 as bigint, a WIT error thrown with
// its `payload`), answered by
// the store of the turn running (or the default store outside a turn), with the
// host's rules (host/src/state.rs, host/src/turn/).

import { AsyncLocalStorage } from 'node:async_hooks';

export const LIMITS = Object.freeze({
  maxValue: 1 << 20,
  maxItemsPerCall: 1000,
  maxHistoryItems: 10000,
  maxTurnBytes: 8 << 20,
  maxValues: 10000,
  minDelayMs: 1000,
  maxDelayMs: 366 * 24 * 3600 * 1000,
  maxScheduleInput: 64 << 10,
});

const turns = new AsyncLocalStorage();

/** What one plugin keeps, and the plugin's settings. */
export class Memory {
  constructor({ defaultTtl, slidingTtl = false, keepVersions = 0, env = {} } = {}) {
    this.sessions = new Map(); // id -> { state, history, expires, kept }
    this.values = new Map(); // key -> { value, expires }
    this.schedules = new Map(); // id -> { id, session, atMs, input, attempts }, pending
    this.scheduledCount = 0; // schedules made so far (ids are made from it)
    this.defaultTtl = defaultTtl === undefined ? undefined : defaultTtl * 1000;
    this.slidingTtl = slidingTtl;
    this.keepVersions = keepVersions;
    this.env = Object.entries(env);
    this.now = Date.now(); // moves only with advance()
    this.committed = undefined; // the data as the running turn began
    this.turnBytes = 0;
    this.emitted = [];
  }

  expire() {
    const live = (at) => at === undefined || at > this.now;
    for (const [id, s] of this.sessions) {
      if (!live(s.expires) || !exists(s)) this.sessions.delete(id);
    }
    for (const [key, v] of this.values) {
      if (!live(v.expires)) this.values.delete(key);
    }
  }

  snapshot() {
    const { sessions, values, schedules } = this;
    return structuredClone({ sessions, values, schedules });
  }

  restore(snapshot) {
    this.sessions = snapshot.sessions;
    this.values = snapshot.values;
    this.schedules = snapshot.schedules;
  }

  /** A commit: replaced documents are kept (keepVersions), new ones stamped. */
  commit(before) {
    for (const [id, s] of this.sessions) {
      const old = before.sessions.get(id)?.state;
      if (sameState(s.state, old)) continue;
      if (s.state) {
        s.state.writtenAtMs = this.now;
        s.state.historyLen = s.history.length;
      }
      if (old && this.keepVersions > 0) {
        s.kept = [old, ...s.kept].slice(0, this.keepVersions);
      }
    }
  }

  /** Runs `fn` as this store's turn: every state call inside goes here. `done(ok)`
   * ends it: committed, schedules and cancels included, if ok; else put back. */
  inTurn(fn) {
    this.expire();
    const before = this.snapshot();
    this.committed = before;
    this.turnBytes = 0;
    this.emitted = [];
    const done = (ok) => {
      this.committed = undefined;
      if (!ok) return this.restore(before);
      this.commit(before);
    };
    return { result: turns.run(this, fn), done };
  }
}

const exists = (s) => s.state !== undefined || s.history.length > 0;
const sameState = (a, b) =>
  a === b || (a !== undefined && b !== undefined && a.version === b.version && a.value === b.value);

const fallback = new Memory();

/** Runs `fn` with the state calls going to `memory` (each a turn of its own when
 * no turn runs there). */
export function withMemory(memory, fn) {
  return turns.run(memory, fn);
}

function current() {
  return turns.getStore() ?? fallback;
}

/** A WIT error, thrown as componentize-js throws one. */
function fail(tag, val) {
  const error = new Error(val === undefined ? tag : `${tag}: ${val}`);
  error.payload = { tag, val };
  throw error;
}

export function checkName(what, raw) {
  const reason = nameProblem(raw);
  if (reason) fail('invalid-key', `invalid ${what}: ${reason}`);
}

function nameProblem(raw) {
  if (typeof raw !== 'string' || raw === '') return 'is empty';
  const size = new TextEncoder().encode(raw).length;
  if (size > 512) return `is ${size} bytes, over the limit of 512`;
  const pos = [...raw].findIndex((c) => c <= '\u001f' || (c >= '\u007f' && c <= '\u009f'));
  return pos >= 0 ? `has a control character at char ${pos}` : undefined;
}

/** `op(memory)` inside the running turn, or as a turn of its own. */
function call(op) {
  const memory = current();
  if (memory.committed !== undefined) return op(memory);
  memory.expire();
  const before = memory.snapshot();
  memory.committed = before;
  memory.turnBytes = 0;
  try {
    return op(memory);
  } finally {
    memory.committed = undefined;
    memory.commit(before);
  }
}

const bytesOf = (value) => (value instanceof Uint8Array ? value : new Uint8Array(value));
const key = (bytes) => Buffer.from(bytes).toString('latin1');

function ttlMs(memory, seconds) {
  if (seconds === 0) fail('invalid-argument', 'ttl-seconds must be at least 1');
  return seconds === undefined ? undefined : memory.now + seconds * 1000;
}

function size(n) {
  if (n > LIMITS.maxValue) fail('too-large', BigInt(LIMITS.maxValue));
}

function charge(memory, n) {
  if (memory.turnBytes + n > LIMITS.maxTurnBytes) {
    fail('quota-exceeded', `a turn may write at most ${LIMITS.maxTurnBytes} bytes`);
  }
  memory.turnBytes += n;
}

function session(memory, id) {
  checkName('session id', id);
  let s = memory.sessions.get(id);
  if (!s) {
    s = { state: undefined, history: [], expires: undefined, kept: [] };
    memory.sessions.set(id, s);
  }
  return s;
}

function slide(memory, id) {
  const s = memory.sessions.get(id);
  if (memory.slidingTtl && memory.defaultTtl !== undefined && s && exists(s) && s.expires !== undefined) {
    s.expires = Math.max(s.expires, memory.now + memory.defaultTtl);
  }
}

const entry = (doc) => ({ value: new Uint8Array(doc.bytes), version: BigInt(doc.version) });

export function load(id) {
  return call((m) => {
    const doc = session(m, id).state;
    slide(m, id);
    return doc === undefined ? undefined : entry(doc);
  });
}

export function save(id, value, { ttlSeconds, ifVersion } = {}) {
  return call((m) => {
    checkName('session id', id);
    const bytes = bytesOf(value);
    size(bytes.length);
    // As componentize-js lowers a u64: a number is a TypeError, not a version.
    const expected = ifVersion === undefined ? undefined : BigInt.asUintN(64, ifVersion);
    let expires = ttlMs(m, ttlSeconds);
    if (ttlSeconds === undefined && m.defaultTtl !== undefined) expires = m.now + m.defaultTtl;
    charge(m, bytes.length);
    const s = session(m, id);
    const current = s.state?.version ?? 0;
    if (expected !== undefined && expected !== BigInt(current)) fail('conflict');
    s.state = {
      bytes: Array.from(bytes),
      value: key(bytes),
      version: current + 1,
      writtenAtMs: m.now,
      historyLen: s.history.length,
    };
    s.expires = expires;
    return BigInt(current + 1);
  });
}

function deleteState(id) {
  return call((m) => {
    const s = session(m, id);
    const existed = s.state !== undefined;
    s.state = undefined;
    return existed;
  });
}
export { deleteState as delete };

function documents(m, id) {
  checkName('session id', id);
  const s = m.committed.sessions.get(id);
  return s ? [s.state, ...s.kept].filter((d) => d !== undefined) : [];
}

export function versions(id) {
  return call((m) =>
    documents(m, id).map((d) => ({
      version: BigInt(d.version),
      writtenAtMs: BigInt(d.writtenAtMs),
      bytes: BigInt(d.bytes.length),
      historyLen: BigInt(d.historyLen),
    })),
  );
}

export function loadVersion(id, version) {
  return call((m) => {
    const doc = documents(m, id).find((d) => BigInt(d.version) === BigInt.asUintN(64, version));
    return doc === undefined ? undefined : entry(doc);
  });
}

export function append(id, items) {
  return call((m) => {
    checkName('session id', id);
    if (items.length > LIMITS.maxItemsPerCall) {
      fail('quota-exceeded', `at most ${LIMITS.maxItemsPerCall} items per append`);
    }
    const all = items.map(bytesOf);
    const total = all.reduce((n, i) => n + i.length, 0);
    size(total);
    const s = session(m, id);
    if (all.length === 0) return BigInt(s.history.length);
    if (s.history.length + all.length > LIMITS.maxHistoryItems) {
      fail('quota-exceeded', `history would be longer than ${LIMITS.maxHistoryItems} items`);
    }
    charge(m, total);
    s.history.push(...all.map((i) => Array.from(i)));
    s.expires = m.defaultTtl === undefined ? undefined : m.now + m.defaultTtl;
    return BigInt(s.history.length);
  });
}

export function items(id, last) {
  return call((m) => {
    const n = Math.min(last ?? LIMITS.maxItemsPerCall, LIMITS.maxItemsPerCall);
    const history = session(m, id).history;
    slide(m, id);
    return n === 0 ? [] : history.slice(-n).map((i) => new Uint8Array(i));
  });
}

export function pop(id) {
  return call((m) => {
    const item = session(m, id).history.pop();
    return item === undefined ? undefined : new Uint8Array(item);
  });
}

export function touch(id, ttlSeconds) {
  return call((m) => {
    checkName('session id', id);
    const expires = ttlMs(m, ttlSeconds);
    const s = session(m, id);
    if (!exists(s)) return false;
    s.expires = expires;
    return true;
  });
}

export function ttl(id) {
  return call((m) => {
    const s = session(m, id);
    if (!exists(s) || s.expires === undefined) return undefined;
    return Math.ceil((s.expires - m.now) / 1000); // rounded up, as the host does
  });
}

export function clear(id) {
  return call((m) => {
    checkName('session id', id);
    const s = m.sessions.get(id);
    m.sessions.delete(id);
    return s !== undefined && exists(s);
  });
}

const byBytes = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function listSessions(cursor, limit) {
  return call((m) => {
    if (cursor !== undefined) checkName('cursor', cursor);
    if (limit === 0) fail('invalid-argument', 'limit must be at least 1');
    const n = Math.min(limit, LIMITS.maxItemsPerCall);
    const ids = [...m.committed.sessions]
      .filter(([, s]) => exists(s))
      .map(([id]) => id)
      .filter((id) => cursor === undefined || byBytes(id, cursor) > 0)
      .sort(byBytes);
    const sessions = ids.slice(0, n);
    return { sessions, cursor: ids.length > n ? sessions[sessions.length - 1] : undefined };
  });
}

export function get(k) {
  return call((m) => {
    checkName('key', k);
    const found = m.values.get(k);
    return found === undefined ? undefined : new Uint8Array(found.value);
  });
}

function put(m, k, value, expires) {
  if (!m.values.has(k) && m.values.size >= LIMITS.maxValues) {
    fail('quota-exceeded', `at most ${LIMITS.maxValues} plugin-wide values`);
  }
  m.values.set(k, { value: Array.from(value), expires });
}

export function set(k, value, ttlSeconds) {
  return call((m) => {
    checkName('key', k);
    const bytes = bytesOf(value);
    size(bytes.length);
    const expires = ttlMs(m, ttlSeconds);
    charge(m, bytes.length);
    put(m, k, bytes, expires);
  });
}

export function remove(k) {
  return call((m) => {
    checkName('key', k);
    return m.values.delete(k);
  });
}

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;

export function increment(k, delta) {
  return call((m) => {
    checkName('key', k);
    const found = m.values.get(k);
    const text = found === undefined ? '0' : Buffer.from(found.value).toString();
    if (!/^(0|-?[1-9][0-9]{0,18})$/.test(text) || BigInt(text) < MIN || BigInt(text) > MAX) {
      fail('internal', 'the value is not a 64-bit integer');
    }
    const sum = BigInt(text) + BigInt.asIntN(64, delta);
    if (sum < MIN || sum > MAX) fail('internal', 'the result would overflow a 64-bit integer');
    put(m, k, new TextEncoder().encode(sum.toString()), found?.expires);
    return sum;
  });
}

/** Schedules in the order `pending` lists them: soonest first. */
export const soonestFirst = (schedules) =>
  [...schedules].sort((a, b) => a.atMs - b.atMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

export function at(sessionId, whenMs, input) {
  return call((m) => {
    checkName('session id', sessionId);
    const when = Number(BigInt.asUintN(64, whenMs));
    if (when < m.now + LIMITS.minDelayMs) {
      const away = when - m.now;
      fail('invalid-argument', `a schedule must be due at least 1s from now (this one is ${away} ms away)`);
    }
    if (when > m.now + LIMITS.maxDelayMs) {
      fail('invalid-argument', 'a schedule must be due at most 366 days from now');
    }
    const most = Math.min(LIMITS.maxScheduleInput, LIMITS.maxValue);
    if (new TextEncoder().encode(input).length > most) fail('too-large', BigInt(most));
    m.scheduledCount += 1;
    const id = m.scheduledCount.toString(16).padStart(24, '0');
    m.schedules.set(id, { id, session: sessionId, atMs: when, input: String(input), attempts: 0 });
    return id;
  });
}

export function after(sessionId, delayMs, input) {
  return at(sessionId, BigInt(Math.round(current().now)) + BigInt.asUintN(64, delayMs), input);
}

export function cancel(id) {
  return call((m) => {
    if (!/^[0-9a-f]{24}$/.test(id)) {
      fail('invalid-argument', `${JSON.stringify(id)} is not a schedule id (24 lowercase hex digits)`);
    }
    return m.schedules.delete(id);
  });
}

export function pending(sessionId) {
  return call((m) => {
    checkName('session id', sessionId);
    const own = [...m.schedules.values()].filter((s) => s.session === sessionId);
    return soonestFirst(own).map((s) => ({ ...s, atMs: BigInt(s.atMs) }));
  });
}

/** agent:state/output's emit: kept for Store#emitted. */
export function emit(chunk) {
  current().emitted.push(String(chunk));
}

/** wasi:cli/environment's getEnvironment: the store's `env`. */
export function getEnvironment() {
  return current().env.map(([k, v]) => [k, String(v)]);
}
