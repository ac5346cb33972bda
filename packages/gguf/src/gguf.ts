/**
 * GGUF reader/writer (format version 3): typed metadata, tensor infos and tensor data. F32 and F16
 * tensors are decoded to `Float32Array`; every other ggml type is kept as raw bytes so a file
 * round-trips unchanged. Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, unlink } from "node:fs/promises";

export type GgufScalarType =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "f32"
  | "bool"
  | "string"
  | "u64"
  | "i64"
  | "f64";

/** One metadata value with its exact GGUF type (llama.cpp checks key types strictly). */
export type GgufMetadataValue =
  | { readonly type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64"; readonly value: number }
  | { readonly type: "u64" | "i64"; readonly value: bigint }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string }
  | {
      readonly type: "array";
      readonly itemType: GgufScalarType;
      readonly value: ReadonlyArray<number | bigint | boolean | string>;
    };

/** ggml tensor types by their GGUF id. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  BF16: 30,
} as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** [elements per block, bytes per block] per ggml type id. */
const BLOCK: Record<number, readonly [number, number]> = {
  0: [1, 4],
  1: [1, 2],
  2: [32, 18],
  3: [32, 20],
  6: [32, 22],
  7: [32, 24],
  8: [32, 34],
  9: [32, 36],
  10: [256, 84],
  11: [256, 110],
  12: [256, 144],
  13: [256, 176],
  14: [256, 210],
  15: [256, 292],
  24: [1, 1],
  25: [1, 2],
  26: [1, 4],
  27: [1, 8],
  28: [1, 8],
  30: [1, 2],
};

export interface GgufTensor {
  readonly name: string;
  /** ggml type id (see {@link GgmlType}). */
  readonly type: number;
  /** Dimensions in ggml order: `shape[0]` is the innermost (contiguous) one. */
  readonly shape: ReadonlyArray<number>;
  /** Decoded values for F32/F16; raw bytes for every other type. */
  readonly data: Float32Array | Uint8Array;
}

export interface GgufFile {
  readonly version?: number;
  readonly metadata: Readonly<Record<string, GgufMetadataValue>>;
  readonly tensors: ReadonlyArray<GgufTensor>;
}

/** A GGUF file is malformed or a value cannot be written. */
export class GgufFormatError extends Error {
  override readonly name = "GgufFormatError";
  constructor(
    readonly path: string,
    readonly offset: number | undefined,
    detail: string,
  ) {
    super(`${path}${offset === undefined ? "" : ` (byte ${offset})`}: ${detail}`);
  }
}

const TYPE_IDS: Record<GgufScalarType | "array", number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};
const TYPE_NAMES = Object.fromEntries(Object.entries(TYPE_IDS).map(([k, v]) => [v, k])) as Record<
  number,
  GgufScalarType | "array"
>;

// ───────────── metadata constructors ─────────────

export const gguf = {
  u8: (value: number): GgufMetadataValue => ({ type: "u8", value }),
  i8: (value: number): GgufMetadataValue => ({ type: "i8", value }),
  u16: (value: number): GgufMetadataValue => ({ type: "u16", value }),
  i16: (value: number): GgufMetadataValue => ({ type: "i16", value }),
  u32: (value: number): GgufMetadataValue => ({ type: "u32", value }),
  i32: (value: number): GgufMetadataValue => ({ type: "i32", value }),
  f32: (value: number): GgufMetadataValue => ({ type: "f32", value }),
  f64: (value: number): GgufMetadataValue => ({ type: "f64", value }),
  u64: (value: bigint | number): GgufMetadataValue => ({ type: "u64", value: BigInt(value) }),
  i64: (value: bigint | number): GgufMetadataValue => ({ type: "i64", value: BigInt(value) }),
  bool: (value: boolean): GgufMetadataValue => ({ type: "bool", value }),
  string: (value: string): GgufMetadataValue => ({ type: "string", value }),
  array: (
    itemType: GgufScalarType,
    value: ReadonlyArray<number | bigint | boolean | string>,
  ): GgufMetadataValue => ({
    type: "array",
    itemType,
    value,
  }),
};

/** The plain JS value of a metadata entry (number, bigint, boolean, string or array). */
export const metadataValue = (
  file: GgufFile,
  key: string,
): number | bigint | boolean | string | ReadonlyArray<number | bigint | boolean | string> | undefined =>
  file.metadata[key]?.value;

// ───────────── F16 ─────────────

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export const f16ToF32 = (h: number): number => {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
};

/** Round-to-nearest-even F32 → F16 bits (as ggml's `GGML_FP32_TO_FP16` does). */
export const f32ToF16 = (value: number): number => {
  f32buf[0] = value;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
};

// ───────────── reading ─────────────

class Reader {
  offset = 0;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  constructor(
    readonly bytes: Uint8Array,
    readonly path: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  fail(detail: string): never {
    throw new GgufFormatError(this.path, this.offset, detail);
  }
  need(n: number, what: string): void {
    if (this.offset + n > this.bytes.byteLength)
      this.fail(`truncated file: ${what} needs ${n} bytes, ${this.bytes.byteLength - this.offset} left`);
  }
  u8() {
    this.need(1, "u8");
    return this.view.getUint8(this.offset++);
  }
  u32() {
    this.need(4, "u32");
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }
  u64(what = "u64"): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is too large`);
    return Number(v);
  }
  string(what: string) {
    const n = this.u64(`${what} length`);
    this.need(n, what);
    const s = this.decoder.decode(this.bytes.subarray(this.offset, this.offset + n));
    this.offset += n;
    return s;
  }
  scalar(type: GgufScalarType, key: string): number | bigint | boolean | string {
    const v = this.view;
    const o = this.offset;
    const size = {
      u8: 1,
      i8: 1,
      bool: 1,
      u16: 2,
      i16: 2,
      u32: 4,
      i32: 4,
      f32: 4,
      u64: 8,
      i64: 8,
      f64: 8,
      string: 0,
    }[type];
    if (type === "string") return this.string(`value of ${key}`);
    this.need(size, `value of ${key}`);
    this.offset += size;
    switch (type) {
      case "u8":
        return v.getUint8(o);
      case "i8":
        return v.getInt8(o);
      case "bool":
        return v.getUint8(o) !== 0;
      case "u16":
        return v.getUint16(o, true);
      case "i16":
        return v.getInt16(o, true);
      case "u32":
        return v.getUint32(o, true);
      case "i32":
        return v.getInt32(o, true);
      case "f32":
        return v.getFloat32(o, true);
      case "f64":
        return v.getFloat64(o, true);
      case "u64":
        return v.getBigUint64(o, true);
      case "i64":
        return v.getBigInt64(o, true);
    }
  }
}

export interface ReadGgufOptions {
  /** Skip tensor data (metadata and shapes only); `data` is then empty. Default true (read data). */
  readonly tensorData?: boolean;
}

/** Parse GGUF bytes. `path` only names the source in error messages. */
export const parseGguf = (bytes: Uint8Array, path = "<buffer>", options: ReadGgufOptions = {}): GgufFile => {
  const r: Reader = new Reader(bytes, path);
  const magic = r.u32();
  if (magic !== 0x46554747) {
    r.offset = 0;
    r.fail(`not a GGUF file: magic 0x${magic.toString(16)}, expected "GGUF"`);
  }
  const version = r.u32();
  if (version !== 2 && version !== 3) r.fail(`unsupported GGUF version ${version} (expected 2 or 3)`);
  const tensorCount = r.u64("tensor count");
  const kvCount = r.u64("metadata count");
  const metadata: Record<string, GgufMetadataValue> = {};
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`metadata key ${i}`);
    const typeId = r.u32();
    const type = TYPE_NAMES[typeId];
    if (type === undefined) r.fail(`metadata ${key}: unknown value type ${typeId}`);
    if (type === "array") {
      const itemId = r.u32();
      const itemType = TYPE_NAMES[itemId];
      if (itemType === undefined || itemType === "array")
        r.fail(`metadata ${key}: unsupported array item type ${itemType ?? itemId}`);
      const n = r.u64(`${key} array length`);
      const value = new Array(n);
      for (let j = 0; j < n; j++) value[j] = r.scalar(itemType, key);
      metadata[key] = { type: "array", itemType, value };
    } else {
      metadata[key] = { type, value: r.scalar(type, key) } as GgufMetadataValue;
    }
  }
  const infos: Array<{ name: string; type: number; shape: number[]; offset: number }> = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`tensor name ${i}`);
    const nDims = r.u32();
    if (nDims > 4) r.fail(`tensor ${name}: ${nDims} dimensions (max 4)`);
    const shape: number[] = [];
    for (let d = 0; d < nDims; d++) shape.push(r.u64(`tensor ${name} dim ${d}`));
    const type = r.u32();
    if (BLOCK[type] === undefined) r.fail(`tensor ${name}: unsupported ggml type ${type}`);
    const offset = r.u64(`tensor ${name} offset`);
    infos.push({ name, type, shape, offset });
  }
  const alignEntry = metadata["general.alignment"];
  const alignment = alignEntry && typeof alignEntry.value === "number" ? alignEntry.value : 32;
  const dataStart = Math.ceil(r.offset / alignment) * alignment;
  const readData = options.tensorData ?? true;
  const tensors: GgufTensor[] = infos.map((info) => {
    const [blockElems, blockBytes] = BLOCK[info.type];
    const count = info.shape.reduce((a, b) => a * b, 1);
    if (count % blockElems !== 0)
      throw new GgufFormatError(
        path,
        undefined,
        `tensor ${info.name}: ${count} elements is not a whole number of blocks`,
      );
    const nbytes = (count / blockElems) * blockBytes;
    const start = dataStart + info.offset;
    if (!readData) return { name: info.name, type: info.type, shape: info.shape, data: new Float32Array(0) };
    if (start + nbytes > bytes.byteLength)
      throw new GgufFormatError(
        path,
        start,
        `truncated file: tensor ${info.name} (${nbytes} bytes) ends at byte ${start + nbytes}, file has ${bytes.byteLength}`,
      );
    const raw = bytes.subarray(start, start + nbytes);
    let data: Float32Array | Uint8Array;
    if (info.type === GgmlType.F32) {
      data = new Float32Array(count);
      new Uint8Array(data.buffer).set(raw);
    } else if (info.type === GgmlType.F16) {
      data = new Float32Array(count);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < count; i++) data[i] = f16ToF32(dv.getUint16(i * 2, true));
    } else {
      data = raw.slice();
    }
    return { name: info.name, type: info.type, shape: info.shape, data };
  });
  return { version, metadata, tensors };
};

/** Read a GGUF file. Throws {@link GgufFormatError} naming the file and byte offset when it is malformed. */
export const readGguf = async (path: string, options: ReadGgufOptions = {}): Promise<GgufFile> => {
  if (options.tensorData ?? true) return parseGguf(await readFile(path), path, options);
  // Metadata only: read the head of the file, growing it until the header parses, so a
  // multi-gigabyte model costs a few MiB.
  const file = await open(path, "r");
  try {
    const size = (await file.stat()).size;
    for (let length = Math.min(size, 4 << 20); ; length = Math.min(size, length * 4)) {
      const bytes = new Uint8Array(length);
      const { bytesRead } = await file.read(bytes, 0, length, 0);
      try {
        return parseGguf(bytes.subarray(0, bytesRead), path, options);
      } catch (e) {
        // Only running out of bytes means "read more"; any other format error is final.
        if (!(e instanceof GgufFormatError && e.message.includes("truncated file")) || length >= size)
          throw e;
      }
    }
  } finally {
    await file.close();
  }
};

// ───────────── writing ─────────────

class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private view = new DataView(this.cur.buffer);
  private pos = 0;
  length = 0;
  private readonly encoder = new TextEncoder();
  private ensure(n: number) {
    if (this.pos + n <= this.cur.byteLength) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.view = new DataView(this.cur.buffer);
    this.pos = 0;
  }
  bytes(b: Uint8Array) {
    this.ensure(b.byteLength);
    this.cur.set(b, this.pos);
    this.pos += b.byteLength;
    this.length += b.byteLength;
  }
  u32(v: number) {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
    this.length += 4;
  }
  u64(v: number | bigint) {
    this.ensure(8);
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
    this.length += 8;
  }
  string(s: string) {
    const b = this.encoder.encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  pad(alignment: number) {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n) this.bytes(new Uint8Array(n));
  }
  scalar(type: GgufScalarType, v: number | bigint | boolean | string, key: string) {
    const check = (ok: boolean) => {
      if (!ok)
        throw new GgufFormatError(
          "<write>",
          undefined,
          `metadata ${key}: value ${String(v)} is not a valid ${type}`,
        );
    };
    if (type === "string") {
      check(typeof v === "string");
      return this.string(v as string);
    }
    if (type === "bool") {
      check(typeof v === "boolean");
      this.ensure(1);
      this.cur[this.pos++] = v ? 1 : 0;
      this.length += 1;
      return;
    }
    if (type === "u64" || type === "i64") {
      check(typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v)));
      this.ensure(8);
      if (type === "u64") this.view.setBigUint64(this.pos, BigInt(v as number), true);
      else this.view.setBigInt64(this.pos, BigInt(v as number), true);
      this.pos += 8;
      this.length += 8;
      return;
    }
    check(typeof v === "number");
    const n = v as number;
    const size = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8 }[type];
    this.ensure(size);
    const o = this.pos;
    switch (type) {
      case "u8":
        this.view.setUint8(o, n);
        break;
      case "i8":
        this.view.setInt8(o, n);
        break;
      case "u16":
        this.view.setUint16(o, n, true);
        break;
      case "i16":
        this.view.setInt16(o, n, true);
        break;
      case "u32":
        this.view.setUint32(o, n, true);
        break;
      case "i32":
        this.view.setInt32(o, n, true);
        break;
      case "f32":
        this.view.setFloat32(o, n, true);
        break;
      case "f64":
        this.view.setFloat64(o, n, true);
        break;
    }
    this.pos += size;
    this.length += size;
  }
  finish(): Uint8Array[] {
    this.chunks.push(this.cur.subarray(0, this.pos));
    const out = this.chunks;
    this.chunks = [];
    return out;
  }
}

const tensorBytes = (t: GgufTensor): Uint8Array => {
  const count = t.shape.reduce((a, b) => a * b, 1);
  const block = BLOCK[t.type];
  if (block === undefined)
    throw new GgufFormatError("<write>", undefined, `tensor ${t.name}: unsupported ggml type ${t.type}`);
  const expected = (count / block[0]) * block[1];
  if (t.type === GgmlType.F32 || t.type === GgmlType.F16) {
    if (!(t.data instanceof Float32Array) || t.data.length !== count)
      throw new GgufFormatError(
        "<write>",
        undefined,
        `tensor ${t.name}: expected a Float32Array of ${count} values for shape [${t.shape.join(", ")}], got ${t.data.length}`,
      );
    if (t.type === GgmlType.F32) return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const out = new Uint8Array(count * 2);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < count; i++) dv.setUint16(i * 2, f32ToF16(t.data[i]), true);
    return out;
  }
  if (!(t.data instanceof Uint8Array) || t.data.byteLength !== expected)
    throw new GgufFormatError("<write>", undefined, `tensor ${t.name}: expected ${expected} raw bytes`);
  return t.data;
};

/** Serialise a GGUF file (version 3) into byte chunks. */
export const serializeGguf = (file: GgufFile): Uint8Array[] => {
  const w = new Writer();
  const alignEntry = file.metadata["general.alignment"];
  const alignment = alignEntry && typeof alignEntry.value === "number" ? alignEntry.value : 32;
  const entries = Object.entries(file.metadata);
  w.u32(0x46554747);
  w.u32(3);
  w.u64(file.tensors.length);
  w.u64(entries.length);
  for (const [key, entry] of entries) {
    w.string(key);
    w.u32(TYPE_IDS[entry.type]);
    if (entry.type === "array") {
      w.u32(TYPE_IDS[entry.itemType]);
      w.u64(entry.value.length);
      for (const item of entry.value) w.scalar(entry.itemType, item, key);
    } else {
      w.scalar(entry.type, entry.value, key);
    }
  }
  const datas = file.tensors.map(tensorBytes);
  let offset = 0;
  file.tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of t.shape) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(datas[i].byteLength / alignment) * alignment;
  });
  w.pad(alignment);
  for (const d of datas) {
    w.bytes(d);
    w.pad(alignment);
  }
  return w.finish();
};

/** Write a GGUF file atomically: a temporary file in the same directory, then a rename. */
export const writeGguf = async (path: string, file: GgufFile): Promise<void> => {
  const chunks = serializeGguf(file);
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(tmp, "w");
  try {
    for (const c of chunks) await handle.write(c);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  await rename(tmp, path);
};
