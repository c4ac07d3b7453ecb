import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats, DoorbellState, FollowerState, Health } from '../cache/types.js';

const HEALTH_STATES: readonly Health[] = ['healthy', 'degraded', 'offline'];
const FEED_STATES: readonly FollowerState[] = ['off', 'unsupported', 'starting', 'following', 'behind'];
const DOORBELL_STATES: readonly DoorbellState[] = ['off', 'connecting', 'listening', 'broken'];

/** `CacheStats` fields that are yes/no states, each exported as a 0/1 gauge. */
type BooleanStat = 'outboxWritable' | 'clockAnchored';

type StatsMetric =
  | { type: 'counter'; name: string; help: string }
  | { type: 'gauge'; name: string; help: string; scale?: number };

/** One Prometheus metric per `CacheStats` field; the mapped type makes a new field a compile error until it is exported. */
const STATS_METRICS: {
  [K in Exclude<keyof CacheStats, 'health' | 'feedState' | 'doorbell' | BooleanStat>]: StatsMetric;
} = {
  hits: { type: 'counter', name: 'hybrid_cache_hits_total', help: 'Reads answered from memory.' },
  misses: { type: 'counter', name: 'hybrid_cache_misses_total', help: 'Reads that missed memory.' },
  loads: { type: 'counter', name: 'hybrid_cache_loads_total', help: 'Keys read from the store.' },
  flushedWrites: {
    type: 'counter',
    name: 'hybrid_cache_flushed_writes_total',
    help: 'Writes applied to the store.',
  },
  coalescedWrites: {
    type: 'counter',
    name: 'hybrid_cache_coalesced_writes_total',
    help: 'Writes replaced by a newer write to the same key before being flushed.',
  },
  superseded: {
    type: 'counter',
    name: 'hybrid_cache_superseded_writes_total',
    help: 'Local writes that lost to a newer write from another instance.',
  },
  retries: {
    type: 'counter',
    name: 'hybrid_cache_retries_total',
    help: 'Store calls retried after a failure.',
  },
  clockReadingsDistrusted: {
    type: 'counter',
    name: 'hybrid_cache_clock_readings_distrusted_total',
    help: 'Wall-clock readings not trusted: implausibly far ahead (see maxClockAheadMs).',
  },
  clockAheadMs: {
    type: 'gauge',
    name: 'hybrid_cache_clock_ahead_seconds',
    help: 'How far the wall clock runs ahead of the time versions use while it is not trusted; 0 when trusted.',
    scale: 1 / 1000,
  },
  outboxHeals: {
    type: 'counter',
    name: 'hybrid_cache_outbox_heals_total',
    help: 'Times the outbox file was found deleted or replaced and a new one was written at its path from memory.',
  },
  evictions: {
    type: 'counter',
    name: 'hybrid_cache_evictions_total',
    help: 'Clean entries evicted from memory.',
  },
  deadLetters: {
    type: 'gauge',
    name: 'hybrid_cache_dead_letters',
    help: 'Writes the store refused permanently, kept in the dead-letter table.',
  },
  pending: {
    type: 'gauge',
    name: 'hybrid_cache_pending_writes',
    help: 'Writes not yet in the store (outbox backlog).',
  },
  pendingBytes: {
    type: 'gauge',
    name: 'hybrid_cache_pending_bytes',
    help: 'Bytes of writes not yet in the store.',
  },
  oldestPendingAgeMs: {
    type: 'gauge',
    name: 'hybrid_cache_oldest_pending_age_seconds',
    help: 'Age of the oldest write not yet in the store.',
    scale: 1 / 1000,
  },
  feedChanges: {
    type: 'counter',
    name: 'hybrid_cache_feed_changes_total',
    help: "Changes read from the store's change feed (this instance's own included).",
  },
  feedDrops: {
    type: 'counter',
    name: 'hybrid_cache_feed_dropped_entries_total',
    help: 'Clean entries dropped because the change feed announced a newer change, or could vouch for nothing.',
  },
  feedResets: {
    type: 'counter',
    name: 'hybrid_cache_feed_resets_total',
    help: 'Times the change feed could vouch for nothing cached (store replaced or restored, or changes pruned unread).',
  },
  feedLagMs: {
    type: 'gauge',
    name: 'hybrid_cache_feed_lag_seconds',
    help: 'Time since the last read of the change feed to its end began.',
    scale: 1 / 1000,
  },
  revalidations: {
    type: 'counter',
    name: 'hybrid_cache_revalidated_reads_total',
    help: 'Reads of clean entries made while the change feed vouched for nothing, which read the feed first.',
  },
  possiblyStaleReads: {
    type: 'counter',
    name: 'hybrid_cache_possibly_stale_reads_total',
    help: 'Reads answered from memory while the change feed vouched for nothing and the store could not be reached.',
  },
  entries: { type: 'gauge', name: 'hybrid_cache_entries', help: 'Clean entries held in memory.' },
  bytes: { type: 'gauge', name: 'hybrid_cache_bytes', help: 'Bytes of clean entries held in memory.' },
};

export interface DaemonMetrics {
  registry: Registry;
  /** `onResponse` hook recording the request duration by route, method and status. */
  observeRequest(request: FastifyRequest, reply: FastifyReply): void;
  /** Counts a connection closed unanswered because the connection limit was reached. */
  connectionDropped(): void;
}

/** A registry reading `stats()` at scrape time, plus HTTP request and process metrics. */
export function createMetrics(stats: () => CacheStats): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  for (const [field, metric] of Object.entries(STATS_METRICS) as [
    keyof typeof STATS_METRICS,
    StatsMetric,
  ][]) {
    if (metric.type === 'counter') {
      new Counter({
        name: metric.name,
        help: metric.help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(stats()[field]);
        },
      });
    } else {
      const scale = metric.scale ?? 1;
      new Gauge({
        name: metric.name,
        help: metric.help,
        registers: [registry],
        collect() {
          this.set(stats()[field] * scale);
        },
      });
    }
  }
  new Gauge({
    name: 'hybrid_cache_store_health',
    help: 'Health of the remote store as the cache sees it: 1 for the current state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const current = stats().health;
      for (const state of HEALTH_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'hybrid_cache_feed_state',
    help: "Where following the store's change feed stands: 1 for the current state.",
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const current = stats().feedState;
      for (const state of FEED_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'hybrid_cache_doorbell_state',
    help: "Where the store's doorbell (LISTEN/NOTIFY) stands: 1 for the current state; broken means it cannot hear (a transaction-mode pooler, or refused settings: see the logs).",
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const current = stats().doorbell;
      for (const state of DOORBELL_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  const flags: Array<[BooleanStat, string, string]> = [
    [
      'outboxWritable',
      'hybrid_cache_outbox_writable',
      '1 while the local outbox accepts writes, 0 after a failed outbox write or while a lost outbox file could not be written anew.',
    ],
    [
      'clockAnchored',
      'hybrid_cache_clock_anchored',
      "1 once the clock has read the store's version high-water mark since start; nothing is flushed before.",
    ],
  ];
  for (const [field, name, help] of flags) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(stats()[field] ? 1 : 0);
      },
    });
  }

  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests served by the daemon, by route, method and status.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  const dropped = new Counter({
    name: 'http_connections_dropped_total',
    help: 'Connections closed unanswered because DAEMON_MAX_CONNECTIONS connections were open.',
    registers: [registry],
  });

  return {
    registry,
    connectionDropped: () => dropped.inc(),
    observeRequest(request, reply) {
      duration.observe(
        {
          method: request.method,
          route: request.routeOptions.url ?? 'unmatched',
          status_code: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      );
    },
  };
}
