// Types of agent-sdk/llm (see llm.js).

/** A tool call of an assistant message, as OpenAI writes it. */
export interface ToolCall {
  /** The call's id, which its result names (`tool_call_id`). */
  id: string;
  type: 'function';
  function: {
    name: string;
    /** The arguments as the model wrote them: JSON text (not checked). */
    arguments: string;
  };
}

/**
 * One message of a conversation. The tool fields are present only when they
 * apply: `tool_calls` on an assistant message that calls tools (its content is
 * then often null), `tool_call_id` on a `tool` message (a call's result).
 */
export interface Message {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
}

/**
 * A function the model may call. `parameters` is a JSON Schema of its arguments
 * (an object schema); `handler` gets them parsed and returns the text the model
 * reads (a value that is not a string is sent as JSON). A handler that throws or
 * rejects has its error told to the model as `error: ...`; the loop goes on.
 */
export interface Tool<Args = any> {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  handler(args: Args): string | Promise<string>;
}

/** Options of the tool loop. */
export interface ToolOptions {
  /** At most this many requests to the model (default: the Chat's, 8). */
  maxSteps?: number;
}

/** The model could not be reached, answered an error, or answered no text. */
export class ModelError extends Error {}

/** The model still called tools after `maxSteps` requests. */
export class MaxStepsError extends ModelError {}

/** 8: the requests a tool loop makes at most, unless told. */
export const DEFAULT_MAX_STEPS: number;

/** A tool as a request names it: `{ type: 'function', function: { name, description, parameters } }`. */
export function toolToOpenAI(tool: Tool): { type: 'function'; function: { name: string; description: string; parameters: Record<string, unknown> } };

/**
 * The end of `history` within `maxItems` messages and about `maxTokens` tokens
 * (4 characters a token), never starting with a result whose call was cut off.
 */
export function trimHistory<T = Message>(history: T[], options?: { maxItems?: number; maxTokens?: number }): T[];

/** A model behind an OpenAI-compatible `/chat/completions` endpoint. */
export class Chat {
  constructor(baseUrl: string, model: string, options?: ToolOptions);
  readonly baseUrl: string;
  readonly model: string;
  /** The requests a tool loop makes at most (8 by default). */
  maxSteps: number;
  /** The model named by the plugin's MODEL_URL and MODEL variables. */
  static fromEnv(): Chat;
  /** The model's answer, whole. */
  complete(messages: Message[]): Promise<string>;
  /** The model's answer, each piece emitted as it arrives; resolves to the whole. */
  stream(messages: Message[]): Promise<string>;
  /**
   * The model's final answer when it may call `tools`: each call is run and its
   * result sent back until it answers with text. Every message of the loop (the
   * calls, their results, the final answer) is pushed onto `messages`.
   */
  completeWithTools(messages: Message[], tools: Tool[], options?: ToolOptions): Promise<string>;
  /** completeWithTools, each answer streamed: the final answer's text is emitted as it comes. */
  streamWithTools(messages: Message[], tools: Tool[], options?: ToolOptions): Promise<string>;
}
