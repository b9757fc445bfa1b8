// An Open Inference Protocol client this project did not write: Node's pure-JS gRPC
// (@grpc/grpc-js) with the protocol's .proto loaded at run time by @grpc/proto-loader, as a
// team's own service would call the server. It also calls classifier.v1's Predict on the same
// images, and prints one JSON object with what it saw, for the test to check.
//
//   node oip_client.js NODE_MODULES PROTO_DIR HOST:PORT IDX_GZ_IMAGES COUNT
'use strict';
const path = require('path');
const fs = require('fs');
const zlib = require('zlib');
const [modules, protoDir, address, imagesFile, countText] = process.argv.slice(2);
const grpc = require(path.join(modules, '@grpc/grpc-js'));
const loader = require(path.join(modules, '@grpc/proto-loader'));

const load = (file) => grpc.loadPackageDefinition(loader.loadSync(file, {
  includeDirs: [protoDir], longs: Number, enums: String, defaults: true, keepCase: true,
}));
const inference = load('inference/grpc_predict_v2.proto').inference;
const v1 = load('classifier/v1/classifier.proto').classifier.v1;
const oip = new inference.GRPCInferenceService(address, grpc.credentials.createInsecure());
const classifier = new v1.Classifier(address, grpc.credentials.createInsecure());
const call = (client, method, request) => new Promise((resolve) => {
  client[method](request, (error, response) => resolve({ error, response }));
});

// The first COUNT images of an IDX file (gzip), as bytes.
const idx = zlib.gunzipSync(fs.readFileSync(imagesFile));
const count = Number(countText);
const side = idx.readUInt32BE(8);
const pixels = idx.subarray(16, 16 + count * side * side);

async function main() {
  const out = {};
  out.live = (await call(oip, 'ServerLive', {})).response.live;
  out.ready = (await call(oip, 'ServerReady', {})).response.ready;
  out.server = (await call(oip, 'ServerMetadata', {})).response;
  out.model_ready = (await call(oip, 'ModelReady', { name: 'classifier' })).response.ready;
  out.metadata = (await call(oip, 'ModelMetadata', { name: 'classifier' })).response;
  out.config = (await call(oip, 'ModelConfig', { name: 'classifier' })).response.config;

  // UINT8 [N, 28, 28], raw: raw outputs.
  const raw = await call(oip, 'ModelInfer', {
    model_name: 'classifier', id: 'raw-1',
    inputs: [{ name: 'input', datatype: 'UINT8', shape: [count, side, side] }],
    raw_input_contents: [Buffer.from(pixels)],
  });
  if (raw.error) throw raw.error;
  const probabilities = raw.response.raw_output_contents[0];
  const labels = raw.response.raw_output_contents[1];
  out.raw = {
    id: raw.response.id,
    outputs: raw.response.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
    probabilities: Array.from({ length: probabilities.length / 4 }, (_, i) => probabilities.readFloatLE(4 * i)),
    labels: Array.from({ length: labels.length / 8 }, (_, i) => Number(labels.readBigInt64LE(8 * i))),
  };

  // FP32 [N, 1, 28, 28], typed contents: typed outputs.
  const typed = await call(oip, 'ModelInfer', {
    model_name: 'classifier',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [count, 1, side, side],
      contents: { fp32_contents: Array.from(pixels, (p) => p / 255) } }],
  });
  if (typed.error) throw typed.error;
  out.typed = {
    probabilities: typed.response.outputs[0].contents.fp32_contents,
    labels: typed.response.outputs[1].contents.int64_contents,
  };

  // A shape that does not match its bytes: the protocol's error, naming it.
  const bad = await call(oip, 'ModelInfer', {
    model_name: 'classifier',
    inputs: [{ name: 'input', datatype: 'UINT8', shape: [count + 1, side, side] }],
    raw_input_contents: [Buffer.from(pixels)],
  });
  out.bad = { code: bad.error && bad.error.code, details: bad.error && bad.error.details };

  // classifier.v1's Predict on the same images, every class's probability.
  const predict = await call(classifier, 'Predict', {
    top_k: 10,
    images: Array.from({ length: count }, (_, i) => ({
      raw_pixels: Buffer.from(pixels.subarray(i * side * side, (i + 1) * side * side)) })),
  });
  if (predict.error) throw predict.error;
  out.predict = predict.response.predictions.map((p) => {
    const row = new Array(10).fill(-1);
    for (const entry of p.top_k) row[entry.label] = entry.probability;
    return { label: p.label, probabilities: row };
  });
  console.log(JSON.stringify(out));
}
main().then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
