/**
 * Fault records: what a unit reports when a DMA access cannot be translated.
 *
 * @module
 */

/**
 * Why an access faulted.
 * - `translation`: no valid leaf for the IOVA.
 * - `permission`: the leaf forbids this access (read/write).
 * - `address-size`: the IOVA or the output address is wider than the unit allows.
 * - `bad-stream`: the stream ID is out of range for the unit.
 * - `bad-stream-entry`: the stream's configuration is invalid or aborting.
 * - `multi-hit`: more than one TLB entry matched.
 * - `bus-error`: the translated address is not RAM.
 * - `blocked`: the unit is blocked (for example after an unhandled fault).
 */
export type FaultReason =
  | "translation"
  | "permission"
  | "address-size"
  | "bad-stream"
  | "bad-stream-entry"
  | "multi-hit"
  | "bus-error"
  | "blocked";

/** One fault, as the core routes it to a domain's handler. */
export interface IommuFault {
  /** Name of the unit that faulted (or `"bus"` for untranslated accesses). */
  readonly unit: string;
  /** Stream ID of the requester (0 on per-device units). */
  readonly streamId: number;
  /** The faulting IOVA, in bytes. */
  readonly iova: number;
  /** What the device tried. */
  readonly access: "read" | "write";
  /** Why it failed. */
  readonly reason: FaultReason;
}

/**
 * A domain's fault handler. Return true when the fault was handled (the unit
 * may resume), false to let the unit treat it as unhandled.
 */
export type FaultHandler = (fault: IommuFault) => boolean;
