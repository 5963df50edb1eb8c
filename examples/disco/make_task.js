// Writes the example DISCO task "lowcarb-tabular" for both protocol generations, and the
// small synthetic data sets of three clients.
//
//   NODE_PATH=tests/interop/node/node_modules node examples/disco/make_task.js
//
// (tests/interop/node holds TF.js after `npm install --ignore-scripts` there; any TF.js 4.x
// works.) The model is built with a fixed seed and saved in TF.js's layers format
// (model.json + weights.bin), the format DISCO's servers load; the output is the same
// on every run.
'use strict'

const fs = require('fs')
const path = require('path')
const tf = require('@tensorflow/tfjs-node') // pure TF.js under the interop fixture's alias

const ROOT = __dirname
const TASK_ID = 'lowcarb-tabular'
const COLUMNS = ['x1', 'x2', 'x3', 'x4']
const CLIENTS = 3
const ROWS = 96

// mulberry32: a tiny seeded PRNG, so the data never changes between runs.
function rng (seed) {
  return function () {
    seed |= 0; seed = seed + 0x6D2B79F5 | 0
    let t = Math.imul(seed ^ seed >>> 15, 1 | seed)
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
    return ((t ^ t >>> 14) >>> 0) / 4294967296
  }
}

function writeData () {
  const dir = path.join(ROOT, 'data')
  fs.mkdirSync(dir, { recursive: true })
  const w = [1.5, -2.0, 0.75, 0.5]
  for (let c = 0; c < CLIENTS; c++) {
    const random = rng(1000 + c)
    // Each client's features are shifted differently: non-IID, as real sites are.
    const shift = (c - 1) * 0.5
    const lines = [[...COLUMNS, 'label'].join(',')]
    for (let r = 0; r < ROWS; r++) {
      const x = COLUMNS.map(() => Math.round(((random() * 2 - 1) + shift) * 1000) / 1000)
      const score = x.reduce((s, v, i) => s + v * w[i], 0) + (random() - 0.5) * 0.5
      lines.push([...x, score > 0 ? 1 : 0].join(','))
    }
    fs.writeFileSync(path.join(dir, `client-${c + 1}.csv`), lines.join('\n') + '\n')
  }
}

function buildModel () {
  const model = tf.sequential()
  model.add(tf.layers.dense({
    inputShape: [COLUMNS.length],
    units: 8,
    activation: 'relu',
    kernelInitializer: tf.initializers.glorotUniform({ seed: 7 })
  }))
  model.add(tf.layers.dense({
    units: 1,
    activation: 'sigmoid',
    kernelInitializer: tf.initializers.glorotUniform({ seed: 11 })
  }))
  model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] })
  return model
}

async function saveLayersModel (model, dir, includeOptimizer) {
  fs.mkdirSync(dir, { recursive: true })
  await model.save({
    save: async (artifacts) => {
      const manifest = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }]
      }
      if (artifacts.trainingConfig !== undefined) manifest.trainingConfig = artifacts.trainingConfig
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(manifest, null, 1) + '\n')
      fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(artifacts.weightData))
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
    }
  }, { includeOptimizer })
}

const display = {
  taskTitle: 'lowcarb tabular example',
  summary: {
    preview: 'A tiny binary classifier on four synthetic features.',
    overview: 'Three clients hold 96 rows each; lowcarb selects who trains each round.'
  },
  dataFormatInformation: 'CSV with columns x1, x2, x3, x4 and label (0 or 1).'
}

const bridge = {
  zone: 'DE',
  clients_per_round: 2,
  min_clients: 3,
  device_power_w: 30,
  round_seconds: 5,
  rounds: 6
}

function write (dir, name, value) {
  fs.writeFileSync(path.join(dir, name), JSON.stringify(value, null, 2) + '\n')
}

async function main () {
  writeData()
  const model = buildModel()

  // v2 (@epfml/discojs-node@2.1.1): roundDuration counts batches (6 = one epoch of 96
  // rows); the client compiles the model with modelCompileData itself. A client sends one
  // update per round, 7 in all: the run's 6 rounds and one to spare (a client that waited
  // long for the others to connect may have sent an extra one).
  const v2 = path.join(ROOT, 'tasks', TASK_ID)
  await saveLayersModel(model, v2, false)
  write(v2, 'task.json', {
    taskID: TASK_ID,
    displayInformation: display,
    trainingInformation: {
      modelID: `${TASK_ID}-model`,
      epochs: 7,
      roundDuration: 6,
      validationSplit: 0.2,
      batchSize: 16,
      dataType: 'tabular',
      inputColumns: COLUMNS,
      outputColumns: ['label'],
      modelCompileData: { optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      scheme: 'Federated'
    }
  })
  write(v2, 'lowcarb.json', bridge)

  // develop (October 2024): roundDuration counts epochs; the model travels compiled, with
  // its optimizer state. A client trains 5 local rounds: its fair share of the run (6
  // rounds x 2 of 3 clients = 4) and its first, which it trains on connecting, before a
  // decision can include it.
  const dev = path.join(ROOT, 'tasks-develop', TASK_ID)
  await saveLayersModel(model, dev, true)
  write(dev, 'task.json', {
    id: TASK_ID,
    displayInformation: display,
    trainingInformation: {
      epochs: 5,
      roundDuration: 1,
      validationSplit: 0.2,
      batchSize: 16,
      dataType: 'tabular',
      inputColumns: COLUMNS,
      outputColumns: ['label'],
      scheme: 'federated',
      minNbOfParticipants: 2,
      aggregationStrategy: 'mean',
      tensorBackend: 'tfjs'
    }
  })
  write(dev, 'lowcarb.json', bridge)
}

main().catch((err) => { console.error(err); process.exit(1) })
