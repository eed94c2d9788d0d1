/**
 * Master runtime power: every System MMU of a master is powered with it.
 *
 * @module
 */
import type { Master } from "../../core/mod.ts";

/**
 * Power a master up or down, with every unit in front of its ports (as the
 * Linux device links do: the MFC's left and right System MMUs go together).
 * Powering down runs each attached unit's disable sequence first; powering
 * up reprograms the page-table base and flushes each TLB.
 *
 * @param master The master.
 * @param on Whether it is powered.
 */
export function setMasterPower(master: Master, on: boolean): void {
  const seen = new Set<unknown>();
  for (const port of master.ports) {
    const hw = port.unit?.hardware;
    if (hw === undefined || seen.has(hw)) continue;
    seen.add(hw);
    hw.setPower(on);
  }
}
