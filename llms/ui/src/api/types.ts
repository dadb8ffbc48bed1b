/** The OpenAI wire shapes the UI reads and sends (the subset it uses). */

export interface ModelCard {
  id: string;
  object: "model";
  created?: number;
  owned_by: string;
  /** "embedding" when the upstream says the model only embeds. */
  type?: string;
  // What an upstream may tell of a model's inputs (passed through by some gateways).
  input_modalities?: string[];
  architecture?: { input_modalities?: string[] };
  capabilities?: string[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  completion_tokens_details?: { reasoning_tokens?: number } | null;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

export interface Delta {
  role?: string;
  content?: string | null;
  reasoning_content?: string | null;
  refusal?: string | null;
  tool_calls?: ToolCallDelta[];
}

export interface ChunkChoice {
  index: number;
  delta: Delta;
  finish_reason: string | null;
}

export interface ChatChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: ChunkChoice[];
  usage?: Usage | null;
}

export interface CompletionMessage {
  role: string;
  content: string | null;
  reasoning_content?: string | null;
  refusal?: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  model: string;
  choices: { index: number; message: CompletionMessage; finish_reason: string | null }[];
  usage?: Usage | null;
}

/** A part of a user message's content (OpenAI chat): text, or an image by URL or data URL. */
export type ContentPart = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } };

export interface WireMessage {
  role: "system" | "user" | "assistant";
  content: string | ContentPart[];
}

export interface ChatRequest {
  model: string;
  messages: WireMessage[];
  stream?: boolean;
  stream_options?: { include_usage: boolean };
  temperature?: number;
  max_tokens?: number;
}

/** `event: status` in resumable mode: a retry or a fallback before the answer started. */
export interface StreamStatus {
  status: string; // "retrying" | "falling_back" | …
  provider?: string;
  next_provider?: string;
  attempt?: number;
  delay_s?: number;
  reason?: string;
}

export interface ErrorBody {
  message: string;
  type?: string | null;
  param?: string | null;
  code?: string | number | null;
}
