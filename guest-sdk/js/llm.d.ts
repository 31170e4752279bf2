// Types of agent-sdk/llm (see llm.js).

/** One message of a conversation. */
export interface Message {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

/** The model could not be reached, answered an error, or answered no text. */
export class ModelError extends Error {}

/** A model behind an OpenAI-compatible `/chat/completions` endpoint. */
export class Chat {
  constructor(baseUrl: string, model: string);
  readonly baseUrl: string;
  readonly model: string;
  /** The model named by the plugin's MODEL_URL and MODEL variables. */
  static fromEnv(): Chat;
  /** The model's answer, whole. */
  complete(messages: Message[]): Promise<string>;
  /** The model's answer, each piece emitted as it arrives; resolves to the whole. */
  stream(messages: Message[]): Promise<string>;
}
