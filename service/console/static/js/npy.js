// Reading a NumPy .npy file in the browser (format versions 1.0 to 3.0: the magic string, a
// little-endian header length, a Python-literal header dict, then the raw array in C order).
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

export class NpyError extends Error {}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

// numpy descr (kind + size; byte order apart) → [V2 datatype, reader of one element].
const TYPES = {
  b1: ["BOOL", (v, o) => v.getUint8(o) !== 0],
  u1: ["UINT8", (v, o) => v.getUint8(o)],
  u2: ["UINT16", (v, o, le) => v.getUint16(o, le)],
  u4: ["UINT32", (v, o, le) => v.getUint32(o, le)],
  u8: ["UINT64", (v, o, le) => Number(v.getBigUint64(o, le))],
  i1: ["INT8", (v, o) => v.getInt8(o)],
  i2: ["INT16", (v, o, le) => v.getInt16(o, le)],
  i4: ["INT32", (v, o, le) => v.getInt32(o, le)],
  i8: ["INT64", (v, o, le) => Number(v.getBigInt64(o, le))],
  f2: ["FP16", (v, o, le) => halfToNumber(v.getUint16(o, le))],
  f4: ["FP32", (v, o, le) => v.getFloat32(o, le)],
  f8: ["FP64", (v, o, le) => v.getFloat64(o, le)],
};

function halfToNumber(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function headerField(header, name, pattern) {
  const match = new RegExp(`'${name}'\\s*:\\s*${pattern}`).exec(header);
  if (!match) throw new NpyError(`the .npy header has no readable '${name}': ${header.trim()}`);
  return match[1];
}

// ArrayBuffer → {datatype, shape, data (flat array of numbers or booleans)}.
export function readNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError("not a .npy file (it does not start with \\x93NUMPY)");
  }
  const view = new DataView(buffer);
  const major = bytes[6];
  if (major < 1 || major > 3) throw new NpyError(`.npy format version ${major} is not supported`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1")
    .decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = headerField(header, "descr", "'([^']*)'");
  if (headerField(header, "fortran_order", "(True|False)") === "True") {
    throw new NpyError("the array is in Fortran order; save it with np.save(path, np.ascontiguousarray(a))");
  }
  const shape = headerField(header, "shape", "\\(([^)]*)\\)")
    .split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  const order = descr[0];
  const type = TYPES[descr.slice(1)];
  if (!type || !"<>|=".includes(order)) {
    throw new NpyError(`numpy dtype '${descr}' has no Open Inference Protocol datatype here`);
  }
  const [datatype, read] = type;
  const size = Number(descr.slice(2));
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = headerStart + headerLength;
  if (offset + count * size > buffer.byteLength) {
    throw new NpyError(`the file holds fewer bytes than shape (${shape.join(", ")}) of ${descr} needs`);
  }
  const littleEndian = order !== ">";
  const data = new Array(count);
  for (let i = 0; i < count; i += 1) data[i] = read(view, offset + i * size, littleEndian);
  return { datatype, shape, data };
}
