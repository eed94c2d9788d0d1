/**
 * Register offsets and in-memory layouts of the generic central IOMMU. The
 * layouts follow ARM SMMUv3 where the model needs them (stream table entries,
 * context descriptors, 16-byte commands, 32-byte event records, PROD/CONS
 * indexes with a wrap bit) and are simplified elsewhere; every field the model
 * reads or writes is listed here with its bit position.
 *
 * @module
 */

// ---------------------------------------------------------------- registers
/** ID register 0: ST_LVL[28:27]=0 (linear), TTENDIAN[22:21]=2 (LE), ASID16 b12, COHACC b4, TTF[3:2]=2, S1P b1, S2P b0. */
export const REG_IDR0 = 0x00;
/** ID register 1: CMDQS[25:21], EVTQS[20:16], SIDSIZE[5:0] (log2 of each size). */
export const REG_IDR1 = 0x04;
/** ID register 3: RIL b10 (range invalidation: the NUM/SCALE/TG fields of {@linkcode CMD_TLBI_NH_VA}). */
export const REG_IDR3 = 0x0c;
/**
 * ID register 5: GRAN4K b4, OAS[2:0] (0=32, 1=36, 2=40, 3=42, 4=44, 5=48
 * bits). An output size between two of these advertises the smaller one
 * (outputBits 38 reads as 36): never more bits than the unit translates to.
 */
export const REG_IDR5 = 0x14;
/** Control register 0: SMMUEN b0, EVTQEN b2, CMDQEN b3. */
export const REG_CR0 = 0x20;
/** Acknowledge of {@linkcode REG_CR0}: reads back the enables in effect. */
export const REG_CR0ACK = 0x24;
/** Global bypass attribute: ABORT b20 decides what happens while SMMUEN=0. */
export const REG_GBPA = 0x44;
/** Global errors: CMDQ_ERR b0, EVTQ_ABT_ERR b2 (toggled by the unit). */
export const REG_GERROR = 0x60;
/** Global errors acknowledged: software writes GERROR's value here. */
export const REG_GERRORN = 0x64;
/** Stream table base, low word: ADDR[31:6]. */
export const REG_STRTAB_BASE = 0x80;
/** Stream table base, high word: ADDR[47:32]. */
export const REG_STRTAB_BASE_HI = 0x84;
/** Stream table config: FMT[17:16]=0 (linear only), LOG2SIZE[5:0]. */
export const REG_STRTAB_BASE_CFG = 0x88;
/** Command queue base, low word: ADDR[31:5], LOG2SIZE[4:0]. */
export const REG_CMDQ_BASE = 0x90;
/** Command queue base, high word: ADDR[47:32]. */
export const REG_CMDQ_BASE_HI = 0x94;
/** Command queue producer index (software writes; the write is the doorbell). */
export const REG_CMDQ_PROD = 0x98;
/** Command queue consumer index: index and wrap bit, ERR[30:24]. */
export const REG_CMDQ_CONS = 0x9c;
/** Event queue base, low word: ADDR[31:5], LOG2SIZE[4:0]. */
export const REG_EVTQ_BASE = 0xa0;
/** Event queue base, high word. */
export const REG_EVTQ_BASE_HI = 0xa4;
/** Event queue producer index (the unit writes; SMMUv3 has it in page 1, the model keeps one page). */
export const REG_EVTQ_PROD = 0xa8;
/** Event queue consumer index (software writes after reading records). */
export const REG_EVTQ_CONS = 0xac;

/** {@linkcode REG_CR0} bit: translation enabled. */
export const CR0_SMMUEN = 1 << 0;
/** {@linkcode REG_CR0} bit: event queue enabled. */
export const CR0_EVTQEN = 1 << 2;
/** {@linkcode REG_CR0} bit: command queue enabled. */
export const CR0_CMDQEN = 1 << 3;
/** {@linkcode REG_GBPA} bit: abort (rather than bypass) every access while SMMUEN=0. */
export const GBPA_ABORT = 1 << 20;
/** {@linkcode REG_GERROR} bit: the command queue stopped on an error. */
export const GERROR_CMDQ_ERR = 1 << 0;
/**
 * {@linkcode REG_GERROR} bit: an event was dropped, because the event queue
 * was full or its slot is not wholly in RAM.
 */
export const GERROR_EVTQ_ABT = 1 << 2;
/** CMDQ_CONS.ERR value: illegal command. */
export const CERROR_ILL = 1;
/** CMDQ_CONS.ERR value: abort on command fetch (the command is not wholly in RAM). */
export const CERROR_ABT = 2;
/** Bit position of CMDQ_CONS.ERR. */
export const CONS_ERR_SHIFT = 24;

// ---------------------------------------------------------- stream table
/** Bytes per stream table entry (STE). */
export const STE_BYTES = 64;
/** STE dword0 bit: valid. */
export const STE_V = 1;
/** STE dword0 Config[3:1] value: abort every access (no event). */
export const STE_CFG_ABORT = 0;
/** STE dword0 Config value: bypass (identity, all accesses allowed). */
export const STE_CFG_BYPASS = 4;
/** STE dword0 Config value: stage-1 translation through the context descriptor at S1ContextPtr[47:6]. */
export const STE_CFG_S1 = 5;
/** STE dword0 Config value: stage-2 translation; dword2 = S2VMID[15:0] | S2T0SZ[37:32], dword3 = S2TTB[47:4]. */
export const STE_CFG_S2 = 6;

// ---------------------------------------------------- context descriptors
/** Bytes per context descriptor (CD). */
export const CD_BYTES = 64;
/**
 * CD dword0 low-word bits: T0SZ[5:0] (64 - input bits), TG0[7:6]=0 (4 KiB),
 * EPD1 b30 (no TTB1 walks), V b31.
 */
export const CD_V = 1 << 31;
/** CD dword0 low-word bit: EPD1 (TTB1 walks disabled). */
export const CD_EPD1 = 1 << 30;
/** CD dword0 high-word bit 9 (bit 41): AA64 (64-bit descriptors). */
export const CD_HI_AA64 = 1 << 9;
/** CD dword0 high-word bit 13 (bit 45): R, record faults as events. */
export const CD_HI_R = 1 << 13;
/** CD dword0 high-word bit 14 (bit 46): A, abort faulting accesses. */
export const CD_HI_A = 1 << 14;
/** STE dword2 high-word bit 19 (bit 51): S2AA64. */
export const STE_HI_S2AA64 = 1 << 19;
/** STE dword2 high-word bit 26 (bit 58): S2R, record stage-2 faults. */
export const STE_HI_S2R = 1 << 26;

// -------------------------------------------------------------- commands
/** Bytes per command. */
export const CMD_BYTES = 16;
/** Invalidate the cached configuration of one stream: dword0[63:32] = SID. */
export const CMD_CFGI_STE = 0x03;
/** Invalidate 2^(Range+1) streams from SID (aligned down): dword0[63:32] = SID, dword1[4:0] = Range; Range 31 = all. */
export const CMD_CFGI_STE_RANGE = 0x04;
/** Invalidate cached context descriptors of one stream: dword0[63:32] = SID. */
export const CMD_CFGI_CD = 0x05;
/** Invalidate every cached context descriptor. */
export const CMD_CFGI_CD_ALL = 0x06;
/** Invalidate every TLB and walk-cache entry. */
export const CMD_TLBI_NH_ALL = 0x10;
/** Invalidate one context: dword0[63:48] = ASID (or VMID for stage 2). */
export const CMD_TLBI_NH_ASID = 0x11;
/**
 * Invalidate an address range of one context, with range invalidation
 * (IDR3.RIL): dword0[63:48] = ASID (the VMID on a stage-2 unit),
 * NUM[16:12], SCALE[24:20]; dword1[11:10] = TG (1 = 4 KiB, 2 = 16 KiB,
 * 3 = 64 KiB granule), dword1[9:8] = TTL (a level hint, ignored),
 * dword1[63:12] = address. The range is (NUM + 1) * 2^SCALE granules from
 * the address; TG = 0 names one 4 KiB page. Entries overlapping the range
 * (TLB and walk caches) are removed.
 */
export const CMD_TLBI_NH_VA = 0x12;
/** As {@linkcode CMD_TLBI_NH_VA} for every ASID (the ASID field is ignored); illegal on a unit without stage 1. */
export const CMD_TLBI_NH_VAA = 0x13;
/** Invalidate EL3 translations: the unit has none, a no-op. */
export const CMD_TLBI_EL3_ALL = 0x18;
/** Invalidate an EL3 address: the unit has no EL3 regime, a no-op. */
export const CMD_TLBI_EL3_VA = 0x1a;
/** Invalidate EL2 translations: the unit has no EL2 regime (IDR0.HYP = 0), a no-op. */
export const CMD_TLBI_EL2_ALL = 0x20;
/** Invalidate an EL2 ASID: a no-op, as {@linkcode CMD_TLBI_EL2_ALL}. */
export const CMD_TLBI_EL2_ASID = 0x21;
/** Invalidate an EL2 address: a no-op, as {@linkcode CMD_TLBI_EL2_ALL}. */
export const CMD_TLBI_EL2_VA = 0x22;
/** Invalidate an EL2 address for every ASID: a no-op, as {@linkcode CMD_TLBI_EL2_ALL}. */
export const CMD_TLBI_EL2_VAA = 0x23;
/** Invalidate every entry of one VMID (dword0[47:32]); illegal on a unit without stage 2. */
export const CMD_TLBI_S12_VMALL = 0x28;
/**
 * Invalidate an IPA range of one VMID (dword0[47:32]); the range fields are
 * those of {@linkcode CMD_TLBI_NH_VA}, the IPA is dword1[51:12]. Illegal on
 * a unit without stage 2.
 */
export const CMD_TLBI_S2_IPA = 0x2a;
/** Invalidate every TLB and walk-cache entry (every ASID and VMID). */
export const CMD_TLBI_NSNH_ALL = 0x30;
/** Invalidate a device's ATC: the unit has no ATS (IDR0.ATS = 0), a no-op. */
export const CMD_ATC_INV = 0x40;
/** Answer a page request: the unit has no PRI, a no-op. */
export const CMD_PRI_RESP = 0x41;
/** Resume a stalled transaction: the unit never stalls, a no-op. */
export const CMD_RESUME = 0x44;
/** Terminate stalled transactions: the unit never stalls, a no-op. */
export const CMD_STALL_TERM = 0x45;
/** Complete once every earlier command has; when dword1[47:2] (MSIADDR) is non-zero, write dword0[63:32] (MSIDATA) there. */
export const CMD_SYNC = 0x46;

// ---------------------------------------------------------------- events
/** Bytes per event record. */
export const EVT_BYTES = 32;
/** Event: stream ID beyond the stream table. */
export const EVT_C_BAD_STREAMID = 0x02;
/** Event: the stream table entry is invalid (V=0 or an unknown Config). */
export const EVT_C_BAD_STE = 0x04;
/** Event: the context descriptor is invalid. */
export const EVT_C_BAD_CD = 0x0a;
/** Event: a table walk read an address outside RAM (external abort); dword3 holds it. */
export const EVT_F_WALK_EABT = 0x0b;
/** Event: no valid descriptor (or a reserved one) translates the address. */
export const EVT_F_TRANSLATION = 0x10;
/**
 * Event: the IOVA is at or beyond 2^inputBits, or a leaf's output address is
 * at or beyond 2^outputBits. (SMMUv3 reports the first case as
 * F_TRANSLATION; the model follows the core's `address-size` reason.)
 */
export const EVT_F_ADDR_SIZE = 0x11;
/** Event: the leaf's access flag is clear. */
export const EVT_F_ACCESS = 0x12;
/** Event: the leaf forbids the access. */
export const EVT_F_PERMISSION = 0x13;
/** Event record dword1 high-word bit 3 (bit 35): RnW, 1 = read. */
export const EVT_HI_RNW = 1 << 3;
