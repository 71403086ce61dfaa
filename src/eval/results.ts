// Results streamed to JSONL as they finish: whole lines appended, one write per task. A crash
// can only tear the last line; open() drops it, so every line kept is a finished result.
import { promises as fs } from 'node:fs';
import path from 'node:path';

export class JsonlStore<T> {
  private readonly records = new Map<string, T>();
  private handle: fs.FileHandle | undefined;
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly keyOf: (record: T) => string,
  ) {}

  /** Opens (creating) `file`, drops a torn last line and indexes the finished records by key. */
  static async open<T>(file: string, keyOf: (record: T) => string): Promise<JsonlStore<T>> {
    const store = new JsonlStore<T>(file, keyOf);
    await fs.mkdir(path.dirname(file), { recursive: true });
    let text = '';
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const complete = text.lastIndexOf('\n') + 1;
    if (complete < text.length) await fs.truncate(file, Buffer.byteLength(text.slice(0, complete)));
    const lines = text.slice(0, complete).split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let record: T;
      try {
        record = JSON.parse(line) as T;
      } catch (err) {
        throw new Error(`${file}:${i + 1}: not valid JSON (${(err as Error).message}); remove the line or the file to recompute it`);
      }
      store.records.set(keyOf(record), record);
    });
    store.handle = await fs.open(file, 'a');
    return store;
  }

  has(key: string): boolean {
    return this.records.has(key);
  }

  get(key: string): T | undefined {
    return this.records.get(key);
  }

  get size(): number {
    return this.records.size;
  }

  /** Appends the records as whole lines in one write; writes are serialised. */
  append(records: readonly T[]): Promise<void> {
    if (records.length === 0) return this.writing;
    const text = records.map((r) => JSON.stringify(r) + '\n').join('');
    for (const r of records) this.records.set(this.keyOf(r), r);
    this.writing = this.writing.then(async () => {
      await this.handle!.write(text);
    });
    return this.writing;
  }

  async close(): Promise<void> {
    await this.writing.catch(() => undefined);
    await this.handle?.close();
    this.handle = undefined;
  }
}
