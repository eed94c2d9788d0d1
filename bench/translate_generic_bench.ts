// Translation and DMA-write cost through generic-iommu (issue group 4), in
// a file of its own so that its call sites see one hardware type (see
// translate_groups.ts). Run:
//   deno bench -A bench/translate_generic_bench.ts
import { translateGroups } from "./translate_groups.ts";

translateGroups("generic");
