/**
 * The inference Web Worker: everything that can block (fetching and hashing the model,
 * compiling onnxruntime-web, creating sessions, running them) happens here, never on the page.
 * Driven only through comlink (browser/protocol.ts); tensors arrive and leave by transfer.
 *
 * init() walks the ladder in the caller's order and takes the first backend that loads and
 * passes the golden check:
 * - wasm: its outputs on the golden rows must match onnxruntime-node's int8 outputs recorded
 *   in golden.json, within the model's tolerance;
 * - webgpu: its outputs must match the WASM kernels' outputs (the same ort build's CPU EP) on
 *   the same rows, within the tolerance; a backend that disagrees is not used, and the report
 *   says by how much;
 * - edge: the top-k ids must match golden.json (scores are reported, not enforced: the edge
 *   may answer from its float32 hosted fallback).
 * A run that fails demotes the runtime to the next step of the ladder (loaded then, checked the
 * same way), reports why through `onChange`, and retries that batch there.
 */
import * as Comlink from 'comlink';
import { encodeInstances, type ModelManifest, type Tensor } from '../core/index.ts';
import { loadArtifact, loadDescriptor } from './artifact.ts';
import { createEdgeBackend, createOrtBackend, probeWebGpu, type Backend } from './backends.ts';
import { compareGolden, type GoldenVerdict } from './golden.ts';
import type { ArtifactDescriptor, Attempt, BackendChange, BackendName, InferenceApi, InitOptions, InitReport, RunRequest, RunResult } from './protocol.ts';
import { buffersOf, toPredictions, type Prediction } from './tensors.ts';

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

interface State {
  options: InitOptions;
  descriptor: ArtifactDescriptor;
  bytes: Uint8Array | undefined;
  artifactError: string | undefined;
  onChange: (c: BackendChange, attempts: Attempt[]) => void;
  ladder: BackendName[];
  index: number;
  backend: Backend;
  attempts: Attempt[];
}

let state: State | undefined;
let switching: Promise<unknown> = Promise.resolve();
const failNext = new Map<BackendName, string>();

/** The golden rows as one request, and the expected per-row outputs. */
function goldenRequest(m: ModelManifest, d: ArtifactDescriptor): { feeds: Record<string, Tensor>; rows: number; expected: Prediction[] } | undefined {
  if (!d.golden || d.golden.rows.length === 0) return undefined;
  const enc = encodeInstances(m, { instances: d.golden.rows.map((r) => r.features) }, { maxBatch: 1024 });
  return { feeds: enc.feeds, rows: enc.rows, expected: d.golden.rows.map((r) => r.expected) };
}

async function attempt(name: BackendName, s: Omit<State, 'backend' | 'index'>): Promise<{ backend?: Backend; attempt: Attempt }> {
  const t0 = performance.now();
  const m = s.descriptor.manifest;
  const golden = goldenRequest(m, s.descriptor);
  const tolerance = s.descriptor.golden?.tolerance ?? {};
  const done = (a: Omit<Attempt, 'backend' | 'ms'>, backend?: Backend) => ({
    backend,
    attempt: { backend: name, ms: Math.round(performance.now() - t0), ...a },
  });
  const check = async (b: Backend, reference: Prediction[], opts?: { scores?: boolean }): Promise<GoldenVerdict> => {
    const { outputs } = await b.run(golden!.feeds);
    return compareGolden(m, toPredictions(m, outputs, golden!.rows), reference, tolerance, opts);
  };
  try {
    if (name === 'edge') {
      const b = createEdgeBackend(s.options.endpoint, m);
      if (!golden) return done({ ok: true }, b);
      const v = await check(b, golden.expected, { scores: false });
      return done(
        {
          ok: v.ok,
          ...(v.reason ? { reason: `disagrees with the golden set: ${v.reason}` } : {}),
          golden: { rows: v.rows, maxAbsDiff: v.maxAbsDiff, minOverlap: v.minOverlap, against: 'golden.json' },
        },
        v.ok ? b : undefined,
      );
    }
    if (!s.bytes) return done({ ok: false, reason: `no artifact: ${s.artifactError}` });
    if (name === 'wasm') {
      const b = await createOrtBackend('wasm', s.bytes, s.options.ortBase);
      if (!golden) return done({ ok: true }, b);
      const v = await check(b, golden.expected);
      if (!v.ok) await b.release();
      return done(
        {
          ok: v.ok,
          ...(v.reason ? { reason: `disagrees with onnxruntime-node on the golden set: ${v.reason}` } : {}),
          golden: { rows: v.rows, maxAbsDiff: v.maxAbsDiff, minOverlap: v.minOverlap, against: 'golden.json' },
        },
        v.ok ? b : undefined,
      );
    }
    const probe = await probeWebGpu();
    if (probe.reason) return done({ ok: false, reason: probe.reason });
    const b = await createOrtBackend('webgpu', s.bytes, s.options.ortBase);
    if (!golden) return done({ ok: true }, b);
    // The reference: the WASM (CPU) kernels of the same build on the same rows.
    const ref = await createOrtBackend('webgpu', s.bytes, s.options.ortBase, 'wasm');
    let reference: Prediction[];
    try {
      reference = toPredictions(m, (await ref.run(golden.feeds)).outputs, golden.rows);
    } finally {
      await ref.release();
    }
    const v = await check(b, reference);
    if (!v.ok) await b.release();
    return done(
      {
        ok: v.ok,
        ...(v.reason ? { reason: `disagrees with the WASM backend on the golden set: ${v.reason}` } : {}),
        golden: { rows: v.rows, maxAbsDiff: v.maxAbsDiff, minOverlap: v.minOverlap, against: `wasm (adapter: ${probe.adapter})` },
      },
      v.ok ? b : undefined,
    );
  } catch (err) {
    return done({ ok: false, reason: message(err) });
  }
}

/** The next backend after `from` that loads and passes its check, or an error naming every failure. */
async function demote(reason: string): Promise<void> {
  const s = state!;
  const from = s.backend.name;
  s.attempts.push({ backend: from, ok: false, reason: `demoted at run time: ${reason}`, ms: 0 });
  await s.backend.release().catch(() => undefined);
  for (let i = s.index + 1; i < s.ladder.length; i++) {
    const { backend, attempt: a } = await attempt(s.ladder[i], s);
    s.attempts.push(a);
    if (backend) {
      s.backend = backend;
      s.index = i;
      s.onChange({ from, to: backend.name, reason }, s.attempts);
      return;
    }
  }
  s.index = s.ladder.length;
  throw new Error(`no backend left after ${from} failed (${reason}); tried: ${s.attempts.map((a) => `${a.backend}: ${a.reason ?? 'ok'}`).join('; ')}`);
}

const api: InferenceApi = {
  async init(options, onChange) {
    if (state) throw new Error('init() was already called on this worker');
    const t0 = performance.now();
    const { descriptor, fromCache: descriptorFromCache } = await loadDescriptor(options.endpoint, options.model, options.cacheName, options.version);
    let bytes: Uint8Array | undefined;
    let artifactFromCache = false;
    let artifactError: string | undefined;
    try {
      ({ bytes, fromCache: artifactFromCache } = await loadArtifact(options.endpoint, descriptor, options.cacheName));
    } catch (err) {
      artifactError = message(err);
    }
    const loadMs = performance.now() - t0;
    const base = { options, descriptor, bytes, artifactError, onChange, ladder: [...options.prefer], attempts: [] as Attempt[] };
    const t1 = performance.now();
    for (let i = 0; i < base.ladder.length; i++) {
      const { backend, attempt: a } = await attempt(base.ladder[i], base);
      base.attempts.push(a);
      if (backend) {
        state = { ...base, backend, index: i };
        const report: InitReport = {
          backend: backend.name,
          descriptor,
          attempts: base.attempts,
          load: { ms: Math.round(loadMs), artifactFromCache, descriptorFromCache, sessionMs: Math.round(performance.now() - t1) },
        };
        return report;
      }
    }
    throw new Error(`no backend available for ${options.model}: ${base.attempts.map((a) => `${a.backend}: ${a.reason}`).join('; ')}`);
  },

  async run(request: RunRequest): Promise<RunResult> {
    if (!state) throw new Error('init() has not completed');
    await switching;
    for (;;) {
      const s = state;
      if (s.index >= s.ladder.length) throw new Error('no backend left');
      const t0 = performance.now();
      try {
        const injected = failNext.get(s.backend.name);
        if (injected !== undefined) {
          failNext.delete(s.backend.name);
          throw new Error(injected);
        }
        const { outputs, ids } = await s.backend.run(request.feeds);
        return Comlink.transfer({ outputs, backend: s.backend.name, ms: performance.now() - t0, ...(ids ? { ids } : {}) }, buffersOf(outputs));
      } catch (err) {
        const p = demote(`${s.backend.name} run failed: ${message(err)}`);
        switching = p.catch(() => undefined);
        await p;
      }
    }
  },

  async failNextRun(backend, reason) {
    failNext.set(backend, reason);
  },

  async dispose() {
    await state?.backend.release().catch(() => undefined);
    state = undefined;
  },
};

Comlink.expose(api);
