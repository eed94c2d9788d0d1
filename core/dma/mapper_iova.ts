/**
 * IOVA for one mapping of the DMA mapper (internal; not exported from
 * mod.ts).
 *
 * @module
 */
import { IommuError } from "../mod.ts";
import type { MapperState } from "./mapper_state.ts";

/**
 * Allocate `bytes` of IOVA below the master's DMA limit. A request larger
 * than the whole window is out of IOVA space like any other that does not
 * fit (the allocator's `ERANGE` becomes `ENOMEM`, as the kernel's IOVA
 * allocation fails), so the mapper's calls keep their documented kinds.
 *
 * @param st The mapper (with an IOMMU: `st.iova` set).
 * @param bytes Bytes to allocate, a positive safe integer.
 * @returns The first IOVA, in bytes.
 * @throws {IommuError} `ENOMEM` when no free range fits (the allocator's
 * message; for a request larger than the window, its `ERANGE` as the
 * cause).
 */
export function allocIova(st: MapperState, bytes: number): number {
  try {
    return st.iova!.alloc(bytes, st.dmaLimit);
  } catch (e) {
    if (e instanceof IommuError && e.kind === "ERANGE") {
      throw new IommuError(
        "ENOMEM",
        `${st.master.name}: no IOVA range of ${bytes} bytes can fit below its DMA limit (${e.message})`,
        { cause: e },
      );
    }
    throw e;
  }
}
