// One unmodified DISCO develop client (built from ../shared/third_party/disco-develop)
// training a task on a server, with a log of what it did and what it was told.
//
//   DISCO_DEVELOP=BUILD_DIR node driver.mjs URL TASK_ID DATA.csv CLIENT_NAME ZONE
//
// The client is DISCO's own FederatedClient and Disco; the subclass below only listens to
// the messages DISCO's client receives (it changes nothing they do), so that the test can
// tell when the client was told to wait and whether it trained meanwhile. It prints one
// line `LOWCARB_RESULT {...}` with that log, its final round and its participants.
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const build = process.env.DISCO_DEVELOP
if (!build) throw new Error('DISCO_DEVELOP must name the built DISCO develop folder')
const discojs = await import(
  pathToFileURL(path.join(build, 'node_modules', '@epfml', 'discojs', 'dist', 'index.js')).href
)
const { Disco, Dataset, fetchTasks, client: clients, aggregator: aggregators } = discojs

const [url, taskId, csv, name, zone] = process.argv.slice(2)
const started = performance.now()
const events = []
const note = (kind, fields = {}) => events.push({ kind, t: Math.round(performance.now() - started), ...fields })

class ObservedClient extends clients.federated.FederatedClient {
  setupServerCallbacks (flag) {
    // Registered before DISCO's own listeners (so a pause is logged before the status it
    // causes) and before the client sends ClientConnected (so no message is missed).
    this.server.on(7, (m) => note('welcome', { round: m.round, wait: m.waitForMoreParticipants }))
    this.server.on(8, () => note('pause'))
    this.server.on(9, () => note('resume'))
    this.server.on(11, (m) => note('reply', { round: m.round, participants: m.nbOfParticipants }))
    super.setupServerCallbacks(flag)
  }
}

function readRows (file) {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n')
  const names = header.split(',')
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [names[i], v])))
}

const base = new URL(url)
const task = (await fetchTasks(base)).get(taskId)
if (task === undefined) throw new Error(`no task ${taskId} on ${url}`)
const clientURL = new URL(base.href)
clientURL.searchParams.set('client', name)
clientURL.searchParams.set('zone', zone)
const aggregator = aggregators.getAggregator(task, { scheme: 'federated' })
const client = new ObservedClient(clientURL, task, aggregator)
const disco = new Disco(task, client, { scheme: 'federated', logger: { success () {}, error (m) { console.error(m) } } })
disco.on('status', (status) => note('status', { status }))

let rounds = 0
let cpuMicros = 0
for await (const round of disco.train(['tabular', new Dataset(readRows(csv))])) {
  // DISCO calls onRoundBeginCommunication before it hands out a round: training starts now.
  rounds += 1
  note('round_start', { round: rounds })
  const cpu = process.cpuUsage()
  let epoch = 0
  for await (const batches of round) {
    for await (const _ of batches);
    epoch += 1
    note('epoch_end', { round: rounds, epoch })
  }
  const used = process.cpuUsage(cpu)
  cpuMicros += used.user + used.system
}
const id = client.ownId
await disco.close()
console.log('LOWCARB_RESULT ' + JSON.stringify({
  name,
  id,
  rounds,
  round: aggregator.round,
  participants: client.getNbOfParticipants(),
  cpu_s: cpuMicros / 1e6,
  events
}))
process.exit(0)
