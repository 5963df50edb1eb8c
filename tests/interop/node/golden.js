// Golden files for lowcarb's codec tests, written and checked by DISCO's own code.
//
//   node golden.js make DIR    tensors, and their encodings by discojs-node 2.1.1 (v2) and by
//                              @msgpack/msgpack with DISCO develop's extension types
//   node golden.js check DIR   decode the py_* files lowcarb wrote; report, bit for bit,
//                              whether every tensor survived, and whether TF.js loads the models
'use strict'

const fs = require('fs')
const path = require('path')
const msgpack = require('@msgpack/msgpack')
const { serialization, WeightsContainer, tf } = require('@epfml/discojs-node')

// DISCO develop's coder registers these two extension types (codes from msgpack-lite).
const codec = new msgpack.ExtensionCodec()
codec.register({
  type: 0x17,
  encode: (o) => (o instanceof Float32Array ? new Uint8Array(o.buffer, o.byteOffset, o.byteLength) : null),
  decode: (raw) => new Float32Array(Uint8Array.prototype.slice.call(raw).buffer)
})
codec.register({
  type: 0x1a,
  encode: (o) => (o instanceof ArrayBuffer ? new Uint8Array(o) : null),
  decode: (raw) => Uint8Array.prototype.slice.call(raw).buffer
})

// Values that trip codecs: zeros of both signs, integers inside and outside int32, a
// subnormal, the float32 extremes and plain fractions.
const SPECIAL = [0, -0, 1, -2, 127, 128, -33, 65536, 3e9, -3e9, 0.1, -1.5, 1e-40, 3.4e38, -3.4e38]

function tensors () {
  const shapes = [[4, 8], [8], [8, 1], [1]]
  let k = 0
  return shapes.map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1)
    const values = new Float32Array(size)
    for (let i = 0; i < size; i++, k++) values[i] = k < SPECIAL.length ? SPECIAL[k] : Math.sin(k) * 10 ** ((k % 7) - 3)
    return { shape, values }
  })
}

function model () {
  const m = tf.sequential()
  m.add(tf.layers.dense({ inputShape: [4], units: 8, activation: 'relu' }))
  m.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }))
  m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] })
  m.setWeights(tensors().map((t) => tf.tensor(t.values, t.shape)))
  return m
}

async function artifactsOf (m) {
  return new Promise((resolve) => {
    void m.save({ save: async (a) => { resolve(a); return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } } } },
      { includeOptimizer: true })
  })
}

const b64 = (f32) => Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64')

async function make (dir) {
  fs.mkdirSync(dir, { recursive: true })
  const ts = tensors()
  fs.writeFileSync(path.join(dir, 'tensors.json'), JSON.stringify(ts.map((t) => ({ shape: t.shape, f32: b64(t.values) }))))
  const container = new WeightsContainer(ts.map((t) => tf.tensor(t.values, t.shape)))
  fs.writeFileSync(path.join(dir, 'v2_weights.json'), JSON.stringify(await serialization.weights.encode(container)))
  const m = model()
  fs.writeFileSync(path.join(dir, 'v2_model.json'), JSON.stringify(await serialization.model.encode(m)))
  const develop = ts.map((t) => ({ shape: t.shape, data: t.values }))
  fs.writeFileSync(path.join(dir, 'develop_weights.bin'), msgpack.encode(develop, { extensionCodec: codec }))
  fs.writeFileSync(path.join(dir, 'develop_model.bin'), msgpack.encode([0, await artifactsOf(m)], { extensionCodec: codec }))
}

function sameBits (got, expected) {
  // Compare float32 bit patterns, not values: -0 vs 0 and NaN payloads count.
  if (got.length !== expected.length) return false
  return got.every((t, i) => t.shape.join() === expected[i].shape.join() && b64(t.values) === b64(expected[i].values))
}

async function fromTensors (list) {
  return Promise.all(list.map(async (t) => ({ shape: t.shape, values: await t.data() })))
}

async function check (dir) {
  const expected = tensors()
  // discojs v2 itself encodes -0 as the integer 0: compare against what survives its own codec.
  const viaV2 = await fromTensors(serialization.weights.decode(JSON.parse(fs.readFileSync(path.join(dir, 'v2_weights.json')))).weights)
  const report = {}
  const v2 = serialization.weights.decode(JSON.parse(fs.readFileSync(path.join(dir, 'py_v2_weights.json'))))
  report.v2_weights = sameBits(await fromTensors(v2.weights), viaV2)
  const v2model = await serialization.model.decode(JSON.parse(fs.readFileSync(path.join(dir, 'py_v2_model.json'))))
  report.v2_model = sameBits(await fromTensors(v2model.getWeights()), expected)
  const dev = msgpack.decode(fs.readFileSync(path.join(dir, 'py_develop_weights.bin')), { extensionCodec: codec })
  report.develop_weights = sameBits(dev.map((t) => ({ shape: t.shape, values: t.data })), expected)
  const [kind, artifacts] = msgpack.decode(fs.readFileSync(path.join(dir, 'py_develop_model.bin')), { extensionCodec: codec })
  const devModel = await tf.loadLayersModel({ load: async () => artifacts })
  report.develop_model = kind === 0 && sameBits(await fromTensors(devModel.getWeights()), expected) &&
    devModel.optimizer !== undefined && devModel.optimizer !== null
  console.log('LOWCARB_GOLDEN ' + JSON.stringify(report))
}

const [mode, dir] = process.argv.slice(2)
const run = mode === 'make' ? make : mode === 'check' ? check : null
if (run === null) { console.error('usage: node golden.js make|check DIR'); process.exit(2) }
run(dir).then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
