/**
 * `hybrid-cache/supabase`: the Supabase store. A separate entry point so that the package root
 * never loads `@supabase/supabase-js`. Its failures are the root's storage errors
 * (`TransientStorageError`, `PermanentStorageError`, `StorageConfigurationError`).
 */

// First, so an unsupported Node.js is refused before supabase-js or the SQLite native module loads.
import '../require-supported-node.js';

export {
  SupabaseStorage,
  type SupabaseStorageCommonOptions,
  type SupabaseStorageOptions,
  type SupabaseTable,
} from '../storage/supabase/supabase-storage.js';
