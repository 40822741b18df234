#!/usr/bin/env node
import { main } from '../src/registry/cli.js';

void main(process.argv.slice(2), 'infini-registry');
