import { type LogItem, laterExpiry } from '../storage/contract/types.js';

/**
 * How a store will judge the TTL refresh of a key's unflushed items: which of them refresh the
 * value it holds (those appended before the key's unflushed value), and in what runs it judges them.
 */

/** When an unflushed item was appended (epoch ms, this process's clock) and the expiry it asked for. */
export interface ItemAppend {
  at: number;
  expiresAt: number | null;
}

/**
 * How many of `items` (in version order) were appended before the first write of a value's
 * unflushed chain (`firstVersion`): to the value the store holds. The rest were appended to an
 * unflushed value of the chain.
 */
export function itemsBeforeValue(items: readonly LogItem[], firstVersion: number): number {
  const after = items.findIndex((item) => item.version > firstVersion);
  return after === -1 ? items.length : after;
}

/** Consecutive items a store may judge as one append: when the first was appended, their later expiry. */
export interface RefreshRun {
  items: LogItem[];
  appendedAt: number;
  expiresAt: number | null;
}

/**
 * Splits a key's items (in version order) into runs whose one judgement by the store (was the value
 * live when the run's first item was appended? then raise its expiry to the run's latest) equals
 * memory's judgement of each item in turn. That holds while each next item was appended no earlier
 * than the run's first and before the run's items so far would have let the value expire: if the
 * first found the value live, each next one then finds it live too; if not, none does. An item that
 * breaks either (the key expired in between, or the wall clock stepped back) starts a new run.
 * An item whose append time memory does not know is judged with the one before it.
 */
export function refreshRuns(
  items: readonly LogItem[],
  appendOf: (item: LogItem) => ItemAppend | undefined,
): RefreshRun[] {
  const runs: RefreshRun[] = [];
  let run: RefreshRun | undefined;
  for (const item of items) {
    const append = appendOf(item);
    const at = append?.at ?? run?.appendedAt ?? Date.now();
    const expiresAt = append ? append.expiresAt : (run?.expiresAt ?? null);
    const joins = run !== undefined && at >= run.appendedAt && (run.expiresAt === null || at < run.expiresAt);
    if (run && joins) {
      run.items.push(item);
      run.expiresAt = laterExpiry(run.expiresAt, expiresAt);
    } else {
      run = { items: [item], appendedAt: at, expiresAt };
      runs.push(run);
    }
  }
  return runs;
}

/**
 * The expiry a store holding a value at `version` expiring at `expiresAt` gives it once it has
 * taken `runs` (items appended before any newer value): raised by each run newer than the value
 * that found it live when the run's first item was appended.
 */
export function refreshedExpiry(
  version: number,
  expiresAt: number | null,
  runs: readonly RefreshRun[],
): number | null {
  let expiry = expiresAt;
  for (const run of runs) {
    const newest = run.items[run.items.length - 1] as LogItem;
    if (newest.version > version && (expiry === null || expiry > run.appendedAt))
      expiry = laterExpiry(expiry, run.expiresAt);
  }
  return expiry;
}
