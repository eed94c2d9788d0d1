/**
 * The one place this plugin reaches the core's IOTLB model. `core/mod.ts`
 * does not re-export `core/tlb.ts` yet; when it does, this file becomes a
 * re-export from `../../core/mod.ts`.
 *
 * @module
 */
export {
  Tlb,
  type TlbCounters,
  type TlbOptions,
  type TlbReplacement,
} from "../../core/tlb.ts";
