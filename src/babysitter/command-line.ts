import { join } from 'node:path';
import { NODE_FLAGS } from '../common/node-flags.js';
import { PACKAGE_ROOT } from '../common/version.js';
import type { BabysitterConfig } from './config.js';

export interface CommandLine {
  program: string;
  args: string[];
  cwd?: string;
}

/**
 * The backend's command line per type. `args` elements are passed as they are (never re-split);
 * only the `command` string is split on whitespace into program and leading arguments, so
 * `conda run -n env python` works. Presets bind the backend to the babysitter's bind address.
 */
export function buildCommandLine(cfg: BabysitterConfig): CommandLine {
  const b = cfg.backend;
  const port = String(cfg.port);
  const host = cfg.bind;
  const cwd = b.workDir;
  switch (b.type) {
    case 'command': {
      const [program, ...lead] = (b.command ?? '').trim().split(/\s+/);
      return { program: program!, args: [...lead, ...b.args], cwd };
    }
    case 'vllm':
      return { program: 'python3', args: ['-m', 'vllm.entrypoints.openai.api_server', '--model', b.model!, '--port', port, '--host', host, ...b.args], cwd };
    case 'sglang':
      return { program: 'python3', args: ['-m', 'sglang.launch_server', '--model-path', b.model!, '--port', port, '--host', host, ...b.args], cwd };
    case 'llama.cpp': {
      const [program, ...lead] = (b.command ?? 'llama-server').trim().split(/\s+/);
      return { program: program!, args: [...lead, '-m', b.model!, '--port', port, '--host', host, ...b.args], cwd };
    }
    case 'infinilm': {
      const script = b.launchScript ?? (cwd ? join(cwd, 'launch_server.py') : 'launch_server.py');
      return { program: 'python3', args: [script, '--port', port, '--host', host, '--model-path', b.modelPath!, ...b.args], cwd };
    }
    case 'infinilm-rust':
      return { program: 'xtask', args: ['service', b.configFile!, '-p', port, ...b.args], cwd };
    case 'mock':
      // This project's own mock, by absolute path so it works from any directory. It is not given
      // --registry-url: the babysitter registers the backend itself (the original's name collision).
      return {
        program: process.execPath,
        args: [...NODE_FLAGS, join(PACKAGE_ROOT, 'dist', 'src', 'cli.js'), 'mock', '--port', port, '--host', host, '--models', b.models!.join(','), '--name', `${cfg.name}-server`, ...b.args],
        cwd,
      };
  }
}
