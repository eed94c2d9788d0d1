// Model-based check of mapSg: for random scatter-gather lists, limits and
// plugins, reading every DMA segment through the device in order yields
// exactly the concatenated bytes of the entries; segments respect the max
// size and the boundary; unmapping leaves no page-table leaf, IOVA or frame
// behind.
import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import { createDmaMapper, DMA_TO_DEVICE } from "../../core/dma/mod.ts";
import { dmaRig } from "../support/dma_rig.ts";

const REGION = 256 << 10;

Deno.test("mapSg: DMA segments carry exactly the entries' bytes", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("flat" as const, "direct" as const),
      fc.constantFrom(4096, 16384, 65536, 1 << 20),
      fc.constantFrom(8192, 65536, 2 ** 53, 2 ** 53),
      fc.array(
        fc.record({
          // Page-aligned starts and ends often, so merging is exercised.
          offset: fc.oneof(
            fc.integer({ min: 0, max: REGION / 4096 - 1 }).map((p) => p * 4096),
            fc.integer({ min: 0, max: REGION - 1 }),
          ),
          length: fc.oneof(
            fc.constantFrom(4096, 8192),
            fc.integer({ min: 1, max: 8192 }),
          ),
        }),
        { minLength: 1, maxLength: 24 },
      ),
      (kind, maxSeg, boundary, raw) => {
        const r = dmaRig(kind);
        const dma = createDmaMapper(r.soc, r.master, {
          maxSegmentSize: maxSeg,
          segmentBoundary: boundary,
          debug: { mode: "record" },
        });
        const mem = r.soc.memory;
        const base = mem.frames.alloc(REGION + 8192);
        const fill = new Uint8Array(REGION + 8192);
        for (let i = 0; i < fill.length; i++) fill[i] = (i * 131 + 7) & 0xff;
        mem.writeBytes(base, fill);
        // Without an IOMMU nothing can move an entry off a boundary: the
        // driver must not hand such entries (the debug check would say so).
        // With one, the entry keeps its offset in the page, so it fits a
        // boundary window only when offset + length does.
        const segs = raw.map((s) => {
          const pa = base + s.offset;
          const room = kind === "direct"
            ? boundary - (pa % boundary)
            : boundary - (pa % 4096);
          return { pa, length: Math.min(s.length, maxSeg, room) };
        });
        const live = mem.frames.liveBytes;
        const sg = dma.mapSg(segs, DMA_TO_DEVICE);
        assertEquals(dma.reports(), []);
        assert(sg.count >= 1 && sg.count <= segs.length);
        const total = segs.reduce((n, s) => n + s.length, 0);
        const want = new Uint8Array(total);
        let at = 0;
        for (const s of segs) {
          want.set(fill.subarray(s.pa - base, s.pa - base + s.length), at);
          at += s.length;
        }
        const got = new Uint8Array(total);
        at = 0;
        for (let i = 0; i < sg.count; i++) {
          const a = sg.dmaAddress[i]!;
          const n = sg.dmaLength[i]!;
          assert(n <= Math.max(maxSeg, ...segs.map((s) => s.length)));
          assertEquals(
            Math.floor(a / boundary),
            Math.floor((a + n - 1) / boundary),
            "segment crosses the boundary",
          );
          assert(at + n <= total, "DMA segments longer than the entries");
          r.master.port().read(a, got.subarray(at, at + n));
          at += n;
        }
        assertEquals(at, total);
        const bad = got.findIndex((v, i) => v !== want[i]);
        assertEquals(bad, -1, `first wrong byte at ${bad}`);
        dma.unmapSg(sg, DMA_TO_DEVICE);
        if (dma.domain !== null) {
          assertEquals(dma.domain.leaves(), []);
          assertEquals(dma.iova!.stats().liveRanges, 0);
        }
        assert(mem.frames.liveBytes <= live);
        dma.removeMaster();
      },
    ),
    { numRuns: 200, seed: 20261124 },
  );
});

// The IOMMU layout without a boundary, against the merge rules written out
// plainly: an entry joins the previous DMA segment when it starts on a page,
// the previous entry ended on one and the sum fits the max segment size.
// Lists often start with whole pages (the fast loop) and go on with others.
Deno.test("mapSg over an IOMMU: DMA segments are exactly the merge rules' segments", () => {
  const r = dmaRig("flat");
  const mem = r.soc.memory;
  const base = mem.frames.alloc(REGION + 8192);
  const page = fc.integer({ min: 0, max: REGION / 4096 - 1 }).map((p) => ({
    offset: p * 4096,
    length: 4096,
  }));
  const any = fc.record({
    offset: fc.integer({ min: 0, max: REGION - 1 }),
    length: fc.integer({ min: 1, max: 8192 }),
  });
  fc.assert(
    fc.property(
      fc.constantFrom(1, 100, 4096, 8192, 12288, 65536, 2 ** 32),
      fc.array(page, { maxLength: 40 }),
      fc.array(fc.oneof(page, any), { maxLength: 12 }),
      (maxSeg, pages, rest) => {
        const raw = [...pages, ...rest];
        if (raw.length === 0) return;
        const segs = raw.map((s) => ({
          pa: base + s.offset,
          length: s.length,
        }));
        const want: [number, number][] = [];
        let k = 0;
        let curLen = 0;
        for (const s of segs) {
          const off = s.pa % 4096;
          const at = k * 4096;
          const last = want[want.length - 1];
          if (
            last !== undefined && curLen !== 0 && off === 0 &&
            maxSeg - curLen >= s.length && last[0] + last[1] === at
          ) {
            last[1] += s.length;
            curLen += s.length;
          } else {
            want.push([at + off, s.length]);
            curLen = s.length;
          }
          if ((off + s.length) % 4096 !== 0) curLen = 0;
          k += Math.ceil((off + s.length) / 4096);
        }
        const dma = createDmaMapper(r.soc, r.master, {
          maxSegmentSize: maxSeg,
          debug: false,
        });
        const sg = dma.mapSg(segs, DMA_TO_DEVICE);
        assertEquals(sg.iovaSize, k * 4096);
        assertEquals(
          sg.dmaAddress.map((a, i) => [a - sg.iova, sg.dmaLength[i]!]),
          want,
        );
        dma.unmapSg(sg, DMA_TO_DEVICE);
        dma.removeMaster();
      },
    ),
    { numRuns: 300, seed: 20261124 },
  );
});
