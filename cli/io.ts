/**
 * What the command line touches outside itself, behind one interface so it
 * can run in-process (tests) or against the real terminal and files.
 *
 * @module
 */

/** Output streams, files, the clock. */
export interface CliIo {
  /** Write text to standard output (no newline added). */
  stdout(text: string): void;
  /** Write text to standard error (no newline added). */
  stderr(text: string): void;
  /**
   * Read a whole file.
   * @throws {Error} when it cannot be read.
   */
  readFile(path: string): Uint8Array;
  /**
   * Write a whole text file.
   * @throws {Error} when it cannot be written.
   */
  writeFile(path: string, text: string): void;
  /** Whether standard error is a terminal (progress lines go there). */
  stderrIsTerminal(): boolean;
  /** Milliseconds from an arbitrary origin. */
  now(): number;
  /**
   * Import a module (for `--plugin`).
   * @throws {Error} when it cannot be loaded.
   */
  importModule(path: string): Promise<Record<string, unknown>>;
}

const encoder = new TextEncoder();

function writeAll(w: { writeSync(p: Uint8Array): number }, text: string): void {
  let buf = encoder.encode(text);
  while (buf.length > 0) buf = buf.subarray(w.writeSync(buf));
}

/**
 * The real terminal and file system (needs `--allow-read`, `--allow-write`
 * for `--svg`).
 *
 * @returns The I/O.
 */
export function denoIo(): CliIo {
  return {
    stdout: (t) => writeAll(Deno.stdout, t),
    stderr: (t) => writeAll(Deno.stderr, t),
    readFile: (p) => Deno.readFileSync(p),
    writeFile: (p, t) => Deno.writeTextFileSync(p, t),
    stderrIsTerminal: () => Deno.stderr.isTerminal(),
    now: () => performance.now(),
    importModule: (p) => {
      const abs = p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
      // Escaped, so a path with "%", "?" or "#" names the file, not a
      // query or a fragment.
      const url = new URL("file:///");
      url.pathname = abs.replaceAll("%", "%25").replaceAll("?", "%3F")
        .replaceAll("#", "%23");
      return import(url.href);
    },
  };
}

/** Captured output of {@linkcode memoryIo}. */
export interface MemoryIo extends CliIo {
  /** Everything written to standard output. */
  readonly out: string[];
  /** Everything written to standard error. */
  readonly err: string[];
  /** Files written, by path. */
  readonly files: Map<string, string>;
}

/**
 * An in-memory I/O for tests and embedding: output is captured, files come
 * from `files` (a path not in it cannot be read).
 *
 * @param files Readable files by path.
 * @returns The I/O.
 */
export function memoryIo(files: Record<string, Uint8Array> = {}): MemoryIo {
  const out: string[] = [], err: string[] = [];
  const written = new Map<string, string>();
  let t = 0;
  return {
    out,
    err,
    files: written,
    stdout: (s) => void out.push(s),
    stderr: (s) => void err.push(s),
    readFile(p) {
      const f = files[p];
      if (f === undefined) throw new Deno.errors.NotFound(`No such file: ${p}`);
      return f;
    },
    writeFile: (p, s) => void written.set(p, s),
    stderrIsTerminal: () => false,
    now: () => (t += 1),
    importModule: (p) =>
      Promise.reject(new Deno.errors.NotFound(`No such module: ${p}`)),
  };
}
