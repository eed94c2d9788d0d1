import { assert, assertEquals, assertFalse, assertThrows } from "@std/assert";
import {
  IOMMU_ERROR_KINDS,
  IommuError,
  type IommuErrorKind,
  isIommuError,
} from "../core/mod.ts";

Deno.test("IommuError carries kind, message, name, detail and cause", () => {
  const cause = new Error("root");
  const detail = { iova: 0x1000 };
  const e = new IommuError("EFAULT", "DMA at 0x1000 faulted", {
    cause,
    detail,
  });
  assert(e instanceof Error);
  assert(e instanceof IommuError);
  assertEquals(e.kind, "EFAULT");
  assertEquals(e.name, "IommuError");
  assertEquals(e.message, "DMA at 0x1000 faulted");
  assertEquals(e.cause, cause);
  assertEquals(e.detail, detail);
  assert(typeof e.stack === "string");
});

Deno.test("IommuError without options has no cause and undefined detail", () => {
  const e = new IommuError("EINVAL", "bad");
  assertEquals(e.detail, undefined);
  assertFalse("cause" in e);
  const thrown = assertThrows(() => {
    throw e;
  }, IommuError);
  assertEquals(thrown.kind, "EINVAL");
});

Deno.test("IOMMU_ERROR_KINDS lists every documented kind once, in a stable order", () => {
  const expected: IommuErrorKind[] = [
    "EINVAL",
    "ERANGE",
    "EEXIST",
    "ENOENT",
    "ENOMEM",
    "EBUSY",
    "EFAULT",
    "ENODEV",
    "EPERM",
    "ENOSPC",
    "EOPNOTSUPP",
    "EIO",
  ];
  assertEquals([...IOMMU_ERROR_KINDS], expected);
  assertEquals(new Set(IOMMU_ERROR_KINDS).size, IOMMU_ERROR_KINDS.length);
});

Deno.test("isIommuError matches by type and optionally by kind", () => {
  for (const kind of IOMMU_ERROR_KINDS) {
    const e = new IommuError(kind, kind);
    assert(isIommuError(e));
    assert(isIommuError(e, kind));
    for (const other of IOMMU_ERROR_KINDS) {
      if (other !== kind) assertFalse(isIommuError(e, other));
    }
  }
  assertFalse(isIommuError(new Error("EINVAL")));
  assertFalse(isIommuError({ kind: "EINVAL", message: "duck" }));
  assertFalse(isIommuError(undefined));
  assertFalse(isIommuError(null, "EINVAL"));
});
