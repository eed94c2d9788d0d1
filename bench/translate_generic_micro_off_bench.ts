// generic-iommu's translation with its micro TLBs off (every access probes
// the main IOTLB), in a file of its own: in the default configuration's
// file it would run after the micro TLB bench and be measured with
// `translate` compiled for that path (see translate_groups.ts). Run:
//   deno bench -A bench/translate_generic_micro_off_bench.ts
import { translateMicroOffGroup } from "./translate_groups.ts";

translateMicroOffGroup();
