#!/usr/bin/env -S node --max-semi-space-size=8 --no-allocation-site-pretenuring
// V8 flags as in src/common/node-flags.ts; `env -S` passes them where the shim is executed directly.
import { main } from '../src/router/cli.js';

void main(process.argv.slice(2), 'infini-router');
