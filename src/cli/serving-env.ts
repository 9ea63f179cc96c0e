/**
 * The environment of the process that serves a mount (background mode's re-executed child).
 *
 * glibc ≥ 2.35 can back large malloc'd regions with transparent huge pages
 * (`glibc.malloc.hugetlb=1`: madvise(MADV_HUGEPAGE) on its mmap'd chunks). The block cache's
 * buffers are 64 MiB slabs (buffer-pool.ts), so with it the first write of a cold cache faults
 * in 2 MiB pages instead of 4 KiB ones — on the VMs we measured, first-touch page faults were the
 * largest cost of a cold 1 GiB read (bench/README.md). Tunables are read once at process start,
 * hence the environment of the child, not a call. Other libcs ignore the variable, as does an
 * older glibc; a user's own GLIBC_TUNABLES is kept, and one that already sets hugetlb wins.
 */
const HUGE_PAGE_MALLOC = 'glibc.malloc.hugetlb=1';

export function servingProcessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const current = env['GLIBC_TUNABLES'] ?? '';
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(current)) return env;
  return { ...env, GLIBC_TUNABLES: current ? `${current}:${HUGE_PAGE_MALLOC}` : HUGE_PAGE_MALLOC };
}
