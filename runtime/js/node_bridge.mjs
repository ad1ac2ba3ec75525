// `modelc ... --provider node`: onnxruntime-node in this process, fed over stdin and answered over stdout.
// Every frame: a 4-byte little-endian header length, the JSON header, then `header.bytes` bytes of tensors.
// The first frame carries the model (weights included) once; each later frame is one batch.
import { createRequire } from "node:module";
import { runBatch } from "./tensors.mjs";

const home = process.argv[2];               // the folder whose node_modules holds onnxruntime-node
const ort = createRequire(`${home}/`)("onnxruntime-node");

let pending = Buffer.alloc(0);
let session = null;

function send(header, bytes = new Uint8Array(0)) {
  const json = Buffer.from(JSON.stringify({...header, bytes: bytes.byteLength}));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  process.stdout.write(Buffer.concat([length, json, bytes]));
}

async function handle(header, bytes) {
  if (header.op === "load") {
    const threads = header.threads || 0;
    session = await ort.InferenceSession.create(bytes, {executionProviders: ["cpu"], intraOpNumThreads: threads,
      graphOptimizationLevel: "all"});
    send({inputs: session.inputNames, outputs: session.outputNames, version: ort.env.versions.node});
    return;
  }
  const [answer, out] = await runBatch(ort, session, header, bytes);
  send(answer, out);
}

// Frames are handled one at a time, in order: the Python side waits for each answer. Chunks are kept in a
// list and joined once a whole frame is there (joining on every chunk is quadratic in a large batch).
let chain = Promise.resolve();
let chunks = [];
let buffered = 0;
let needed = 4;
process.stdin.on("data", (chunk) => {
  chunks.push(chunk);
  buffered += chunk.length;
  while (buffered >= needed) {
    pending = Buffer.concat(chunks, buffered);
    chunks = [pending];
    const length = pending.readUInt32LE(0);
    if (buffered < 4 + length) { needed = 4 + length; break; }
    const header = JSON.parse(pending.subarray(4, 4 + length).toString());
    const end = 4 + length + header.bytes;
    if (buffered < end) { needed = end; break; }
    const bytes = pending.subarray(4 + length, end);   // a view: decodeTensors copies each tensor once
    pending = pending.subarray(end);
    chunks = [pending];
    buffered = pending.length;
    needed = 4;
    chain = chain.then(() => handle(header, bytes)).catch((e) => send({error: String(e && e.message || e)}));
  }
});
process.stdin.on("end", () => chain.then(() => process.exit(0)));
