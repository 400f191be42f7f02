// Ask bingo a question with the official openai npm package, streamed.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.BINGO_URL ?? 'http://127.0.0.1:8000/v1',
  apiKey: process.env.BINGO_API_KEY ?? 'dummy', // any string when BINGO_API_KEYS is unset
});

const stream = await client.chat.completions.create({
  model: 'Creative',
  messages: [{ role: 'user', content: 'Hello' }],
  stream: true,
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
}
process.stdout.write('\n');
