// Types of agent-sdk/testing: unit tests of a plugin under plain node.

import type { Handler, Json, Scheduled } from './agent-sdk';

export { AgentError, Session, StateError } from './agent-sdk';

export interface StoreOptions {
  /** The plugin's default TTL, in seconds. */
  defaultTtl?: number;
  /** Reads extend the session's expiry to the default TTL. */
  slidingTtl?: boolean;
  /** Documents kept per session for versions/loadVersion. */
  keepVersions?: number;
  /** The plugin's environment (what Chat.fromEnv reads). */
  env?: Record<string, string>;
}

/** An in-memory store for one plugin, with the host's semantics. */
export class Store {
  constructor(options?: StoreOptions);
  /** Runs one turn: commits on an answer or an AgentError/StateError (thrown
   * again), writes nothing on anything else thrown. */
  run(handler: Handler, session: string, input: string): Promise<string>;
  session(id: string): StoredSession;
  value<T = Json>(key: string): T | undefined;
  setValue(key: string, value: Json): void;
  sessions(): string[];
  /** What the last turn emitted, chunk by chunk. */
  readonly emitted: string[];
  /** The pending schedules of every session, soonest first. */
  scheduled(): Scheduled[];
  /** Runs the schedules due on the store's clock as turns of `handler`; one whose
   * turn threw AgentError or StateError stays pending with one more attempt (and
   * what that turn scheduled or cancelled is kept). */
  runDue(
    handler: Handler,
  ): Promise<Array<{ scheduled: Scheduled; answer: string } | { scheduled: Scheduled; error: Error }>>;
  /** Moves the store's clock on by `seconds`. */
  advance(seconds: number): void;
}

/** A session of a Store, seen from outside any turn. */
export class StoredSession {
  readonly id: string;
  readonly exists: boolean;
  readonly state: Json | undefined;
  readonly version: bigint | undefined;
  readonly history: Json[];
  /** Seconds left before it expires, or undefined. */
  readonly ttl: number | undefined;
  save(value: Json): bigint;
  append(...items: Json[]): bigint;
}

/** The module's store, the one `run` uses. */
export function store(): Store;
/** Runs one turn on the module's store. */
export function run(handler: Handler, session: string, input: string): Promise<string>;
