/**
 * A JSON client of the worker app in workerd tests (no server: `app.request`): bodies go as JSON
 * (a string as it is), answers come back as status, text, JSON and headers. Strict, a non-JSON
 * answer is an error naming the request; otherwise `json` is undefined for it.
 */
export type Json = Record<string, any>;

export interface Answer<J> {
  status: number;
  json: J;
  text: string;
  headers: Headers;
}

type Call<J> = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Answer<J>>;
interface RequestsApp {
  request(path: string, init: RequestInit, env: object): Response | Promise<Response>;
}

export function jsonClient(app: RequestsApp, bindings: object, options: { strict: true }): Call<Json>;
export function jsonClient(app: RequestsApp, bindings: object, options?: { strict?: false }): Call<Json | undefined>;
export function jsonClient(app: RequestsApp, bindings: object, { strict = false }: { strict?: boolean } = {}): Call<Json | undefined> {
  return async (method, path, body, headers = {}) => {
    const res = await app.request(
      path,
      {
        method,
        headers: { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      },
      bindings,
    );
    const text = await res.text();
    let json: Json | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      if (strict) throw new Error(`${method} ${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, json, text, headers: res.headers };
  };
}

/** The error of an answer: /v2 routes answer the Open Inference Protocol's `{ error: message, code, field }`, others `{ error: { code, message, field } }`. */
export function errorOf(path: string, json: Json | undefined): { code: string; message: string; field?: string } {
  return path.startsWith('/v2') ? { code: json?.code, message: json?.error, field: json?.field } : json?.error;
}
