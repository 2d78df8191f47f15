// Who may read the data: as etcd, the data directory is 0700 and the files in
// it 0600. A reader of the SQLite file could read every key and value, and
// the auth data (password hashes, token hashes), so no one but the server's
// own user gets to open it.
//   - The data directory is created 0700; an existing one that others can
//     read or enter is set to 0700, with a warning (etcd warns only, but keeps
//     its files in 0700 subdirectories).
//   - The SQLite file is created 0600 before SQLite opens it (SQLite gives the
//     -wal and -shm files the database file's mode); an existing file, -wal or
//     -shm that others can read is set to 0600, with a warning.
import * as fs from 'node:fs';

const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;
const GROUP_OTHER = 0o077;

function modeText(mode: number, dir: boolean): string {
  const bits = 'rwxrwxrwx';
  let out = dir ? 'd' : '-';
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : '-';
  return out;
}

/** Creates the data directory 0700, or makes an existing one 0700. */
export function privateDataDir(dir: string, warn: (msg: string) => void): void {
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    return;
  }
  const mode = fs.statSync(dir).mode & 0o777;
  if ((mode & GROUP_OTHER) === 0) return;
  fs.chmodSync(dir, PRIVATE_DIR);
  warn(`data directory "${dir}" was ${modeText(mode, true)}: set to ${modeText(PRIVATE_DIR, true)} so that other users cannot read the data`);
}

/** Creates the SQLite file 0600 if it is new; makes it and its -wal and -shm files 0600 if others can read them. */
export function privateSqliteFiles(file: string, warn: (msg: string) => void): void {
  fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_RDWR, PRIVATE_FILE));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    let mode: number;
    try {
      mode = fs.statSync(f).mode & 0o777;
    } catch {
      continue;
    }
    if ((mode & GROUP_OTHER) === 0) continue;
    fs.chmodSync(f, PRIVATE_FILE);
    warn(`"${f}" was ${modeText(mode, false)}: set to ${modeText(PRIVATE_FILE, false)} so that other users cannot read the data`);
  }
}
