#!/usr/bin/env node
// npm's `prepare`: compile TypeScript into dist/. It runs after `npm ci` here,
// in a git dependency's clone (npm installs its dev dependencies first), and
// when another project installs this one from a folder: npm then links the
// folder without installing anything in it, so this installs its dependencies
// (TypeScript among them) before compiling. A packed tarball already holds
// dist/ and never runs this.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
// The install started below runs `prepare` again; that inner run leaves the build to this one.
if (process.env.ETCD_ADAPTER_PREPARING === '1') process.exit(0);

const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []];
const run = (cmd, args, env) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });

if (!fs.existsSync(path.join(root, 'node_modules', 'typescript', 'package.json'))) {
  process.stderr.write('etcd-adapter: installing its own dependencies to compile it (a folder install)\n');
  const lock = fs.existsSync(path.join(root, 'package-lock.json'));
  run(npm[0], [...npm[1], lock ? 'ci' : 'install', '--include=dev', '--no-audit', '--no-fund'], { ETCD_ADAPTER_PREPARING: '1', npm_config_global: '', npm_config_prefix: '' });
}
run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);
