/**
 * The operators' webhook (ALERT_WEBHOOK_URL): one JSON POST per event, with
 * `x-driftwatch-event` and, when ALERT_WEBHOOK_SECRET is set, `x-driftwatch-signature:
 * sha256=<hex HMAC-SHA256 of the body>`. Drift alerts (aggregator.ts) and a model's history
 * (routing-store.ts) post through it; each keeps what is owed and retries on its alarm.
 */

export async function hmacHex(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(body)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Posts one event; true when the receiver answered 2xx within 5 s. */
export async function postEvent(url: string, secret: string | undefined, event: string, body: string): Promise<boolean> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-driftwatch-event': event };
  if (secret) headers['x-driftwatch-signature'] = `sha256=${await hmacHex(secret, body)}`;
  try {
    const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
