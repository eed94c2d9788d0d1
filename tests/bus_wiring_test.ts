/** What a port accepts as a DMA buffer. */
import { assertEquals } from "@std/assert";
import { createSoc } from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";

const MB = 1 << 20;

Deno.test("Port.read / Port.write take only a Uint8Array and change nothing otherwise", () => {
  const soc = createSoc({ memory: { base: 0, size: MB } });
  const port = soc.addMaster({ name: "m", ports: [{}] }).port();
  soc.memory.writeBytes(0x1000, new Uint8Array([1, 2, 3, 4]));
  // deno-lint-ignore no-explicit-any
  const any = (v: unknown): any => v;
  const digest = soc.memory.digest();
  for (
    const bad of [
      new Uint16Array([0x1234, 0x5678]),
      "AB",
      [1, 2],
      new Int8Array(2),
      new DataView(new ArrayBuffer(2)),
    ]
  ) {
    expectError(() => port.write(0x2000, any(bad)), "EINVAL", "Uint8Array");
    expectError(
      () => port.writeBytes(0x2000, any(bad)),
      "EINVAL",
      "Uint8Array",
    );
  }
  assertEquals(soc.memory.digest(), digest);
  const u16 = new Uint16Array(2);
  expectError(() => port.read(0x1000, any(u16)), "EINVAL", "Uint8Array");
  assertEquals(u16, new Uint16Array(2));
  const arr = [9, 9];
  expectError(() => port.read(0x1000, any(arr)), "EINVAL", "Uint8Array");
  assertEquals(arr, [9, 9]);
  assertEquals(port.counters().accesses, 0);
  // A Uint8Array view at an offset, and a subclass, still work.
  const backing = new Uint8Array(8);
  const view = backing.subarray(2, 6);
  assertEquals(port.read(0x1000, view), null);
  assertEquals([...backing], [0, 0, 1, 2, 3, 4, 0, 0]);
  class Tagged extends Uint8Array {}
  assertEquals(port.write(0x3000, new Tagged([5, 6])), null);
  assertEquals(soc.memory.readBytes(0x3000, 2), new Uint8Array([5, 6]));
});
