import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { applyLaunchEnvironment, DEFAULT_CLUSTER, parseCluster } from '../src/up/cluster-file.js';
import { formatTable } from '../src/up/cluster.js';
import { tempDir } from './helpers/services.js';

describe('cluster file', () => {
  it('reads the default: registry 18000, router 8000, three mocks with overlapping models', () => {
    const plan = parseCluster(DEFAULT_CLUSTER, '(default)');
    assert.equal(plan.registry.port, 18000);
    assert.equal(plan.router.port, 8000);
    assert.deepEqual(plan.babysitters.map((b) => [b.name, b.port]), [['mock-a', 8100], ['mock-b', 8200], ['mock-c', 8300]]);
  });

  it('refuses unknown keys, bad ports, duplicates and missing files with the key named', async () => {
    const cases: Array<[string, RegExp]> = [
      ['[extra]\n', /key 'extra': unknown section/],
      ['[registry]\nport = "x"\n', /key 'registry.port'/],
      ['[router]\nturbo = 1\n', /key 'router.turbo': unknown option/],
      ['[router]\nenabled = "no"\n', /key 'router.enabled'/],
      ['[[babysitter]]\nname = "a"\n', /key 'babysitter\[0\].port'/],
      ['[[babysitter]]\nport = 8100\n', /key 'babysitter\[0\].backend': required/],
      ['[[babysitter]]\nconfig = "missing.toml"\n', /key 'babysitter\[0\].config': file not found/],
      ['[[babysitter]]\nname = "a"\nport = 1\n[babysitter.backend]\ntype = "mock"\n[[babysitter]]\nname = "a"\nport = 3\n[babysitter.backend]\ntype = "mock"\n', /duplicate babysitter name 'a'/],
      ['[registry\n', /cluster file c\.toml: /],
    ];
    for (const [text, pattern] of cases) assert.throws(() => parseCluster(text, 'c.toml'), pattern, text);
  });
});

describe('launch environment of the original scripts', () => {
  it('applies ports, intervals, host, registry URLs and components', () => {
    const plan = applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), {
      REGISTRY_PORT: '19000',
      ROUTER_PORT: '9000',
      ROUTER_HEALTH_INTERVAL: '7',
      ROUTER_REGISTRY_SYNC_INTERVAL: '3',
      REGISTRY_CLEANUP_INTERVAL: '11',
      BABYSITTER_HOST: '10.0.0.5',
      LAUNCH_COMPONENTS: 'registry,babysitter',
    }, process.cwd());
    assert.equal(plan.registry.port, 19000);
    assert.equal(plan.registry.flags['cleanup-interval'], '11');
    assert.equal(plan.registry.url, 'http://127.0.0.1:19000');
    assert.equal(plan.router.port, 9000);
    assert.equal(plan.router.flags['health-interval'], '7');
    assert.equal(plan.router.enabled, false);
    assert.equal(plan.babysitterFlags.host, '10.0.0.5');
    assert.equal(plan.babysitters.length, 3);
  });

  it('takes babysitters from BABYSITTER_CONFIGS under config/ and only babysitters with LAUNCH_COMPONENTS=babysitter', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'config'));
    await writeFile(join(dir, 'config', 'worker_a.toml'), 'name = "worker-a"\nport = 8100\nregistry_url = "http://10.0.0.1:18000"\n[backend]\ntype = "mock"\nmodels = ["m"]\n');
    const plan = applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), { BABYSITTER_CONFIGS: 'worker_a.toml', LAUNCH_COMPONENTS: 'babysitter', REGISTRY_URL: 'http://10.0.0.1:18000' }, dir);
    assert.equal(plan.registry.enabled, false);
    assert.equal(plan.router.enabled, false);
    assert.deepEqual(plan.babysitters.map((b) => [b.name, b.port, b.hasRegistryUrl]), [['worker-a', 8100, true]]);
    assert.equal(plan.registry.url, 'http://10.0.0.1:18000');
    assert.throws(() => applyLaunchEnvironment(parseCluster('', 'x'), { LAUNCH_COMPONENTS: 'gpu' }, dir), /LAUNCH_COMPONENTS: unknown component 'gpu'/);
    const none = applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), { LAUNCH_COMPONENTS: 'none' }, dir);
    assert.equal(none.registry.enabled || none.router.enabled || none.babysitters.length > 0, false);
  });

  it('formats the summary table in aligned columns', () => {
    const t = formatTable([{ service: 'router', url: 'http://127.0.0.1:8000', models: 'a, b', state: 'ready' }]);
    assert.deepEqual(t.split('\n'), ['SERVICE  URL                    MODELS  STATE', 'router   http://127.0.0.1:8000  a, b    ready']);
  });
});
