// Test plugin that does not build: a syntax error on line 7 (see
// tests/tests/errors.rs). tests/build.rs does not build it.

import { agent } from 'agent-sdk';

export const handler = agent({ name: 'js-syntax' }, (session, input) => {
  return `you said ${input}`.toUpperCase(;
});
