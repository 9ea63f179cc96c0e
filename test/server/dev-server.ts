/**
 * `npm run dev-server -- [--port N] [--s3-port N] [--fixture sample|empty] [--synapse-latency-ms N]
 * [--s3-latency-ms N] [--sts-lifetime S] [--url-lifetime S] [--page-size N] [--throttle]`
 *
 * Starts the local stack (fixture 'sample' unless told otherwise), prints one JSON line with
 * the endpoints and credentials as the first stdout line starting with `{`, a few human lines
 * on stderr, and runs until SIGINT/SIGTERM, then closes cleanly.
 */
import { parseArgs } from 'node:util';
import { startStack, type StackOptions } from './stack.js';

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got "${v}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      's3-port': { type: 'string' },
      fixture: { type: 'string', default: 'sample' },
      'synapse-latency-ms': { type: 'string' },
      's3-latency-ms': { type: 'string' },
      'sts-lifetime': { type: 'string' },
      'url-lifetime': { type: 'string' },
      'page-size': { type: 'string' },
      throttle: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write('usage: npm run dev-server -- [--port N] [--s3-port N] [--fixture sample|empty] [--synapse-latency-ms N] ' +
      '[--s3-latency-ms N] [--sts-lifetime S] [--url-lifetime S] [--page-size N] [--throttle]\n');
    return;
  }
  if (values.fixture !== 'sample' && values.fixture !== 'empty') throw new Error('--fixture must be "sample" or "empty"');
  const opts: StackOptions = { fixture: values.fixture, throttle: values.throttle };
  const set = <K extends keyof StackOptions>(k: K, v: StackOptions[K] | undefined): void => { if (v !== undefined) opts[k] = v; };
  set('port', num('port', values.port));
  set('s3Port', num('s3-port', values['s3-port']));
  set('synapseLatencyMs', num('synapse-latency-ms', values['synapse-latency-ms']));
  set('s3LatencyMs', num('s3-latency-ms', values['s3-latency-ms']));
  set('stsLifetimeSec', num('sts-lifetime', values['sts-lifetime']));
  set('presignedUrlLifetimeSec', num('url-lifetime', values['url-lifetime']));
  set('childrenPageSize', num('page-size', values['page-size']));

  const stack = await startStack(opts);
  const info = {
    endpoint: stack.endpoint,
    s3Endpoint: stack.s3Endpoint,
    authToken: stack.authToken,
    userName: stack.userName,
    s3AccessKeyId: stack.s3AccessKeyId,
    s3SecretAccessKey: stack.s3SecretAccessKey,
    secondAuthToken: stack.secondAuthToken,
    projectId: stack.sample?.projectId ?? null,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);
  process.stderr.write(`Synapse API: ${stack.endpoint}/repo/v1 (also /file/v1, /auth/v1; test knobs under /_dev)\n`);
  process.stderr.write(`S3 (STS gate): ${stack.s3Endpoint}  buckets: ${stack.managedBucket}, ${stack.externalBucket}\n`);
  process.stderr.write(`User: ${stack.userName} (token above); collaborator: ${stack.secondUserName}\n`);
  if (stack.sample) process.stderr.write(`Sample project: ${stack.sample.projectId} "Demo Project"\n`);
  process.stderr.write('Ctrl-C to stop.\n');

  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${sig}: shutting down\n`);
    stack.close().then(() => process.exit(0), (e: unknown) => { process.stderr.write(`close failed: ${String(e)}\n`); process.exit(1); });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  process.stderr.write(`dev-server: ${(e as Error).message ?? String(e)}\n`);
  process.exit(1);
});
