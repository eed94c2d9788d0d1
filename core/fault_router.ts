/**
 * Routes faults reported by hardware models to the handler of the domain
 * attached to the faulting unit and stream, and keeps a bounded log.
 *
 * @module
 */
import { checkObject } from "./address.ts";
import type { IommuFault } from "./fault.ts";

/** Most recent faults kept in {@linkcode FaultRouter.recent}. */
export const FAULT_LOG_LIMIT = 1024;

/** Something that can take a routed fault (a domain). */
export interface FaultTarget {
  /** Handle the fault; true when handled. */
  handleFault(fault: IommuFault): boolean;
}

/** A listener told about every fault, handled or not. */
export type FaultListener = (fault: IommuFault, handled: boolean) => void;

/**
 * The core's fault switchboard. Units call {@linkcode FaultRouter.report};
 * domains bind the (unit, stream) pairs they are attached to.
 */
export class FaultRouter {
  #routes = new Map<string, FaultTarget>();
  #listeners: FaultListener[] = [];
  #log: IommuFault[] = [];
  #total = 0;
  #unhandled = 0;

  static #key(unit: string, streamId: number): string {
    return unit + "#" + streamId;
  }

  /**
   * Send faults of `unit`/`streamId` to `target`, replacing any earlier one.
   *
   * @param unit Unit name.
   * @param streamId Stream ID (0 for per-device units).
   * @param target The domain.
   */
  bind(unit: string, streamId: number, target: FaultTarget): void {
    this.#routes.set(FaultRouter.#key(unit, streamId), target);
  }

  /**
   * Stop routing `unit`/`streamId` to `target` (no-op if bound elsewhere).
   *
   * @param unit Unit name.
   * @param streamId Stream ID.
   * @param target The domain that was bound.
   */
  unbind(unit: string, streamId: number, target: FaultTarget): void {
    const key = FaultRouter.#key(unit, streamId);
    if (this.#routes.get(key) === target) this.#routes.delete(key);
  }

  /**
   * The domain currently bound to `unit`/`streamId`, if any.
   *
   * @param unit Unit name.
   * @param streamId Stream ID.
   * @returns The bound target or undefined.
   */
  boundTo(unit: string, streamId: number): FaultTarget | undefined {
    return this.#routes.get(FaultRouter.#key(unit, streamId));
  }

  /**
   * Route a fault: log it, call the bound domain's handler, tell listeners.
   *
   * @param fault The fault record.
   * @returns True when a handler took it.
   * @throws {IommuError} `EINVAL` when `fault` is not an object (nothing
   * logged or counted).
   */
  report(fault: IommuFault): boolean {
    checkObject(fault, "fault record");
    this.#total++;
    if (this.#log.length === FAULT_LOG_LIMIT) this.#log.shift();
    this.#log.push(fault);
    const target = this.#routes.get(
      FaultRouter.#key(fault.unit, fault.streamId),
    );
    const handled = target === undefined ? false : target.handleFault(fault);
    if (!handled) this.#unhandled++;
    for (const listener of this.#listeners) listener(fault, handled);
    return handled;
  }

  /**
   * Be told about every fault.
   *
   * @param listener Called with each fault and whether it was handled.
   * @returns A function that removes the listener.
   */
  onFault(listener: FaultListener): () => void {
    // Copy on write: report() iterates the array, and a listener may add or
    // remove listeners (itself, typically) while being called.
    this.#listeners = [...this.#listeners, listener];
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners = this.#listeners.toSpliced(i, 1);
    };
  }

  /** The most recent faults, oldest first (at most {@linkcode FAULT_LOG_LIMIT}). */
  get recent(): readonly IommuFault[] {
    return this.#log;
  }

  /** Fault counts as a plain object. */
  counters(): { faults: number; unhandled: number } {
    return { faults: this.#total, unhandled: this.#unhandled };
  }
}
