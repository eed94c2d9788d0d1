/**
 * Releasing IOVA ranges: strict unmaps invalidate at once, lazy unmaps go
 * to the flush queue until one flush invalidates them all; the stale-window
 * observer counts device accesses that still reach unmapped IOVAs
 * (internal; not exported from mod.ts).
 *
 * @module
 */
import type { IommuFault, Port, PortObserver } from "../mod.ts";
import type { MapperState } from "./mapper_state.ts";

/**
 * Unmap an IOVA range and release it (strict), or queue it (lazy).
 *
 * @param st The mapper (IOMMU mode).
 * @param iova Range start, in bytes.
 * @param size Range bytes.
 */
export function unmapIova(st: MapperState, iova: number, size: number): void {
  const domain = st.domain!;
  const q = st.queue;
  if (q === null) {
    domain.unmap(iova, size);
    st.iova!.free(iova, size);
    return;
  }
  if (q.full) flushQueued(st);
  domain.unmapNoSync(iova, size, st.gather);
  q.push(iova, size);
}

/**
 * Invalidate every IOTLB once, free the emptied page tables, release the
 * queued IOVAs.
 *
 * @param st The mapper.
 * @returns Queued unmaps released.
 */
export function flushQueued(st: MapperState): number {
  const q = st.queue;
  if (q === null || (q.length === 0 && st.gather.isEmpty)) return 0;
  // One full flush, then the tables the lazy unmaps deferred are freed.
  st.domain!.flushAll(st.gather);
  const alloc = st.iova!;
  const n = q.drain((iova, size) => alloc.free(iova, size));
  st.s.flushes++;
  return n;
}

/**
 * The observer that counts successful accesses to unmapped IOVAs (the
 * lazy stale window).
 *
 * @param st The mapper (IOMMU mode).
 * @returns The observer to install on the master's ports.
 */
export function staleWindowObserver(st: MapperState): PortObserver {
  return (
    _port: Port,
    iova: number,
    length: number,
    _access: number,
    fault: IommuFault | null,
  ): void => {
    const q = st.queue;
    const pending = q === null ? 0 : q.overlap(iova, length);
    if (fault !== null) {
      if (pending > 0) st.s.staleFaults++;
      return;
    }
    if (pending > 0) {
      st.s.staleAccesses++;
      st.s.staleBytes += pending;
      return;
    }
    const a = st.iova!;
    if (
      a.find(iova) === undefined || a.find(iova + length - 1) === undefined
    ) {
      st.s.staleAccesses++;
      st.s.staleBytes += length;
    }
  };
}
