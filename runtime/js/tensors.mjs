// The bridge's wire format, shared by the Node process and the browser page (runtime/platform_js.py is the
// Python side): a frame is a JSON header naming each tensor's dtype and shape, then the tensors' raw bytes
// in header order, little-endian, packed without gaps.

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array, int16: Int16Array,
  uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
  bool: Uint8Array, float16: Uint16Array,
};

function count(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

// header.inputs: [{name, dtype, shape}]; bytes: a Uint8Array holding them back to back
export function decodeTensors(ort, specs, bytes) {
  const feeds = {};
  let offset = 0;
  for (const spec of specs) {
    const Array = ARRAYS[spec.dtype];
    if (!Array) throw new Error(`the bridge cannot carry dtype ${spec.dtype}`);
    const n = count(spec.shape);
    const size = n * Array.BYTES_PER_ELEMENT;
    // a copy, aligned as a typed array needs (Uint8Array's slice: a Node Buffer's own slice is a view)
    const copy = Uint8Array.prototype.slice.call(bytes, offset, offset + size);
    const data = spec.dtype === "bool" ? new Uint8Array(copy.buffer) : new Array(copy.buffer, 0, n);
    feeds[spec.name] = new ort.Tensor(spec.dtype, data, spec.shape);
    offset += size;
  }
  return feeds;
}

// results: {name: ort.Tensor}; returns [specs, Uint8Array of all the tensors' bytes]
export function encodeTensors(results, names) {
  const specs = [];
  const parts = [];
  let total = 0;
  for (const name of names) {
    const tensor = results[name];
    const data = tensor.data;
    if (!ArrayBuffer.isView(data)) throw new Error(`output '${name}' of type ${tensor.type} cannot cross the bridge`);
    const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    specs.push({name, dtype: tensor.type, shape: tensor.dims.map(Number)});
    parts.push(view);
    total += view.byteLength;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return [specs, out];
}

// One batch: decode, run, encode; `ms` is session.run alone, so the bridge's own cost can be measured.
export async function runBatch(ort, session, header, bytes) {
  const feeds = decodeTensors(ort, header.inputs, bytes);
  const start = performance.now();
  const results = await session.run(feeds, header.outputs);
  const ms = performance.now() - start;
  const [specs, out] = encodeTensors(results, header.outputs);
  return [{outputs: specs, ms}, out];
}
