// Runs the Anthropic TypeScript SDK (@anthropic-ai/sdk) against the gateway's POST /v1/messages
// and prints the outcome as one line of JSON. The key is LLMS_API_KEY.
// Usage: node messages.mjs <base_url (the gateway's root, no /v1)> <model> <mode>
//   mode "create": messages.create() without streaming; prints the Message
//   mode "stream": messages.stream(...).finalMessage(); prints every event, the text deltas and
//                  the final Message
//   mode "tools":  a tool_use round trip as Anthropic's tool-use guide writes it: a streamed turn
//                  ending in tool_use, then the assistant's content and a tool_result sent back;
//                  prints both Messages
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, model, mode] = process.argv.slice(2);
const client = new Anthropic({ baseURL, apiKey: process.env.LLMS_API_KEY || "unused", maxRetries: 0 });
const tools = [
  {
    name: "get_weather",
    description: "The current weather in a city.",
    input_schema: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
];

function print(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

try {
  if (mode === "create") {
    const message = await client.messages.create({
      model,
      max_tokens: 100,
      system: "Be brief.",
      messages: [{ role: "user", content: "Hello from node" }],
    });
    print({ ok: true, message });
  } else if (mode === "stream") {
    const stream = client.messages.stream({
      model,
      max_tokens: 100,
      messages: [{ role: "user", content: "Hello from node" }],
    });
    const events = [];
    const deltas = [];
    stream.on("streamEvent", (event) => events.push(event));
    stream.on("text", (delta) => deltas.push(delta));
    const message = await stream.finalMessage();
    print({ ok: true, events, deltas, message });
  } else if (mode === "tools") {
    const messages = [{ role: "user", content: "Weather in Paris?" }];
    const first = await client.messages.stream({ model, max_tokens: 200, tools, messages }).finalMessage();
    messages.push({ role: "assistant", content: first.content });
    const results = first.content
      .filter((block) => block.type === "tool_use")
      .map((block) => ({ type: "tool_result", tool_use_id: block.id, content: `22C, sunny in ${block.input.city}` }));
    messages.push({ role: "user", content: results });
    const second = await client.messages.create({ model, max_tokens: 200, tools, messages });
    print({ ok: true, first, second });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} catch (error) {
  print({ ok: false, name: error?.constructor?.name, status: error?.status ?? null, message: String(error?.message) });
}
