/**
 * Public option, attribute and statistics types of the DMA mapper.
 *
 * @module
 */
import type { DmaBuffer } from "./dma_buffer.ts";
import type { DmaDebugOptions } from "./debug.ts";
import type { IovaStats } from "./iova_allocator.ts";

/** When unmapped IOVAs become unreachable: at once, or after a batched flush. */
export type DmaInvalidationPolicy = "strict" | "lazy";

/** Options of {@linkcode createDmaMapper}. */
export interface DmaMapperOptions {
  /** `"strict"` (default): unmap invalidates the IOTLBs before returning; `"lazy"`: a flush queue. */
  policy?: DmaInvalidationPolicy;
  /** Lazy mode: queued unmaps that force a flush (default 256). */
  flushQueueSize?: number;
  /** Lazy mode: simulated milliseconds from the first queued unmap to the timer flush (default 10). */
  flushTimeoutMs?: number;
  /** Longest DMA segment the master accepts, in bytes (default 64 KiB). */
  maxSegmentSize?: number;
  /** DMA segments never cross a multiple of this many bytes (a power of two; default none). */
  segmentBoundary?: number;
  /**
   * DMA-API debug checks: true (default, mode `"throw"`), false, or options
   * (an object whose `ignore` lists report kinds only and whose `stacks` and
   * `ownership` are booleans; anything else is `EINVAL` from
   * {@linkcode createDmaMapper}).
   */
  debug?: boolean | DmaDebugOptions;
  /** No-IOMMU masters: bytes of the bounce pool below the DMA mask (default 256 KiB). */
  bouncePoolSize?: number;
  /**
   * Watch the master's ports and count DMA accesses that still reach
   * unmapped IOVAs (`stats().staleAccesses`). Costs a lookup per device
   * access; default on in lazy mode, off in strict mode (turn it on to
   * prove a strict window is zero).
   */
  staleWindow?: boolean;
}

/** Attributes of one map or unmap call. */
export interface DmaAttrs {
  /**
   * Skip the CPU cache maintenance (the caller syncs explicitly); also
   * exempts this mapping's own cache-line overlap check (its lines are
   * still tracked, so a later mapping without the attribute that shares
   * them is reported, as the kernel's dma-debug does). A bounce slot is still filled with the
   * buffer's CPU view at map time (it must never hand an earlier mapping's
   * bytes back); at unmap the copy back into the buffer is skipped.
   */
  skipCpuSync?: boolean;
  /**
   * Promise that the CPU does not write the buffer's cache lines while it is
   * mapped, so sharing lines with other mappings is safe (exempts the
   * cache-line overlap check; the shared-buffer attachments use it).
   */
  cpuCacheClean?: boolean;
}

/** A coherent allocation: CPU buffer and device address of the same memory. */
export interface DmaCoherent {
  /** The CPU side (uncached: CPU accesses bypass the cache). */
  readonly cpu: DmaBuffer;
  /** The device address, in bytes. */
  readonly dmaAddr: number;
  /** Bytes requested. */
  readonly size: number;
}

/** Counters and state of a mapper, as a plain object. */
export interface DmaMapperStats {
  /** Translated by an IOMMU domain, or direct. */
  mode: "iommu" | "direct";
  /** Invalidation policy. */
  policy: DmaInvalidationPolicy;
  /** Mappings and allocations live now. */
  liveMappings: number;
  /** Streaming single mappings made. */
  singleMaps: number;
  /** Scatter-gather lists mapped. */
  sgMaps: number;
  /** Coherent allocations made. */
  coherentAllocs: number;
  /** Mappings undone (unmap or free). */
  unmaps: number;
  /** Sync calls. */
  syncs: number;
  /** Buffers (or sg segments) that went through the bounce pool. */
  bounces: number;
  /** Bytes copied to or from bounce slots. */
  bounceBytes: number;
  /** Lazy mode: full IOTLB flushes done. */
  flushes: number;
  /** Lazy mode: unmaps queued and not yet flushed. */
  pendingUnmaps: number;
  /** Successful DMA accesses by this master to IOVAs that were unmapped (queued for flush, or not live at all); counted while `staleWindow` is on. */
  staleAccesses: number;
  /** Bytes those accesses touched in unmapped ranges. */
  staleBytes: number;
  /** Accesses to queued (unmapped, unflushed) IOVAs that faulted anyway. */
  staleFaults: number;
  /** IOVA allocator counters (IOMMU mode), or null. */
  iova: IovaStats | null;
}
