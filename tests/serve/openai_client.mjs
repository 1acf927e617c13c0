// The official OpenAI Node client (npm `openai`) against `prompthost serve` on 127.0.0.1:
// the models listed, a plain and a streamed completion (the same text), the errors the
// client raises for a wrong API key and an unknown model; then SIGTERM and exit code 0.
//   node openai_client.mjs PROMPTHOST_EXE   (NODE_PATH: where `openai` is installed)
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const OpenAI = require('openai').default ?? require('openai');

const exe = process.argv[2];
const key = 'sk-prompthost-test';
const server = spawn(exe, ['serve', '--port', '0', '--api-key', key], { stdio: ['ignore', 'ignore', 'pipe'] });
const killer = setTimeout(() => { server.kill('SIGKILL'); console.error('timed out'); process.exit(1); }, 60000);

let stderr = '';
const port = await new Promise((resolve, reject) => {
  server.stderr.on('data', (d) => {
    stderr += d;
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`prompthost serve exited (${code}):\n${stderr}`)));
});
const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));

// Whatever fails, the server goes too (it would hold the caller's output pipe open).
let models, plain, chunks;
try {
  const baseURL = `http://127.0.0.1:${port}/v1`;
  const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0 });

  models = await client.models.list();
  const ids = models.data.map((m) => m.id);
  assert.deepEqual(ids, ['demo'], `models: ${ids}`);

  const request = { model: 'demo', prompt: 'The computer', max_tokens: 12, temperature: 0 };
  plain = await client.completions.create(request);
  assert.equal(plain.object, 'text_completion');
  assert.equal(plain.choices.length, 1);
  assert.equal(plain.choices[0].finish_reason, 'length');
  assert.ok(plain.choices[0].text.length > 0, 'an empty completion');
  assert.equal(plain.usage.completion_tokens, 12);

  const stream = await client.completions.create({ ...request, stream: true });
  let streamed = '';
  chunks = 0;
  let finish = null;
  for await (const chunk of stream) {
    ++chunks;
    streamed += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(streamed, plain.choices[0].text);
  // Tokens decoded while the connection is still writing share a chunk, so on the demo
  // model (12 tokens in milliseconds) the count depends on scheduling: at least one. The
  // framing chunk by chunk is checked in serve_api, over a scripted service.
  assert.ok(chunks >= 1, `no chunks`);
  assert.equal(finish, 'length');

  const wrongKey = new OpenAI({ apiKey: 'sk-wrong', baseURL, maxRetries: 0 });
  await assert.rejects(wrongKey.completions.create(request), (e) => e.status === 401 && e instanceof OpenAI.AuthenticationError);
  await assert.rejects(client.completions.create({ ...request, model: 'nope' }),
    (e) => e.status === 404 && e instanceof OpenAI.NotFoundError && /nope/.test(e.message));
  await assert.rejects(client.completions.create({ ...request, max_tokens: 100000 }),
    (e) => e.status === 400 && e.code === 'context_length_exceeded');

} catch (e) {
  server.kill('SIGKILL');
  throw e;
}
server.kill('SIGTERM');
const { code, signal } = await exited;
clearTimeout(killer);
assert.equal(signal, null, `killed by ${signal}`);
assert.equal(code, 0, `exit code ${code}:\n${stderr}`);
console.log(`openai client: ${models.data.length} model, completion ${JSON.stringify(plain.choices[0].text)}, ${chunks} stream chunks: OK`);
