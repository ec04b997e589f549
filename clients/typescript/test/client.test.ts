import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import {
  AdminClient,
  Code,
  ConnectError,
  DOMAIN,
  DowncityError,
  FinishReason,
  Pathway,
  reasonOf,
  StudioStatus,
  UserClient,
} from "@downcity/client";
import { type City, startCity } from "./city.js";

let city: City;
let user: UserClient;
let admin: AdminClient;

before(async () => {
  city = await startCity();
  user = new UserClient({ baseUrl: city.baseUrl, studioId: city.studioId, userToken: city.userToken });
  admin = new AdminClient({ baseUrl: city.baseUrl, adminKey: city.adminKey });
});

after(async () => {
  user?.close();
  admin?.close();
  await city?.stop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

async function rejection(promise: Promise<unknown>): Promise<DowncityError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DowncityError, `not a DowncityError: ${err}`);
    assert.ok(err instanceof ConnectError);
    return err;
  }
  assert.fail("the call succeeded");
}

test("text", async () => {
  const answer = await user.ai.text({ model: "mock-text", messages: [{ role: "user", content: "Hello, City" }] });
  assert.equal(answer.text, "Echo: Hello, City");
  assert.equal(answer.model, "mock-text");
  assert.equal(answer.finishReason, FinishReason.STOP);
  assert.ok(answer.usage && answer.usage.outputTokens > 0n);
  assert.ok(answer.requestId);
});

test("text with the default model and max tokens", async () => {
  const answer = await user.ai.text({ messages: "first second third", maxTokens: 2 });
  assert.equal(answer.text, "Echo: first");
  assert.equal(answer.finishReason, FinishReason.LENGTH);
});

test("stream to the end", async () => {
  const stream = user.ai.stream({ model: "mock-text", messages: "Tell me a story" });
  const deltas: string[] = [];
  for await (const piece of stream) deltas.push(piece.delta);
  assert.equal(deltas.join(""), "Echo: Tell me a story");
  assert.ok(deltas.length > 1);
  assert.equal(stream.text, "Echo: Tell me a story");
  assert.ok(stream.usage && stream.usage.outputTokens > 0n);
  assert.equal(stream.finishReason, FinishReason.STOP);
  assert.equal(stream.model, "mock-text");
});

test("stream cancelled early", async () => {
  const slow = unique("slow");
  await admin.raw.upsertModel({
    model: {
      id: slow, displayName: "Slow", providerId: "mock", upstreamModel: "echo", pathway: Pathway.TEXT,
      enabled: true, maxOutputTokens: 1000, maxInputTokens: 100000, options: { chunk_delay_ms: "100" },
    },
  });
  const prompt = Array.from({ length: 100 }, (_, i) => `word${i}`).join(" "); // 10 s to the end
  const started = Date.now();
  const stream = user.ai.stream({ model: slow, messages: prompt });
  const got: string[] = [];
  for await (const piece of stream) {
    got.push(piece.delta);
    if (got.length === 2) break; // leaving the loop cancels the call
  }
  assert.equal(got.length, 2);
  assert.equal(stream.usage, undefined);
  assert.ok(Date.now() - started < 5000);

  // cancel() from outside stops it too: the loop ends with a CANCELED error.
  const second = user.ai.stream({ model: slow, messages: prompt });
  const err = await rejection(
    (async () => {
      for await (const _ of second) second.cancel();
    })(),
  );
  assert.equal(err.code, Code.Canceled);
});

test("image", async () => {
  const answer = await user.ai.image({ prompt: "a red square", count: 2 });
  assert.equal(answer.images.length, 2);
  assert.equal(answer.images[0].mimeType, "image/png");
  assert.deepEqual([...answer.images[0].data.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.equal(answer.usage?.images, 2n);
});

test("list models", async () => {
  const models = await user.ai.models();
  const text = models.find((m) => m.id === "mock-text");
  assert.ok(text?.isDefault && text.pathway === Pathway.TEXT);
  assert.deepEqual((await user.ai.models(Pathway.IMAGE)).map((m) => m.id), ["mock-image"]);
});

test("expired token", async () => {
  const issued = await admin.issueUserToken(city.studioId, "expiring-user", 0.001);
  const expired = new UserClient({ baseUrl: city.baseUrl, studioId: city.studioId, userToken: issued.secret });
  try {
    const err = await rejection(expired.ai.text({ messages: "hi" }));
    assert.equal(err.code, Code.Unauthenticated);
    assert.equal(err.reason, "TOKEN_EXPIRED");
    assert.equal(err.info?.domain, DOMAIN);
    assert.equal(reasonOf(err), "TOKEN_EXPIRED");
  } finally {
    expired.close();
  }
});

test("suspended studio", async () => {
  const studio = await admin.createStudio(unique("susp"), "Suspended");
  const issued = await admin.issueUserToken(studio.id, "u1");
  await admin.setStudioStatus(studio.id, StudioStatus.SUSPENDED);
  const suspended = new UserClient({ baseUrl: city.baseUrl, studioId: studio.id, userToken: issued.secret });
  try {
    const err = await rejection(suspended.ai.text({ messages: "hi" }));
    assert.equal(err.code, Code.PermissionDenied);
    assert.equal(err.reason, "STUDIO_SUSPENDED");
    const streamErr = await rejection(
      (async () => {
        for await (const _ of suspended.ai.stream({ messages: "hi" })) {
          /* nothing arrives */
        }
      })(),
    );
    assert.equal(streamErr.code, Code.PermissionDenied);
    assert.equal(streamErr.reason, "STUDIO_SUSPENDED");
  } finally {
    suspended.close();
  }
});

test("admin round trip", async () => {
  const studio = await admin.createStudio(unique("acme"), "Acme");
  assert.equal(studio.status, StudioStatus.ACTIVE);
  assert.equal((await admin.getStudio(studio.id)).displayName, "Acme");
  const issued = await admin.issueUserToken(studio.id, "user-42", 3_600_000);
  assert.ok(issued.secret.startsWith("dcu_"));
  assert.equal(issued.token?.userId, "user-42");
  const acme = new UserClient({ baseUrl: city.baseUrl, studioId: studio.id, userToken: issued.secret });
  try {
    assert.equal((await acme.ai.text({ messages: "from acme" })).text, "Echo: from acme");
  } finally {
    acme.close();
  }
  // A user token is no admin credential.
  const notAdmin = new AdminClient({ baseUrl: city.baseUrl, adminKey: issued.secret });
  try {
    const err = await rejection(notAdmin.getStudio(studio.id));
    assert.ok([Code.PermissionDenied, Code.Unauthenticated].includes(err.code));
    assert.ok(err.reason);
  } finally {
    notAdmin.close();
  }
});

test("a deadline hit in the client", async () => {
  const slow = unique("slow");
  await admin.raw.upsertModel({
    model: {
      id: slow, displayName: "Slow", providerId: "mock", upstreamModel: "echo", pathway: Pathway.TEXT,
      enabled: true, maxOutputTokens: 1000, maxInputTokens: 100000, options: { chunk_delay_ms: "200" },
    },
  });
  const stream = user.ai.stream({ model: slow, messages: "one two three four five six" }, { timeoutMs: 300 });
  const err = await rejection(
    (async () => {
      for await (const _ of stream) {
        /* until the deadline */
      }
    })(),
  );
  assert.equal(err.code, Code.DeadlineExceeded);
});
