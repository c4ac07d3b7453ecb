import { errors as jose, jwtVerify } from 'jose';
import { errors } from './errors.js';

export interface AuthResult {
  /** The database role the request runs as (`SET LOCAL ROLE`). */
  role: string;
  /** The JWT claims, as PostgREST puts them in `request.jwt.claims`. */
  claims: Record<string, unknown>;
}

/**
 * PostgREST's authentication: only `Authorization: Bearer <jwt>` counts. No header means the anon
 * role; a token must be HS256-signed with the secret and unexpired (30 s clock skew allowed); its
 * `role` claim (default: the anon role) becomes the request's role.
 */
export async function authenticate(
  authorization: string | undefined,
  secret: Uint8Array,
  anonRole: string,
): Promise<AuthResult> {
  if (authorization === undefined) return { role: anonRole, claims: { role: anonRole } };
  const match = /^bearer\s*(.*)$/i.exec(authorization.trim());
  if (!match) return { role: anonRole, claims: { role: anonRole } };
  const token = (match[1] ?? '').trim();
  if (token === '') throw errors.jwtDecode('Empty JWT is sent in Authorization header');
  const parts = token.split('.').length;
  if (parts !== 3) throw errors.jwtDecode(`Expected 3 parts in JWT; got ${parts}`);
  let claims: Record<string, unknown>;
  try {
    ({ payload: claims } = await jwtVerify(token, secret, { algorithms: ['HS256'], clockTolerance: 30 }));
  } catch (error) {
    throw jwtError(error);
  }
  const role = typeof claims.role === 'string' ? claims.role : anonRole;
  return { role, claims };
}

function jwtError(error: unknown) {
  if (error instanceof jose.JWTExpired) return errors.jwtClaims('JWT expired');
  if (error instanceof jose.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return errors.jwtClaims('JWT not yet valid');
    if (error.claim === 'exp') return errors.jwtClaims("The JWT 'exp' claim must be a number");
    if (error.claim === 'iat') return errors.jwtClaims("The JWT 'iat' claim must be a number");
    return errors.jwtClaims('Parsing claims failed');
  }
  if (error instanceof jose.JOSEAlgNotAllowed || error instanceof jose.JOSENotSupported) {
    return errors.jwtDecode('Wrong or unsupported encoding algorithm');
  }
  if (error instanceof jose.JWSSignatureVerificationFailed) {
    return errors.jwtDecode('JWT cryptographic operation failed');
  }
  return errors.jwtDecode("JWT couldn't be decoded");
}
