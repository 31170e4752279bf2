// Test plugin: schedules its own follow-up turns; the same as `remind` (Rust, whose
// doc says what each input does; `remind-then-trap` is only there) and
// `py-remind`. Every turn first appends its input (its UTF-8 bytes, not JSON) to
// the history; a schedule call's StateError is the answer `error KIND: DETAIL`.

import { AgentError, StateError, agent, schedule } from 'agent-sdk';
import { append } from 'agent:state/agent-state@0.1.3';

function numberAndText(rest) {
  const [number, ...words] = rest.split(' ');
  if (!/^[0-9]+$/.test(number)) throw new AgentError(`${JSON.stringify(number)}: not a number`);
  return [Number(number), `reminder: ${words.join(' ')}`];
}

function answer(session, input) {
  const [command, ...words] = input.split(' ');
  const rest = words.join(' ');
  if (command === 'remind' || command === 'remind-then-fail') {
    const [seconds, text] = numberAndText(rest);
    const id = schedule.after(session, seconds, text);
    if (command === 'remind-then-fail') throw new AgentError('failing on purpose');
    return `scheduled ${id}`;
  }
  if (command === 'remind-at') {
    const [unixMs, text] = numberAndText(rest);
    return `scheduled ${schedule.at(session, unixMs, text)}`;
  }
  if (command === 'cancel') return `cancelled ${schedule.cancel(rest)}`;
  if (input === 'pending') {
    const pending = schedule.pending(session);
    return JSON.stringify(pending.map(({ id, atMs, input, attempts }) => ({ id, at_ms: atMs, input, attempts })));
  }
  if (input === 'reminder: fail') throw new AgentError('reminder failed');
  if (input.startsWith('reminder: ')) return `got ${input}`;
  return `echo ${input}`;
}

export const handler = agent({ name: 'js-remind' }, (session, input) => {
  append(session.id, [new TextEncoder().encode(input)]);
  try {
    return answer(session, input);
  } catch (e) {
    if (e instanceof StateError) return `error ${e.message}`;
    throw e;
  }
});
