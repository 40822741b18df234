#!/usr/bin/env -S node --max-semi-space-size=8 --no-allocation-site-pretenuring
import { main } from '../src/babysitter/cli.js';

void main(process.argv.slice(2), 'infini-babysitter');
