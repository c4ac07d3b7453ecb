/**
 * PostgreSQL's jsonb cannot hold the character U+0000 nor unpaired UTF-16 surrogates, both of which
 * JSON (and `JSON.stringify`) allows. Such values are stored losslessly as a one-key object holding
 * the original JSON text in base64: `{"$hybrid-cache:base64-json": "..."}`. Any value that
 * mentions the marker is wrapped too, so unwrapping never mistakes a user's value for a wrapper.
 */
export const WRAPPER_KEY = '$hybrid-cache:base64-json';

// A `\u` escape is real only if preceded by an even number of backslashes (`(?<!\\)(?:\\\\)*`).
const NUL_ESCAPE = /(?<!\\)(?:\\\\)*\\u0000/;
const LONE_SURROGATE =
  /(?<!\\)(?:\\\\)*(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})/;
// jsonb renders objects as `{"key": value}`; our wrapper always reads back exactly like this.
const WRAPPED_PREFIX = `{"${WRAPPER_KEY}": "`;

function needsWrapping(json: string): boolean {
  if (json.includes(WRAPPER_KEY)) return true;
  return json.includes('\\u') && (NUL_ESCAPE.test(json) || LONE_SURROGATE.test(json));
}

/** The JSON text to send for storage in a jsonb column. */
export function toJsonbText(json: string): string {
  if (!needsWrapping(json)) return json;
  return JSON.stringify({ [WRAPPER_KEY]: Buffer.from(json, 'utf8').toString('base64') });
}

/** The original JSON text from what the jsonb column holds. */
export function fromJsonbText(text: string): string {
  if (!text.startsWith(WRAPPED_PREFIX) || !text.endsWith('"}')) return text;
  const encoded = text.slice(WRAPPED_PREFIX.length, -2);
  return Buffer.from(encoded, 'base64').toString('utf8');
}
