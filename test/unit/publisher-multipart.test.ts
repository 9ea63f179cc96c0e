/**
 * Publisher's upload through Synapse's multipart API (Synapse-managed storage) when Synapse hands
 * one upload to two uploaders of the same request (same user, name, bytes, location): the
 * later one takes the completed upload's file handle; an upload Synapse refuses to resume is
 * started afresh once. A scripted fake of the four multipart calls — every part already
 * uploaded, so no part goes over HTTP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Publisher } from '../../src/fs/publisher.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { SynapseError } from '../../src/synapse/errors.js';
import { CONCRETE, type MultipartUploadStatus } from '../../src/synapse/types.js';

interface Script {
  /** What each start answers, in turn (the last one repeats). */
  starts: Array<Partial<MultipartUploadStatus>>;
  /** Each completion: a status, or an error to throw. */
  completes: Array<MultipartUploadStatus | Error>;
}

async function upload(script: Script): Promise<{ result: Promise<string>; forced: boolean[] }> {
  const forced: boolean[] = [];
  const api = {
    getUploadDestination: async () => ({ concreteType: CONCRETE.s3UploadDestination, storageLocationId: 1, uploadType: 'S3' }),
    startMultipartUpload: async (_req: unknown, forceRestart: boolean) => {
      forced.push(forceRestart);
      const s = script.starts.length > 1 ? script.starts.shift()! : script.starts[0]!;
      return { uploadId: 'u1', state: 'UPLOADING', partsState: '1', ...s };
    },
    completeMultipartUpload: async () => {
      const c = script.completes.shift();
      if (!c || c instanceof Error) throw c ?? new Error('no completion scripted');
      return c;
    },
  } as unknown as SynapseApi;
  const publisher = new Publisher(api, () => { throw new Error('no object store here'); }, { userId: '1', partSize: 5 * 1024 * 1024, useSts: false });
  const dir = await mkdtemp(path.join(tmpdir(), 'publisher-'));
  const file = path.join(dir, 'f.txt');
  await writeFile(file, 'same content\n');
  const result = publisher.upload({ file, size: 13, md5: 'a3e1b5b8b4f9d7d1c0b4b1f1a5c0e9d2' }, 'syn2', 'f.txt').finally(() => rm(dir, { recursive: true, force: true }));
  return { result, forced };
}

const refused = (): SynapseError => new SynapseError(400, 'InvalidPart: one or more of the specified parts could not be found', 'PUT', '/file/multipart/u1/complete');

test('QA: the completion fails because another uploader completed the same request: its file handle is taken', async () => {
  const { result, forced } = await upload({
    starts: [{}, { state: 'COMPLETED', resultFileHandleId: '77' }],
    completes: [refused()],
  });
  assert.equal(await result, '77');
  assert.deepEqual(forced, [false, false]);
});

test('QA: an upload Synapse refuses to resume is started afresh, once', async () => {
  const { result, forced } = await upload({
    starts: [{}, {}, {}],
    completes: [refused(), { uploadId: 'u2', state: 'COMPLETED', partsState: '1', resultFileHandleId: '88' }],
  });
  assert.equal(await result, '88');
  assert.deepEqual(forced, [false, false, true]);
  const again = await upload({ starts: [{}], completes: [refused(), refused()] });
  await assert.rejects(again.result, /InvalidPart/, 'not forever');
});
