// Runs one request through openai-node against the gateway and prints the outcome as JSON.
// Usage: node client.mjs <base_url> <model> <mode> [tools-json]
//   mode "stream":  for await over create({stream: true}); prints the chunks' content and errors
//   mode "final":   chat.completions.stream(...).finalChatCompletion(); prints the completion
//   mode "plain":   create() without streaming; prints the completion
import OpenAI from "openai";

const [baseURL, model, mode, toolsJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.LLMS_API_KEY || "unused", maxRetries: 0 });
const body = {
  model,
  messages: [{ role: "user", content: "Hello from node" }],
  ...(toolsJson ? { tools: JSON.parse(toolsJson) } : {}),
};

function print(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

try {
  if (mode === "stream") {
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    print({ ok: true, chunks });
  } else if (mode === "final") {
    const runner = client.chat.completions.stream(body);
    print({ ok: true, completion: await runner.finalChatCompletion() });
  } else {
    print({ ok: true, completion: await client.chat.completions.create(body) });
  }
} catch (error) {
  print({ ok: false, name: error?.constructor?.name, status: error?.status ?? null, message: String(error?.message) });
}
