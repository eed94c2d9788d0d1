/**
 * Statistics of the generic unit: translation and fault counts (total, by
 * reason, per stream) and the flat counters snapshot gathering every
 * part's figures (internal; not exported from mod.ts).
 *
 * @module
 */
import type { Tlb } from "../../core/mod.ts";
import type { Walker } from "./walker.ts";
import type { ConfigCache } from "./config_cache.ts";
import type { CommandConsumer } from "./command_consumer.ts";
import type { EventProducer } from "./event_producer.ts";

/** Fault reasons, indexed by the translate path's fault kind. */
export const FAULT_KINDS = [
  "bad-stream",
  "bad-stream-entry",
  "blocked",
  "translation",
  "address-size",
  "permission",
  "bus-error",
] as const;

/** Scalar counts the translate path keeps in its own fields. */
export interface TranslateCounts {
  /** Accesses translated (or refused) while SMMUEN was set. */
  translations: number;
  /** Identity (bypass) translations. */
  bypassed: number;
  /** Config-cache lookups. */
  cfgLookups: number;
  /** Config-cache misses. */
  cfgMisses: number;
  /** Micro-TLB lookups. */
  microLookups: number;
  /** Micro-TLB hits. */
  microHits: number;
}

/** Per-stream and per-reason counts of the translate path. */
export class TranslationStats {
  /** Faults by kind (index into {@linkcode FAULT_KINDS}). */
  readonly faults: Float64Array = new Float64Array(FAULT_KINDS.length);
  /** Per-stream walks. */
  readonly sWalks: Float64Array;
  /** Per-stream faults. */
  readonly sFaults: Float64Array;

  /** @param streams Stream IDs. */
  constructor(streams: number) {
    this.sWalks = new Float64Array(streams);
    this.sFaults = new Float64Array(streams);
  }
}

/** Every part whose figures the snapshot gathers. */
export interface CounterSources {
  /** Translate-path scalar counts. */
  translate: TranslateCounts;
  /** Translate-path counts. */
  stats: TranslationStats;
  /** The IOTLB. */
  iotlb: Tlb;
  /** The walker and its caches. */
  walker: Walker;
  /** The config cache. */
  cache: ConfigCache;
  /** The command consumer. */
  commands: CommandConsumer;
  /** The event producer. */
  events: EventProducer;
}

/**
 * Statistics as a flat object (see `GenericIommuHardware.counters`).
 *
 * @param p The parts.
 * @returns A snapshot.
 */
export function hardwareCounters(p: CounterSources): Record<string, number> {
  const out: Record<string, number> = {};
  const rate = (lookups: number, misses: number): number =>
    lookups === 0 ? 0 : (lookups - misses) / lookups;
  const t = p.iotlb.counters();
  out["translations"] = p.translate.translations;
  out["bypassed"] = p.translate.bypassed;
  out["microTlb.lookups"] = p.translate.microLookups;
  out["microTlb.hits"] = p.translate.microHits;
  out["microTlb.misses"] = p.translate.microLookups - p.translate.microHits;
  out["microTlb.hitRate"] = rate(
    p.translate.microLookups,
    p.translate.microLookups - p.translate.microHits,
  );
  out["iotlb.lookups"] = t.lookups;
  out["iotlb.hits"] = t.hits;
  out["iotlb.misses"] = t.misses;
  out["iotlb.hitRate"] = rate(t.lookups, t.misses);
  out["iotlb.fills"] = t.fills;
  out["iotlb.evictions"] = t.evictions;
  out["iotlb.invalidations"] = t.invalidations;
  out["iotlb.entries"] = p.iotlb.size;
  p.walker.caches.forEach((c, l) => {
    const w = c.counters();
    out[`walkCache.L${l}.lookups`] = w.lookups;
    out[`walkCache.L${l}.misses`] = w.misses;
    out[`walkCache.L${l}.hitRate`] = rate(w.lookups, w.misses);
    out[`walkCache.L${l}.fills`] = w.fills;
  });
  out["walks"] = p.walker.walks;
  for (let l = 0; l < 4; l++) out[`walks.L${l}`] = p.walker.reads[l]!;
  out["configCache.lookups"] = p.translate.cfgLookups;
  out["configCache.misses"] = p.translate.cfgMisses;
  out["configCache.hitRate"] = rate(
    p.translate.cfgLookups,
    p.translate.cfgMisses,
  );
  out["steFetches"] = p.cache.steFetches;
  out["cdFetches"] = p.cache.cdFetches;
  out["commands"] = p.commands.commands;
  out["commands.sync"] = p.commands.syncs;
  out["commands.tlbi"] = p.commands.tlbis;
  out["commands.cfgi"] = p.commands.cfgis;
  out["commands.errors"] = p.commands.errors;
  out["events"] = p.events.events;
  out["events.dropped"] = p.events.dropped;
  out["irqs.event"] = p.events.irqs.event;
  out["irqs.gerror"] = p.events.irqs.gerror;
  let faults = 0;
  FAULT_KINDS.forEach((k, i) => {
    out[`faults.${k}`] = p.stats.faults[i]!;
    faults += p.stats.faults[i]!;
  });
  out["faults"] = faults;
  return out;
}
