#!/usr/bin/env node
/**
 * The daemon's entry point (`hybrid-cache-daemon`, `npm start`). On an unsupported Node.js it prints
 * one line saying which Node.js is needed and exits with code 1. The daemon itself is imported only
 * after that check: a static import would be evaluated before it, and an older Node.js crashes with
 * a segmentation fault as soon as the SQLite native module is opened.
 */
import { unsupportedNodeMessage } from '../node-support.js';

const refusal = unsupportedNodeMessage();
if (refusal) {
  process.stderr.write(`${refusal}\n`);
  process.exitCode = 1;
} else {
  const { startDaemon } = await import('./start.js');
  await startDaemon();
}
