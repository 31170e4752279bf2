// Types of agent-sdk (see agent-sdk.js).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A state call the host refused: kind is the WIT error's case. */
export class StateError extends Error {
  readonly kind:
    | 'invalid-key'
    | 'invalid-argument'
    | 'too-large'
    | 'quota-exceeded'
    | 'conflict'
    | 'unavailable'
    | 'internal';
  readonly detail: unknown;
}

/** Throw it to answer the turn with an error message. */
export class AgentError extends Error {
  constructor(message: string);
}

export class Session {
  readonly id: string;
  load<T = Json>(): T | undefined;
  loadVersioned<T = Json>(): { value: T; version: bigint } | undefined;
  save(value: Json, options?: { ttl?: number; ifVersion?: bigint }): bigint;
  delete(): boolean;
  append(...items: Json[]): bigint;
  last<T = Json>(n: number): T[];
  history<T = Json>(): T[];
  pop<T = Json>(): T | undefined;
  touch(ttlSeconds?: number): boolean;
  ttl(): number | undefined;
  clear(): boolean;
}

/** Shows `chunk` to the caller now, before the turn commits. */
export function emit(chunk: string): void;

export function sessions(): string[];

export const values: {
  get<T = Json>(key: string): T | undefined;
  set(key: string, value: Json, ttlSeconds?: number): void;
  remove(key: string): boolean;
  increment(key: string, delta?: number): number;
};

/** A schedule that has not run yet (schedule.pending). */
export interface Scheduled {
  /** 24 lowercase hex digits. */
  id: string;
  session: string;
  /** When it is due (unix ms). */
  atMs: number;
  input: string;
  /** Runs of it that failed so far. */
  attempts: number;
}

/** Turns that run later on their own, written with the turn's commit like its state
 * writes (kept when it throws AgentError/StateError; a turn that throws anything
 * else schedules nothing). The due time must be 1 s to 366 days from now. */
export const schedule: {
  /** Runs a turn of `session` with `input` at `when` (unix ms, or a Date); returns its id. */
  at(session: Session | string, when: number | Date, input: string): string;
  /** Runs a turn of `session` with `input` after `seconds`; returns its id. */
  after(session: Session | string, seconds: number, input: string): string;
  /** Cancels a pending schedule; false if there is none with this id. */
  cancel(id: string): boolean;
  /** The session's pending schedules, soonest first, this turn's own included. */
  pending(session: Session | string): Scheduled[];
};

export interface Handler {
  describe(): { name: string; version: string };
  handle(session: string, input: string): Promise<string>;
}

export function agent(
  info: { name: string; version?: string },
  handle: (session: Session, input: string) => string | Promise<string>,
): Handler;
