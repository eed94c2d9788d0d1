/**
 * A small seeded pseudo-random generator (xorshift128+ on 32-bit halves,
 * seeded through splitmix32), so every workload is reproducible from its seed.
 *
 * @module
 */

/** A deterministic random source. */
export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  /**
   * A generator seeded with `seed`.
   *
   * @param seed Any integer (a fraction is truncated); the same seed gives
   * the same sequence. Distinct safe integers start from distinct states,
   * except that a seed in `(-2^32, 0)` equals the seed plus 2^32.
   */
  constructor(seed: number) {
    const t = Math.trunc(seed);
    let x = (t >>> 0) ^ 0x9e3779b9;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      return fmix(x);
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next() | 1;
    // The bits above 32 (zero for seeds below 2^32, whose sequences stay as
    // they were) go through an odd multiply and fmix, bijections keeping 0
    // at 0, into s1 (the first outputs come from it) and s2, so seeds that
    // differ only there start from different states.
    const h = fmix(Math.imul(Math.trunc(t / 0x100000000) >>> 0, 0x9e3779b9));
    this.#s1 = (this.#s1 ^ h) >>> 0;
    this.#s2 = (this.#s2 ^ fmix(h)) >>> 0;
  }

  /**
   * The next 32-bit unsigned value.
   * @returns An integer in `[0, 2^32)`.
   */
  u32(): number {
    // xoshiro128** step.
    const r = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return r;
  }

  /**
   * An integer in `[min, max]`.
   * @param min Lowest value.
   * @param max Highest value (inclusive).
   * @returns The value.
   */
  int(min: number, max: number): number {
    return min + Math.floor((this.u32() / 2 ** 32) * (max - min + 1));
  }

  /**
   * Fill `out` with random bytes.
   * @param out Destination.
   * @returns `out`.
   */
  bytes(out: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= out.length; i += 4) {
      const v = this.u32();
      out[i] = v;
      out[i + 1] = v >>> 8;
      out[i + 2] = v >>> 16;
      out[i + 3] = v >>> 24;
    }
    if (i < out.length) {
      const v = this.u32();
      for (let k = 0; i < out.length; i++, k++) out[i] = v >>> (8 * k);
    }
    return out;
  }
}

// A 32-bit finaliser (a bijection with fmix(0) = 0), as an unsigned value.
function fmix(z: number): number {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
