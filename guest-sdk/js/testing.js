// Unit tests of a plugin under plain node (`node --test`): an in-memory store
// with the host's semantics behind agent-sdk's state calls.
//
//   import { test } from 'node:test';
//   import assert from 'node:assert/strict';
//   import { Store } from 'agent-sdk/testing';     // first: it maps the WIT imports
//   const { handler } = await import('./app.js'); // then the plugin, dynamically
//
//   test('two turns', async () => {
//     const store = new Store();
//     assert.equal(await store.run(handler, 'alice', 'hi'), 'turn 1: hi');
//     assert.equal(store.session('alice').state, 1);
//   });
//
// Importing this module registers resolution hooks: `agent-sdk`, `agent-sdk/llm`,
// `agent:state/*` and `wasi:cli/environment` resolve to this package and its
// in-memory host (testing-host.js). Modules imported before it (statically, in the
// same file) resolve without them: import the plugin with `await import(...)`.
//
// What the host does, for one plugin under one prefix:
// - A turn (`store.run(handler, session, input)`) commits its writes when the
//   handler returns a string or throws AgentError/StateError (run throws it
//   again); anything else thrown, or an answer that is not a string, writes
//   nothing (the store is put back as the turn found it) and is thrown.
// - Every save bumps the session's version (a bigint, as in a component);
//   `ifVersion` saves only over that version (0n: only if there is no state),
//   else StateError 'conflict'. A save after a delete or clear starts at 1.
// - History: append/last/history/pop, at most 1,000 items a call, 10,000 a session.
// - Expiry runs on the store's own clock, which moves only with `advance(seconds)`:
//   a save or an append expires after its TTL or `defaultTtl`; touch sets or
//   removes it; `slidingTtl` makes reads extend it. An expired session is gone.
// - The host's limits (1 MiB a value, 8 MiB a turn, 10,000 values) and names
//   (1 to 512 bytes, no control characters), as the same StateError kinds.
// - sessions() lists committed sessions in byte order; emit() collects chunks
//   (`store.emitted`); `env` is what wasi:cli/environment (Chat.fromEnv) reads.
// - Schedules (`schedule` of agent-sdk) and cancels are written with the turn's
//   commit, like its state writes: a turn that throws AgentError/StateError keeps
//   them (so a plugin can answer an error and schedule its own retry); anything
//   else thrown schedules and cancels nothing. A due time must be 1 s to 366 days
//   ahead on the store's clock and an input at most 64 KiB; ids count up in 24 hex
//   digits. `scheduled()` lists them and `runDue(handler)` runs the ones due (move
//   the clock with advance).
// Not here: turns running at once (the host retries their conflicts), quotas and
// the limit of schedules per turn, retry backoff, and the outbound allow-list:
// `fetch` (and Chat) is node's own, it reaches anything.

import { register } from 'node:module';

import { Memory, checkName, soonestFirst, withMemory } from './testing-host.js';

register('./testing-hooks.js', import.meta.url);

const sdk = await import('./agent-sdk.js');
const TURN = Symbol.for('agent-sdk.turn');

export const { AgentError, StateError, Session } = sdk;

const decode = (bytes) => JSON.parse(Buffer.from(bytes).toString());

/** An in-memory store for one plugin. Options: `defaultTtl` (seconds),
 * `slidingTtl`, `keepVersions`, `env` (an object: the plugin's environment). */
export class Store {
  #memory;
  #running = false;

  constructor(options = {}) {
    this.#memory = new Memory(options);
  }

  /** Runs one turn of `handler` (what `agent(...)` returned) on `session`. Its
   * writes, schedules and cancels included, are committed when it answers or
   * throws AgentError/StateError. */
  async run(handler, session, input) {
    const turn = handler?.[TURN];
    if (typeof turn !== 'function') {
      throw new TypeError('run(handler, ...) takes what agent({ name }, fn) returned');
    }
    try {
      checkName('session id', session);
    } catch (e) {
      throw new StateError(e.payload.tag, e.payload.val);
    }
    if (this.#running) throw new Error('a turn is already running on this store');
    this.#running = true;
    const { result, done } = this.#memory.inTurn(async () => turn(new Session(session), input));
    let answer;
    try {
      answer = await result;
    } catch (e) {
      done(e instanceof AgentError || e instanceof StateError);
      throw e;
    } finally {
      this.#running = false;
    }
    if (typeof answer !== 'string') {
      done(false);
      throw new TypeError(`the handler returned ${typeof answer}, not a string`);
    }
    done(true);
    return answer;
  }

  /** A session of the store, to look at or write to outside a turn. */
  session(id) {
    return new StoredSession(this.#memory, id);
  }

  /** The plugin-wide value at `key`, or undefined. */
  value(key) {
    this.#memory.expire();
    const found = this.#memory.values.get(key);
    return found === undefined ? undefined : decode(found.value);
  }

  /** Sets a plugin-wide value, as another turn would. */
  setValue(key, value) {
    withMemory(this.#memory, () => sdk.values.set(key, value));
  }

  /** The live sessions, in byte order. */
  sessions() {
    this.#memory.expire();
    return [...this.#memory.sessions.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  /** What the last turn emitted, chunk by chunk. */
  get emitted() {
    return [...this.#memory.emitted];
  }

  /** The pending schedules of every session, soonest first:
   * `{ id, session, atMs, input, attempts }`. */
  scheduled() {
    return soonestFirst(this.#memory.schedules.values()).map((s) => ({ ...s }));
  }

  /** Runs the schedules due on the store's clock, soonest first, each as a turn of
   * `handler` (run) in its session with its input, and returns them with what
   * their turns answered or threw (AgentError, StateError; anything else is
   * thrown): `[{ scheduled, answer }]` or `[{ scheduled, error }]`. One whose turn
   * threw stays pending with one more attempt: the host retries it later (with
   * backoff, up to `schedule_retries`); here the next runDue runs it again. What
   * that turn scheduled or cancelled is kept, as with any turn that throws
   * AgentError or StateError. */
  async runDue(handler) {
    const memory = this.#memory;
    const due = this.scheduled().filter((s) => s.atMs <= memory.now);
    const ran = [];
    for (const { id } of due) {
      const s = memory.schedules.get(id);
      if (s === undefined) continue; // an earlier turn of these cancelled it
      memory.schedules.delete(id);
      try {
        ran.push({ scheduled: { ...s }, answer: await this.run(handler, s.session, s.input) });
      } catch (error) {
        if (!(error instanceof AgentError || error instanceof StateError)) throw error;
        s.attempts += 1;
        memory.schedules.set(id, s);
        ran.push({ scheduled: { ...s }, error });
      }
    }
    return ran;
  }

  /** Moves the store's clock on: TTLs run out as if that many seconds had passed. */
  advance(seconds) {
    this.#memory.now += seconds * 1000;
  }
}

/** A session of a Store, seen from outside any turn. */
export class StoredSession {
  #memory;

  constructor(memory, id) {
    this.#memory = memory;
    this.id = id;
  }

  #get() {
    this.#memory.expire();
    return this.#memory.sessions.get(this.id);
  }

  /** Whether the session has a state document or history. */
  get exists() {
    return this.#get() !== undefined;
  }

  /** The state document, or undefined. */
  get state() {
    const doc = this.#get()?.state;
    return doc === undefined ? undefined : decode(doc.bytes);
  }

  /** The state document's version (a bigint), or undefined. */
  get version() {
    const doc = this.#get()?.state;
    return doc === undefined ? undefined : BigInt(doc.version);
  }

  /** The whole history, oldest first. */
  get history() {
    return (this.#get()?.history ?? []).map(decode);
  }

  /** Seconds left before the session expires, or undefined (never, no session). */
  get ttl() {
    const expires = this.#get()?.expires;
    return expires === undefined ? undefined : (expires - this.#memory.now) / 1000;
  }

  /** Saves the state document as another turn would (its version goes up). */
  save(value) {
    return withMemory(this.#memory, () => new Session(this.id).save(value));
  }

  /** Appends to the history as another turn would. */
  append(...items) {
    return withMemory(this.#memory, () => new Session(this.id).append(...items));
  }
}

let defaultStore;

/** The module's store: the one `run` uses. */
export function store() {
  defaultStore ??= new Store();
  return defaultStore;
}

/** Runs one turn on the module's store (see Store#run). */
export function run(handler, session, input) {
  return store().run(handler, session, input);
}

