// IOTLB lookup cost: one lookup per bench call, cycling over 256 cached pages
// so no single entry stays hot in a register. Run:
//   deno bench -A bench/tlb_bench.ts
import { Tlb } from "../core/tlb.ts";

const PAGES = 256;
const K4 = 0x1000;
const M2 = 0x20_0000;
const G1 = 0x4000_0000;

/** A Samsung-v2-shaped TLB (64 sets x 8 ways) holding PAGES 4 KiB pages of context 1. */
function filled4k(replacement: "lru" | "round-robin" | "random"): Tlb {
  const tlb = new Tlb({ sets: 64, ways: 8, replacement });
  for (let i = 0; i < PAGES; i++) {
    tlb.insert(1, 0x1_0000_0000 + i * K4, K4, 0x8000_0000 + i * K4, 3);
  }
  return tlb;
}

const lru = filled4k("lru");
const rr = filled4k("round-robin");
const rnd = filled4k("random");

// Three page sizes live; the lookups below hit the 4 KiB entries, so the
// probe order matters (most recently hit size first).
const mixed = filled4k("lru");
mixed.insert(1, 0x4000_0000, G1, 0x1_0000_0000, 3);
mixed.insert(1, 0x20_0000, M2, 0x9000_0000, 3);

const none = new Tlb({ sets: 0, ways: 0 });

let i = 0;
let sink = 0;
function nextIova(): number {
  i = (i + 1) & (PAGES - 1);
  return 0x1_0000_0000 + i * K4 + 0x123;
}

Deno.bench({
  name: "hit, 4K pages, LRU",
  group: "tlb lookup",
  baseline: true,
  fn() {
    sink += lru.lookup(1, nextIova());
  },
});

Deno.bench({
  name: "hit, 4K pages, round-robin",
  group: "tlb lookup",
  fn() {
    sink += rr.lookup(1, nextIova());
  },
});

Deno.bench({
  name: "hit, 4K pages, random",
  group: "tlb lookup",
  fn() {
    sink += rnd.lookup(1, nextIova());
  },
});

Deno.bench({
  name: "hit, 4K/2M/1G live",
  group: "tlb lookup",
  fn() {
    sink += mixed.lookup(1, nextIova());
  },
});

Deno.bench({
  name: "miss, other context",
  group: "tlb lookup",
  fn() {
    sink += lru.lookup(2, nextIova());
  },
});

Deno.bench({
  name: "miss, 3 sizes probed",
  group: "tlb lookup",
  fn() {
    sink += mixed.lookup(2, nextIova());
  },
});

Deno.bench({
  name: "miss, TLB disabled (capacity 0)",
  group: "tlb lookup",
  fn() {
    sink += none.lookup(1, nextIova());
  },
});

// The same, 1000 lookups per call: divide time/iter by 1000 for ns per
// lookup without the bench harness's own per-call cost.
const BATCH = 1000;
Deno.bench({
  name: "1000 hits, 4K pages, LRU",
  group: "tlb lookup x1000",
  baseline: true,
  fn() {
    let s = 0;
    for (let n = 0; n < BATCH; n++) s += lru.lookup(1, nextIova());
    sink += s;
  },
});

Deno.bench({
  name: "1000 hits, 4K/2M/1G live",
  group: "tlb lookup x1000",
  fn() {
    let s = 0;
    for (let n = 0; n < BATCH; n++) s += mixed.lookup(1, nextIova());
    sink += s;
  },
});

Deno.bench({
  name: "1000 misses, other context",
  group: "tlb lookup x1000",
  fn() {
    let s = 0;
    for (let n = 0; n < BATCH; n++) s += lru.lookup(2, nextIova());
    sink += s;
  },
});

Deno.bench({
  name: "1000 address computations only (loop cost)",
  group: "tlb lookup x1000",
  fn() {
    let s = 0;
    for (let n = 0; n < BATCH; n++) s += nextIova();
    sink += s;
  },
});

// Refill a full set: every insert evicts a victim.
const churn = new Tlb({ sets: 64, ways: 8, replacement: "lru" });
let j = 0;
Deno.bench({
  name: "insert with eviction, LRU",
  group: "tlb insert",
  baseline: true,
  fn() {
    j = (j + 1) % 4096;
    churn.insert(1, j * K4, K4, 0x8000_0000 + j * K4, 3);
  },
});

const churnRr = new Tlb({ sets: 64, ways: 8, replacement: "round-robin" });
Deno.bench({
  name: "insert with eviction, round-robin",
  group: "tlb insert",
  fn() {
    j = (j + 1) % 4096;
    churnRr.insert(1, j * K4, K4, 0x8000_0000 + j * K4, 3);
  },
});

// A lookup that misses, then the fill a walk would make, in a full TLB:
// what every IOTLB miss costs besides the walk. Pages advance by an odd
// stride over 65,536 pages, so every lookup misses and every fill evicts.
// 1000 per call: divide time/iter by 1000.
const MISS_PAGES = 65_536;
function missFill(
  name: string,
  tlb: Tlb,
  baseline = false,
): void {
  let k = 0;
  Deno.bench({
    name,
    group: "tlb miss + fill x1000",
    baseline,
    fn() {
      let s = 0;
      for (let n = 0; n < BATCH; n++) {
        k = (k + 4099) & (MISS_PAGES - 1);
        const iova = 0x1000_0000 + k * K4 + 8;
        const pa = tlb.lookup(1, iova);
        if (pa < 0) tlb.insert(1, iova, K4, 0x8000_0000 + (k & 127) * K4, 3);
        else s += pa;
      }
      sink += s;
    },
  });
}

missFill(
  "1000 misses + fills, 64x8 LRU (Samsung v2)",
  new Tlb({ sets: 64, ways: 8, replacement: "lru" }),
  true,
);
missFill(
  "1000 misses + fills, 16x4 LRU (Samsung v3+)",
  new Tlb({ sets: 16, ways: 4, replacement: "lru" }),
);
missFill(
  "1000 misses + fills, 512x4 round-robin (generic)",
  new Tlb({ sets: 512, ways: 4, replacement: "round-robin" }),
);
missFill(
  "1000 misses + fills, 64x8 random",
  new Tlb({ sets: 64, ways: 8, replacement: "random" }),
);

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink); // keep the lookups observable
});
