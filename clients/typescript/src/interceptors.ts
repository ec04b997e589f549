// Interceptors every client's transport runs, in Node and in browsers alike.
import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { DowncityError } from "./errors.js";

/** Sets the client's credentials (x-studio-id, authorization) on every call. */
export function credentials(headers: Record<string, string>): Interceptor {
  return (next) => async (req) => {
    for (const [key, value] of Object.entries(headers)) req.header.set(key, value);
    return next(req);
  };
}

/** Every error a call throws, also in the middle of a stream, becomes a DowncityError. */
export const convertErrors: Interceptor = (next) => async (req) => {
  let res;
  try {
    res = await next(req);
  } catch (err) {
    throw DowncityError.from(err);
  }
  if (!res.stream) return res;
  const message = res.message;
  const wrapped: StreamResponse = {
    ...res,
    message: (async function* () {
      try {
        yield* message;
      } catch (err) {
        throw DowncityError.from(err);
      }
    })(),
  };
  return wrapped;
};
