// Embeds texts through the gateway with openai-node and the Vercel AI SDK; prints one JSON line.
// Usage: node embeddings.mjs <base_url> <model> <client> <texts-json>
//   client "openai":        client.embeddings.create() with the SDK's default (base64) and "float"
//   client "openai-tokens": client.embeddings.create() with a token array
//   client "ai":            embed() of the first text and embedMany() of all, @ai-sdk/openai's
//                           embedding model (its default request: float)
import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { embed, embedMany } from "ai";

const [baseURL, model, which, textsJson] = process.argv.slice(2);
const texts = JSON.parse(textsJson);
const apiKey = process.env.LLMS_API_KEY || "unused";

function print(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

try {
  if (which === "openai" || which === "openai-tokens") {
    const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
    const input = which === "openai" ? texts : [17, 42, 99];
    const base64 = await client.embeddings.create({ model, input });
    const float = await client.embeddings.create({ model, input, encoding_format: "float" });
    print({ ok: true, base64, float });
  } else {
    const provider = createOpenAI({ baseURL, apiKey });
    const embeddingModel = provider.embedding(model);
    const one = await embed({ model: embeddingModel, value: texts[0], maxRetries: 0 });
    const many = await embedMany({ model: embeddingModel, values: texts, maxRetries: 0 });
    print({
      ok: true,
      one: { embedding: one.embedding, usage: one.usage },
      many: { embeddings: many.embeddings, usage: many.usage },
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
