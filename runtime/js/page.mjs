// `--provider wasm`: onnxruntime-web's WebAssembly backend in a headless page. Python calls the two functions
// below through Playwright. The model (once) and each large batch come as raw bytes fetched from the loopback
// server, a small batch as base64 text inside the call; outputs go back as base64 text.
import * as ort from "./ort/ort.wasm.min.mjs";
import { runBatch } from "./tensors.mjs";

let session = null;

// Chromium 140 and later decode and encode base64 natively, many times faster than a loop over characters
function fromBase64(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function toBase64(bytes) {
  if (bytes.toBase64) return bytes.toBase64();
  let raw = "";
  for (let i = 0; i < bytes.length; i += 0x8000) raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(raw);
}

window.loadModel = async (threads) => {
  ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
  ort.env.wasm.numThreads = crossOriginIsolated ? threads : 1;
  const model = new Uint8Array(await (await fetch("./model.onnx")).arrayBuffer());
  session = await ort.InferenceSession.create(model, {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
  return {inputs: session.inputNames, outputs: session.outputNames, version: ort.env.versions.web,
          threads: ort.env.wasm.numThreads};
};

// `inline`: a small batch as base64 text; null: fetch the batch's raw bytes from the server
window.runBatch = async (header, inline) => {
  const payload = inline !== null ? fromBase64(inline)
    : new Uint8Array(await (await fetch("./batch", {cache: "no-store"})).arrayBuffer());
  const [answer, out] = await runBatch(ort, session, header, payload);
  return [answer, toBase64(out)];
};
window.bridgeReady = true;
