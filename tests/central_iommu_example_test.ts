import { assert } from "@std/assert";

Deno.test("examples/central_iommu.ts runs to the end", async () => {
  const log = console.log, table = console.table;
  const lines: string[] = [];
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  console.table = () => {};
  try {
    await import("../examples/central_iommu.ts");
  } finally {
    console.log = log;
    console.table = table;
  }
  assert(
    lines.some((l) => l.startsWith("unprotected masters: debug-dma")),
    lines.join("\n"),
  );
  assert(lines.some((l) => l.includes("RANGE (a mapping is never split)")));
  assert(lines.includes("virtio fault records: 1"));
  // Each master's access into the other's IOVA is refused by translation
  // (the example itself throws if either one gets through).
  assert(
    lines.includes(
      "nic -> gpu buffer: translation | gpu -> legacy buffer: translation",
    ),
    lines.join("\n"),
  );
});
