// Runs openai-node's Responses client against the gateway and prints the outcome as JSON.
// Usage: node responses.mjs <base_url> <model> <mode>
//   mode "stream": for await over responses.create({stream: true}); prints every event
//   mode "final":  responses.stream(...).finalResponse(); prints the event types and the response
//   mode "plain":  responses.create() without streaming; prints the response
//   mode "tools":  a function tool round trip as OpenAI's guide writes it: a streamed call, then
//                  the call's output items plus a function_call_output sent back; prints both
import OpenAI from "openai";

const [baseURL, model, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.LLMS_API_KEY || "unused", maxRetries: 0 });
const tools = [
  {
    type: "function",
    name: "get_weather",
    description: "The current weather in a city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
      additionalProperties: false,
    },
    strict: true,
  },
];

function print(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

try {
  if (mode === "stream") {
    const stream = await client.responses.create({ model, input: "Hello from node", stream: true });
    const events = [];
    for await (const event of stream) events.push(event);
    print({ ok: true, events });
  } else if (mode === "final") {
    const stream = client.responses.stream({ model, input: "Hello from node" });
    const types = [];
    const deltas = [];
    stream.on("event", (event) => types.push(event.type));
    stream.on("response.output_text.delta", (event) => deltas.push(event.delta));
    const response = await stream.finalResponse();
    print({ ok: true, types, deltas, response, output_text: response.output_text });
  } else if (mode === "plain") {
    const response = await client.responses.create({ model, input: "Hello from node" });
    print({ ok: true, response, output_text: response.output_text });
  } else if (mode === "tools") {
    const input = [{ role: "user", content: "Weather in Paris?" }];
    const first = await client.responses.stream({ model, input, tools }).finalResponse();
    const calls = first.output.filter((item) => item.type === "function_call");
    input.push(...first.output);
    for (const call of calls) {
      const { city } = JSON.parse(call.arguments);
      input.push({ type: "function_call_output", call_id: call.call_id, output: `22C, sunny in ${city}` });
    }
    const second = await client.responses.create({ model, input, tools });
    print({ ok: true, calls, first, second, output_text: second.output_text });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} catch (error) {
  print({ ok: false, name: error?.constructor?.name, status: error?.status ?? null, message: String(error?.message) });
}
