// Test plugin: appends its input to the session's history, then fails the way the
// input says: an exception nothing catches, an answer that is not a string, or an
// AgentError (see tests/tests/errors.rs).

import { AgentError, agent } from 'agent-sdk';

const ways = {
  'throw-error': () => {
    throw new TypeError('x');
  },
  'throw-string': () => {
    throw 'a string was thrown';
  },
  'throw-object': () => {
    throw { code: 7 };
  },
  reject: async () => {
    throw new RangeError('rejected');
  },
  'return-number': () => 42,
  'return-object': () => ({ answer: 42 }),
  'return-undefined': () => undefined,
  'agent-error': () => {
    throw new AgentError('refused on purpose');
  },
  ok: () => 'ok',
};

export const handler = agent({ name: 'js-errors' }, (session, input) => {
  session.append(input);
  const way = ways[input];
  if (way === undefined) {
    throw new AgentError(`unknown way ${JSON.stringify(input)}`);
  }
  return way();
});
