import { randomBytes } from 'node:crypto';
import type { LogItem } from '../storage/contract/types.js';
import {
  type PendingItemVersion,
  type PendingValueVersion,
  planAnchorVersions,
} from '../sync/clock/anchor-versions.js';
import type { ClockAnchor } from '../sync/clock/clock-anchor.js';
import type { HybridLogicalClock } from '../sync/clock/hlc.js';
import type { Outbox, PendingItem, PendingWrite, VersionChange } from '../sync/outbox/outbox.js';
import type { DeadLetter } from '../sync/types.js';
import { type Entry, entryFromOutbox, logBytes, serializedEntry } from './entry.js';
import { BackpressureError, ClosedError } from './errors.js';
import type { MemoryTier } from './memory-tier.js';
import { outboxRowsFromMemory } from './outbox-rows.js';

const RESOLVED: Promise<void> = Promise.resolve();

/** What the write pipeline tells the rest of the cache about a write memory took. */
export interface WriteListener {
  /** A local write to `key` at `version` is now in memory (a store read in flight may be older). */
  written(key: string, version: number): void;
  /** The key has something to flush. */
  schedule(key: string): void;
  /** True while a write of `key` is on its way to the store. */
  isInFlight(key: string): boolean;
  /** A value replaced an unflushed one that will never be sent. */
  coalesced(): void;
  /** A new outbox file was written in place of a lost one, with `writes` pending writes from memory. */
  outboxHealed(writes: number): void;
}

/** A write the lost outbox file refused on its way in: recorded by the heal, then acknowledged. */
interface ParkedWrite {
  row: PendingWrite | PendingItem;
  bytes: number;
  commit: () => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface WritePipelineOptions {
  tier: MemoryTier;
  outbox: Outbox;
  clock: HybridLogicalClock;
  anchor: ClockAnchor;
  listener: WriteListener;
  maxPendingBytes: number;
}

/**
 * The one way a write (value, delete or appended item) enters the cache: mint a version, record it
 * in the outbox, then put it in memory, so a write the outbox refused leaves memory untouched. It
 * also runs the anchoring step, which must see every write minted before it.
 */
export class WritePipeline {
  readonly #tier: MemoryTier;
  readonly #outbox: Outbox;
  readonly #clock: HybridLogicalClock;
  readonly #anchor: ClockAnchor;
  readonly #listener: WriteListener;
  readonly #maxPendingBytes: number;
  /** Makes this instance's item ids unique across processes (an item's version is unique only within one). */
  readonly #instanceId = randomBytes(6).toString('base64url');
  /** Bytes of writes on their way into the outbox, counted against the backlog before memory holds them. */
  #recordingBytes = 0;
  #recording = 0;
  #onRecorded: Array<() => void> = [];
  /**
   * Set while a step runs (anchoring the clock, healing the outbox): writes that arrive meanwhile
   * wait for it, then mint their versions. Steps run one after another.
   */
  #holding: Promise<void> | undefined;
  /** Writes the lost outbox file refused on their way in, in order: the heal records them. */
  #parked: ParkedWrite[] = [];
  /** The heal under way, shared by everything that asks for one. */
  #healing: Promise<void> | undefined;
  /** Why the last heal failed, until one succeeds: writes are refused meanwhile rather than held. */
  #healFailure: unknown;
  #closed = false;
  /** Versions an outbox of 0.1 reserved, written into its rows by the anchoring step. */
  #reservedRows: VersionChange[] = [];
  /** Dead letters re-queued before the anchor: sent once already, so they keep their versions. */
  readonly #requeued = new Set<number>();

  constructor(options: WritePipelineOptions) {
    this.#tier = options.tier;
    this.#outbox = options.outbox;
    this.#clock = options.clock;
    this.#anchor = options.anchor;
    this.#listener = options.listener;
    this.#maxPendingBytes = options.maxPendingBytes;
  }

  /** A value (`json`), or a delete (`json` null). `log` [] starts the key's log empty. */
  writeValue(
    key: string,
    json: string | null,
    expiresAt: number | null,
    bytes: number,
    log?: LogItem[],
  ): Promise<void> {
    if (this.#holding) return this.#afterHolding(() => this.writeValue(key, json, expiresAt, bytes, log));
    this.#assertRoomFor(bytes - this.#tier.pendingBytesOf(key));
    const entry = serializedEntry(this.#clock.next(), json, expiresAt, bytes, log);
    const now = Date.now();
    const row: PendingWrite = {
      key,
      version: entry.version,
      json: entry.json ?? null,
      expiresAt,
      queuedAt: now,
      unanchored: this.#anchor.isUnanchored(entry.version),
    };
    return this.#record(row, entry.bytes, () => this.commitValue(key, entry, now));
  }

  /** An item appended to the key's log, which gives the key `expiresAt` unless it already lives longer. */
  appendItem(key: string, json: string, expiresAt: number | null): Promise<void> {
    if (this.#holding) return this.#afterHolding(() => this.appendItem(key, json, expiresAt));
    const version = this.#clock.next();
    const item: LogItem = { id: `${version.toString(36)}.${this.#instanceId}`, version, json };
    const bytes = logBytes([item]);
    this.#assertRoomFor(bytes);
    const now = Date.now();
    const row: PendingItem = {
      key,
      item,
      expiresAt,
      queuedAt: now,
      unanchored: this.#anchor.isUnanchored(version),
    };
    return this.#record(row, bytes, () => this.commitItem(key, item, expiresAt, now));
  }

  /** Puts a value write in memory and schedules its flush (also for replayed and re-queued writes). */
  commitValue(key: string, entry: Entry, now: number): void {
    const itemsBefore = this.#tier.pendingLogs.get(key)?.items;
    const { replaced, accepted } = this.#tier.putDirty(key, entry, now);
    if (!accepted) return;
    // Dropping items replaces the key's pending array: the same array means none went.
    if (itemsBefore && this.#tier.pendingLogs.get(key)?.items !== itemsBefore)
      this.#forgetDroppedItems(key, itemsBefore);
    this.#listener.written(key, entry.version);
    if (replaced && !this.#listener.isInFlight(key)) this.#listener.coalesced();
    this.#listener.schedule(key);
  }

  /** Puts an appended item in memory and schedules its flush, unless a newer delete already took it. */
  commitItem(key: string, item: LogItem, expiresAt: number | null, now: number): void {
    const dirty = this.#tier.dirty.get(key);
    if (dirty?.deleted && dirty.version > item.version) return;
    this.#tier.appendItem(key, item, expiresAt, logBytes([item]), now);
    this.#listener.written(key, item.version);
    this.#listener.schedule(key);
  }

  /** A dead letter goes back to pending with its original version (it reached the store once: it is anchored). */
  requeue(letter: DeadLetter, now: number): void {
    if (!this.#anchor.anchored) this.#requeued.add(letter.version);
    if (letter.itemId === undefined) this.commitValue(letter.key, entryFromOutbox(letter.key, letter), now);
    else {
      const item = { id: letter.itemId, version: letter.version, json: letter.json ?? 'null' };
      this.commitItem(letter.key, item, letter.expiresAt, now);
    }
  }

  /**
   * A delete, or a value over one, ended the key's unflushed items in memory: their outbox rows go
   * too, or a restart would replay and send items nothing reads any more.
   */
  #forgetDroppedItems(key: string, itemsBefore: readonly LogItem[]): void {
    const remaining = new Set(this.#tier.pendingLogs.get(key)?.items);
    const dropped = itemsBefore.filter((item) => !remaining.has(item));
    if (dropped.length > 0) this.#outbox.acknowledge([{ key, version: 0, items: dropped }]);
  }

  /** A row an outbox of 0.1 left unanchored with a version reserved for it: the next anchoring step records it. */
  reservedRow(change: VersionChange): void {
    this.#reservedRows.push(change);
  }

  /**
   * The anchoring step, when the store's mark arrives: every write minted before it gets a new
   * version above the mark, in the old order, in one outbox transaction and in memory within one
   * turn (none when all are above it already: their rows are just marked anchored). Writes that
   * arrive meanwhile wait, so none is minted between the mark and the new versions.
   */
  anchorAt(mark: number): Promise<void> {
    return this.#keepParsed(() => this.#anchorStep(mark));
  }

  #anchorStep(mark: number): void {
    this.#clock.observe(mark);
    const { values, items } = this.#pendingVersions();
    const isUnanchored = (version: number) =>
      this.#anchor.isUnanchored(version) && !this.#requeued.has(version);
    const changes = planAnchorVersions(values, items.values(), isUnanchored, mark, () => this.#clock.next());
    const recorded = this.#reservedRows.length > 0 ? [...this.#reservedRows, ...changes] : changes;
    // Every write minted so far, re-versioned or not, is at or below the clock's last version.
    this.#outbox.anchor(recorded, this.#clock.last);
    this.#reservedRows = [];
    this.#requeued.clear();
    for (const change of changes) {
      if (change.itemId === undefined)
        this.#tier.changeVersion(change.key, change.from, change.to, change.logFloor);
      else (items.get(change.itemId) as PendingItemVersion).item.version = change.to;
      this.#listener.written(change.key, change.to);
    }
    this.#anchor.anchoredNow();
  }

  /**
   * The heal (SPEC invariant 14), when the outbox file was found deleted or replaced: once the
   * writes on their way into it have settled, a new file is written with every write memory holds
   * unflushed, then the writes the lost file refused on their way in, which are acknowledged only
   * then. Writes arriving meanwhile wait and follow in order. Never rejects: when the new file
   * cannot be written, writes are refused (as the outbox says) until a later call succeeds.
   */
  healOutbox(): Promise<void> {
    this.#healing ??= this.#keepParsed(() => this.#healStep())
      .catch((error: unknown) => {
        this.#healFailure = error;
        this.#settleParked(error);
      })
      .finally(() => {
        this.#healing = undefined;
      });
    return this.#healing;
  }

  async #healStep(): Promise<void> {
    const reopen = this.#outbox.reopen?.bind(this.#outbox);
    if (!reopen || !this.#outbox.lost) return this.#retryParked();
    let parked: ParkedWrite[] = [];
    let writes = 0;
    try {
      await reopen(() => {
        parked = this.#parked.splice(0);
        const isUnanchored = (version: number) =>
          this.#anchor.isUnanchored(version) && !this.#requeued.has(version);
        const rows = outboxRowsFromMemory(
          this.#tier,
          isUnanchored,
          parked.map((p) => p.row),
          this.#clock.last,
        );
        writes = rows.values.length + rows.items.length + rows.appended.length;
        return rows;
      });
    } catch (error) {
      this.#healFailure = error;
      this.#parked.unshift(...parked);
      return this.#settleParked(error);
    }
    this.#healFailure = undefined;
    for (const p of parked) {
      p.commit();
      this.#recordingBytes -= p.bytes;
      p.resolve();
    }
    this.#listener.outboxHealed(writes);
  }

  /** Refuses the parked writes: no heal could record them. */
  #settleParked(error: unknown): void {
    for (const p of this.#parked.splice(0)) {
      this.#recordingBytes -= p.bytes;
      p.reject(error);
    }
  }

  /** The outbox takes writes again without this heal: the parked writes are recorded as any other. */
  #retryParked(): void {
    for (const p of this.#parked.splice(0)) {
      this.#recordingBytes -= p.bytes;
      this.#record(p.row, p.bytes, p.commit).then(p.resolve, p.reject);
    }
  }

  /** Stops taking writes and resolves once every write already accepted is in the outbox and memory. */
  async close(): Promise<void> {
    this.#closed = true;
    // A file lost just before close: the heal writes what memory holds, so it outlives the process.
    if (this.#outbox.lost && this.#healFailure === undefined) void this.healOutbox();
    while (this.#holding) await this.#holding;
    await this.#recorded();
  }

  /** Runs `step` once the steps before it are done and every write on its way into the outbox is in, holding new writes until it is done. */
  async #keepParsed(step: () => void | Promise<void>): Promise<void> {
    const before = this.#holding;
    let release = (): void => {};
    const holding = new Promise<void>((resolve) => (release = resolve));
    this.#holding = holding;
    try {
      if (before) await before;
      await this.#recorded();
      await step();
    } finally {
      if (this.#holding === holding) this.#holding = undefined;
      release();
    }
  }

  /** Unflushed bytes plus those of writes still on their way into the outbox. */
  get backlogBytes(): number {
    return this.#tier.pendingBytes + this.#recordingBytes;
  }

  #afterHolding(write: () => Promise<void>): Promise<void> {
    return (this.#holding as Promise<void>).then(() => {
      if (this.#closed) throw new ClosedError();
      return write();
    });
  }

  /** Outbox first, memory second. */
  #record(row: PendingWrite | PendingItem, bytes: number, commit: () => void): Promise<void> {
    if (!this.#outbox.durable) {
      commit();
      return RESOLVED;
    }
    this.#recordingBytes += bytes;
    this.#recording++;
    return this.#outbox.append(row).then(
      () => {
        commit();
        this.#doneRecording(bytes);
      },
      (error: unknown) => {
        if (this.#outbox.lost && this.#healFailure === undefined && this.#outbox.reopen) {
          // The file was lost under this write: the heal records it in the new file instead.
          const parked = new Promise<void>((resolve, reject) =>
            this.#parked.push({ row, bytes, commit, resolve, reject }),
          );
          this.#doneRecording(0);
          void this.healOutbox();
          return parked;
        }
        this.#doneRecording(bytes);
        throw error;
      },
    );
  }

  #doneRecording(bytes: number): void {
    this.#recordingBytes -= bytes;
    if (--this.#recording > 0 || this.#onRecorded.length === 0) return;
    const waiting = this.#onRecorded;
    this.#onRecorded = [];
    for (const resolve of waiting) resolve();
  }

  #recorded(): Promise<void> {
    if (this.#recording === 0) return RESOLVED;
    return new Promise((resolve) => this.#onRecorded.push(resolve));
  }

  #pendingVersions(): { values: PendingValueVersion[]; items: Map<string, PendingItemVersion> } {
    const values: PendingValueVersion[] = [];
    for (const [key, entry] of this.#tier.dirty) {
      values.push({ key, version: entry.version, logFloor: entry.logFloor });
    }
    const items = new Map<string, PendingItemVersion>();
    for (const [key, log] of this.#tier.pendingLogs) {
      for (const item of log.items) items.set(item.id, { key, item });
    }
    return { values, items };
  }

  /** Throws `BackpressureError` when `delta` more unflushed bytes would overflow `maxPendingBytes`. */
  #assertRoomFor(delta: number): void {
    const backlog = this.backlogBytes;
    if (delta > 0 && backlog + delta > this.#maxPendingBytes) {
      throw new BackpressureError(
        `the backlog of unflushed writes is full (${backlog} of ${this.#maxPendingBytes} bytes); retry once the store catches up`,
        backlog,
        this.#maxPendingBytes,
      );
    }
  }
}
