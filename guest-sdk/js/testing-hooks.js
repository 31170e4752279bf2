// Module resolution hooks for plain node (registered by testing.js): `agent-sdk`,
// `agent-sdk/llm` and `agent-sdk/mcp` are this package's files, and the WIT
// imports a plugin and the SDK make (agent:state/*, wasi:cli/environment) are the
// in-memory host of testing-host.js. Any other import resolves as node resolves it.

const here = (file) => new URL(file, import.meta.url).href;
const MAPPED = new Map([
  ['agent-sdk', here('./agent-sdk.js')],
  ['agent-sdk/llm', here('./llm.js')],
  ['agent-sdk/mcp', here('./mcp.js')],
]);
const HOST = here('./testing-host.js');

export async function resolve(specifier, context, next) {
  const mapped = MAPPED.get(specifier);
  if (mapped) return { url: mapped, shortCircuit: true };
  if (/^agent:state\/(agent-state|output|schedule)@0\.1\.\d+$/.test(specifier)) {
    return { url: HOST, shortCircuit: true };
  }
  if (/^wasi:cli\/environment@0\.2\.\d+$/.test(specifier)) {
    return { url: HOST, shortCircuit: true };
  }
  return next(specifier, context);
}
