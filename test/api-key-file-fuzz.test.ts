/**
 * Property-based tests of the key file parser (fast-check, seeded): whatever the text, it returns
 * a checked config or throws its own KeyFileError (never a TypeError, never the text's key in the
 * message); every valid file, written as TOML or JSON, reads back as what was written.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify as toToml } from 'smol-toml';
import { describe, it } from './helpers/test.js';
import { KeyFileError, parseKeyEnv, parseKeyFile, sha256Hex, type KeySpec } from '../src/router/access/key-file.js';

const SEED = 1818;

/** Only KeyFileError may escape; a key's text never appears in the message. */
function parsesOrRefuses(run: () => unknown, secrets: string[] = []): void {
  try {
    run();
  } catch (err) {
    if (!(err instanceof KeyFileError)) throw new Error(`threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    for (const s of secrets) if (s.length >= 8 && err.message.includes(s)) throw new Error(`error repeats a key: ${err.message}`);
  }
}

const keyText = fc.stringMatching(/^[\x21-\x7e]{8,40}$/);
const name = fc.string({ minLength: 1, maxLength: 30 });
const glob = fc.oneof(fc.constant('*'), fc.stringMatching(/^[a-z0-9][a-z0-9.*?-]{0,20}$/));
const limit = fc.integer({ min: 1, max: 1e9 });

/** A valid key entry as written in a file, with what the parser must make of it. */
const entry = fc
  .record(
    {
      secret: fc.oneof(fc.record({ key: keyText }), fc.record({ key_sha256: fc.stringMatching(/^[0-9a-fA-F]{64}$/) })),
      models: fc.option(fc.array(glob, { maxLength: 4 }), { nil: undefined }),
      scope: fc.option(fc.constantFrom('client', 'admin'), { nil: undefined }),
      rpm: fc.option(limit, { nil: undefined }),
      tpm: fc.option(limit, { nil: undefined }),
      max_parallel_requests: fc.option(limit, { nil: undefined }),
      priority: fc.option(fc.integer({ min: -1e6, max: 1e6 }), { nil: undefined }),
    },
    { requiredKeys: ['secret'] },
  )
  .map((e) => {
    const raw: Record<string, unknown> = { ...e.secret };
    for (const k of ['models', 'scope', 'rpm', 'tpm', 'max_parallel_requests', 'priority'] as const) if (e[k] !== undefined) raw[k] = e[k];
    return raw;
  });

const validFile = fc
  .uniqueArray(fc.tuple(name, entry), { selector: ([n]) => n, maxLength: 6 })
  .map((list) => ({ keys: list.map(([n, e]) => ({ name: n, ...e })) }))
  // distinct keys: the parser refuses two entries with the same key
  .filter((f) => new Set(f.keys.map((k: Record<string, unknown>) => (typeof k.key === 'string' ? sha256Hex(k.key) : String(k.key_sha256).toLowerCase()))).size === f.keys.length);

function expected(raw: Record<string, unknown>): KeySpec {
  const spec: KeySpec = {
    name: raw.name as string,
    sha256: raw.key !== undefined ? sha256Hex(raw.key as string) : (raw.key_sha256 as string).toLowerCase(),
    models: (raw.models as string[] | undefined) ?? ['*'],
    scope: (raw.scope as 'client' | 'admin' | undefined) ?? 'client',
  };
  if (raw.rpm !== undefined) spec.rpm = raw.rpm as number;
  if (raw.tpm !== undefined) spec.tpm = raw.tpm as number;
  if (raw.max_parallel_requests !== undefined) spec.maxParallelRequests = raw.max_parallel_requests as number;
  if (raw.priority !== undefined) spec.priority = raw.priority as number;
  return spec;
}

describe('key file parser (property-based)', () => {
  it('valid files round-trip through TOML and JSON', () => {
    fc.assert(
      fc.property(validFile, (file) => {
        const want = file.keys.map(expected);
        assert.deepEqual(parseKeyFile(toToml(file), 'toml', 'f').keys, want);
        assert.deepEqual(parseKeyFile(JSON.stringify(file), 'json', 'f').keys, want);
      }),
      { seed: SEED, numRuns: 1500 },
    );
  });

  it('any text: a config or a KeyFileError, never anything else', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.constantFrom('toml' as const, 'json' as const), (text, format) => {
        parsesOrRefuses(() => parseKeyFile(text, format, 'f'));
        parsesOrRefuses(() => parseKeyEnv(text));
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('any JSON value in any field: a config or a KeyFileError that does not repeat the key', () => {
    const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined), fc.constant('__proto__'), fc.constant({ __proto__: null }));
    const field = fc.constantFrom('name', 'key', 'key_sha256', 'models', 'scope', 'rpm', 'tpm', 'max_parallel_requests', 'priority', 'extra', '__proto__', 'constructor');
    fc.assert(
      fc.property(validFile, fc.array(fc.tuple(fc.nat(5), field, anyValue), { maxLength: 4 }), fc.option(fc.tuple(fc.constantFrom('keys', 'backend_key_env', 'other'), anyValue)), (file, edits, top) => {
        const doc: Record<string, unknown> = JSON.parse(JSON.stringify(file));
        const keys = doc.keys as Array<Record<string, unknown>>;
        for (const [i, f, v] of edits) if (keys.length > 0) keys[i % keys.length]![f] = v;
        if (top) doc[top[0]] = top[1];
        // the keys still in the document (a replaced `keys` holds none)
        const elsewhere = JSON.stringify({ ...doc, keys: doc.keys === keys ? keys.map(({ key: _key, ...rest }) => rest) : doc.keys }) ?? '';
        // (a text that is also another field's value may rightly be named as that value)
        const secrets = doc.keys === keys ? keys.map((k) => k.key).filter((k): k is string => typeof k === 'string' && !elsewhere.includes(k)) : [];
        parsesOrRefuses(() => parseKeyFile(JSON.stringify(doc), 'json', 'f'), secrets);
        let tomlText: string | undefined;
        try {
          tomlText = toToml(doc);
        } catch {
          tomlText = undefined; // not every value has a TOML form (null, mixed arrays)
        }
        if (tomlText !== undefined) parsesOrRefuses(() => parseKeyFile(tomlText!, 'toml', 'f'), secrets);
      }),
      { seed: SEED, numRuns: 2500 },
    );
  });
});
