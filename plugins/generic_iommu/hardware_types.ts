/**
 * Public constants and types of the generic unit's hardware model: its
 * register window, default IOTLB shape, parameters, interrupt lines and
 * per-stream figures.
 *
 * @module
 */
import type { TlbOptions } from "../../core/mod.ts";
import type { LpaeStage } from "./lpae.ts";

/** Bytes of the register window. */
export const REGISTER_WINDOW = 0x1000;

/**
 * Default IOTLB shape: gem5's SMMUv3 main TLB (2048 entries, 4-way,
 * round-robin).
 */
export const DEFAULT_IOTLB: TlbOptions = {
  sets: 512,
  ways: 4,
  replacement: "round-robin",
};

/** Figures of one stream (see {@linkcode GenericIommuHardware.streamCounters}). */
export interface GenericStreamCounters {
  /** Accesses translated (or refused) while translation was enabled. */
  translations: number;
  /** Table walks (IOTLB misses). */
  walks: number;
  /** Faults. */
  faults: number;
}

/** Which interrupt line fired. */
export type GenericIrqLine = "event" | "gerror";

/** Called when the unit raises an interrupt. */
export type GenericIrqListener = (line: GenericIrqLine) => void;

/** Hardware parameters (fixed at probe). */
export interface GenericHardwareConfig {
  /** Unit name (faults carry it). */
  name: string;
  /** Stream IDs, a power of two. */
  streamIds: number;
  /** Largest IOVA width in bits a context may use. */
  inputBits: number;
  /** Output address width in bits. */
  outputBits: number;
  /** Descriptor stage the walker decodes (1 or 2). */
  stage: LpaeStage;
  /** IOTLB shape. */
  iotlb: TlbOptions;
  /** Walk-cache shapes for levels 0, 1, 2. */
  walkCache: readonly TlbOptions[];
  /**
   * Micro TLB entries per stream in front of the IOTLB: `true` (32, gem5's
   * size), `false` or 0 (none), or a power of two from 1 to 4096. The model
   * indexes them direct-mapped by the low bits of the 4 KiB page number
   * (gem5's is fully associative; see the module documentation of
   * `GenericIommuHardware`).
   */
  microTlb: boolean | number;
  /** log2 of command-queue entries (advertised in IDR1). */
  cmdqLog2: number;
  /** log2 of event-queue entries (advertised in IDR1). */
  evtqLog2: number;
}
