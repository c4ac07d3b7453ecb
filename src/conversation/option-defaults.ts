/** Defaults of `ConversationStore`'s options (the original daemon's); the daemon's environment defaults to these too. */

export const DEFAULT_MAX_TURNS = 50;
export const DEFAULT_TIMEOUT_HOURS = 24;
export const HOUR_MS = 3_600_000;
