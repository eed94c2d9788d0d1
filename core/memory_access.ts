/**
 * Unchecked copies into and out of simulated RAM, for the bus only: a port
 * has already proved the whole range lies in RAM, so checking it again on
 * every DMA piece would be wasted work. Not exported by core/mod.ts (not part
 * of the public API); `PhysicalMemory` fills these in when its class loads.
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import type { PhysicalMemory } from "./memory.ts";

/**
 * Copies that skip the range check. Callers MUST have checked that
 * `[pa, pa + length)` lies in RAM, `length > 0`, and that
 * `[from, from + length)` lies in the array.
 */
export interface RamAccess {
  /**
   * Copy `length` bytes of `src` from index `from` to RAM at `pa`.
   *
   * @param memory The RAM.
   * @param pa First physical byte (checked by the caller).
   * @param src Source bytes.
   * @param from First index in `src`.
   * @param length Bytes, at least one.
   */
  copyIn(
    memory: PhysicalMemory,
    pa: number,
    src: Uint8Array,
    from: number,
    length: number,
  ): void;
  /**
   * Copy `length` bytes of RAM at `pa` into `dst` from index `from`
   * (untouched RAM reads as zeros).
   *
   * @param memory The RAM.
   * @param pa First physical byte (checked by the caller).
   * @param dst Destination.
   * @param from First index in `dst`.
   * @param length Bytes, at least one.
   */
  copyOut(
    memory: PhysicalMemory,
    pa: number,
    dst: Uint8Array,
    from: number,
    length: number,
  ): void;
}

function notLoaded(): never {
  // Unreachable: a PhysicalMemory exists only once memory.ts has loaded.
  throw new IommuError("EIO", "core/memory.ts has not been loaded");
}

/** The unchecked copies; set by core/memory.ts when it loads. */
export const ramAccess: RamAccess = { copyIn: notLoaded, copyOut: notLoaded };
