// TiDB cannot run here (no Docker engine). What can be checked without it:
// the compose file is valid (Debian's docker-compose), it runs PD, TiKV, TiDB
// and the adapter built from this repository's Dockerfile against TiDB, the
// Dockerfile copies files that exist, and the TiDB dialect keeps to TiDB's
// grammar and limits.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseMysqlUrl } from '../drivers/registry';
import { mysqlDialect, tidbDialect } from '../drivers/mysql/mysql-dialect';

const ROOT = path.resolve(__dirname, '..', '..');

describe('TiDB support', () => {
  it('docker-compose.tidb.yml is valid and wires the adapter to TiDB', () => {
    const file = path.join(ROOT, 'docker-compose.tidb.yml');
    // throws, and fails the test, when docker-compose rejects the file
    const config = execFileSync('docker-compose', ['-f', file, 'config'], { cwd: ROOT, encoding: 'utf8' });
    const services = execFileSync('docker-compose', ['-f', file, 'config', '--services'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').sort();
    assert.deepEqual(services, ['etcd-adapter', 'pd', 'tidb', 'tidb-init', 'tikv']);
    const backend = /--backend=(tidb:\/\/\S+)/.exec(config)?.[1];
    assert.ok(backend, 'the adapter is given a tidb:// backend');
    const target = parseMysqlUrl(backend!, true);
    assert.deepEqual([target.host, target.port, target.database, target.tidb], ['tidb', 4000, 'etcd', true]);
    assert.match(config, /CREATE DATABASE IF NOT EXISTS etcd/, 'the database the adapter uses is created');
    assert.match(config, /context: \S*\n/, 'the adapter is built from this repository');
    assert.match(config, /127\.0\.0\.1:2379:2379|published: 2379/, 'the etcd port is published');
  });

  it('the Dockerfile copies files that exist and starts bin/etcd-adapter', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1].split(/\s+/)) assert.ok(fs.existsSync(path.join(ROOT, src)), `COPY source ${src} exists`);
    }
    assert.match(dockerfile, /ENTRYPOINT \["node", "bin\/etcd-adapter"\]/);
  });

  it('the TiDB dialect: pessimistic writers, one START TRANSACTION characteristic, keys within index limits', () => {
    assert.match(tidbDialect.startWrite, /BEGIN PESSIMISTIC/);
    assert.match(tidbDialect.beginWrite, /FOR UPDATE/);
    assert.equal(tidbDialect.startSnapshot, 'START TRANSACTION WITH CONSISTENT SNAPSHOT');
    assert.doesNotMatch(tidbDialect.migrations.flat().join('\n'), /ENGINE=|AUTO_INCREMENT/);
    assert.ok(tidbDialect.maxKeyBytes + 8 + 4 <= 3072, 'the (key, revision, sub) index fits 3072 bytes');
    assert.match(mysqlDialect.startSnapshot, /READ ONLY/);
  });
});
