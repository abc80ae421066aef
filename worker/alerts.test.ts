// Drift alerts with hysteresis in the aggregator, against the real flight-delay training
// baseline, with the object's real SQLite storage and its alarm.
import { env, runDurableObjectAlarm } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import {
  CategoricalSketch,
  createProfile,
  decodeSummary,
  encodeSummary,
  EVIDENCE_ALLOWANCE,
  EVIDENCE_CAP,
  EVIDENCE_THRESHOLD,
  TDigest,
} from '../core/index.ts';
import { rng } from '../test/support/data.ts';
import { isolatedNamespace } from '../test/support/namespaces.ts';
import { ALERT_HYSTERESIS, type DriftAggregator } from './aggregator.ts';
import { DEFAULT_VERSIONS, DEFAULTS } from '../models/defaults.ts';

const AGGREGATOR = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;
const baseline = decodeSummary(new Uint8Array(DEFAULTS['flight-delay'].baseline));

/** One minute of 500 rows drawn from the baseline's own sketches; `shift` moves hour and month. */
function minute(start: number, sequence: number, seed: number, shift: boolean): Uint8Array {
  const r = rng(seed);
  const p = createProfile({
    model: 'flight-delay',
    modelVersion: '1',
    source: { kind: 'edge', id: 'replay' },
    sequence,
    windowStart: start,
    windowEnd: start + 59_000,
  });
  for (const [name, sketch] of baseline.features) {
    if (sketch instanceof TDigest) {
      const d = new TDigest();
      for (let i = 0; i < 500; i++) {
        let v = Math.round(sketch.quantile(r()));
        if (shift && name === 'month') v = 5;
        if (shift && name === 'hour') v = Math.min(23, v + 4);
        d.add(name === 'distance' ? sketch.quantile(r()) : v);
      }
      p.features.set(name, d);
    } else if (sketch instanceof CategoricalSketch) {
      const top = sketch.top(512);
      const total = top.reduce((a, c) => a + c.count, 0);
      const c = new CategoricalSketch({ capacity: 512 });
      for (let i = 0; i < 500; i++) {
        let u = r() * total;
        const pick = top.find((t) => (u -= t.count) <= 0) ?? top[0];
        c.add(pick.value);
      }
      p.features.set(name, c);
    }
  }
  p.counters.rows = 500;
  return encodeSummary(p);
}

/** The minutes every test starts from: 2026-01-01T00:00Z onwards. */
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);
/** Four baseline-like minutes, four shifted ones (indexes 4-7), eight clean ones. */
const PLAN = [false, false, false, false, true, true, true, true, false, false, false, false, false, false, false, false];

/**
 * A test's own aggregator for flight-delay (the workers pool shares storage across a file's
 * tests): `tag` names it, and `ns` is the AGGREGATOR binding that addresses it by the model's name.
 */
function ownAggregator(tag: string) {
  const ns = isolatedNamespace(AGGREGATOR, tag);
  return { ns, agg: ns.get(ns.idFromName('flight-delay')) };
}

/** Ingests PLAN's minutes into `agg` (each must be stored), then runs its alarm, which evaluates them. */
async function ingestPlan(agg: DurableObjectStub<DriftAggregator>): Promise<void> {
  let seq = 0;
  for (const [i, shifted] of PLAN.entries()) {
    expect((await agg.ingest('flight-delay', minute(T0 + i * 60_000, ++seq, i + 1, shifted))).status).toBe('stored');
  }
  // The alarm a minute after ingest evaluates every completed minute.
  expect(await runDurableObjectAlarm(agg)).toBe(true);
}

/** The app with the operator routes on (token `op`) and `ns` as its AGGREGATOR binding. */
async function operatorApp(ns: DurableObjectNamespace<DriftAggregator>) {
  const { createApp } = await import('./app.ts');
  const { createWasmSession } = await import('./engine/ort-workerd.ts');
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  // OPERATOR_TOKEN set here, whatever the developer's .dev.vars holds.
  const bindings = { ...(env as object), AGGREGATOR: ns, OPERATOR_TOKEN: 'op' };
  return { app, bindings };
}

describe('drift alerts', () => {
  it('baseline-like minutes raise nothing; shifted minutes open an alert on the features that moved, by evidence before the hysteresis when far past the bar; clean minutes resolve it', async () => {
    const { agg } = ownAggregator('alerts-hysteresis');
    const t0 = T0;
    await ingestPlan(agg);
    const alerts = await agg.alerts();
    const features = [...new Set(alerts.map((a) => a.feature))].sort();
    expect(features).toContain('month');
    expect(features).toContain('hour');
    expect(features).not.toContain('distance');
    expect(features).not.toContain('origin');
    const month = alerts.find((a) => a.feature === 'month')!;
    // Drifted since the first shifted minute (index 4). May is far out of range: each shifted
    // minute scores past EVIDENCE_CAP, so the evidence is 1.5, 3 after two of them, past 2.5: the
    // alert opens at the end of the second (index 5), before the hysteresis' third. The evidence
    // rises to its limit (5) over the shifted minutes and falls a little over 0.5 a clean one (its
    // score is a hair under 0: nothing out of range, where noise alone puts 2/(m + 1) of a window):
    // under 2.5 after the fifth clean minute (index 12), where the alert resolves.
    expect(EVIDENCE_CAP - EVIDENCE_ALLOWANCE).toBe(1.5);
    expect(month.since).toBe(new Date(t0 + 4 * 60_000).toISOString());
    expect(month.opened_at).toBe(new Date(t0 + 6 * 60_000).toISOString());
    expect(Date.parse(month.opened_at)).toBeLessThan(t0 + (4 + ALERT_HYSTERESIS) * 60_000);
    expect(month.evidence.sequential).toEqual({ evidence: 3, threshold: EVIDENCE_THRESHOLD, score: expect.any(Number), drifted_in_a_row: 2 });
    expect(month.resolved_at).toBe(new Date(t0 + 13 * 60_000).toISOString());
    // month is a calendar feature: May was never in training, so it is out of range.
    expect(month.evidence.out_of_range.statistic).toBeGreaterThan(month.evidence.out_of_range.threshold!);
    expect(alerts.find((a) => a.feature === 'hour')!.evidence.psi.statistic).toBeGreaterThan(0.25);
    // Evaluating again changes nothing (each minute is evaluated once).
    expect(await agg.evaluate(Date.now())).toBe(0);
    expect(await agg.alerts()).toEqual(alerts);
  });
});

describe('the alerts route', () => {
  it('lists the aggregator alerts for operators, and refuses others', async () => {
    // Its own aggregator, with the alerts of the shifted minutes in it.
    const { ns, agg } = ownAggregator('alerts-route');
    await ingestPlan(agg);
    const { app, bindings } = await operatorApp(ns);
    expect((await app.request('/v1/models/flight-delay/alerts', {}, bindings)).status).toBe(401);
    const res = await app.request('/v1/models/flight-delay/alerts', { headers: { authorization: 'Bearer op' } }, bindings);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { open: number; alerts: { feature: string }[] };
    expect(body.alerts.map((a) => a.feature)).toEqual(expect.arrayContaining(['month', 'hour']));
    expect(body.open).toBe(0);
  });
});

describe('re-baselining', () => {
  it('an operator re-baselines to a chosen window; later minutes like it raise nothing new; an empty window is refused', async () => {
    // Its own aggregator, the twelve minutes in it and evaluated.
    const { ns, agg } = ownAggregator('alerts-rebaseline');
    await ingestPlan(agg);
    const { app, bindings } = await operatorApp(ns);
    const post = (body: unknown) =>
      app.request(
        '/v1/models/flight-delay/baseline',
        { method: 'POST', headers: { authorization: 'Bearer op', 'content-type': 'application/json' }, body: JSON.stringify(body) },
        bindings,
      );
    const t0 = T0;
    // The shifted minutes (4-7) become the reference.
    const res = await post({ from: t0 + 4 * 60_000, to: t0 + 8 * 60_000 });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { baseline: { rows: number } }).baseline.rows).toBe(2000);
    const empty = await post({ from: t0 - 3_600_000, to: t0 - 60_000 });
    expect(empty.status).toBe(422);
    expect((await post({ from: 'soon', to: t0 })).status).toBe(400);

    const before = (await agg.alerts()).length;
    let seq = 100;
    const next = PLAN.length;
    for (let i = next; i < next + 5; i++) expect((await agg.ingest('flight-delay', minute(t0 + i * 60_000, ++seq, i + 1, true))).status).toBe('stored');
    expect(await agg.evaluate(t0 + (next + 8) * 60_000)).toBe(5);
    expect((await agg.alerts()).length).toBe(before); // shifted traffic is the new normal
    const drift = await app.request(
      `/v1/models/flight-delay/drift?from=${t0 + next * 60_000}&to=${t0 + (next + 5) * 60_000}`,
      { headers: { authorization: 'Bearer op' } },
      bindings,
    );
    const body = (await drift.json()) as { baseline: { source: string }; windows: { drifted: string[] }[] };
    expect(body.baseline.source).toMatch(/rebaselined/);
    expect(body.windows[0].drifted).not.toContain('month');
  });
});
