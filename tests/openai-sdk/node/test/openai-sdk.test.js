// The official `openai` Node SDK against a real City's OpenAI-compatible face:
// baseURL and a user token, nothing else. Each successful call leaves exactly
// one usage row, found by the request id the SDK saw.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { City } from './city.js';

const HELLO = [{ role: 'user', content: 'hello there' }];
let city;

before(async () => {
  city = await City.start();
});

after(async () => {
  await city?.stop();
});

function onlyRow(studio) {
  const rows = city.usageRows(studio);
  assert.equal(rows.length, 1, JSON.stringify(rows));
  return rows[0];
}

test('a completion', async () => {
  const [studio, token] = city.newUser();
  const completion = await city.client(token).chat.completions.create({
    model: 'mock-text',
    messages: HELLO,
  });
  assert.equal(completion.choices[0].message.content, 'Echo: hello there');
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.deepEqual([completion.usage.prompt_tokens, completion.usage.completion_tokens], [2, 3]);
  const row = onlyRow(studio);
  assert.equal(row.request_id, completion._request_id);
  assert.equal(row.model_id, 'mock-text');
});

test('a streamed completion with usage', async () => {
  const [studio, token] = city.newUser();
  const stream = await city.client(token).chat.completions.create({
    model: 'mock-text',
    messages: HELLO,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, 'Echo: hello there');
  assert.equal(usage.completion_tokens, 3);
  assert.equal(Number(onlyRow(studio).output_tokens), 3);
});

test('an image', async () => {
  const [studio, token] = city.newUser();
  const images = await city.client(token).images.generate({
    model: 'mock-image',
    prompt: 'a red square',
    response_format: 'b64_json',
  });
  const png = Buffer.from(images.data[0].b64_json, 'base64');
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  const row = onlyRow(studio);
  assert.equal(row.request_id, images._request_id);
  assert.equal(Number(row.images), 1);
});

test('the model list', async () => {
  const [studio, token] = city.newUser();
  const ids = [];
  for await (const model of city.client(token).models.list()) ids.push(model.id);
  assert.deepEqual(ids.sort(), ['mock-image', 'mock-text']);
  assert.deepEqual(city.usageRows(studio), []);
});

test('a bad token is an AuthenticationError', async () => {
  await assert.rejects(
    city.client('dcu_nosuchtoken_x').chat.completions.create({ model: 'mock-text', messages: HELLO }),
    (err) => err instanceof OpenAI.AuthenticationError && err.status === 401 && err.code === 'token_invalid',
  );
});

test('a quota hit is a RateLimitError with retry-after', async () => {
  const [studio, token] = city.newUser();
  city.admin('limits', 'set', studio, '--requests-per-minute', '1');
  const client = city.client(token);
  const first = await client.chat.completions.create({ model: 'mock-text', messages: HELLO });
  await assert.rejects(
    client.chat.completions.create({ model: 'mock-text', messages: HELLO }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.code, 'quota_exceeded');
      const retryAfter = Number(err.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
      return true;
    },
  );
  assert.equal(onlyRow(studio).request_id, first._request_id);
});

test('a disabled model is a NotFoundError', async () => {
  const [studio, token] = city.newUser();
  city.admin('models', 'upsert', 'sdk-off', '--provider', 'mock', '--upstream', 'off', '--pathway', 'text', '--disabled');
  await assert.rejects(
    city.client(token).chat.completions.create({ model: 'sdk-off', messages: HELLO }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found',
  );
  assert.deepEqual(city.usageRows(studio), []);
});
