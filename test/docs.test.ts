import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { babysitterSpec } from '../src/babysitter/cli.js';
import { buildCommandLine } from '../src/babysitter/command-line.js';
import { babysitterConfig } from '../src/babysitter/config.js';
import { resolveSettings } from '../src/common/settings.js';
import { NODE_FLAGS } from '../src/common/node-flags.js';
import { loadStaticServices } from '../src/router/static-services.js';
import { DEFAULT_CLUSTER, parseCluster } from '../src/up/cluster-file.js';
import { flagReference, withReference } from '../scripts/flag-reference.js';
import { ROOT } from './helpers/services.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const examples = join(ROOT, 'examples');

describe('documentation and examples stay true to the code', () => {
  it('README starts with the two set-up commands', () => {
    const top = readme.split('\n').slice(0, 8).join('\n');
    assert.match(top, /^npm ci && npm start\b/m);
    assert.match(top, /^npm ci && npm test\b/m);
  });

  it('README configuration reference matches the commands\' options (run `npm run docs` to refresh)', () => {
    assert.equal(withReference(readme), readme);
    assert.ok(readme.includes(flagReference()));
  });

  it('every entry point starts node with the same V8 flags', () => {
    for (const file of ['src/cli.ts', 'bin/infini-router.ts', 'bin/infini-registry.ts', 'bin/infini-babysitter.ts']) {
      const shebang = readFileSync(join(ROOT, file), 'utf8').split('\n')[0];
      assert.equal(shebang, `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`, file);
    }
    const entry = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n').find((l) => l.startsWith('ENTRYPOINT'));
    assert.equal(entry, `ENTRYPOINT ${JSON.stringify(['node', ...NODE_FLAGS, '/app/dist/src/cli.js'])}`.replaceAll(',', ', '));
  });

  it('package.json exposes exactly the four binaries', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.deepEqual(Object.keys(pkg.bin).sort(), ['infini-babysitter', 'infini-registry', 'infini-router', 'infini-svc']);
  });

  it('examples/default-cluster.toml is the embedded default', () => {
    assert.equal(readFileSync(join(examples, 'default-cluster.toml'), 'utf8'), DEFAULT_CLUSTER);
    assert.equal(parseCluster(DEFAULT_CLUSTER, '(default)').babysitters.length, 3);
  });

  it('the cluster examples parse', () => {
    for (const file of ['two-hosts/control-plane.toml', 'two-hosts/gpu-host.toml']) {
      const path = join(examples, file);
      const plan = parseCluster(readFileSync(path, 'utf8'), path);
      assert.ok(plan.registry.enabled || plan.babysitters.length > 0, file);
    }
  });

  it('the babysitter examples load and build a command line', () => {
    for (const file of ['vllm.toml', 'sglang.toml', 'llama-cpp.toml', 'embeddings.toml']) {
      const cfg = babysitterConfig(resolveSettings(babysitterSpec('infini-babysitter'), ['--config-file', join(examples, file)], {}));
      assert.ok(buildCommandLine(cfg).program, file);
    }
  });

  it('the static services example loads', () => {
    assert.equal(loadStaticServices(join(examples, 'static-services.json')).length, 2);
  });
});
