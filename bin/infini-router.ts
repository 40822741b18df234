#!/usr/bin/env node
import { main } from '../src/router/cli.js';

void main(process.argv.slice(2), 'infini-router');
