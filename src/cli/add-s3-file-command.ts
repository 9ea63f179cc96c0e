/**
 * `synapse-mount add-s3-file --parent <synID> s3://bucket/key [--name N] [--local-file PATH]`:
 * register an object that already sits in the parent folder's own S3 bucket as a FileEntity,
 * without copying bytes — an external S3 file handle (POST /externalFileHandle/s3) and then
 * the FileEntity (POST /entity). Prints the new synID.
 *
 * Why each step:
 *  - The storage location comes from the folder's upload destination (GET
 *    /entity/{id}/uploadDestination): Synapse wants the handle's storageLocationId, and the
 *    destination also says which bucket/baseKey the folder uses and whether it is STS-enabled.
 *    Bucket and key are checked against it here (a clear message instead of Synapse's 400 or an
 *    S3 AccessDenied): the key must lie under `<baseKey>/`.
 *  - Synapse requires the MD5 and size. With --local-file they are computed from that file
 *    (and, on STS storage, the object's size is checked against it with one HEAD). Without it
 *    the object is streamed once through an MD5 with the folder's read_only STS credentials —
 *    the Python client's use_boto_sts_transfers, with no flag. A non-STS external bucket gives
 *    us no credentials, so --local-file is then required.
 *  - Only the creator of the storage location may register files in it: anyone else gets
 *    Synapse's 403, shown as one line by the caller (src/cli/common.ts describeError).
 * The handle's fileName is the key's last segment (what a download is called); the entity's
 * name is --name, default that same segment, and is checked to be free before the object is
 * read (Synapse would answer 409 only after the whole stream). contentType is guessed from the extension, as
 * the Python client does with `mimetypes`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { SynapseApi } from '../synapse/api.js';
import { CONCRETE } from '../synapse/types.js';
import { ConfigError, UsageError } from '../config.js';
import { nameProblem } from '../fs/names.js';
import { AwsObjectStore } from '../s3/aws-object-store.js';
import { S3Error } from '../s3/object-store.js';

export interface AddS3FileOptions {
  parentId: string;
  url: string;
  name?: string | undefined;
  localFile?: string | undefined;
  s3Endpoint?: string | undefined;
  s3Region?: string | undefined;
}

/** s3://bucket/key → {bucket, key}; the key must name an object (not empty, no trailing slash). */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m || m[2]!.endsWith('/')) throw new ConfigError(`"${url}" is not an S3 object URL (expected s3://bucket/path/to/object)`);
  return { bucket: m[1]!, key: m[2]! };
}

const CONTENT_TYPES: Record<string, string> = {
  txt: 'text/plain', csv: 'text/csv', tsv: 'text/tab-separated-values', json: 'application/json', html: 'text/html',
  htm: 'text/html', xml: 'text/xml', md: 'text/markdown', pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg',
  jpeg: 'image/jpeg', gif: 'image/gif', tif: 'image/tiff', tiff: 'image/tiff', svg: 'image/svg+xml', zip: 'application/zip',
  gz: 'application/gzip', tgz: 'application/gzip', bz2: 'application/x-bzip2', tar: 'application/x-tar',
  parquet: 'application/octet-stream', py: 'text/x-python', r: 'text/plain', sh: 'application/x-sh',
};

export function guessContentType(fileName: string): string {
  const dot = fileName.lastIndexOf('.');
  const ext = dot < 0 ? '' : fileName.slice(dot + 1).toLowerCase();
  return CONTENT_TYPES[ext] ?? 'application/octet-stream';
}

async function hashLocalFile(path: string): Promise<{ md5: string; size: number }> {
  const hash = createHash('md5');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    throw new ConfigError(`cannot read --local-file ${path}: ${(err as Error).message}`);
  }
  return { md5: hash.digest('hex'), size };
}

function describeS3(err: unknown, url: string): Error {
  if (err instanceof S3Error) {
    if (err.code === 'NoSuchKey' || err.code === 'NotFound' || err.status === 404) return new ConfigError(`there is no object at ${url}`);
    return new ConfigError(`cannot read ${url} with the folder's STS credentials: ${err.message}`);
  }
  return err as Error;
}

export async function runAddS3File(api: SynapseApi, opts: AddS3FileOptions): Promise<string> {
  const { bucket, key } = parseS3Url(opts.url);
  // Before any request (Synapse's 400 would come after the whole object was read for its MD5).
  const fileName = key.slice(key.lastIndexOf('/') + 1);
  const entityName = opts.name ?? fileName;
  const problem = nameProblem(entityName);
  if (problem !== undefined) {
    if (opts.name !== undefined) throw new UsageError(`--name "${entityName}": ${problem}`);
    throw new ConfigError(`the key's last part "${fileName}" cannot be a Synapse name (${problem}); pass --name`);
  }
  const parent = await api.getEntity(opts.parentId);
  if (parent.concreteType !== CONCRETE.folder && parent.concreteType !== CONCRETE.project) {
    throw new ConfigError(`${parent.id} is not a folder (it is a ${parent.concreteType.slice(parent.concreteType.lastIndexOf('.') + 1)}): --parent must be a folder backed by your S3 bucket`);
  }
  const dest = await api.getUploadDestination(parent.id);
  if (dest.concreteType !== CONCRETE.externalS3UploadDestination || !dest.bucket) {
    throw new ConfigError(
      `${parent.id} stores files in Synapse storage (storage location ${dest.storageLocationId}), not in your own bucket; ` +
      'create a folder with `synapse-mount create-folder --bucket …` first',
    );
  }
  const where = `s3://${dest.bucket}${dest.baseKey ? `/${dest.baseKey}/` : '/'}`;
  if (bucket !== dest.bucket) {
    throw new ConfigError(`${opts.url} is not in ${parent.id}'s bucket: files of ${parent.id} must lie under ${where}`);
  }
  if (dest.baseKey && !key.startsWith(`${dest.baseKey}/`)) {
    throw new ConfigError(`${opts.url} is outside ${parent.id}'s storage location: files of ${parent.id} must lie under ${where}`);
  }

  // Before reading the object: a taken name would only fail after the whole stream (409).
  const taken = await api.lookupChild(parent.id, entityName);
  if (taken !== null) throw new ConfigError(`"${entityName}" already exists in ${parent.id} (${taken}); pass --name to choose another name`);
  let store: AwsObjectStore | undefined;
  const stsStore = async (): Promise<AwsObjectStore> => {
    const creds = await api.getStsCredentials(parent.id, 'read_only');
    store = new AwsObjectStore({
      ...(opts.s3Endpoint ? { endpoint: opts.s3Endpoint } : {}),
      ...(opts.s3Region ? { region: opts.s3Region } : {}),
      credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken },
      requestTimeoutMs: 10 * 60_000,
    });
    return store;
  };
  try {
    let md5: string;
    let size: number;
    if (opts.localFile !== undefined) {
      ({ md5, size } = await hashLocalFile(opts.localFile));
      if (dest.stsEnabled) {
        const s3 = await stsStore();
        const head = await s3.head({ bucket, key }).catch((err: unknown) => { throw describeS3(err, opts.url); });
        if (head.size !== size) {
          throw new ConfigError(`--local-file ${opts.localFile} has ${size} bytes but ${opts.url} has ${head.size}: they are not the same content`);
        }
      }
    } else {
      if (!dest.stsEnabled) {
        throw new ConfigError(
          `${parent.id}'s storage location is not STS-enabled, so Synapse gives no credentials to read ${opts.url} with: ` +
          'pass --local-file PATH (a local copy of the object) to compute its MD5 and size',
        );
      }
      const s3 = await stsStore();
      const hash = createHash('md5');
      size = 0;
      await s3.streamObject({ bucket, key }, (chunk) => {
        hash.update(chunk);
        size += chunk.length;
      }).catch((err: unknown) => { throw describeS3(err, opts.url); });
      md5 = hash.digest('hex');
    }

    const handle = await api.createExternalS3FileHandle({
      concreteType: CONCRETE.s3FileHandle,
      bucketName: bucket,
      key,
      storageLocationId: dest.storageLocationId,
      contentMd5: md5,
      contentSize: size,
      fileName,
      contentType: guessContentType(fileName),
    });
    const entity = await api.createEntity({
      concreteType: CONCRETE.file, name: entityName, parentId: parent.id, dataFileHandleId: handle.id,
    });
    return entity.id;
  } finally {
    store?.destroy();
  }
}
