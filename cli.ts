/**
 * The iommukit command line. Run it with
 * `deno run -A jsr:@iommukit/iommukit/cli run --platform exynos4210`, or
 * import {@linkcode runCli} to drive it from code.
 *
 * @example
 * ```ts
 * import { memoryIo, runCli } from "./cli.ts";
 * const io = memoryIo();
 * if (await runCli(["platforms"], io) !== 0) throw new Error();
 * if (!io.out.join("").includes("exynos4210")) throw new Error();
 * ```
 *
 * @module
 */
import { runCli } from "./cli/mod.ts";

export * from "./cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
