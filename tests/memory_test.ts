import {
  assert,
  assertEquals,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import fc from "fast-check";
import { IommuError, PhysicalMemory } from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;
const CHUNK = 64 * KiB;

function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}

Deno.test("constructor: base, size, end, frames; default base 0", () => {
  const ram = new PhysicalMemory({ size: 16 * MiB });
  assertEquals(ram.base, 0);
  assertEquals(ram.size, 16 * MiB);
  assertEquals(ram.end, 16 * MiB);
  assertEquals(ram.frames.base, 0);
  assertEquals(ram.frames.size, 16 * MiB);
  const hi = new PhysicalMemory({ base: 0x4000_0000, size: GiB });
  assertEquals(hi.end, 0x8000_0000);
  assertEquals(hi.stats(), { size: GiB, materializedBytes: 0 });
});

Deno.test("constructor errors: EINVAL for malformed or non-64 KiB values, ERANGE past 2^48", () => {
  expectError(() => new PhysicalMemory({ size: 0 }), "EINVAL", "memory size");
  expectError(() => new PhysicalMemory({ size: -CHUNK }), "EINVAL");
  expectError(() => new PhysicalMemory({ size: NaN }), "EINVAL", "NaN");
  expectError(() => new PhysicalMemory({ size: 1.5 * CHUNK }), "EINVAL");
  expectError(
    () => new PhysicalMemory({ size: CHUNK + 4096 }),
    "EINVAL",
    "0x11000",
    "64 KiB",
  );
  expectError(
    () => new PhysicalMemory({ base: 0x1000, size: CHUNK }),
    "EINVAL",
    "0x1000",
  );
  expectError(
    () => new PhysicalMemory({ base: -CHUNK, size: CHUNK }),
    "EINVAL",
    "memory base",
  );
  expectError(
    () => new PhysicalMemory({ base: 2 ** 48, size: CHUNK }),
    "ERANGE",
    "0x1000000000000",
  );
  // 2^48 bytes exactly at base 0 is allowed (sparse).
  assertEquals(new PhysicalMemory({ size: 2 ** 48 }).end, 2 ** 48);
});

Deno.test("sparse: untouched reads are zero and materialise nothing", () => {
  const ram = new PhysicalMemory({ base: 0x8000_0000, size: 4 * GiB });
  assertEquals(ram.read8(0x8000_0000), 0);
  assertEquals(ram.read32(0x9000_0000), 0);
  assertEquals(ram.read32(0x9000_0001), 0);
  assertEquals(ram.read64(ram.end - 8), 0n);
  assertEquals(
    ram.readBytes(0xa000_0000 - 10, 3 * CHUNK),
    new Uint8Array(3 * CHUNK),
  );
  const into = new Uint8Array(100).fill(0xee);
  ram.readInto(0x8000_0000 + 5, into);
  assertEquals(into, new Uint8Array(100));
  ram.fill(0x8000_0000, 4 * CHUNK, 0); // zero fill of untouched memory
  ram.write8(0xb000_0000, 0); // a write does materialise (even of zero)
  assertEquals(ram.stats().materializedBytes, CHUNK);
  assertEquals(ram.stats().size, 4 * GiB);
});

Deno.test("sparse: a write materialises exactly the chunks it touches", () => {
  const ram = new PhysicalMemory({ size: GiB });
  ram.write32(0x10_0000, 1);
  assertEquals(ram.stats().materializedBytes, CHUNK);
  ram.write32(0x10_0004, 2); // same chunk
  assertEquals(ram.stats().materializedBytes, CHUNK);
  ram.writeBytes(CHUNK * 10 - 2, new Uint8Array([1, 2, 3, 4])); // two chunks
  assertEquals(ram.stats().materializedBytes, 3 * CHUNK);
  ram.fill(CHUNK * 20, 3 * CHUNK, 0xff);
  assertEquals(ram.stats().materializedBytes, 6 * CHUNK);
});

Deno.test("read8/write8 round-trip; values outside -128..255 are refused, not wrapped", () => {
  const ram = new PhysicalMemory({ size: MiB });
  ram.write8(0, 0xab);
  ram.write8(2, -1);
  for (const v of [0x1ff, 256, -129, 0.5, NaN]) {
    expectError(() => ram.write8(1, v), "EINVAL", `write8 takes an 8-bit`);
  }
  expectError(() => ram.write8(1, 0x1ff), "EINVAL", "511");
  assertEquals(ram.read8(0), 0xab);
  assertEquals(ram.read8(1), 0, "a refused write8 wrote nothing");
  assertEquals(ram.read8(2), 0xff);
  assertEquals(ram.read8(3), 0);
  ram.write8(MiB - 1, 7);
  assertEquals(ram.read8(MiB - 1), 7);
});

Deno.test("u32 is little-endian, aligned and unaligned, also across a chunk boundary", () => {
  const ram = new PhysicalMemory({ base: 0x4000_0000, size: 16 * MiB });
  const b = 0x4000_0000;
  ram.write32(b, 0x11223344);
  assertEquals(ram.readBytes(b, 4), new Uint8Array([0x44, 0x33, 0x22, 0x11]));
  assertEquals(ram.read32(b), 0x11223344);
  // Unsigned result even with the top bit set; negative int32 values (what
  // `|` yields) store their two's complement; anything else is refused.
  ram.write32(b + 8, 0xdeadbeef);
  assertEquals(ram.read32(b + 8), 0xdeadbeef);
  ram.write32(b + 12, -1);
  assertEquals(ram.read32(b + 12), 0xffffffff);
  for (const at of [b + 16, b + 18]) { // aligned fast path and slow path
    for (const v of [2 ** 32 + 5, 2 ** 32, -(2 ** 31) - 1, 1.5, NaN]) {
      expectError(() => ram.write32(at, v), "EINVAL", "write32 takes a 32-bit");
    }
    // deno-lint-ignore no-explicit-any
    expectError(() => ram.write32(at, 5n as any), "EINVAL", "5n");
    assertEquals(ram.read32(at), 0, "a refused write32 wrote nothing");
  }
  expectError(() => ram.write32(b + 16, 2 ** 32 + 5), "EINVAL", "4294967301");
  // Unaligned write and read.
  ram.write32(b + 0x101, 0xa1b2c3d4);
  assertEquals(
    ram.readBytes(b + 0x100, 6),
    new Uint8Array([0, 0xd4, 0xc3, 0xb2, 0xa1, 0]),
  );
  assertEquals(ram.read32(b + 0x101), 0xa1b2c3d4);
  assertEquals(ram.read32(b + 0x100), 0xb2c3d400);
  // Unaligned across a 64 KiB chunk boundary.
  const edge = b + CHUNK - 2;
  ram.write32(edge, 0xcafef00d);
  assertEquals(ram.read32(edge), 0xcafef00d);
  assertEquals(ram.read8(edge), 0x0d);
  assertEquals(ram.read8(b + CHUNK + 1), 0xca);
  // Bytes written one by one read back as a word.
  for (let i = 0; i < 4; i++) ram.write8(b + 0x200 + i, 0x10 + i);
  assertEquals(ram.read32(b + 0x200), 0x13121110);
});

Deno.test("u64 is little-endian bigint, refused beyond 64 bits, unaligned and across chunks", () => {
  const ram = new PhysicalMemory({ size: MiB });
  ram.write64(0, 0x0102030405060708n);
  assertEquals(ram.readBytes(0, 8), new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1]));
  assertEquals(ram.read64(0), 0x0102030405060708n);
  assertEquals(ram.read32(0), 0x05060708);
  assertEquals(ram.read32(4), 0x01020304);
  ram.write64(16, 0xffff_ffff_ffff_ffffn);
  assertEquals(ram.read64(16), 0xffff_ffff_ffff_ffffn);
  ram.write64(24, -1n);
  assertEquals(ram.read64(24), 0xffff_ffff_ffff_ffffn);
  for (const v of [(1n << 64n) + 9n, -(1n << 63n) - 1n, -1, 5]) {
    // deno-lint-ignore no-explicit-any
    expectError(() => ram.write64(32, v as any), "EINVAL", "write64 takes");
  }
  assertEquals(ram.read64(32), 0n, "a refused write64 wrote nothing");
  // Bits above 2^53 survive (descriptors use them).
  ram.write64(40, 0x8000_0000_0000_0001n);
  assertEquals(ram.read64(40), 0x8000_0000_0000_0001n);
  for (const at of [3, CHUNK - 4, CHUNK - 3, CHUNK - 1]) {
    ram.write64(at, 0x1122334455667788n);
    assertEquals(ram.read64(at), 0x1122334455667788n, `at ${at}`);
    assertEquals(ram.read8(at), 0x88);
    assertEquals(ram.read8(at + 7), 0x11);
  }
});

Deno.test("readInto/readBytes/writeBytes cross several 64 KiB chunks", () => {
  const ram = new PhysicalMemory({ base: 0x1_0000_0000, size: 64 * MiB });
  const data = pattern(3 * CHUNK + 1000, 3);
  const at = ram.base + CHUNK - 123;
  ram.writeBytes(at, data);
  assertEquals(ram.readBytes(at, data.length), data);
  const into = new Uint8Array(data.length + 10);
  ram.readInto(at - 5, into);
  assertEquals(into.subarray(0, 5), new Uint8Array(5));
  assertEquals(into.subarray(5, 5 + data.length), data);
  assertEquals(into.subarray(5 + data.length), new Uint8Array(5));
  // Reading across a materialised chunk then an untouched one.
  ram.write8(ram.base + 10 * CHUNK - 1, 0x5a);
  assertEquals(
    ram.readBytes(ram.base + 10 * CHUNK - 2, 4),
    new Uint8Array([0, 0x5a, 0, 0]),
  );
  // Empty transfers are no-ops, even at a bad address.
  ram.writeBytes(0, new Uint8Array(0));
  ram.readInto(0, new Uint8Array(0));
  assertEquals(ram.readBytes(ram.base, 0).length, 0);
});

Deno.test("fill: byte values, zero fill of materialised memory, across chunks", () => {
  const ram = new PhysicalMemory({ size: 4 * MiB });
  ram.fill(CHUNK - 10, 20, 0xab);
  assertEquals(ram.read8(CHUNK - 11), 0);
  assertEquals(ram.read8(CHUNK - 10), 0xab);
  assertEquals(ram.read8(CHUNK + 9), 0xab);
  assertEquals(ram.read8(CHUNK + 10), 0);
  ram.fill(CHUNK - 5, 10); // default value 0 clears
  assertEquals(
    ram.readBytes(CHUNK - 10, 20),
    new Uint8Array([
      ...new Array(5).fill(0xab),
      ...new Array(10).fill(0),
      ...new Array(5).fill(0xab),
    ]),
  );
  ram.fill(0, 8, -1); // -1 is 0xff
  assertEquals(ram.read32(0), 0xffffffff);
  for (const v of [0x1ff, 256, 1.5, NaN]) {
    expectError(() => ram.fill(0, 8, v), "EINVAL", "fill takes an 8-bit");
  }
  assertEquals(ram.read32(0), 0xffffffff, "a refused fill wrote nothing");
  ram.fill(0, 8);
  assertEquals(ram.read64(0), 0n);
  expectError(() => ram.fill(4 * MiB - 4, 8, 1), "ERANGE", "0x3ffffc");
  assertEquals(ram.read32(4 * MiB - 4), 0, "failed fill wrote nothing");
});

Deno.test("view32 aliases RAM both ways and materialises its chunk", () => {
  const ram = new PhysicalMemory({ base: 0x4000_0000, size: 16 * MiB });
  const pa = 0x4000_0000 + 3 * CHUNK + 0x400;
  const v = ram.view32(pa, 1024);
  assertEquals(v.length, 256);
  assertEquals(ram.stats().materializedBytes, CHUNK);
  v[3] = 0x12345678;
  assertEquals(ram.read32(pa + 12), 0x12345678);
  ram.write32(pa + 1020, 0xfeedface);
  assertEquals(v[255], 0xfeedface);
  ram.writeBytes(pa + 4, new Uint8Array([1, 2, 3, 4]));
  assertEquals(v[1], 0x04030201);
  // A whole 64 KiB chunk can be viewed.
  const whole = ram.view32(0x4000_0000, CHUNK);
  assertEquals(whole.length, CHUNK / 4);
  // A view survives a frame being freed (memory is zeroed in place).
  const f = ram.frames.alloc(4096);
  const fv = ram.view32(f, 4096);
  fv[0] = 99;
  ram.frames.free(f);
  assertEquals(fv[0], 0);
  ram.write32(f, 7);
  assertEquals(fv[0], 7);
});

Deno.test("view32 errors: EINVAL unaligned or crossing 64 KiB, ERANGE outside RAM", () => {
  const ram = new PhysicalMemory({ base: 0x4000_0000, size: MiB });
  expectError(
    () => ram.view32(0x4000_0002, 16),
    "EINVAL",
    "0x40000002",
    "aligned",
  );
  expectError(() => ram.view32(0x4000_0000, 6), "EINVAL", "0x6");
  expectError(
    () => ram.view32(0x4000_0000 + CHUNK - 8, 16),
    "EINVAL",
    "0x4000fff8",
    "64 KiB",
  );
  expectError(() => ram.view32(0x3fff_fff0, 16), "ERANGE", "0x3ffffff0");
  expectError(() => ram.view32(0x4000_0000 + MiB - 8, 16), "ERANGE");
  expectError(() => ram.view32(0x4000_0000, 0), "EINVAL");
  assertEquals(
    ram.stats().materializedBytes,
    0,
    "failed views materialise nothing",
  );
});

Deno.test("every accessor rejects ranges outside RAM with ERANGE naming the address", () => {
  const ram = new PhysicalMemory({ base: 0x4000_0000, size: MiB });
  const below = 0x3fff_fffc;
  const top = 0x4000_0000 + MiB;
  const cases: [string, () => unknown][] = [
    ["read8 below", () => ram.read8(below)],
    ["read8 end", () => ram.read8(top)],
    ["write8 end", () => ram.write8(top, 1)],
    ["read32 below", () => ram.read32(below)],
    ["read32 straddling end", () => ram.read32(top - 2)],
    ["read32 end", () => ram.read32(top)],
    ["write32 end", () => ram.write32(top, 1)],
    ["write32 straddling end", () => ram.write32(top - 2, 1)],
    ["read64 straddling", () => ram.read64(top - 4)],
    ["write64 straddling", () => ram.write64(top - 4, 1n)],
    ["readBytes", () => ram.readBytes(top - 1, 2)],
    ["readInto", () => ram.readInto(below, new Uint8Array(8))],
    ["writeBytes", () => ram.writeBytes(top - 1, new Uint8Array(2))],
    ["fill", () => ram.fill(below, 8, 1)],
  ];
  for (const [name, fn] of cases) {
    const e = assertThrows(fn, IommuError, undefined, name);
    assertEquals(e.kind, "ERANGE", name);
    assert(
      e.message.includes("0x3ffffffc") || e.message.includes("0x400"),
      name,
    );
  }
  assertEquals(ram.stats().materializedBytes, 0, "nothing written");
  assertEquals(ram.read32(top - 4), 0);
});

Deno.test("malformed addresses and lengths are EINVAL, never truncated", () => {
  const ram = new PhysicalMemory({ size: MiB });
  ram.write32(4, 0x11111111);
  for (const bad of [4.5, 4.25, NaN, -4, Infinity, 2 ** 53 + 4]) {
    const text = String(bad);
    expectError(() => ram.read32(bad), "EINVAL", text);
    expectError(() => ram.write32(bad, 0x22222222), "EINVAL", text);
    expectError(() => ram.read8(bad), "EINVAL", text);
    expectError(() => ram.write8(bad, 1), "EINVAL", text);
    expectError(() => ram.read64(bad), "EINVAL", text);
    expectError(() => ram.write64(bad, 1n), "EINVAL", text);
    expectError(() => ram.readBytes(bad, 4), "EINVAL", text);
    expectError(() => ram.writeBytes(bad, new Uint8Array(4)), "EINVAL", text);
    expectError(() => ram.fill(bad, 4, 1), "EINVAL", text);
    expectError(() => ram.view32(bad, 4), "EINVAL", text);
  }
  assertEquals(ram.read32(4), 0x11111111, "nothing was written anywhere");
  assertEquals(ram.read32(0), 0);
  assertEquals(ram.read32(8), 0);
  for (const len of [-1, 1.5, NaN, 2 ** 53]) {
    expectError(() => ram.readBytes(0, len), "EINVAL", String(len));
    expectError(() => ram.fill(0, len, 1), "EINVAL", String(len));
  }
  expectError(() => ram.fill(0, 0, 1), "EINVAL", "0");
});

Deno.test("a 1 TiB RAM at base 0 is addressable to its last byte", () => {
  const ram = new PhysicalMemory({ size: TiB });
  assertEquals(ram.end, 2 ** 40);
  const top = TiB - 8;
  ram.write64(top, 0x0123456789abcdefn);
  assertEquals(ram.read64(top), 0x0123456789abcdefn);
  ram.write32(TiB - 4 - CHUNK * 7, 0xabcdef01);
  assertEquals(ram.read32(TiB - 4 - CHUNK * 7), 0xabcdef01);
  ram.write8(TiB - 1, 0x7f);
  assertEquals(ram.read8(TiB - 1), 0x7f);
  const data = pattern(2 * CHUNK + 3);
  ram.writeBytes(2 ** 39 + CHUNK - 1, data);
  assertEquals(ram.readBytes(2 ** 39 + CHUNK - 1, data.length), data);
  // Same offsets modulo 2^32 are distinct addresses.
  ram.write32(2 ** 32 + 0x100, 1);
  ram.write32(2 ** 33 + 0x100, 2);
  assertEquals(ram.read32(0x100), 0);
  assertEquals(ram.read32(2 ** 32 + 0x100), 1);
  assertEquals(ram.read32(2 ** 33 + 0x100), 2);
  expectError(() => ram.read8(TiB), "ERANGE", "0x10000000000");
  assert(ram.stats().materializedBytes <= 10 * CHUNK);
  // The frame allocator covers it too: naturally aligned blocks above 2^32.
  const big = ram.frames.alloc(GiB);
  assertEquals(big % GiB, 0);
  ram.frames.free(big);
});

Deno.test("contains() checks whole ranges and rejects malformed numbers", () => {
  const ram = new PhysicalMemory({ base: CHUNK, size: CHUNK });
  assert(ram.contains(CHUNK));
  assert(ram.contains(CHUNK, CHUNK));
  assert(ram.contains(2 * CHUNK - 1));
  assert(ram.contains(2 * CHUNK, 0));
  assert(!ram.contains(CHUNK - 1));
  assert(!ram.contains(2 * CHUNK));
  assert(!ram.contains(CHUNK, CHUNK + 1));
  assert(!ram.contains(CHUNK + 0.5));
  assert(!ram.contains(NaN));
  assert(!ram.contains(CHUNK, -1));
});

Deno.test("digest: equal for equal content, different after any byte change", () => {
  const a = new PhysicalMemory({ size: 16 * MiB });
  const b = new PhysicalMemory({ size: 16 * MiB });
  assertEquals(a.digest(), b.digest());
  a.writeBytes(0x12345, pattern(5000));
  b.writeBytes(0x12345, pattern(5000));
  assertEquals(a.digest(), b.digest());
  // Materialised zeros equal untouched memory.
  b.write32(8 * MiB, 0);
  b.fill(3 * MiB, 3 * CHUNK, 0xff);
  b.fill(3 * MiB, 3 * CHUNK, 0);
  assertEquals(a.digest(), b.digest());
  const before = a.digest();
  for (const at of [0, 1, 0x12345, 0x12345 + 4999, CHUNK - 1, 16 * MiB - 1]) {
    const old = a.read8(at);
    a.write8(at, old ^ 0x01);
    assertNotEquals(a.digest(), before, `flip at ${at}`);
    a.write8(at, old);
    assertEquals(a.digest(), before, `restore at ${at}`);
  }
  // The same value at different addresses differs.
  const c = new PhysicalMemory({ size: 16 * MiB });
  const d = new PhysicalMemory({ size: 16 * MiB });
  c.write32(0x100, 5);
  d.write32(0x104, 5);
  assertNotEquals(c.digest(), d.digest());
});

Deno.test("digest distinguishes addresses far apart in a large RAM", () => {
  const a = new PhysicalMemory({ size: TiB });
  const b = new PhysicalMemory({ size: TiB });
  // Offsets 2^34 and 2^42 apart, and chunk indices 2^18 apart.
  for (
    const [x, y] of [[0, 2 ** 34], [0x1000, 0x1000 + 2 ** 36], [4, 4 + 2 ** 39]]
  ) {
    const ma = new PhysicalMemory({ size: TiB });
    const mb = new PhysicalMemory({ size: TiB });
    ma.write32(x!, 0x5a5a5a5a);
    mb.write32(y!, 0x5a5a5a5a);
    assertNotEquals(ma.digest(), mb.digest(), `${x} vs ${y}`);
  }
  a.write32(TiB - 4, 1);
  b.write32(TiB - 4, 1);
  assertEquals(a.digest(), b.digest());
});

Deno.test("random writes read back as a byte-array model (property)", () => {
  const SIZE = 4 * CHUNK;
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({
            op: fc.constant("w8" as const),
            at: fc.integer({ min: 0, max: SIZE - 1 }),
            v: fc.integer({ min: 0, max: 255 }),
          }),
          fc.record({
            op: fc.constant("w32" as const),
            at: fc.integer({ min: 0, max: SIZE - 4 }),
            v: fc.integer({ min: 0, max: 0xffffffff }),
          }),
          fc.record({
            op: fc.constant("bytes" as const),
            at: fc.integer({ min: 0, max: SIZE - 300 }),
            v: fc.integer({ min: 1, max: 300 }),
          }),
        ),
        { maxLength: 40 },
      ),
      (ops) => {
        const ram = new PhysicalMemory({ base: CHUNK, size: SIZE });
        const model = new Uint8Array(SIZE);
        for (const { op, at, v } of ops) {
          if (op === "w8") {
            ram.write8(CHUNK + at, v);
            model[at] = v;
          } else if (op === "w32") {
            ram.write32(CHUNK + at, v);
            for (let i = 0; i < 4; i++) model[at + i] = (v >>> (8 * i)) & 0xff;
          } else {
            const data = pattern(v, at);
            ram.writeBytes(CHUNK + at, data);
            model.set(data, at);
          }
        }
        assertEquals(ram.readBytes(CHUNK, SIZE), model);
        const dv = new DataView(model.buffer);
        for (let at = 0; at + 4 <= SIZE; at += 4093) {
          assertEquals(ram.read32(CHUNK + at), dv.getUint32(at, true));
          assertEquals(
            ram.read64(CHUNK + at + 1 > CHUNK + SIZE - 8 ? CHUNK : CHUNK + at),
            dv.getBigUint64(at + 1 > SIZE - 8 ? 0 : at, true),
          );
        }
      },
    ),
    { numRuns: 60 },
  );
});
