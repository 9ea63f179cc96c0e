/**
 * The Synapse S3 storage commands (issue 5) end to end, against the local Synapse + S3 stack:
 *  - create-folder: external bucket with STS, Synapse storage, taking an existing empty folder;
 *    refusals (unknown parent, parent not a folder, missing owner.txt, STS on a non-empty folder);
 *  - sts-token: every output format; the shell output `eval`ed in bash, then the real awscli
 *    lists, uploads and copies under $SYNAPSE_STS_S3_LOCATION and is denied outside it (read_only
 *    may not write); a hostile value cannot inject commands; non-STS folder → Synapse's 400;
 *  - add-s3-file: streaming with STS credentials and --local-file; refusals (key outside the
 *    baseKey, not a folder, unknown id, Synapse storage, missing object, a collaborator who did
 *    not create the storage location → Synapse's 403 as one line);
 *  - through a real mount: the registered files read back byte-identical, `getfattr` answers
 *    user.synapse.id/version/md5, `info` prints the same facts (text and --json).
 * Every error is checked to be exactly one line on stderr with exit 1 (2 for usage errors).
 * The CLI and the mount run in child processes; this process only serves the stack.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type Stack } from '../server/stack.js';
import { AwsObjectStore } from '../../src/s3/aws-object-store.js';
import { HttpSynapseClient } from '../../src/synapse/http-client.js';
import { formatStsCredentials } from '../../src/cli/sts-token-command.js';
import { CONCRETE } from '../../src/synapse/types.js';
import { cli, closedPort, mountForeground, sh, tempDir, type Mounted, type ShResult } from './harness.js';

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

/** A failed command: the exit code, and exactly one `synapse-mount: …` line on stderr. */
function assertOneLineError(r: ShResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}, stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  if (code === 1) assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', /^synapse-mount: /);
  assert.match(r.stderr, pattern);
  assert.equal(r.stdout, '');
}

describe('storage commands: sts-token, create-folder, add-s3-file, info', () => {
  let stack: Stack;
  let api: HttpSynapseClient;
  let admin: AwsObjectStore;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let env2: NodeJS.ProcessEnv;
  /** for awscli: no user config, no CA bundle override (the machine sets one), a region */
  let awsEnv: NodeJS.ProcessEnv;
  let projectId: string;
  let fileId: string;
  const baseKey = 'lab/cli-sts';
  let sts: { folderId: string; storageLocationId: number; projectSettingId: string };
  let managedFolderId: string;
  let externalFolderId: string;
  const awsBytes = randomBytes(300_000);
  const localBytes = randomBytes(70_000);
  let streamedId = '';
  let localId = '';
  let mounted: Mounted | undefined;
  /** `sts-token … read_only` shell output from the formats test, eval'ed again by the awscli test */
  let readOnlyShell = '';

  const withAuth = (...args: string[]): string[] => [...args, '--endpoint', stack.endpoint];
  const run = (...args: string[]): Promise<ShResult> => cli(withAuth(...args), { env, timeoutMs: 60_000 });
  const aws = (args: string): string => `aws --endpoint-url ${stack.s3Endpoint} ${args}`;

  before(async () => {
    stack = await startStack({ fixture: 'empty' });
    api = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.authToken, retryTimeoutSec: 5 });
    admin = new AwsObjectStore({
      endpoint: stack.s3Endpoint, credentials: { accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey },
    });
    projectId = stack.seed.project('Storage CLI');
    fileId = (await stack.seed.file(projectId, 'plain.txt', Buffer.from('plain\n'))).id;
    externalFolderId = (await stack.seed.folder(projectId, 'external-plain', { storage: 'external', baseKey: 'lab/plain' })).id;
    stack.seed.grant(projectId, stack.secondUserId, ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE', 'DELETE']);
    home = await tempDir('home-');
    env = { ...process.env, HOME: home, XDG_STATE_HOME: home, SYNAPSE_AUTH_TOKEN: stack.authToken };
    env2 = { ...env, SYNAPSE_AUTH_TOKEN: stack.secondAuthToken };
    awsEnv = {
      ...process.env, HOME: home, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_DEFAULT_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', AWS_PAGER: '',
    };
    delete awsEnv['AWS_CA_BUNDLE'];
    delete awsEnv['AWS_ACCESS_KEY_ID'];
    delete awsEnv['AWS_SECRET_ACCESS_KEY'];
    delete awsEnv['AWS_SESSION_TOKEN'];
    delete awsEnv['AWS_PROFILE'];
  });

  after(async () => {
    await mounted?.unmount().catch(() => undefined);
    admin?.destroy();
    await stack?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test('a storage command says at once that Synapse cannot be reached, then fails in one line', async () => {
    // A QA pass found sts-token silent for the whole --retry-timeout on a wrong --endpoint.
    const closed = await closedPort();
    const r = await cli(['sts-token', 'syn123', 'read_only', '--endpoint', `http://127.0.0.1:${closed}`, '--retry-timeout', '3'], { env, timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, new RegExp(`cannot reach Synapse at http://127\\.0\\.0\\.1:${closed} yet .*; retrying for up to [1-3] s`));
    assert.match(lines[1]!, /ECONNREFUSED/);
  });

  test('every subcommand has --help', async () => {
    const rs = await Promise.all(['sts-token', 'create-folder', 'add-s3-file', 'info'].map((c) => cli([c, '--help'], { env })));
    for (const r of rs) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /--endpoint/);
      assert.match(r.stdout, /--auth-token-file/);
    }
    assert.match(rs[0]!.stdout, /"json", "boto", "shell", "bash", "cmd", "powershell"/);
    assert.match(rs[1]!.stdout, /--base-key/);
    assert.match(rs[2]!.stdout, /--local-file/);
    assert.match(rs[3]!.stdout, /--json/);
  });

  test('create-folder: an STS folder in the lab bucket (owner.txt names the user), then takes it again', async () => {
    await admin.putObject({ bucket: stack.externalBucket, key: `${baseKey}/owner.txt` }, Buffer.from(`${stack.userName}\n`));
    const r = await run('create-folder', '--parent', projectId, '--name', 'sts-data', '--bucket', stack.externalBucket, '--base-key', `${baseKey}/`, '--sts');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\{"folderId": "syn\d+", "storageLocationId": \d+, "projectSettingId": "\d+"\}\n$/);
    sts = JSON.parse(r.stdout) as typeof sts;
    const folder = stack.seed.entity(sts.folderId);
    assert.equal(folder.name, 'sts-data');
    assert.equal(folder.concreteType, CONCRETE.folder);
    assert.equal(folder.parentId, projectId);
    const dest = await api.getUploadDestination(sts.folderId);
    assert.equal(dest.concreteType, CONCRETE.externalS3UploadDestination);
    assert.equal(dest.storageLocationId, sts.storageLocationId);
    assert.equal(dest.bucket, stack.externalBucket);
    assert.equal(dest.baseKey, baseKey, 'the trailing slash is dropped');
    assert.equal(dest.stsEnabled, true);

    // Again with the same name: the existing empty folder is taken and its setting updated.
    const again = await run('create-folder', '--parent', projectId, '--name', 'sts-data', '--bucket', stack.externalBucket, '--base-key', baseKey, '--sts');
    assert.equal(again.code, 0, again.stderr);
    const second = JSON.parse(again.stdout) as typeof sts;
    assert.equal(second.folderId, sts.folderId);
    assert.equal(second.projectSettingId, sts.projectSettingId);
  });

  test('create-folder: Synapse storage when no bucket; an external bucket without STS', async () => {
    const [managed, ext] = await Promise.all([
      run('create-folder', '--parent', projectId, '--name', 'managed'),
      // lab/plain/owner.txt was written by the seeder for the external-plain folder
      run('create-folder', '--parent', externalFolderId, '--name', 'ext-plain', '--bucket', stack.externalBucket, '--base-key', 'lab/plain'),
    ]);
    assert.equal(ext!.code, 0, ext!.stderr);
    const extOut = JSON.parse(ext!.stdout) as typeof sts;
    const extDest = await api.getUploadDestination(extOut.folderId);
    assert.deepEqual([extDest.concreteType, extDest.bucket, extDest.baseKey, extDest.stsEnabled],
      [CONCRETE.externalS3UploadDestination, stack.externalBucket, 'lab/plain', false]);
    assert.equal(stack.seed.entity(extOut.folderId).parentId, externalFolderId);
    const r = managed!;
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as typeof sts;
    managedFolderId = out.folderId;
    const dest = await api.getUploadDestination(managedFolderId);
    assert.equal(dest.concreteType, CONCRETE.s3UploadDestination);
    assert.equal(dest.storageLocationId, out.storageLocationId);
    // Run again: the same folder and the same (de-duplicated) storage location.
    const again = await run('create-folder', '--parent', projectId, '--name', 'managed');
    assert.equal(again.code, 0, again.stderr);
    const second = JSON.parse(again.stdout) as typeof sts;
    assert.deepEqual([second.folderId, second.storageLocationId], [out.folderId, out.storageLocationId]);
  });

  test('create-folder: bad input is one line', async () => {
    await stack.seed.file(managedFolderId, 'occupant.txt', Buffer.from('x'));
    const [unknown, notFolder, noOwner, nonEmpty, usage, emptyName, badName] = await Promise.all([
      run('create-folder', '--parent', 'syn999999', '--name', 'x'),
      run('create-folder', '--parent', fileId, '--name', 'x'),
      run('create-folder', '--parent', projectId, '--name', 'no-owner', '--bucket', stack.externalBucket, '--base-key', 'lab/nobody', '--sts'),
      run('create-folder', '--parent', projectId, '--name', 'managed', '--sts'),
      run('create-folder', '--parent', projectId, '--name', 'x', '--base-key', 'k'),
      run('create-folder', '--parent', projectId, '--name', ' '),
      run('create-folder', '--parent', projectId, '--name', 'a/b'),
    ]);
    assertOneLineError(unknown!, 1, /syn999999.*\(Synapse 404\)|\(Synapse 404\)/);
    assertOneLineError(notFolder!, 1, /is a FileEntity, not a project or folder/);
    assertOneLineError(noOwner!, 1, /owner\.txt.*\(Synapse 400\)/);
    assert.equal(await api.lookupChild(projectId, 'no-owner'), null, 'a refused bucket leaves no folder behind');
    assertOneLineError(nonEmpty!, 1, /STS can only be enabled on an empty folder/);
    assertOneLineError(usage!, 2, /base-key -> bucket/);
    assertOneLineError(emptyName!, 2, /--name "": empty name/);
    assertOneLineError(badName!, 2, /--name "a\/b": Synapse names may only contain/);
  });

  test('create-folder on an STS folder with files: the same command again is harmless; off STS is refused', async () => {
    // QA: the identical --sts run was refused once files were in; without --sts the folder was
    // silently moved to a non-STS location, its files left in STS storage.
    const first = await run('create-folder', '--parent', projectId, '--name', 'sts-full', '--bucket', stack.externalBucket, '--base-key', baseKey, '--sts');
    assert.equal(first.code, 0, first.stderr);
    const made = JSON.parse(first.stdout) as typeof sts;
    await stack.seed.file(made.folderId, 'in-sts.txt', Buffer.from('x'));
    const again = await run('create-folder', '--parent', projectId, '--name', 'sts-full', '--bucket', stack.externalBucket, '--base-key', baseKey, '--sts');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), made);
    const off = await run('create-folder', '--parent', projectId, '--name', 'sts-full', '--bucket', stack.externalBucket, '--base-key', baseKey);
    assertOneLineError(off, 1, /is an STS folder with 1 item\(s\): its storage cannot change/);
    assert.equal((await api.getUploadDestination(made.folderId)).stsEnabled, true, 'still STS');
  });

  test('sts-token: every output format, as the Python client prints them', async () => {
    const formats = ['json', 'boto', 'shell', 'bash', 'cmd', 'powershell'] as const;
    const rs = await Promise.all(formats.map((o) => run('sts-token', sts.folderId, 'read_only', '-o', o)));
    const byFormat = Object.fromEntries(formats.map((f, i) => [f, rs[i]!])) as Record<(typeof formats)[number], ShResult>;
    for (const f of formats) assert.equal(byFormat[f].code, 0, `${f}: ${byFormat[f].stderr}`);

    const json = JSON.parse(byFormat.json.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(json), ['bucket', 'baseKey', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'expiration']);
    assert.equal(json['bucket'], stack.externalBucket);
    assert.equal(json['baseKey'], baseKey);
    assert.match(byFormat.json.stdout, /^\{"bucket": "lab-external", "baseKey": "lab\/cli-sts", "accessKeyId": "ASIA/);
    assert.match(json['expiration']!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const boto = JSON.parse(byFormat.boto.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(boto), ['aws_access_key_id', 'aws_secret_access_key', 'aws_session_token']);
    assert.match(boto['aws_access_key_id']!, /^ASIA/);

    const names = ['SYNAPSE_STS_S3_LOCATION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'];
    const shape = (prefix: string, f: keyof typeof byFormat): void => {
      const lines = byFormat[f].stdout.trimEnd().split('\n');
      assert.deepEqual(lines.map((l) => l.slice(0, l.indexOf('='))), names.map((n) => `${prefix}${n}`), f);
      for (const l of lines) assert.match(l, /^[^=]+="[^"]*"$/, f);
      assert.equal(lines[0], `${prefix}SYNAPSE_STS_S3_LOCATION="s3://${stack.externalBucket}/${baseKey}"`);
    };
    shape('export ', 'shell');
    shape('export ', 'bash');
    shape('set ', 'cmd');
    shape('$Env:', 'powershell');
    readOnlyShell = byFormat.shell.stdout;
  });

  test('recover with a --spool-dir that is not there: one line, exit 2', async () => {
    // QA: "nothing to recover" (exit 0) for a mistyped --spool-dir hid the entries waiting in the real one.
    const typo = await cli(['recover', '--list', '--spool-dir', path.join(home, 'no-such-spool')], { env });
    assertOneLineError(typo, 2, /--spool-dir .*no-such-spool: no such directory/);
    // --list only lists (QA); plain recover and --list run (review: a yargs `conflicts` refused every recover).
    const both = await cli(['recover', '--list', '--discard', 'x', '--spool-dir', home], { env });
    assertOneLineError(both, 2, /--list only shows the entries/);
    const empty = await tempDir('empty-spool-');
    for (const extra of [[], ['--list']]) {
      const r = await cli(['recover', ...extra, '--spool-dir', empty], { env });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  test('sts-token: hostile values stay literal strings', async () => {
    const evil = 'a"b$(touch PWNED)`touch PWNED`\\c$HOME\'d';
    const creds = { bucket: 'b', baseKey: 'k', accessKeyId: evil, secretAccessKey: 's', sessionToken: 't', expiration: '2030-01-01T00:00:00.000Z' };
    const dir = await tempDir('evil-');
    try {
      const bash = formatStsCredentials(creds, 'bash', 's3://b/k');
      await writeFile(path.join(dir, 'creds.sh'), bash);
      const r = await sh('eval "$(cat creds.sh)"; printf %s "$AWS_ACCESS_KEY_ID"; test ! -e PWNED', { cwd: dir, timeoutMs: 10_000 });
      assert.equal(r.code, 0, `a command ran or eval failed: ${r.stderr}`);
      assert.equal(r.stdout, evil);
      assert.equal(formatStsCredentials({ ...creds, accessKeyId: 'a"b$c`d\u201ce' }, 'powershell', null),
        '$Env:AWS_ACCESS_KEY_ID="a`"b`$c``d`\u201ce"\n$Env:AWS_SECRET_ACCESS_KEY="s"\n$Env:AWS_SESSION_TOKEN="t"\n');
      assert.throws(() => formatStsCredentials({ ...creds, accessKeyId: 'a"&calc' }, 'cmd', null), /cmd cannot quote/);
      assert.throws(() => formatStsCredentials({ ...creds, accessKeyId: 'a\nb' }, 'bash', null), /control characters/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('sts-token: eval in bash, then the awscli works under $SYNAPSE_STS_S3_LOCATION and only there', async () => {
    const dir = await tempDir('aws-');
    try {
      await writeFile(path.join(dir, 'data.bin'), awsBytes);
      const rw = await run('sts-token', sts.folderId, 'read_write', '-o', 'shell');
      assert.equal(rw.code, 0, rw.stderr);
      assert.ok(readOnlyShell, 'the formats test ran');
      await writeFile(path.join(dir, 'rw.sh'), rw.stdout);
      await writeFile(path.join(dir, 'ro.sh'), readOnlyShell);
      // Each step prints "name=exit status"; output of the aws commands goes to files for diagnosis.
      const script = `
        step() { local n=$1; shift; "$@" >"$n.out" 2>&1; echo "$n=$?"; }
        eval "$(cat rw.sh)"
        step put ${aws('s3 cp data.bin "$SYNAPSE_STS_S3_LOCATION/uploaded/data.bin"')}
        step ls ${aws('s3 ls --recursive "$SYNAPSE_STS_S3_LOCATION/"')}
        step copy ${aws('s3 cp "$SYNAPSE_STS_S3_LOCATION/uploaded/data.bin" "$SYNAPSE_STS_S3_LOCATION/copies/data.bin"')}
        step get ${aws('s3 cp "$SYNAPSE_STS_S3_LOCATION/copies/data.bin" back.bin')}
        step cmp cmp data.bin back.bin
        step ls_bucket ${aws('s3 ls "$SYNAPSE_STS_S3_LOCATION-sibling/"')}
        step ls_root ${aws('s3 ls "s3://lab-external/"')}
        step put_outside ${aws('s3 cp data.bin s3://lab-external/elsewhere/data.bin')}
        step get_owner_other ${aws('s3 cp s3://lab-external/lab/plain/owner.txt other.txt')}
        eval "$(cat ro.sh)"
        step ro_ls ${aws('s3 ls "$SYNAPSE_STS_S3_LOCATION/uploaded/"')}
        step ro_put ${aws('s3 cp data.bin "$SYNAPSE_STS_S3_LOCATION/ro/data.bin"')}
      `;
      const r = await sh(script, { cwd: dir, env: awsEnv, timeoutMs: 90_000 });
      const status = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
      const detail = async (n: string): Promise<string> => (await sh(`cat ${n}.out`, { cwd: dir })).stdout;
      for (const n of ['put', 'ls', 'copy', 'get', 'cmp', 'ro_ls']) assert.equal(status[n], '0', `${n}: ${await detail(n)}\n${r.stderr}`);
      for (const n of ['ls_bucket', 'ls_root', 'put_outside', 'get_owner_other', 'ro_put']) {
        assert.notEqual(status[n], '0', `${n} must be denied`);
        assert.match(await detail(n), /AccessDenied|Forbidden|403/, n);
      }
      const listing = await detail('ls');
      assert.match(listing, new RegExp(`${baseKey}/uploaded/data\\.bin`));
      assert.match(listing, new RegExp(`${baseKey}/owner\\.txt`));
      assert.deepEqual(await stack.seed.objectBytes(stack.externalBucket, `${baseKey}/copies/data.bin`), awsBytes);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('sts-token: bad input is one line', async () => {
    const [notSts, unknown, badPerm] = await Promise.all([
      run('sts-token', managedFolderId, 'read_only'),
      run('sts-token', 'syn999999', 'read_write'),
      run('sts-token', sts.folderId, 'write'),
    ]);
    // QA: Synapse's reason alone ("Entity must have a project setting") left users guessing.
    assertOneLineError(notSts!, 1, /syn\d+ is not in an STS-enabled storage location, so it has no STS credentials \(make an STS folder with `synapse-mount create-folder --sts`\): .*\(Synapse 400\)/);
    assertOneLineError(unknown!, 1, /\(Synapse 404\)/);
    assertOneLineError(badPerm!, 2, /Choices: "read_only", "read_write"|Invalid values/);
  });

  test('add-s3-file: streams the object once with STS credentials, or takes --local-file', async () => {
    const r = await run('add-s3-file', '--parent', sts.folderId, `s3://${stack.externalBucket}/${baseKey}/uploaded/data.bin`, '--s3-endpoint', stack.s3Endpoint);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^syn\d+\n$/);
    streamedId = r.stdout.trim();
    const e = stack.seed.entity(streamedId);
    assert.equal(e.name, 'data.bin');
    assert.equal(e.parentId, sts.folderId);
    const fh = stack.seed.fileHandle(e.dataFileHandleId!);
    assert.equal(fh.contentMd5, md5(awsBytes));
    assert.equal(fh.contentSize, awsBytes.length);
    assert.equal(fh.key, `${baseKey}/uploaded/data.bin`);
    assert.equal(fh.storageLocationId, sts.storageLocationId);

    const key = `${baseKey}/local/table.csv`;
    await admin.putObject({ bucket: stack.externalBucket, key }, localBytes);
    const dir = await tempDir('local-');
    try {
      await writeFile(path.join(dir, 'table.csv'), localBytes);
      const l = await run('add-s3-file', '--parent', sts.folderId, `s3://${stack.externalBucket}/${key}`, '--name', 'renamed.csv',
        '--local-file', path.join(dir, 'table.csv'), '--s3-endpoint', stack.s3Endpoint);
      assert.equal(l.code, 0, l.stderr);
      localId = l.stdout.trim();
      const le = stack.seed.entity(localId);
      assert.equal(le.name, 'renamed.csv');
      const lfh = stack.seed.fileHandle(le.dataFileHandleId!);
      assert.equal(lfh.contentMd5, md5(localBytes));
      assert.equal(lfh.contentSize, localBytes.length);
      assert.equal(lfh.contentType, 'text/csv');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('add-s3-file: bad input is one line', async () => {
    const url = `s3://${stack.externalBucket}/${baseKey}/uploaded/data.bin`;
    await admin.putObject({ bucket: stack.externalBucket, key: 'lab/plain/x.bin' }, Buffer.from('x'));
    const s3 = ['--s3-endpoint', stack.s3Endpoint];
    const wrongSize = path.join(home, 'wrong-size.bin');
    await writeFile(wrongSize, Buffer.from('not the object'));
    const [outside, sibling, otherBucket, notFolder, unknown, managed, plainNoLocal, missing, notUrl, collaborator, mismatch, taken] = await Promise.all([
      run('add-s3-file', '--parent', sts.folderId, `s3://${stack.externalBucket}/elsewhere/x.bin`, ...s3),
      run('add-s3-file', '--parent', sts.folderId, `s3://${stack.externalBucket}/${baseKey}-sibling/x.bin`, ...s3),
      run('add-s3-file', '--parent', sts.folderId, `s3://${stack.managedBucket}/${baseKey}/x.bin`, ...s3),
      run('add-s3-file', '--parent', streamedId, url, ...s3),
      run('add-s3-file', '--parent', 'syn999999', url, ...s3),
      run('add-s3-file', '--parent', managedFolderId, url, ...s3),
      run('add-s3-file', '--parent', externalFolderId, `s3://${stack.externalBucket}/lab/plain/x.bin`, ...s3),
      run('add-s3-file', '--parent', sts.folderId, `s3://${stack.externalBucket}/${baseKey}/no/such.bin`, ...s3),
      run('add-s3-file', '--parent', sts.folderId, 'https://example.org/x', ...s3),
      cli(withAuth('add-s3-file', '--parent', sts.folderId, url, '--name', 'by-user2.bin', ...s3), { env: env2, timeoutMs: 60_000 }),
      run('add-s3-file', '--parent', sts.folderId, url, '--name', 'mismatch.bin', '--local-file', wrongSize, ...s3),
      run('add-s3-file', '--parent', sts.folderId, url, ...s3),
    ]);
    assertOneLineError(outside!, 1, /outside syn\d+'s storage location: files of syn\d+ must lie under s3:\/\/lab-external\/lab\/cli-sts\//);
    assertOneLineError(sibling!, 1, /outside syn\d+'s storage location/);
    assertOneLineError(otherBucket!, 1, /not in syn\d+'s bucket/);
    assertOneLineError(notFolder!, 1, /is not a folder \(it is a FileEntity\)/);
    assertOneLineError(unknown!, 1, /\(Synapse 404\)/);
    assertOneLineError(managed!, 1, /stores files in Synapse storage/);
    assertOneLineError(plainNoLocal!, 1, /not STS-enabled.*--local-file/);
    assertOneLineError(missing!, 1, /there is no object at s3:\/\//);
    assertOneLineError(notUrl!, 1, /is not an S3 object URL/);
    assertOneLineError(collaborator!, 1, /Only the creator of ExternalS3StorageLocationSetting\.id=\d+ .*\(Synapse 403\)/);
    assert.equal(await api.lookupChild(sts.folderId, 'by-user2.bin'), null);
    assertOneLineError(taken!, 1, new RegExp(`"data\\.bin" already exists in syn\\d+ \\(${streamedId}\\); pass --name`));
    assertOneLineError(mismatch!, 1, /--local-file .* has 14 bytes but s3:\/\/.* has 300000: they are not the same content/);
    // Names Synapse would refuse, before any request: --name is a usage error, a key's own name says to pass --name.
    const [badName, badKeyName] = await Promise.all([
      run('add-s3-file', '--parent', sts.folderId, url, '--name', 'a:b.bin', ...s3),
      run('add-s3-file', '--parent', sts.folderId, `s3://${stack.externalBucket}/${baseKey}/uploaded/x#1.bin`, ...s3),
    ]);
    assertOneLineError(badName!, 2, /--name "a:b\.bin": Synapse names may only contain/);
    assertOneLineError(badKeyName!, 1, /"x#1\.bin" cannot be a Synapse name .*pass --name/);
  });

  test('through a mount: registered files read back; getfattr and info name them', async () => {
    const linkId = stack.seed.link(sts.folderId, 'data-link', streamedId);
    mounted = await mountForeground(stack, projectId);
    const dir = mounted.dir;
    const file = path.join(dir, 'sts-data', 'data.bin');
    const sums = await sh(`md5sum '${file}' '${dir}/sts-data/renamed.csv'`, { timeoutMs: 30_000 });
    assert.equal(sums.code, 0, `${sums.stderr}\n${mounted.output()}`);
    assert.deepEqual(sums.stdout.trim().split('\n').map((l) => l.split(' ')[0]), [md5(awsBytes), md5(localBytes)]);

    const attrs = await sh(`getfattr --absolute-names -d -m '^user\\.synapse\\.' '${file}'`, { timeoutMs: 10_000 });
    assert.equal(attrs.code, 0, attrs.stderr);
    assert.match(attrs.stdout, new RegExp(`user\\.synapse\\.id="${streamedId}"`));
    assert.match(attrs.stdout, /user\.synapse\.version="1"/);
    assert.match(attrs.stdout, new RegExp(`user\\.synapse\\.md5="${md5(awsBytes)}"`));

    const scratchFile = path.join(dir, 'sts-data', 'draft.txt~');
    assert.equal((await sh(`echo x > '${scratchFile}'`)).code, 0);
    const [text, json, folder, outside, missing, localOnly] = await Promise.all([
      run('info', file),
      run('info', file, '--json'),
      run('info', '--json', path.join(dir, 'sts-data')),
      run('info', home),
      run('info', path.join(dir, 'sts-data', 'nope.bin')),
      run('info', scratchFile),
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^id: +${streamedId}$`, 'm'));
    assert.match(text.stdout, /^version: +1$/m);
    assert.match(text.stdout, new RegExp(`^md5: +${md5(awsBytes)}$`, 'm'));
    assert.match(text.stdout, new RegExp(`^size: +${awsBytes.length}$`, 'm'));
    assert.match(text.stdout, new RegExp(`^storage location: +${sts.storageLocationId} \\(STS-enabled\\)$`, 'm'));
    assert.match(text.stdout, new RegExp(`^s3 url: +s3://lab-external/${baseKey}/uploaded/data\\.bin$`, 'm'));

    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), {
      path: file, id: streamedId, name: 'data.bin', type: 'file', version: 1, md5: md5(awsBytes), size: awsBytes.length,
      storageLocationId: sts.storageLocationId, stsEnabled: true, s3Url: `s3://lab-external/${baseKey}/uploaded/data.bin`,
      targetId: null, targetVersion: null,
    });
    assert.equal(folder.code, 0, folder.stderr);
    assert.deepEqual(JSON.parse(folder.stdout), {
      path: path.join(dir, 'sts-data'), id: sts.folderId, name: 'sts-data', type: 'folder', version: null, md5: null, size: null,
      storageLocationId: sts.storageLocationId, stsEnabled: true, s3Url: `s3://lab-external/${baseKey}/`,
      targetId: null, targetVersion: null,
    });
    assertOneLineError(outside!, 1, /is not inside a synapse-mount mount/);
    assertOneLineError(missing!, 1, /No such file or directory/);
    assertOneLineError(localOnly!, 1, /is not in Synapse \(yet\): a file only this mount has/);
    // A symlink is a Link entity, described as itself (getxattr would follow it to the target),
    // with what it points at.
    const link = await run('info', '--json', path.join(dir, 'sts-data', 'data-link'));
    assert.equal(link.code, 0, link.stderr);
    const linkInfo = JSON.parse(link.stdout) as Record<string, unknown>;
    assert.deepEqual([linkInfo['id'], linkInfo['type'], linkInfo['targetId'], linkInfo['targetVersion']], [linkId, 'link', streamedId, null]);
    const linkText = await run('info', path.join(dir, 'sts-data', 'data-link'));
    assert.match(linkText.stdout, new RegExp(`^target: +${streamedId} \\(newest version\\)$`, 'm'));

    // No --endpoint: the mount's own record says which Synapse it talks to (the default,
    // synapse.org, is unreachable here). Same state dir as the mount, which got this process's env.
    const stateHome = process.env['XDG_STATE_HOME'] ?? path.join(process.env['HOME'] ?? '/root', '.local', 'state');
    const bare = await cli(['info', '--json', file], { env: { ...env, XDG_STATE_HOME: stateHome }, timeoutMs: 60_000 });
    assert.equal(bare.code, 0, bare.stderr);
    assert.equal(JSON.parse(bare.stdout).id, streamedId);
  });
});
