/**
 * AWS Signature Version 4 verification for the S3 gate, written from the AWS spec
 * ("Authenticating Requests: AWS Signature Version 4"): header auth (Authorization:
 * AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...) and presigned query auth
 * (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
 * X-Amz-Signature). The canonical request is recomputed from what arrived on the wire, so a
 * request signed with any other secret fails exactly as on S3. S3 does not normalise paths and
 * encodes each key segment once; presigned URLs sign UNSIGNED-PAYLOAD.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface ParsedAuth {
  kind: 'header' | 'query';
  accessKeyId: string;
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  /** presigned only: seconds from amzDate */
  expires?: number;
  sessionToken?: string;
}

export interface RawRequest {
  method: string;
  rawPath: string; // as on the wire, before '?'
  query: Array<[string, string]>; // decoded pairs in wire order
  headers: IncomingHttpHeaders;
}

export function splitQuery(raw: string): Array<[string, string]> {
  if (!raw) return [];
  const dec = (s: string): string => {
    try { return decodeURIComponent(s); } catch { return s; }
  };
  return raw.split('&').filter((p) => p !== '').map((p) => {
    const i = p.indexOf('=');
    return i < 0 ? [dec(p), ''] : [dec(p.slice(0, i)), dec(p.slice(i + 1))];
  });
}

/** RFC 3986 encoding as SigV4 wants it: everything except A-Z a-z 0-9 - _ . ~ */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** null when the request carries no SigV4 auth; a string describing the problem when malformed. */
export function parseAuth(req: RawRequest): ParsedAuth | null | string {
  const auth = header(req.headers, 'authorization');
  const q = new Map(req.query);
  if (auth !== undefined) {
    const m = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)\s*$/.exec(auth);
    if (!m) return 'Unsupported or malformed Authorization header';
    const cred = (m[1] ?? '').split('/');
    if (cred.length !== 5) return 'Malformed credential';
    const amzDate = header(req.headers, 'x-amz-date');
    if (!amzDate) return 'Missing x-amz-date';
    const out: ParsedAuth = {
      kind: 'header',
      accessKeyId: cred[0] ?? '', scopeDate: cred[1] ?? '', region: cred[2] ?? '', service: cred[3] ?? '',
      signedHeaders: (m[2] ?? '').split(';'),
      signature: m[3] ?? '',
      amzDate,
    };
    const tok = header(req.headers, 'x-amz-security-token');
    if (tok !== undefined) out.sessionToken = tok;
    return out;
  }
  if (q.has('X-Amz-Algorithm')) {
    if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return 'Unsupported algorithm';
    const cred = (q.get('X-Amz-Credential') ?? '').split('/');
    const amzDate = q.get('X-Amz-Date');
    const expires = Number(q.get('X-Amz-Expires'));
    const sig = q.get('X-Amz-Signature');
    const signed = q.get('X-Amz-SignedHeaders');
    if (cred.length !== 5 || !amzDate || !sig || !signed || !Number.isFinite(expires)) return 'Malformed presigned URL';
    const out: ParsedAuth = {
      kind: 'query',
      accessKeyId: cred[0] ?? '', scopeDate: cred[1] ?? '', region: cred[2] ?? '', service: cred[3] ?? '',
      signedHeaders: signed.split(';'),
      signature: sig,
      amzDate,
      expires,
    };
    const tok = q.get('X-Amz-Security-Token');
    if (tok !== undefined) out.sessionToken = tok;
    return out;
  }
  return null;
}

/** Parse 20240101T000000Z into epoch ms (NaN when malformed). */
export function parseAmzDate(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function canonicalPath(rawPath: string): string {
  return rawPath.split('/').map((seg) => {
    let d = seg;
    try { d = decodeURIComponent(seg); } catch { /* keep raw */ }
    return uriEncode(d);
  }).join('/');
}

export function canonicalRequest(req: RawRequest, auth: ParsedAuth): string {
  const pairs = req.query
    .filter(([k]) => !(auth.kind === 'query' && k === 'X-Amz-Signature'))
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const canonicalQuery = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  const names = [...auth.signedHeaders].sort();
  const canonicalHeaders = names
    .map((n) => `${n}:${(header(req.headers, n) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const payloadHash = auth.kind === 'query'
    ? (new Map(req.query).get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD')
    : (header(req.headers, 'x-amz-content-sha256') ?? 'UNSIGNED-PAYLOAD');
  return [req.method, canonicalPath(req.rawPath), canonicalQuery, canonicalHeaders, names.join(';'), payloadHash].join('\n');
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

export function expectedSignature(req: RawRequest, auth: ParsedAuth, secret: string): string {
  const scope = `${auth.scopeDate}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    auth.amzDate,
    scope,
    createHash('sha256').update(canonicalRequest(req, auth), 'utf8').digest('hex'),
  ].join('\n');
  let key = hmac(`AWS4${secret}`, auth.scopeDate);
  key = hmac(key, auth.region);
  key = hmac(key, auth.service);
  key = hmac(key, 'aws4_request');
  return createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
}

export function signatureMatches(req: RawRequest, auth: ParsedAuth, secret: string): boolean {
  const want = Buffer.from(expectedSignature(req, auth, secret), 'hex');
  const got = Buffer.from(auth.signature, 'hex');
  return want.length === got.length && timingSafeEqual(want, got);
}
