/**
 * The host's cost of one dependent memory load by working-set size: a
 * pointer chase through a random cycle of 64-byte lines, each load's
 * address taken from the one before (so no two loads overlap). It is the
 * yardstick for the rows whose working set outgrows the caches, such as the
 * IOVA allocator at 1M live ranges (index 16 MiB, nodes about 100 MiB):
 * each cold line on a dependent path costs about what the 16-256 MiB rows
 * print. Not a Deno.bench file (no baseline to compare with); run:
 *
 *   npx -y deno@2.9.6 run bench/memory_latency.ts
 *
 * @module
 */

/** Working-set sizes to chase through, in MiB. */
const SIZES_MIB = [0.5, 4, 16, 64, 256];
/** Int32 slots per 64-byte line: one pointer per line. */
const LINE_SLOTS = 16;
/** Loads timed per size (after as many untimed ones to warm up). */
const LOADS = 2_000_000;

/** A random cyclic order of `lines` lines (xorshift, fixed seed). */
function cycle(lines: number): Int32Array {
  const order = new Int32Array(lines);
  for (let i = 0; i < lines; i++) order[i] = i;
  let seed = 0x2545f491;
  for (let i = lines - 1; i > 0; i--) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    const j = (seed >>> 0) % (i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Nanoseconds per dependent load over `mib` MiB. */
function chase(mib: number): number {
  const lines = Math.floor(mib * 1024 * 1024 / 64);
  const order = cycle(lines);
  const slots = new Int32Array(lines * LINE_SLOTS);
  for (let i = 0; i < lines; i++) {
    slots[order[i]! * LINE_SLOTS] = order[(i + 1) % lines]! * LINE_SLOTS;
  }
  let at = 0;
  for (let i = 0; i < LOADS; i++) at = slots[at]!;
  const t0 = performance.now();
  for (let i = 0; i < LOADS; i++) at = slots[at]!;
  const ns = (performance.now() - t0) * 1e6 / LOADS;
  // The chase's end, so that the loop cannot be dropped as dead code.
  if (at < 0) throw new Error("unreachable");
  return ns;
}

for (const mib of SIZES_MIB) {
  console.log(
    `${String(mib).padStart(5)} MiB: ${chase(mib).toFixed(1)} ns per load`,
  );
}
