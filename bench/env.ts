/**
 * Imported first by run.ts (ESM evaluates imports in order): how the bench process — which also
 * serves S3 (s3rver behind the STS gate) and Synapse for both sides — is set up before anything
 * else runs.
 *
 * - The AWS SDK in the local stack warns on start that Node 20 leaves its support window in
 *   2027: noise in a benchmark's output.
 * - V8's incremental marking is off in this process only (not in the mount or the direct client,
 *   which are child processes with their own flags). Serving a GiB through s3rver and the gate
 *   allocates about 2 GiB of short-lived ArrayBuffers (fs read chunks, socket reads), and V8
 *   answers each ~64 MB of such "external memory" by starting an incremental mark. In roughly
 *   half the rounds this settled into a loop of about 30 mark-compacts a second on a 19 MB heap
 *   (`--trace-gc`: "external memory pressure", then "finalize incremental marking via task"),
 *   and the server's user CPU per GiB served went from 0.6 to 3.2 s — whichever side happened to
 *   be measured then read at 280–340 MiB/s instead of 500–800 (bench/README.md, "Caveats").
 *   Without incremental marking the same pressure gets one short full GC (a few ms on this small
 *   heap), and 8 of 8 rounds stayed in the good state. Only our stand-in for S3 changes;
 *   `BENCH_SERVER_INCREMENTAL_MARKING=1` restores V8's default for comparison.
 */
import v8 from 'node:v8';

process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
if (process.env['BENCH_SERVER_INCREMENTAL_MARKING'] !== '1') v8.setFlagsFromString('--no-incremental-marking');
export {};
