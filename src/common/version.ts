import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface PackageInfo {
  root: string;
  version: string;
}

/** Finds this package's package.json walking up from this file (works from src/ under tsx and from dist/). */
function findPackage(): PackageInfo {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'infini-svc') return { root: dir, version: pkg.version ?? '0.0.0' };
    } catch {
      // not here: keep walking up
    }
    dir = dirname(dir);
  }
  return { root: process.cwd(), version: '0.0.0' };
}

const found = findPackage();

export const VERSION = found.version;
/** Folder holding package.json, used to locate the compiled CLI when spawning our own services. */
export const PACKAGE_ROOT = found.root;
