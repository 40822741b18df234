import type { ServiceRecord } from './record.js';

/** A record as saved: the API's fields without heartbeat times (a reload counts as heard from). */
export type SavedRecord = Omit<ServiceRecord, 'lastHeartbeatMs' | 'heardAtMs'>;

/** Fields a `set` change may carry (everything saved but the name). */
const SAVED_FIELDS = ['host', 'port', 'hostname', 'url', 'status', 'timestamp', 'health_status', 'metadata', 'weight'] as const;

/**
 * One commit group's net changes, one line of the journal: `index` is the feed index after the
 * group. `put` carries whole records, `set` only the fields that changed (a probe's health_status
 * costs a few dozen bytes, not the record), `delete` names.
 */
export interface JournalEntry {
  index: number;
  put?: SavedRecord[];
  set?: Array<{ name: string } & Partial<SavedRecord>>;
  delete?: string[];
}

export function savedRecord(rec: ServiceRecord): SavedRecord {
  const { lastHeartbeatMs: _l, heardAtMs: _h, ...saved } = rec;
  return saved;
}

/**
 * The journal entry for committed changes (name -> new record, or null for a deletion) over the
 * records they replace. Unchanged fields keep their objects in an update (`{...old, ...patch}`),
 * so a field is changed when its value is another object or primitive.
 */
export function journalEntry(index: number, changes: Map<string, ServiceRecord | null>, base: Map<string, ServiceRecord>): JournalEntry {
  const entry: JournalEntry = { index };
  for (const [name, rec] of changes) {
    const old = base.get(name);
    if (!rec) {
      if (old) (entry.delete ??= []).push(name);
      continue;
    }
    const fields = old ? changedFields(old, rec) : undefined;
    if (fields) (entry.set ??= []).push({ name, ...fields });
    else (entry.put ??= []).push(savedRecord(rec));
  }
  return entry;
}

/** The changed fields of `rec` over `old`, or undefined when a whole record is simpler (a field went away). */
function changedFields(old: ServiceRecord, rec: ServiceRecord): Partial<SavedRecord> | undefined {
  const fields: Record<string, unknown> = {};
  for (const k of SAVED_FIELDS) {
    if (rec[k] === old[k]) continue;
    if (rec[k] === undefined) return undefined;
    fields[k] = rec[k];
  }
  return fields as Partial<SavedRecord>;
}

export function encodeEntry(entry: JournalEntry): string {
  return `${JSON.stringify(entry)}\n`;
}

/**
 * Splits a journal's text into entries. A line is complete only with its newline (the last byte
 * of each append), so an unterminated tail is a write cut short (kill -9, power loss): it was never
 * acknowledged and is reported as `tornBytes`. A complete line that does not parse is damage, not a
 * crash, and is reported by its line number.
 */
export function parseJournal(text: string): { entries: JournalEntry[]; tornBytes: number; badLine?: number } {
  const entries: JournalEntry[] = [];
  const end = text.lastIndexOf('\n') + 1;
  const tornBytes = Buffer.byteLength(text.slice(end));
  let start = 0;
  for (let line = 1; start < end; line++) {
    const nl = text.indexOf('\n', start);
    const raw = text.slice(start, nl);
    start = nl + 1;
    let entry: JournalEntry;
    try {
      entry = JSON.parse(raw) as JournalEntry;
    } catch {
      return { entries, tornBytes, badLine: line };
    }
    if (typeof entry !== 'object' || entry === null || !Number.isSafeInteger(entry.index)) return { entries, tornBytes, badLine: line };
    entries.push(entry);
  }
  return { entries, tornBytes };
}
