#!/usr/bin/env node
import { main } from '../src/babysitter/cli.js';

void main(process.argv.slice(2), 'infini-babysitter');
