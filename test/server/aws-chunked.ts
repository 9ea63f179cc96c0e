/**
 * Decoder for S3's `aws-chunked` content encoding (STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER, ...): frames are `<hex size>[;chunk-signature=..]\r\n
 * <bytes>\r\n`, ending with a 0-size frame and optional trailer lines (x-amz-checksum-*).
 * Recent @aws-sdk/client-s3 sends every PutObject/UploadPart this way; S3 stores only the
 * payload bytes, and so must the gate (s3rver would store the framing). Chunk signatures and
 * trailing checksums are not verified (the payload is unsigned or the gate trusts the sender).
 */
import { Transform, type TransformCallback } from 'node:stream';

const MAX_SIZE_LINE = 4096;

export function isAwsChunked(headers: Record<string, string | string[] | undefined>): boolean {
  const enc = String(headers['content-encoding'] ?? '');
  const sha = String(headers['x-amz-content-sha256'] ?? '');
  return enc.split(',').map((s) => s.trim()).includes('aws-chunked') || sha.startsWith('STREAMING-');
}

export class AwsChunkedDecoder extends Transform {
  private mode: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  private line = '';
  private remaining = 0;
  private crlfLeft = 0;
  decodedBytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let i = 0;
    try {
      while (i < chunk.length) {
        if (this.mode === 'size') {
          const nl = chunk.indexOf(0x0a, i);
          const end = nl < 0 ? chunk.length : nl;
          this.line += chunk.toString('latin1', i, end);
          if (this.line.length > MAX_SIZE_LINE) throw new Error('aws-chunked size line too long');
          if (nl < 0) { i = chunk.length; break; }
          i = nl + 1;
          const sizeHex = this.line.replace(/\r$/, '').split(';')[0]?.trim() ?? '';
          this.line = '';
          if (sizeHex === '') continue; // tolerate a stray blank line
          const size = parseInt(sizeHex, 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`bad aws-chunked frame size "${sizeHex}"`);
          if (size === 0) { this.mode = 'trailer'; continue; }
          this.remaining = size;
          this.mode = 'data';
        } else if (this.mode === 'data') {
          const n = Math.min(this.remaining, chunk.length - i);
          this.push(chunk.subarray(i, i + n));
          this.decodedBytes += n;
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) { this.mode = 'crlf'; this.crlfLeft = 2; }
        } else if (this.mode === 'crlf') {
          const n = Math.min(this.crlfLeft, chunk.length - i);
          this.crlfLeft -= n;
          i += n;
          if (this.crlfLeft === 0) this.mode = 'size';
        } else {
          i = chunk.length; // trailers (checksums, trailer signature): not payload
        }
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}
