/**
 * The running kernel's version, for behaviour that depends on a kernel feature (page-cache-bypass.ts)
 * and for tests whose expectation is one.
 */
import os from 'node:os';

/** Is the kernel at least `major.minor`? An unparseable release counts as older. */
export function kernelAtLeast(major: number, minor: number, release: string = os.release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}
