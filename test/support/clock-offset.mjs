// Test preload (`node --import <this file>`): moves this process's wall clock by CLOCK_OFFSET_MS
// milliseconds (negative: behind), as on a host whose clock is wrong. Plain JavaScript so it loads
// before any TypeScript loader. Test infrastructure only.
const offsetMs = Number(process.env.CLOCK_OFFSET_MS ?? 0);
if (!Number.isFinite(offsetMs))
  throw new Error(`CLOCK_OFFSET_MS must be a number, got ${process.env.CLOCK_OFFSET_MS}`);
if (offsetMs !== 0) {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
}
