// Atomic file and directory writes: a crash never leaves a half-written file that a later
// stage would read. Write to a temp name in the same directory, fsync, then rename.
import { promises as fs, openSync, writeSync, fsyncSync, closeSync, renameSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Write a whole file atomically (temp file + fsync + rename). */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** Synchronous variant for code paths that cannot await (exit handlers, small metadata). */
export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, target);
}

/**
 * Build a directory atomically: `fill` writes into a temp sibling directory, which is then
 * renamed into place. An existing target is replaced only after the new one is complete.
 */
export async function writeDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(target);
  await fs.mkdir(parent, { recursive: true });
  const tmp = tempName(target);
  await fs.mkdir(tmp);
  try {
    await fill(tmp);
    const old = `${tmp}.old`;
    let hadOld = false;
    try {
      await fs.rename(target, old);
      hadOld = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await fs.rename(tmp, target);
    if (hadOld) await fs.rm(old, { recursive: true, force: true });
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Remove temp files/dirs left behind by a crashed atomic write in `dir` (names start with '.' and end with '.tmp'). */
export async function cleanStaleTemps(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    entries
      .filter((name) => name.startsWith('.') && (name.endsWith('.tmp') || name.endsWith('.tmp.old')))
      .map((name) => fs.rm(path.join(dir, name), { recursive: true, force: true })),
  );
}
