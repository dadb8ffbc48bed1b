// Legacy completions through the gateway with openai-node and the Vercel AI SDK; prints one JSON line.
// Usage: node completions.mjs <base_url> <model> <client> <prompt>
//   client "openai": client.completions.create() non-stream, then stream with include_usage
//   client "ai":     generateText() and streamText() with @ai-sdk/openai's completion model
import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, model, which, prompt] = process.argv.slice(2);
const apiKey = process.env.LLMS_API_KEY || "unused";

function print(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

try {
  if (which === "openai") {
    const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
    const whole = await client.completions.create({ model, prompt, max_tokens: 16 });
    const stream = await client.completions.create({
      model,
      prompt,
      max_tokens: 16,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    print({ ok: true, whole, chunks });
  } else {
    const provider = createOpenAI({ baseURL, apiKey });
    const generated = await generateText({
      model: provider.completion(model),
      prompt,
      maxOutputTokens: 16,
      maxRetries: 0,
    });
    const streamed = streamText({
      model: provider.completion(model),
      prompt,
      maxOutputTokens: 16,
      maxRetries: 0,
    });
    let text = "";
    for await (const part of streamed.textStream) text += part;
    print({
      ok: true,
      generated: { text: generated.text, finishReason: generated.finishReason, usage: generated.usage },
      streamed: { text, finishReason: await streamed.finishReason, usage: await streamed.usage },
    });
  }
} catch (error) {
  print({
    ok: false,
    name: error?.constructor?.name,
    status: error?.status ?? error?.statusCode ?? null,
    message: String(error?.message),
  });
}
