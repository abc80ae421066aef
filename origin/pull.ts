/**
 * The origin's copy of the edge's registry, as KServe's storage initializer pulls a model's
 * `storageUri`: every version the edge lists and the origin does not hold yet is fetched from the
 * edge's operator file route (`GET /v1/models/{name}/versions/{version}/files/{file}`), each file
 * checked against the sha256 of the edge's commit record, and pushed to the origin's own app
 * through the same PUT route and checks (here on onnxruntime-node). The float32 build is served
 * when the version has one and its golden rows hold float32 outputs; else the served artifact.
 */
import { createHash } from 'node:crypto';

/** The edge's answer for one version: its commit record's files and its manifest. */
interface VersionAnswer {
  files: Record<string, { sha256: string; bytes: number }>;
  manifest: { serve?: string } & Record<string, unknown>;
}

interface App {
  request(path: string, init: RequestInit, env: object): Response | Promise<Response>;
}

export interface PullReport {
  pulled: string[];
  refused: { version: string; status: number; message: string }[];
}

export async function pullRegistry({
  edge,
  token,
  app,
  env,
}: {
  edge: string;
  token: string;
  app: App;
  env: { OPERATOR_TOKEN?: string };
}): Promise<PullReport> {
  const auth = { authorization: `Bearer ${token}` };
  const get = async (path: string) => {
    const res = await fetch(`${edge}${path}`, { headers: auth, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
    return res;
  };
  const theirs = (await (await get('/v1/models')).json()) as { models: { name: string; versions: { version: string }[] }[] };
  const ours = (await (await app.request('/v1/models', {}, env)).json()) as { models: { name: string; versions: { version: string }[] }[] };
  const held = new Set(ours.models.flatMap((m) => m.versions.map((v) => `${m.name}/${v.version}`)));
  const report: PullReport = { pulled: [], refused: [] };
  for (const m of theirs.models) {
    for (const { version } of m.versions) {
      const id = `${m.name}/${version}`;
      if (held.has(id)) continue;
      const base = `/v1/models/${encodeURIComponent(m.name)}/versions/${encodeURIComponent(version)}`;
      const rec = (await (await get(base)).json()) as VersionAnswer;
      const file = async (f: string) => {
        const bytes = new Uint8Array(await (await get(`${base}/files/${f}`)).arrayBuffer());
        const sha = createHash('sha256').update(bytes).digest('hex');
        if (sha !== rec.files[f]?.sha256) throw new Error(`${id}/${f}: sha256 ${sha} is not the commit record's ${rec.files[f]?.sha256}`);
        return bytes;
      };
      const golden = JSON.parse(new TextDecoder().decode(await file('golden.json'))) as { rows: { expected: Record<string, unknown> }[] };
      const float32 = rec.files['model.float32.onnx'] !== undefined && golden.rows.every((r) => Object.hasOwn(r.expected, 'float32'));
      const manifest = float32 ? { ...rec.manifest, serve: 'float32' } : rec.manifest;
      const body = new FormData();
      body.append('model.onnx', new Blob([(await file(float32 ? 'model.float32.onnx' : 'model.onnx')) as Uint8Array<ArrayBuffer>]), 'model.onnx');
      body.append('manifest.json', new Blob([JSON.stringify(manifest)]), 'manifest.json');
      body.append('baseline.dwsm', new Blob([(await file('baseline.dwsm')) as Uint8Array<ArrayBuffer>]), 'baseline.dwsm');
      body.append('golden.json', new Blob([JSON.stringify(golden)]), 'golden.json');
      const res = await app.request(`${base}`, { method: 'PUT', body, headers: { authorization: `Bearer ${env.OPERATOR_TOKEN}` } }, env);
      if (res.ok) report.pulled.push(id);
      else report.refused.push({ version: id, status: res.status, message: (await res.text()).slice(0, 300) });
    }
  }
  return report;
}
