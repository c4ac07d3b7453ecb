export { ConfigError } from './config-error.js';
export {
  type Backend,
  type Config,
  type ConfigWarning,
  type Env,
  type LoadedConfig,
  type LogLevel,
  loadConfig,
  MEMORY_BACKEND_WARNING,
  POSTGRES_FALLBACK_WARNING,
  SUPABASE_FALLBACK_WARNING,
} from './load-config.js';
export { isLoopbackHost } from './loopback.js';
export { resolveMaxTurns } from './max-turns.js';
export { VARIABLES, type VariableSpec } from './variables.js';
