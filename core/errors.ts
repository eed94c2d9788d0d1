/**
 * The one error type every part of iommukit throws, and its stable kinds.
 *
 * @module
 */

/**
 * Stable, errno-style classification of an {@linkcode IommuError}.
 *
 * - `EINVAL`: an argument is malformed (not an integer, unaligned, unknown flag).
 * - `ERANGE`: a value or range lies outside what the target can address.
 * - `EEXIST`: something is already there (overlapping map, duplicate plugin).
 * - `ENOENT`: the named thing does not exist (no mapping, unknown domain).
 * - `ENOMEM`: an allocation failed (frames, page tables, IOVA space).
 * - `EBUSY`: the target is in use (domain still attached, unit blocked).
 * - `EFAULT`: a DMA access faulted in the IOMMU.
 * - `ENODEV`: no device or plugin answers (unknown compatible, unprobed unit).
 * - `EPERM`: the operation is not allowed in the current state.
 * - `ENOSPC`: a non-memory resource is exhausted (stream IDs, contexts, queues).
 * - `EOPNOTSUPP`: the plugin or unit does not implement the operation.
 * - `EIO`: a malformed external input (device tree, wire request) could not be read.
 */
export type IommuErrorKind =
  | "EINVAL"
  | "ERANGE"
  | "EEXIST"
  | "ENOENT"
  | "ENOMEM"
  | "EBUSY"
  | "EFAULT"
  | "ENODEV"
  | "EPERM"
  | "ENOSPC"
  | "EOPNOTSUPP"
  | "EIO";

/** Every {@linkcode IommuErrorKind}, in a stable order (useful for tables and tests). */
export const IOMMU_ERROR_KINDS: readonly IommuErrorKind[] = [
  "EINVAL",
  "ERANGE",
  "EEXIST",
  "ENOENT",
  "ENOMEM",
  "EBUSY",
  "EFAULT",
  "ENODEV",
  "EPERM",
  "ENOSPC",
  "EOPNOTSUPP",
  "EIO",
];

/**
 * The error thrown by every iommukit API on bad input or a refused operation.
 * A throwing call has no side effect: the state is exactly as before the call.
 *
 * @example Catching by kind
 * ```ts
 * import { IommuError } from "@iommukit/iommukit/core";
 * try {
 *   throw new IommuError("EINVAL", "IOVA 0x1001 is not aligned to 4096 bytes");
 * } catch (e) {
 *   if (!(e instanceof IommuError) || e.kind !== "EINVAL") throw e;
 * }
 * ```
 */
export class IommuError extends Error {
  /** The stable classification; switch on this, never on the message. */
  readonly kind: IommuErrorKind;
  /** Extra structured detail (for example the fault record of an `EFAULT`). */
  readonly detail: unknown;

  /**
   * Create an error of the given kind.
   *
   * @param kind The stable classification.
   * @param message A sentence naming the offending value.
   * @param options `cause` is passed to `Error`; `detail` is kept as {@linkcode IommuError.detail}.
   */
  constructor(
    kind: IommuErrorKind,
    message: string,
    options: { cause?: unknown; detail?: unknown } = {},
  ) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "IommuError";
    this.kind = kind;
    this.detail = options.detail;
  }
}

/**
 * True when `e` is an {@linkcode IommuError}, optionally of the given kind.
 *
 * @param e Anything caught.
 * @param kind When given, the kind it must have.
 * @returns Whether `e` is such an error.
 */
export function isIommuError(
  e: unknown,
  kind?: IommuErrorKind,
): e is IommuError {
  return e instanceof IommuError && (kind === undefined || e.kind === kind);
}
