/**
 * startStack(): the single entry point tests, the demo and benches use. Starts the local S3
 * (s3rver behind the STS gate) and the Synapse-compatible server on loopback, creates two users
 * (user1 owns fixtures; user2 is a collaborator with nothing unless granted), optionally loads
 * the 'sample' fixture, and returns endpoints, tokens, admin S3 keys, a Seeder and DevControls.
 * Buckets: `synapse-managed` plays Synapse's own bucket (storage location 1), `lab-external` a
 * lab's bucket for external storage locations.
 */
import { randomBytes } from 'node:crypto';
import { applyConfig, DEFAULT_CONFIG, type DevConfig, type StackOptions } from './config.js';
import { Faults, type FaultInput, type FaultRule } from './faults.js';
import { S3Backend } from './s3-backend.js';
import { createSeeder, type Seeder } from './seeder.js';
import { State } from './state.js';
import { Stats } from './stats.js';
import { SynapseServer } from './synapse-server.js';
import { sampleFixture, type SampleLayout } from './fixtures.js';

export type { StackOptions, DevConfig } from './config.js';
export type { Seeder, SeedVersion, UserRef } from './seeder.js';
export type { FaultInput, FaultRule } from './faults.js';
export type { SampleLayout } from './fixtures.js';
export { sampleFixture, deterministicBytes, READS_BIN_SIZE } from './fixtures.js';

export const MANAGED_BUCKET = 'synapse-managed';
export const EXTERNAL_BUCKET = 'lab-external';
export const USER1 = { id: '3421001', userName: 'demo-user', firstName: 'Demo', lastName: 'User', email: 'demo-user@example.org' };
export const USER2 = { id: '3421002', userName: 'collaborator', firstName: 'Col', lastName: 'Laborator', email: 'collaborator@example.org' };

export interface StatsSnapshot {
  synapse: { requests: number; byRoute: Record<string, number>; throttled: number };
  s3: { requests: number; bytesOut: number; bytesIn: number; unsignedPayloadPuts: number; completeSeconds: number };
  sts: { issued: number; byUser: Record<string, number> };
}

export interface DevControls {
  setConfig(partial: Partial<DevConfig>): DevConfig;
  addFault(rule: FaultInput): FaultRule;
  clearFaults(): void;
  stats(): StatsSnapshot;
  /**
   * Test-only read-out: every STS credential set issued so far (GET /entity/{id}/sts), so a
   * test can check the mount never writes one to its log.
   */
  stsCredentials(): Array<{ accessKeyId: string; secretAccessKey: string; sessionToken: string }>;
}

export interface Stack {
  endpoint: string;
  s3Endpoint: string;
  authToken: string; userName: string; userId: string;
  secondAuthToken: string; secondUserName: string; secondUserId: string;
  s3AccessKeyId: string; s3SecretAccessKey: string;
  managedBucket: string;
  externalBucket: string;
  seed: Seeder;
  dev: DevControls;
  /** the layout when started with fixture 'sample' */
  sample?: SampleLayout;
  close(): Promise<void>;
}

const token = (): string => randomBytes(24).toString('base64url');

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const config: DevConfig = { ...DEFAULT_CONFIG };
  const knobs: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_CONFIG) as Array<keyof DevConfig>) if (opts[k] !== undefined) knobs[k] = opts[k];
  const err = applyConfig(config, knobs);
  if (err) throw new Error(err);
  const faults = new Faults();
  const stats = new Stats();
  const s3 = await S3Backend.start({
    s3Port: opts.s3Port ?? 0, buckets: [MANAGED_BUCKET, EXTERNAL_BUCKET], config, faults, stats,
    ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
  });
  let server: SynapseServer | undefined;
  try {
    const state = new State(MANAGED_BUCKET);
    const user1 = state.addUser({ ...USER1, token: token() });
    const user2 = state.addUser({ ...USER2, token: token() });
    server = new SynapseServer({ port: opts.port ?? 0, state, config, faults, stats, s3 });
    const endpoint = await server.start();
    const seed = createSeeder(state, s3, { user1, user2 }, EXTERNAL_BUCKET);
    const sample = opts.fixture === 'sample' ? await sampleFixture(seed) : undefined;
    const srv = server;
    let closed = false;
    const stack: Stack = {
      endpoint,
      s3Endpoint: s3.endpoint,
      authToken: user1.token, userName: user1.userName, userId: user1.id,
      secondAuthToken: user2.token, secondUserName: user2.userName, secondUserId: user2.id,
      s3AccessKeyId: s3.admin.accessKeyId, s3SecretAccessKey: s3.admin.secretAccessKey,
      managedBucket: MANAGED_BUCKET,
      externalBucket: EXTERNAL_BUCKET,
      seed,
      dev: {
        setConfig(partial) {
          const e = applyConfig(config, partial as Record<string, unknown>);
          if (e) throw new Error(e);
          return { ...config };
        },
        addFault(rule) {
          const r = faults.add(rule);
          if (typeof r === 'string') throw new Error(r);
          return r;
        },
        clearFaults() { faults.clear(); },
        stats() { return stats.snapshot() as StatsSnapshot; },
        stsCredentials() {
          return [...s3.gate.sessions.values()].map((x) => ({
            accessKeyId: x.accessKeyId, secretAccessKey: x.secretAccessKey, sessionToken: x.sessionToken,
          }));
        },
      },
      async close() {
        if (closed) return;
        closed = true;
        await srv.close();
        await s3.close();
      },
    };
    if (sample) stack.sample = sample;
    return stack;
  } catch (e) {
    await server?.close();
    await s3.close();
    throw e;
  }
}
