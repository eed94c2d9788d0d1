/**
 * Ownership transfers of streaming mappings: syncs for the CPU and for the
 * device, through bounce slots or the CPU cache, translating IOVAs through
 * the tables in RAM (internal; not exported from mod.ts).
 *
 * @module
 */
import { checkDmaHandle } from "./handle_check.ts";
import { hex, IommuError } from "../mod.ts";
import { checkDirection, type DmaDirection } from "./direction.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import type { MapperState } from "./mapper_state.ts";
import type { Live } from "./live_table.ts";
import { PAGE, pageOffset } from "./page_math.ts";

/**
 * Check a sync call and move ownership of the range it names.
 *
 * @param st The mapper.
 * @param forCpu To the CPU (true) or to the device.
 * @param dmaAddr First DMA address.
 * @param size Bytes.
 * @param direction Direction.
 * @param nents Entries (-1 for a single range).
 * @param sg The sg mapping, or null.
 * @throws {IommuError} as `DmaMapper.syncForCpu`.
 */
export function syncCommon(
  st: MapperState,
  forCpu: boolean,
  dmaAddr: number,
  size: number,
  direction: DmaDirection,
  nents: number,
  sg: DmaSgMapping | null,
): void {
  st.alive();
  const dir = checkDirection(direction);
  checkDmaHandle(dmaAddr, size);
  const debug = st.debug;
  const needRec = debug !== null || st.bounce.live > 0 || sg !== null;
  let rec: Live | undefined;
  if (needRec) {
    rec = sg !== null
      ? st.live.lookup(dmaAddr, "sg", size, dir)
      : st.live.containing(dmaAddr);
  }
  if (debug !== null) {
    debug.emit(
      debug.checkSync({ forCpu, dmaAddr, size, direction: dir, nents }, rec),
    );
    if (rec === undefined) return; // recorded
  }
  st.s.syncs++;
  if (rec !== undefined) rec.deviceOwned = !forCpu;
  if (rec?.type === "sg") {
    syncSg(st, forCpu, rec.sg!, dir);
    return;
  }
  if (rec !== undefined && rec.bounce >= 0) {
    const off = dmaAddr - rec.dmaAddr;
    const n = Math.min(size, rec.bounceSize - off);
    if (forCpu) st.bounce.copyOut(rec.cpu!, off, rec.bounce + off, n);
    else st.bounce.copyIn(rec.cpu!, off, rec.bounce + off, n);
    return;
  }
  if (st.coherent) return;
  if (st.domain === null) {
    st.checkRam(dmaAddr, size, "sync range");
    if (forCpu) st.cpu.takeFromDevice(dmaAddr, size, dir);
    else st.cpu.handToDevice(dmaAddr, size, dir);
    return;
  }
  // Translate page by page through the tables in RAM.
  const domain = st.domain;
  let done = 0;
  while (done < size) {
    const at = dmaAddr + done;
    const n = Math.min(PAGE - pageOffset(at), size - done);
    const pa = domain.iovaToPhys(at);
    if (pa < 0) {
      throw new IommuError(
        "ENOENT",
        `sync of ${hex(at)}: nothing is mapped there for ${st.master.name}`,
      );
    }
    if (forCpu) st.cpu.takeFromDevice(pa, n, dir);
    else st.cpu.handToDevice(pa, n, dir);
    done += n;
  }
}

/**
 * Sync every entry of an sg mapping.
 *
 * @param st The mapper.
 * @param forCpu To the CPU (true) or to the device.
 * @param sg The mapping.
 * @param dir Direction.
 */
export function syncSg(
  st: MapperState,
  forCpu: boolean,
  sg: DmaSgMapping,
  dir: DmaDirection,
): void {
  for (let i = 0; i < sg.nents; i++) {
    const pa = sg.segments[i]!.pa;
    const len = sg.segments[i]!.length;
    const slot = sg.bounce === null ? -1 : sg.bounce[i]!;
    if (slot >= 0) {
      if (forCpu) {
        st.bounce.cpuWrite(pa, st.soc.memory.readBytes(slot, len));
      } else {
        st.soc.memory.writeBytes(slot, st.bounce.cpuRead(pa, len));
      }
      st.s.bounceBytes += len;
      continue;
    }
    if (st.coherent) continue;
    if (forCpu) st.cpu.takeFromDevice(pa, len, dir);
    else st.cpu.handToDevice(pa, len, dir);
  }
}
