import { describe, expect, it } from 'vitest';
import { encodeInstances, type ModelManifest, type Tensor } from '../../core/index.ts';
import { DEFAULTS } from '../../models/defaults.ts';
import { createModelEngine, ModelLoadError, warmupFeeds, type Session } from './model-engine.ts';
import { createWasmSession } from './ort-workerd.ts';

const flight = DEFAULTS['flight-delay'];
const movies = DEFAULTS['movielens-topk'];

/**
 * A session on a virtual clock: run number i (0-based) advances the clock by costs(i) ms and
 * answers one value per row for every output of the manifest; `fail(i)` makes run i throw.
 */
function fakeSession(manifest: ModelManifest, costs: (i: number) => number, fail: (i: number) => boolean = () => false) {
  const clock = { t: 0 };
  const runs: Record<string, Tensor>[] = [];
  const session: Session = {
    inputNames: manifest.inputs.map((i) => i.name),
    outputNames: manifest.outputs.map((o) => o.name),
    async run(feeds) {
      const i = runs.length;
      runs.push(feeds);
      clock.t += costs(i);
      if (fail(i)) throw new Error(`run ${i} exploded`);
      const rows = feeds[manifest.inputs.find((s) => s.shape[0] === 'N')!.name].dims[0];
      return Object.fromEntries(manifest.outputs.map((o) => [o.name, { dtype: 'float32', dims: [rows], data: new Float32Array(rows).fill(0.5) } as Tensor]));
    },
  };
  return { clock, runs, session };
}

function request(manifest: ModelManifest, instances: unknown[]) {
  const enc = encodeInstances(manifest, { instances }, { maxBatch: 1024 });
  return { rows: enc.rows, feeds: enc.feeds, params: enc.params };
}

describe('model engine: warm-up on load', () => {
  it('builds the smallest valid request from the manifest: N = 1, other dynamic dims 1, zeros, parameters at their minimum', () => {
    const f = warmupFeeds(flight.manifest);
    expect(Object.keys(f).sort()).toEqual(flight.manifest.inputs.map((i) => i.name).sort());
    for (const spec of flight.manifest.inputs) {
      expect(f[spec.name].dtype).toBe(spec.dtype);
      expect(f[spec.name].dims).toEqual([1]);
      expect([...f[spec.name].data].every((v) => Number(v) === 0)).toBe(true);
    }
    const m = warmupFeeds(movies.manifest);
    expect(m.history).toMatchObject({ dtype: 'int64', dims: [1, 1] });
    expect(m.history.data).toEqual(BigInt64Array.of(0n));
    const k = movies.manifest.parameters!.find((p) => p.name === 'k')!;
    expect(m.k).toMatchObject({ dtype: 'int64', dims: [1] });
    expect(m.k.data).toEqual(BigInt64Array.of(BigInt(k.range[0])));
  });

  it("runs the session once before it reports 'ready', so load() resolving means warm", async () => {
    const { clock, runs, session } = fakeSession(flight.manifest, (i) => (i === 0 ? 100 : 1));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const engine = createModelEngine({
      manifest: flight.manifest,
      artifact: () => new Uint8Array(flight.artifact),
      createSession: async () => ({
        ...session,
        run: async (feeds) => {
          await gate;
          return session.run(feeds);
        },
      }),
      now: () => clock.t,
    });
    const loaded = engine.load();
    await new Promise((r) => setTimeout(r, 0)); // one task, so the load starts; the gate holds it mid-warm-up
    expect(engine.status().state).toBe('loading');
    release();
    await loaded;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toEqual(warmupFeeds(flight.manifest));
    expect(engine.status()).toEqual({ state: 'ready', loadMs: 0, warmupMs: 100 });
  });

  it('keeps the cold first run out of the batcher: later requests within a 50 ms budget are all served', async () => {
    // The first run of a session takes 100 ms, every later one 1 ms. Before the warm-up, that
    // first run was the first request's, the cost model started at 100 ms, and every request
    // after it was refused for a 50 ms budget.
    const { clock, runs, session } = fakeSession(flight.manifest, (i) => (i === 0 ? 100 : 1));
    const engine = createModelEngine({
      manifest: flight.manifest,
      artifact: () => new Uint8Array(flight.artifact),
      createSession: async () => session,
      now: () => clock.t,
    });
    await engine.load();
    const one = request(flight.manifest, [{ month: 4, day_of_week: 2, hour: 17, distance: 700, origin: 'SYR', destination: 'ORD' }]);
    for (let i = 0; i < 20; i++) {
      const out = await engine.infer(one, { deadline: clock.t + 50 });
      expect(out.p_delay.dims).toEqual([1]);
    }
    expect(runs).toHaveLength(21);
    const s = engine.batcher()!.stats();
    expect(s.refusedDeadline).toBe(0);
    expect(s.cost.fixedMs).toBeLessThan(2);
  });

  it('a warm-up run that throws fails the load with a message that says so, remembered until the retry time', async () => {
    let now = 0;
    const { session } = fakeSession(
      flight.manifest,
      () => 1,
      (i) => i === 0,
    );
    let created = 0;
    const engine = createModelEngine({
      manifest: flight.manifest,
      artifact: () => new Uint8Array(flight.artifact),
      createSession: async () => {
        created++;
        return session;
      },
      retryLoadAfterMs: 1000,
      now: () => now,
    });
    const err = await engine.load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(/flight-delay failed to load: its warm-up run failed: run 0 exploded/);
    expect(((err as Error).cause as Error).message).toMatch(/warm-up run failed/);
    expect(engine.status()).toMatchObject({ state: 'failed', error: expect.stringMatching(/warm-up run failed/) });
    await expect(
      engine.infer(request(flight.manifest, [{ month: 1, day_of_week: 1, hour: 1, distance: 1, origin: 'SYR', destination: 'ORD' }])),
    ).rejects.toBeInstanceOf(ModelLoadError);
    expect(created).toBe(1);
    // After the retry time the load is tried again, and this time the warm-up (run 1) succeeds.
    now = 1000;
    await engine.load();
    expect(created).toBe(2);
    expect(engine.status().state).toBe('ready');
  });
});

describe('model engine: warm-up with the bundled models on ort-web in workerd', () => {
  it.each([
    { name: 'flight-delay', model: flight, instance: { month: 4, day_of_week: 2, hour: 17, distance: 700, origin: 'SYR', destination: 'ORD' } },
    { name: 'movielens-topk', model: movies, instance: { history: [1291, 2081, 4973], k: 5 } },
  ])('$name loads, warms up and serves', async ({ model, instance }) => {
    const engine = createModelEngine({ manifest: model.manifest, artifact: () => new Uint8Array(model.artifact), createSession: createWasmSession });
    await engine.load();
    const status = engine.status();
    expect(status.state).toBe('ready');
    expect(status.state === 'ready' && Number.isFinite(status.warmupMs)).toBe(true);
    const out = await engine.infer(request(model.manifest, [instance]));
    for (const o of model.manifest.outputs) expect(out[o.name].dims[0]).toBe(1);
  });
});
