// DISCO's own server (a compiled copy with lowcarb's hook) serving one task folder.
//
//   DISCO_DEVELOP=BUILD_DIR node disco_server.mjs SERVER_DIST TASK_DIR PORT
//
// TASK_DIR holds task.json (develop form) and the TF.js layers model (model.json and
// weights.bin), as the bridge's task folders do. Prints `DISCO_SERVER URL` once listening.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const [dist, taskDir, port] = process.argv.slice(2)
const build = process.env.DISCO_DEVELOP
const discojsEntry = path.join(build, 'node_modules', '@epfml', 'discojs', 'dist', 'index.js')
const discojs = await import(pathToFileURL(discojsEntry).href)
// The TF.js that discojs itself loads (one instance: models move between them).
const tf = await import(pathToFileURL(createRequire(discojsEntry).resolve('@tensorflow/tfjs')).href)
const { Server } = await import(pathToFileURL(path.join(dist, 'server.js')).href)

const task = JSON.parse(fs.readFileSync(path.join(taskDir, 'task.json'), 'utf8'))
const manifest = JSON.parse(fs.readFileSync(path.join(taskDir, 'model.json'), 'utf8'))
const bytes = fs.readFileSync(path.join(taskDir, manifest.weightsManifest[0].paths[0]))
const layers = await tf.loadLayersModel(tf.io.fromMemory({
  modelTopology: manifest.modelTopology,
  weightSpecs: manifest.weightsManifest[0].weights,
  weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  trainingConfig: manifest.trainingConfig
}))
const provider = { getTask: () => task, getModel: async () => new discojs.models.TFJS(layers) }
const [, url] = await new Server().serve(Number(port), provider)
console.log(`DISCO_SERVER ${url}`)
