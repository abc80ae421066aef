/**
 * The model registry: a repository of versions in an R2 bucket (the `MODELS` binding), laid out
 * as Triton lays out its repository, `<model>/<version>/`:
 *
 * - `model.onnx`: the artifact the edge and the browser serve;
 * - `manifest.json`: what the runtime needs to validate, run, sketch and explain it;
 * - `baseline.dwsm`: the training profile drift is judged against (core's summary format);
 * - `golden.json`: rows with the outputs the artifact must reproduce;
 * - `model.float32.onnx` (optional): a float32 build for the hosted fallback;
 * - `version.json`: the commit record, written last: the sha256 and size of every file, the
 *   task, the quality figures and when the version was pushed.
 *
 * A version exists when its commit record does. A push writes the files first and the record
 * last, so a push that fails halfway leaves files no record names: never listed, never served,
 * overwritten by the next push of that version. Every file read is checked against the sha256
 * its record holds, so bytes that changed under a record are an error, never served.
 *
 * Versions are immutable: committing different bytes under an existing version is refused
 * (VersionExistsError); the same bytes again is a no-op. Which version serves is the routing
 * table's business, not the registry's.
 */
import { ValidationError, type ModelManifest } from '../../core/index.ts';

/** The files of a version, in the order a push writes them (the record last). */
export const VERSION_FILES = ['model.onnx', 'manifest.json', 'baseline.dwsm', 'golden.json', 'model.float32.onnx'] as const;
export type VersionFile = (typeof VERSION_FILES)[number];
export const REQUIRED_FILES: readonly VersionFile[] = ['model.onnx', 'manifest.json', 'baseline.dwsm', 'golden.json'];
const RECORD = 'version.json';
/** Written once the default models are seeded: later starts leave the registry alone (a deleted default stays deleted). */
const SEEDED = '.seeded';

/** Model names: lower case, digits, '.', '_', '-'; 1-64 characters, starting with a letter or digit. */
export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Versions: letters, digits, '.', '_', '-'; 1-64 characters, starting with a letter or digit. */
export const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface FileRecord {
  sha256: string;
  bytes: number;
}

/** A version's commit record (`version.json`). */
export interface VersionRecord {
  model: string;
  version: string;
  /** ISO date of the push. */
  pushed_at: string;
  task: ModelManifest['task'];
  description: string;
  files: Partial<Record<VersionFile, FileRecord>>;
  /** The manifest's quality figures, if any, for listings. */
  quality?: ModelManifest['quality'];
}

/** The subset of R2's bucket API the registry uses (workerd's R2Bucket has it; so does memoryBucket). */
export interface Bucket {
  get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
  put(key: string, value: ArrayBuffer | Uint8Array | string): Promise<unknown>;
  delete(keys: string | string[]): Promise<void>;
  list(options?: { prefix?: string; cursor?: string; delimiter?: string }): Promise<{
    objects: { key: string; etag?: string }[];
    truncated: boolean;
    cursor?: string;
    delimitedPrefixes: string[];
  }>;
}

/** A file's bytes differ from what its commit record says. */
export class RegistryIntegrityError extends Error {
  override readonly name = 'RegistryIntegrityError';
}

/** A push of other bytes under a version that exists. */
export class VersionExistsError extends ValidationError {
  constructor(model: string, version: string, file: string) {
    super(`${model} version ${version} exists with other bytes (${file} differs); versions are immutable, push a new version`, file, 409, 'version_exists');
  }
}

export async function sha256Hex(bytes: Uint8Array | ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

const keyOf = (model: string, version: string, file: string) => `${model}/${version}/${file}`;
const decoder = new TextDecoder();

export function checkNames(model: string, version?: string): void {
  if (!MODEL_NAME.test(model))
    throw new ValidationError(
      `model name ${JSON.stringify(model.slice(0, 80))} must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
      'name',
    );
  if (version !== undefined && !VERSION_NAME.test(version))
    throw new ValidationError(
      `version ${JSON.stringify(version.slice(0, 80))} must be 1-64 of A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
      'version',
    );
}

export class Registry {
  /** Commit records read, by key and etag (see catalog). */
  readonly #records = new Map<string, VersionRecord>();

  constructor(readonly bucket: Bucket) {}

  /** Every committed version, by model, oldest push first. */
  async catalog(): Promise<Map<string, VersionRecord[]>> {
    const listed = await this.#listRecords('');
    // A commit record never changes while it exists: only records not read yet (a new key, or a
    // key deleted and committed again, which has a new etag) cost a read.
    const records = await Promise.all(
      listed.map(async ({ key, etag }) => {
        const id = `${key}\u0000${etag ?? ''}`;
        const known = etag ? this.#records.get(id) : undefined;
        if (known) return known;
        const r = await this.#readRecord(key);
        if (r && etag) this.#records.set(id, r);
        return r;
      }),
    );
    // Forget records no longer listed (deleted versions).
    const live = new Set(listed.map((o) => `${o.key}\u0000${o.etag ?? ''}`));
    for (const id of this.#records.keys()) if (!live.has(id)) this.#records.delete(id);
    const out = new Map<string, VersionRecord[]>();
    for (const r of records) {
      if (!r) continue;
      if (!out.has(r.model)) out.set(r.model, []);
      out.get(r.model)!.push(r);
    }
    for (const list of out.values()) list.sort(byPush);
    return out;
  }

  /** The committed versions of one model, oldest push first (the first is its default). */
  async versionsOf(model: string): Promise<VersionRecord[]> {
    if (!MODEL_NAME.test(model)) return [];
    const listed = await this.#listRecords(`${model}/`);
    const records = (await Promise.all(listed.map((o) => this.#readRecord(o.key)))).filter((r): r is VersionRecord => r !== undefined);
    return records.sort(byPush);
  }

  /** The commit records' keys (and etags) under `prefix`, every page of the listing. */
  async #listRecords(prefix: string): Promise<{ key: string; etag?: string }[]> {
    const out: { key: string; etag?: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix, cursor });
      for (const o of page.objects) if (o.key.endsWith(`/${RECORD}`) && o.key.split('/').length === 3) out.push(o);
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out;
  }

  /** The commit record of one version, or undefined. */
  async record(model: string, version: string): Promise<VersionRecord | undefined> {
    if (!MODEL_NAME.test(model) || !VERSION_NAME.test(version)) return undefined;
    return this.#readRecord(keyOf(model, version, RECORD));
  }

  async #readRecord(key: string): Promise<VersionRecord | undefined> {
    const o = await this.bucket.get(key);
    if (!o) return undefined;
    try {
      const r = JSON.parse(decoder.decode(await o.arrayBuffer())) as VersionRecord;
      const [model, version] = key.split('/');
      if (r.model !== model || r.version !== version || typeof r.files !== 'object') throw new Error('it names another version');
      return r;
    } catch (e) {
      console.error(`registry: commit record ${key} is not readable (${e instanceof Error ? e.message : e}); the version is skipped`);
      return undefined;
    }
  }

  /** A file of a committed version, checked against its record's sha256 (RegistryIntegrityError). Undefined when the version has no such file. */
  async file(r: VersionRecord, file: VersionFile): Promise<Uint8Array | undefined> {
    const spec = r.files[file];
    if (!spec) return undefined;
    const o = await this.bucket.get(keyOf(r.model, r.version, file));
    if (!o) throw new RegistryIntegrityError(`${r.model}/${r.version}/${file} is missing from the registry`);
    const bytes = new Uint8Array(await o.arrayBuffer());
    if (bytes.byteLength !== spec.bytes || (await sha256Hex(bytes)) !== spec.sha256)
      throw new RegistryIntegrityError(`${r.model}/${r.version}/${file} does not match its sha256 ${spec.sha256}`);
    return bytes;
  }

  async manifest(r: VersionRecord): Promise<ModelManifest> {
    const bytes = await this.file(r, 'manifest.json');
    if (!bytes) throw new RegistryIntegrityError(`${r.model}/${r.version} has no manifest.json`);
    return JSON.parse(decoder.decode(bytes)) as ModelManifest;
  }

  /**
   * Commits a version whose files were checked by the caller: the files, then the record. The
   * same bytes under an existing version answer the existing record (`created: false`); other
   * bytes throw VersionExistsError and write nothing.
   */
  async commit(
    model: string,
    version: string,
    files: Partial<Record<VersionFile, Uint8Array>>,
    manifest: ModelManifest,
    pushedAt = new Date(),
  ): Promise<{ record: VersionRecord; created: boolean }> {
    checkNames(model, version);
    const specs: Partial<Record<VersionFile, FileRecord>> = {};
    for (const f of VERSION_FILES) {
      const bytes = files[f];
      if (bytes) specs[f] = { sha256: await sha256Hex(bytes), bytes: bytes.byteLength };
    }
    const existing = await this.record(model, version);
    if (existing) {
      for (const f of VERSION_FILES) {
        if (existing.files[f]?.sha256 !== specs[f]?.sha256) throw new VersionExistsError(model, version, f);
      }
      return { record: existing, created: false };
    }
    for (const f of VERSION_FILES) {
      const bytes = files[f];
      if (bytes) await this.bucket.put(keyOf(model, version, f), bytes);
    }
    const record: VersionRecord = {
      model,
      version,
      pushed_at: pushedAt.toISOString(),
      task: manifest.task,
      description: manifest.description ?? '',
      files: specs,
      ...(manifest.quality ? { quality: manifest.quality } : {}),
    };
    // A concurrent push of the same new version may have committed meanwhile: the record is
    // read back, and a reader checks every file against the record it reads, so mixed bytes
    // are an integrity error, never served.
    await this.bucket.put(keyOf(model, version, RECORD), JSON.stringify(record));
    return { record, created: true };
  }

  /** Removes a version: its record first (it stops existing at once), then its files. */
  async remove(model: string, version: string): Promise<boolean> {
    const r = await this.record(model, version);
    if (!r) return false;
    await this.bucket.delete(keyOf(model, version, RECORD));
    await this.bucket.delete(VERSION_FILES.map((f) => keyOf(model, version, f)));
    return true;
  }

  /**
   * Seeds the registry once (a marker object remembers it): every seed version that is not
   * committed yet. Seeds are the project's own default models, built and checked by
   * models/build.ts; they are committed without the push route's engine checks.
   */
  async seed(versions: readonly SeedVersion[], now = Date.now()): Promise<number> {
    if (versions.length === 0 || (await this.bucket.get(SEEDED))) return 0;
    let n = 0;
    for (const [i, s] of versions.entries()) {
      const files: Partial<Record<VersionFile, Uint8Array>> = {};
      for (const [f, b] of Object.entries(s.files)) files[f as VersionFile] = b instanceof Uint8Array ? b : new Uint8Array(b);
      const manifest = JSON.parse(decoder.decode(files['manifest.json'])) as ModelManifest;
      // Seeds keep their order, before anything pushed from now on (workerd's clock moves only
      // between I/O): the first seeded version of a model is its default.
      const { created } = await this.commit(s.model, s.version, files, manifest, new Date(now - versions.length + i));
      if (created) n++;
    }
    await this.bucket.put(SEEDED, new Date(now).toISOString());
    return n;
  }
}

/** A version to seed: its files by name. */
export interface SeedVersion {
  model: string;
  version: string;
  files: Partial<Record<VersionFile, ArrayBuffer | Uint8Array>>;
}

const byPush = (a: VersionRecord, b: VersionRecord) =>
  a.pushed_at < b.pushed_at ? -1 : a.pushed_at > b.pushed_at ? 1 : a.version < b.version ? -1 : a.version > b.version ? 1 : 0;

/**
 * A bucket in memory, for an app run without an R2 binding (Node's origin server, app.request in
 * tests without bindings): the same registry, lost when the process ends.
 */
export function memoryBucket(): Bucket {
  const objects = new Map<string, Uint8Array>();
  const etags = new Map<string, string>();
  let puts = 0;
  return {
    async get(key) {
      const v = objects.get(key);
      return v ? { arrayBuffer: async () => v.slice().buffer as ArrayBuffer } : null;
    },
    async put(key, value) {
      objects.set(key, typeof value === 'string' ? new TextEncoder().encode(value) : new Uint8Array(value).slice());
      etags.set(key, String(++puts));
    },
    async delete(keys) {
      for (const k of Array.isArray(keys) ? keys : [keys]) {
        objects.delete(k);
        etags.delete(k);
      }
    },
    async list({ prefix = '' } = {}) {
      const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
      return { objects: keys.map((key) => ({ key, etag: etags.get(key) })), truncated: false, delimitedPrefixes: [] };
    },
  };
}
