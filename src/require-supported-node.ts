/**
 * Imported first by every library entry point, for its side effect: on an unsupported Node.js the
 * import throws an Error with one clear message, before any later import can load the SQLite native
 * module (which crashes older Node.js with a segmentation fault instead of throwing).
 */
import { unsupportedNodeMessage } from './node-support.js';

const refusal = unsupportedNodeMessage();
if (refusal) throw new Error(refusal);
