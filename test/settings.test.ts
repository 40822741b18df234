/**
 * The settings specs, tested as tables over every setting of every command: each way of giving a
 * value (flag, environment, every config-file key) sets the same value, with flag > environment >
 * file > default; every default shows in --help; every misspelt key is refused naming the right
 * one; the original's babysitter files and flags load unchanged; `config check` and `config print`.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { babysitterConfig } from '../src/babysitter/config.js';
import { babysitterSpec } from '../src/babysitter/spec.js';
import { defaultText, helpText, resolveSettings, type Setting } from '../src/common/settings.js';
import { allSpecs } from '../scripts/flag-reference.js';
import { describe, it } from './helpers/test.js';
import { spawnCli, tempDir } from './helpers/services.js';

/** A valid value of a setting, as a flag would spell it and as a config file holds it. */
function sample(s: Setting, variant: number): { flag: string; file: unknown; value: unknown } | undefined {
  const lo = s.min ?? 0;
  switch (s.type) {
    case 'string': {
      const v = s.choices ? s.choices[variant % s.choices.length]! : `v${variant}-${s.key}`;
      return { flag: v, file: v, value: v };
    }
    case 'number': {
      const v = Math.min(s.max ?? 1e9, lo + 0.5 + variant);
      return { flag: String(v), file: v, value: v };
    }
    case 'integer':
    case 'port': {
      const v = Math.min(s.max ?? 65_000, Math.max(1, lo) + 1 + variant);
      return { flag: String(v), file: v, value: v };
    }
    case 'bytes': {
      const v = (variant + 2) * 1024;
      return { flag: `${variant + 2}KiB`, file: v, value: v };
    }
    case 'boolean':
      return { flag: 'true', file: true, value: true };
    case 'list':
      return { flag: `a${variant},b`, file: [`a${variant}`, 'b'], value: [`a${variant}`, 'b'] };
    case 'words':
      return { flag: `--x ${variant}`, file: ['--x', String(variant)], value: ['--x', String(variant)] };
    case 'map':
      return { flag: `K=${variant}`, file: { K: String(variant) }, value: { K: String(variant) } };
    case 'table':
      return undefined;
  }
}

/** A file's data with `value` at the dotted `path`. */
function nest(path: string, value: unknown): Record<string, unknown> {
  const parts = path.split('.');
  let out: Record<string, unknown> = { [parts.pop()!]: value };
  while (parts.length) out = { [parts.pop()!]: out };
  return out;
}

const file = (data: Record<string, unknown>) => ({ data, label: 'config file t.toml', path: 't.toml' });
const envOf = (s: Setting) => (s.env === undefined ? [] : typeof s.env === 'string' ? [s.env] : [...s.env]);

describe('settings specs', () => {
  for (const spec of allSpecs()) {
    it(`${spec.service}: flag, environment and every file key set the same value, flag > environment > file > default`, () => {
      for (const s of spec.settings) {
        const a = sample(s, 1);
        const b = sample(s, 2);
        const c = sample(s, 3);
        if (!a || !b || !c) continue;
        const flag = s.type === 'boolean' ? [`--${s.key}`] : [`--${s.key}`, a.flag];
        if (!s.fileOnly) assert.deepEqual(resolveSettings(spec, flag, {}).entries().find((e) => e.key === s.key)?.value, s.secret ? '<redacted>' : a.value, `--${s.key}`);
        for (const name of envOf(s)) {
          const got = resolveSettings(spec, [], { [name]: b.flag });
          assert.equal(got.source(s.key), 'environment', name);
          if (!s.secret) assert.deepEqual(got.entries().find((e) => e.key === s.key)?.value, b.value, name);
        }
        if (spec.configFlag === null) continue;
        for (const key of [s.key, s.key.replace(/-/g, '_'), ...(s.fileKeys ?? [])]) {
          if (s.fileOnly && key === s.key) continue;
          const got = resolveSettings(spec, [], {}, file(nest(key, c.file)));
          assert.equal(got.source(s.key), 'file', `${spec.service} file key ${key}`);
          if (!s.secret) assert.deepEqual(got.entries().find((e) => e.key === s.key)?.value, c.value, `${spec.service} file key ${key}`);
        }
        // precedence, all at once
        if (s.fileOnly || s.type === 'map' || s.type === 'boolean') continue;
        const fileData = file(nest(s.key, c.file));
        const env = Object.fromEntries(envOf(s).map((n) => [n, b.flag]));
        assert.equal(resolveSettings(spec, flag, env, fileData).source(s.key), 'flag', `${s.key}: flag wins`);
        if (envOf(s).length) assert.equal(resolveSettings(spec, [], env, fileData).source(s.key), 'environment', `${s.key}: environment beats the file`);
        assert.equal(resolveSettings(spec, [], {}, fileData).source(s.key), 'file', `${s.key}: the file beats the default`);
        assert.equal(resolveSettings(spec, [], {}).source(s.key), s.default === undefined ? undefined : 'default', `${s.key}: default`);
      }
    });

    it(`${spec.service}: every default and environment variable shows in --help`, () => {
      const help = helpText(spec);
      for (const s of spec.settings) {
        if (s.fileOnly) continue;
        assert.ok(help.includes(`--${s.key}`), s.key);
        const d = defaultText(s);
        if (d !== undefined) assert.ok(help.includes(`default: ${d}`), `${s.key} default ${d}`);
        for (const e of envOf(s)) assert.ok(help.includes(e), `${s.key} env ${e}`);
      }
    });

    it(`${spec.service}: a misspelt key in a file is refused naming the nearest known one`, () => {
      if (spec.configFlag === null) return;
      for (const s of spec.settings) {
        for (const key of [...(s.fileOnly ? [] : [s.key]), ...(s.fileKeys ?? [])]) {
          const last = key.slice(key.lastIndexOf('.') + 1);
          if (last.length < 4) continue;
          // drop one letter in the middle of the last part
          const i = Math.floor(last.length / 2);
          const typo = `${key.slice(0, key.length - last.length)}${last.slice(0, i)}${last.slice(i + 1)}`;
          const v = sample(s, 1)?.file ?? {};
          assert.throws(
            () => resolveSettings(spec, [], {}, file(nest(typo, v))),
            (err: Error) => err.message.includes(`unknown key '${typo}'`) && /did you mean '/.test(err.message),
            `${spec.service}: ${typo}`,
          );
        }
      }
    });
  }

  it('an unknown flag is refused naming the nearest known one', () => {
    assert.throws(() => resolveSettings(babysitterSpec(), ['--heartbeat-intervall', '5'], {}), /Unknown option '--heartbeat-intervall' \(did you mean --heartbeat-interval\?\)/);
  });
});

describe("the original's babysitter files and flags", () => {
  it('load unchanged', async () => {
    const dir = await tempDir();
    const path = join(dir, 'original.toml');
    // the original's schema (spec 3.2): top-level keys, [babysitter], [backend] with env as a sub-table, [metadata]
    await writeFile(
      path,
      [
        'name = "qwen-a"',
        'host = "0.0.0.0"',
        'port = 8100',
        'registry_url = "http://10.0.0.1:18000/"',
        'router_url = "http://10.0.0.1:8000"',
        '[babysitter]',
        'max_restarts = 5',
        'restart_delay = 2',
        'heartbeat_interval = 15',
        '[backend]',
        'type = "vllm"',
        'model = "/models/Qwen3-8B"',
        'args = ["--tensor-parallel-size", "2"]',
        'work_dir = "/opt/serving"',
        '[backend.env]',
        'CUDA_VISIBLE_DEVICES = "0,1"',
        '[metadata]',
        'cache_type = "paged"',
        'static = true',
        '',
      ].join('\n'),
    );
    const spec = babysitterSpec('infini-babysitter');
    const cfg = babysitterConfig(resolveSettings(spec, ['--config-file', path, '--host', '10.0.0.5'], {}));
    assert.equal(cfg.name, 'qwen-a');
    assert.equal(cfg.host, '10.0.0.5', "the original's common use: --host is what others are told");
    assert.equal(cfg.port, 8100);
    assert.equal(cfg.registryUrl, 'http://10.0.0.1:18000');
    assert.equal(cfg.maxRestarts, 5);
    assert.equal(cfg.restartDelayMs, 2000);
    assert.equal(cfg.heartbeatIntervalMs, 15_000);
    assert.deepEqual(cfg.backend, { type: 'vllm', command: undefined, args: ['--tensor-parallel-size', '2'], workDir: '/opt/serving', env: { CUDA_VISIBLE_DEVICES: '0,1' }, model: '/models/Qwen3-8B', modelPath: '/models/Qwen3-8B', launchScript: undefined, configFile: '/models/Qwen3-8B', models: undefined });
    assert.deepEqual(cfg.metadata, { cache_type: 'paged', static: true });
    // the original's flags (spec 3.1), the unused ones included
    const flags = babysitterConfig(
      resolveSettings(spec, ['--name', 'b', '--host', 'localhost', '--port', '8200', '--service-type', 'InfiniLM-Rust', '--path', 'svc.toml', '--work-dir', '/w', '--registry-url', 'http://r:1', '--router-url', 'http://x', '--max-restarts', '3', '--restart-delay', '1', '--heartbeat-interval', '10', '--dev', '0', '--ndev', '1', '--max-batch', '4', '--env', 'A=1 B=2'], {}),
    );
    assert.equal(flags.backend.type, 'infinilm-rust');
    assert.equal(flags.backend.configFile, 'svc.toml');
    assert.equal(flags.host, 'localhost');
    assert.deepEqual(flags.backend.env, { A: '1', B: '2' });
    assert.equal(babysitterConfig(resolveSettings(spec, ['--port', '8300', '--service-type', 'mock', '--args', 'm1,m2'], {})).backend.models!.join(), 'm1,m2');
  });
});

describe('infini-svc config', () => {
  it('check: a good cluster file, a service file, and typos found with their place', async () => {
    const dir = await tempDir();
    const cluster = join(dir, 'cluster.toml');
    await writeFile(cluster, '[registry]\nport = 18000\n[router]\nrouter-port = 8000\n[[babysitter]]\nname = "a"\nport = 8100\n[babysitter.backend]\ntype = "mock"\nmodels = ["m"]\n');
    const ok = spawnCli(['config', 'check', cluster]);
    assert.equal((await ok.exited).code, 0);
    assert.match(ok.stdout, /cluster\.toml: ok \(cluster file: registry, router, 1 babysitter\)/);
    await writeFile(cluster, '[[babysitter]]\nname = "a"\nport = 8100\n[babysitter.babysitter]\nstop_grase = 3\n[babysitter.backend]\ntype = "mock"\nmodels = ["m"]\n');
    const typo = spawnCli(['config', 'check', cluster]);
    assert.equal((await typo.exited).code, 2);
    assert.match(typo.stderrText, /unknown key 'babysitter\[0\]\.babysitter\.stop_grase' \(did you mean 'babysitter\[0\]\.babysitter\.stop_grace'\?\)/);
    await writeFile(cluster, '[[babysitter]]\nname = "a"\nport = 8100\n[babysitter.backend]\ntype = "vllm"\n');
    const missing = spawnCli(['config', 'check', cluster]);
    assert.equal((await missing.exited).code, 2);
    assert.match(missing.stderrText, /a model is required for backend type 'vllm'/);
    const reg = join(dir, 'registry.toml');
    await writeFile(reg, 'port = 18000\nheartbeat_timeout = 30\n');
    const svc = spawnCli(['config', 'check', reg]);
    assert.equal((await svc.exited).code, 0);
    assert.match(svc.stdout, /registry\.toml: ok \(registry config file\)/);
    await writeFile(reg, 'port = 18000\nheartbeat_timeout = "soon"\n');
    const bad = spawnCli(['config', 'check', reg, '--service', 'registry']);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderrText, /key 'heartbeat_timeout': expected a number from 0\.01 to 31536000, got 'soon'/);
    await writeFile(reg, 'port = 18000\n[extra\n');
    const syntax = spawnCli(['config', 'check', reg]);
    assert.equal((await syntax.exited).code, 2);
    assert.match(syntax.stderrText, /invalid TOML at line 2, column \d+/);
  });

  it('print: each value with where it came from, secrets redacted', async () => {
    const dir = await tempDir();
    const cfg = join(dir, 'router.toml');
    await writeFile(cfg, 'health-interval = 7\nregistry-token = "s3cret"\n');
    const p = spawnCli(['config', 'print', '--service', 'router', '--config', cfg, '--router-port', '9100', '--json'], { env: { PROXY_TIMEOUT_SECONDS: '60' } });
    assert.equal((await p.exited).code, 0, p.stderrText);
    const out = JSON.parse(p.stdout).router;
    assert.deepEqual(out['router-port'], { value: 9100, source: 'flag' });
    assert.deepEqual(out['proxy-timeout'], { value: 60, source: 'environment' });
    assert.deepEqual(out['health-interval'], { value: 7, source: 'file' });
    assert.deepEqual(out['max-body'], { value: 32 * 1024 * 1024, source: 'default' });
    assert.deepEqual(out['registry-token'], { value: '<redacted>', source: 'file' });
    assert.ok(!p.stdout.includes('s3cret'));
  });
});
