import { SignJWT } from 'jose';

/** The JWT secret the test gateway verifies with (like a Supabase project's JWT secret). */
export const TEST_JWT_SECRET = 'hybrid-cache-test-jwt-secret-at-least-32-chars';

export type SupabaseKeyRole = 'anon' | 'authenticated' | 'service_role' | (string & {});

export interface MintOptions {
  secret?: string;
  /** Seconds from now until `exp`; negative for an already expired key. Default: ten years. */
  expiresInSeconds?: number;
  /** Extra claims. */
  claims?: Record<string, unknown>;
}

/** Mints a legacy-style Supabase API key: an HS256 JWT whose `role` claim selects the database role. */
export async function mintSupabaseKey(role: SupabaseKeyRole, options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: 'supabase-demo', role, ...options.claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (options.expiresInSeconds ?? 10 * 365 * 24 * 3600))
    .sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}

export const anonKey = () => mintSupabaseKey('anon');
export const serviceRoleKey = () => mintSupabaseKey('service_role');
