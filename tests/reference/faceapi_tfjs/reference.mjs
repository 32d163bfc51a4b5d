// TF.js reference for face-api.js's FaceExpressionNet (@vladmandic/face-api, pure-JS @tensorflow/tfjs, CPU backend).
//
//   node reference.mjs CROPS.npy OUTDIR
//
// CROPS.npy: uint8 array (N, 112, 112, 3), RGB, C order. Writes to OUTDIR:
//   probs.npy   (N, 7) float32  softmax from face-api's own code path (faceExpressionNet.forward)
//   grid.npy    (N, 7, 7, 256) float32  NHWC feature map after dense3 (before avgPool), recomputed here with TF.js
//               ops over the net's loaded params exactly as face-api's denseBlock4 does
//   result.json labels, versions, the probabilities of both paths and their max |diff|
// Exits non-zero when softmax(fc(mean over the grid)) differs from face-api's probabilities by more than TOL.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// face-api.node-wasm.js is the Node bundle built against pure-JS @tensorflow/tfjs (+ the wasm backend, not used
// here); face-api.node.js needs tfjs-node's native binary. All ops below go through faceapi.tf, the instance the
// net's params live in.
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { tf } = faceapi;

const LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];
const MEAN_RGB = [122.782, 117.001, 104.298];
const TOL = 1e-5;

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!['|u1', '<u1'].includes(descr) || fortran) throw new Error(`${file}: expected C-order uint8, got ${descr}`);
  if (shape.length !== 4 || shape[1] !== 112 || shape[2] !== 112 || shape[3] !== 3) {
    throw new Error(`${file}: expected shape (N, 112, 112, 3), got (${shape})`);
  }
  return { data: new Uint8Array(buf.buffer, buf.byteOffset + start, shape.reduce((a, b) => a * b, 1)), shape };
}

function writeNpyF32(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header = header + ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

// face-api's src/common/depthwiseSeparableConv.ts
function sepConv(x, p, stride) {
  return tf.add(tf.separableConv2d(x, p.depthwise_filter, p.pointwise_filter, stride, 'same'), p.bias);
}

// face-api's src/faceFeatureExtractor/denseBlock.ts denseBlock4 (isScaleDown = true)
function denseBlock4(x, p, isFirstLayer) {
  const out1 = tf.relu(isFirstLayer
    ? tf.add(tf.conv2d(x, p.conv0.filters, [2, 2], 'same'), p.conv0.bias)
    : sepConv(x, p.conv0, [2, 2]));
  const out2 = sepConv(out1, p.conv1, [1, 1]);
  const in3 = tf.relu(tf.add(out1, out2));
  const out3 = sepConv(in3, p.conv2, [1, 1]);
  const in4 = tf.relu(tf.add(out1, tf.add(out2, out3)));
  const out4 = sepConv(in4, p.conv3, [1, 1]);
  return tf.relu(tf.add(out1, tf.add(out2, tf.add(out3, out4))));
}

async function main() {
  const [cropsFile, outDir] = process.argv.slice(2);
  if (!cropsFile || !outDir) {
    console.error('usage: node reference.mjs CROPS.npy OUTDIR');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const net = faceapi.nets.faceExpressionNet;
  await net.loadFromDisk(modelDir);

  const { data, shape } = readNpy(cropsFile);
  const n = shape[0];
  const images = tf.tensor4d(data, shape, 'int32');

  // (a) face-api's own path: NetInput of N (112, 112, 3) tensors -> toBatchTensor -> FaceFeatureExtractor -> fc -> softmax
  const inputs = tf.unstack(images);
  const probsOwn = await net.forward(inputs);
  const probsOwnData = probsOwn.dataSync().slice();

  // (b) the same network up to the 7x7x256 grid, recomputed over the loaded params
  const fe = net.faceFeatureExtractor.params;
  const fc = net.params.fc;
  const grid = tf.tidy(() => {
    const x = tf.sub(tf.cast(images, 'float32'), tf.tensor1d(MEAN_RGB)).div(255);
    let out = denseBlock4(x, fe.dense0, true);
    out = denseBlock4(out, fe.dense1, false);
    out = denseBlock4(out, fe.dense2, false);
    return denseBlock4(out, fe.dense3, false);
  });
  if (grid.shape.join() !== [n, 7, 7, 256].join()) throw new Error(`grid shape ${grid.shape}`);
  const probsGrid = tf.tidy(() => tf.softmax(tf.add(tf.matMul(tf.mean(grid, [1, 2]), fc.weights), fc.bias)));
  // face-api's own pooled features (avgPool 7x7 'valid') against the grid's mean
  const pooledOwn = tf.tidy(() => net.faceFeatureExtractor.forwardInput(new faceapi.NetInput(inputs)).reshape([n, 256]));
  const pooledDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(pooledOwn, tf.mean(grid, [1, 2])))).dataSync()[0]);

  const probsGridData = probsGrid.dataSync();
  let maxDiff = 0;
  for (let i = 0; i < probsOwnData.length; i += 1) maxDiff = Math.max(maxDiff, Math.abs(probsOwnData[i] - probsGridData[i]));

  fs.mkdirSync(outDir, { recursive: true });
  writeNpyF32(path.join(outDir, 'probs.npy'), probsOwnData, [n, 7]);
  writeNpyF32(path.join(outDir, 'grid.npy'), grid.dataSync(), [n, 7, 7, 256]);
  const rows = (flat) => Array.from({ length: n }, (_, i) => Array.from(flat.slice(i * 7, i * 7 + 7)));
  const installed = (name) => JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  const faPkg = { version: installed('@vladmandic/face-api') };
  const result = {
    labels: LABELS,
    n,
    backend: tf.getBackend(),
    tfjs_version: installed('@tensorflow/tfjs'),
    tfjs_core_version: tf.version_core,
    tfjs_backend_cpu_version: installed('@tensorflow/tfjs-backend-cpu'),
    node_version: process.version,
    faceapi_version: faPkg.version,
    faceapi_bundle: 'dist/face-api.node-wasm.js',
    probs: rows(probsOwnData),
    probs_from_grid: rows(probsGridData),
    max_abs_diff_probs: maxDiff,
    max_abs_diff_pooled: pooledDiff,
    top: rows(probsOwnData).map((p) => LABELS[p.indexOf(Math.max(...p))]),
  };
  fs.writeFileSync(path.join(outDir, 'result.json'), `${JSON.stringify(result, null, 1)}\n`);
  console.log(`tfjs ${installed('@tensorflow/tfjs')} (${tf.getBackend()}), face-api ${faPkg.version}: ${n} crops; `
    + `max |p_faceapi - p_grid| = ${maxDiff.toExponential(3)}, max |pooled_faceapi - mean(grid)| = ${pooledDiff.toExponential(3)}`);
  if (!(maxDiff <= TOL) || !(pooledDiff <= TOL)) {
    console.error(`grid path disagrees with face-api's own output (tolerance ${TOL})`);
    process.exit(1);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
