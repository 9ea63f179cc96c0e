/**
 * SO_RCVLOWAT on the sockets S3 bodies arrive on (range-wire.ts): the kernel then reports such a
 * socket readable only once `bytes` are queued (or the peer closed it), so an 8 MiB body arrives
 * in a handful of big reads instead of one per segment the sender wrote.
 *
 * Why: a sender on the same host or LAN writes in ≈ 64 KiB pieces, and each woke the socket
 * thread: ≈ 12,000 wake-ups per GiB, each a trip through epoll, libuv and a JS callback. On the
 * bench machine (bench/README.md, session 32) a cold 1 GiB read cost the mount's main thread
 * 0.50–0.55 CPU-s in 11,800–12,600 wake-ups; with a 1 MiB low-water mark, 0.35 s in 1,700–1,800
 * (the direct client's, with the same code: 0.48 → 0.31 s) — over plain HTTP. Over TLS the kernel
 * wakes the thread as seldom, but Node's TLS layer still calls back once per 16 KiB record.
 * Linux raises the socket's receive buffer to twice the mark (4.18) and wakes the reader anyway
 * under memory pressure (5.7) or when big buffers fill it before the mark (5.10): only from 5.10
 * on can a mark not stall a sender, so older kernels get none.
 *
 * The one way it could stall: a mark above what is still to come. For plain HTTP the socket then
 * holds exactly the body's remaining bytes (no pipelining: one request at a time per socket), so
 * the mark never exceeds them. Over TLS the socket carries records, and Node's TLS layer may
 * already hold part of one (at most 16 KiB + overhead) that the body's remaining count includes:
 * the mark stays TLS_MARGIN below the remaining bytes. Once it would be 1 or less, it is 1 (the
 * kernel's default), which is what a connection has between answers. A mark lower than the rule
 * allows is always safe (only more wake-ups), so near a body's end it is lowered LOWER_STEP at a
 * time rather than at every read (over TLS every read is one record: a call per 16 KiB).
 *
 * On a new connection Linux also clamps the receive window to the mark (tcp_set_rcvlowat); the
 * receive-buffer autotuning (tcp_rcv_space_adjust) raises that clamp as the buffer grows, so a
 * long link starts at a 1 MiB window rather than the default 64 KiB and grows from there. Not
 * measured on a long link (the bench is loopback; this machine has no netem).
 *
 * The caller — range-wire.ts, one connection at a time — must never read from a socket whose
 * mark it could not lower (it fails that GET as a reset instead).
 *
 * Needs the patched fuse-native addon (scripts/fix-fuse-native.mjs 12.); without it, or with
 * SYNAPSE_MOUNT_RCVLOWAT=0, sockets keep the default and everything works as before.
 */
import { kernelAtLeast } from '../kernel-version.js';
import { loadPatchedFunctions } from '../native-addon.js';

/** The mark while a body has at least this much (plus the TLS margin) to come. */
export const BODY_LOW_WATER_BYTES = 1024 * 1024;
/** Over TLS: below the remaining body bytes by more than one TLS record Node may hold already. */
export const TLS_MARGIN_BYTES = 64 * 1024;
/** How far below the allowed mark a mark that must come down is set: a few calls per body. */
export const LOWER_STEP_BYTES = 256 * 1024;

/** setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, bytes): 0, or -errno. */
export type SetLowWater = (fd: number, bytes: number) => number;

/** The addon's setter, or undefined (prebuild addon, an older patch, a kernel before 5.10, or turned off). */
export function lowWaterSetter(env: NodeJS.ProcessEnv = process.env, kernelOk = kernelAtLeast(5, 10)): SetLowWater | undefined {
  if (env['SYNAPSE_MOUNT_RCVLOWAT'] === '0' || !kernelOk) return undefined;
  return loadPatchedFunctions<{ synapse_rcvlowat: SetLowWater }>('synapse_rcvlowat')?.synapse_rcvlowat;
}

/** The highest safe mark for a body with `remaining` bytes still to read (1: the kernel's default, no mark). */
export function lowWaterFor(remaining: number, secure: boolean): number {
  const mark = Math.min(BODY_LOW_WATER_BYTES, remaining - (secure ? TLS_MARGIN_BYTES : 0));
  return mark > 1 ? mark : 1;
}

/**
 * The mark to set now, given the one set (`current`) and the bytes still to come: `current` when
 * it is still safe (undefined: nothing to do), else one LOWER_STEP under the highest safe mark.
 */
export function loweredMark(current: number, remaining: number, secure: boolean): number | undefined {
  if (current <= lowWaterFor(remaining, secure)) return undefined;
  return lowWaterFor(remaining - LOWER_STEP_BYTES, secure);
}
