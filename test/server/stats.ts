/**
 * Cumulative counters served by GET /_dev/stats. Benches and tests read deltas, so nothing
 * here ever resets. Route keys are "METHOD /template" without the /repo/v1 or /file/v1 prefix.
 */
export class Stats {
  synapse = { requests: 0, byRoute: {} as Record<string, number>, throttled: 0 };
  /**
   * unsignedPayloadPuts: PUTs whose SigV4 payload hash was declared UNSIGNED-PAYLOAD (AwsObjectStore over HTTPS).
   * completeSeconds: time the gate and s3rver took to answer CompleteMultipartUpload, whatever
   * the outcome (s3rver copies every part into the object; real S3 does not) — bench diagnostics.
   */
  s3 = { requests: 0, bytesOut: 0, bytesIn: 0, unsignedPayloadPuts: 0, completeSeconds: 0 };
  sts = { issued: 0, byUser: {} as Record<string, number> };

  countRoute(key: string): void {
    this.synapse.byRoute[key] = (this.synapse.byRoute[key] ?? 0) + 1;
  }

  countSts(userId: string): void {
    this.sts.issued++;
    this.sts.byUser[userId] = (this.sts.byUser[userId] ?? 0) + 1;
  }

  snapshot(): unknown {
    return JSON.parse(JSON.stringify({ synapse: this.synapse, s3: this.s3, sts: this.sts })) as unknown;
  }
}
