// One unmodified DISCO client (@epfml/discojs-node@2.1.1) training a task on a server.
//
//   node driver.js URL TASK_ID DATA.csv CLIENT_NAME ZONE
//
// It fetches the task list, joins the task federatedly (declaring its name and zone as
// query parameters, which DISCO carries into the WebSocket URL), trains on the CSV and
// prints one line `LOWCARB_RESULT {...}` with its final round and server statistics.
'use strict'

const fs = require('fs')
const { fetchTasks, Disco, TrainingSchemes, client: clients, data, tf } = require('@epfml/discojs-node')

function readRows (file, columns) {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n')
  const names = header.split(',')
  return lines.map((line) => {
    const cells = line.split(',').map(Number)
    return Object.fromEntries(names.map((n, i) => [n, cells[i]]))
  })
}

// Quiet logger: the test reads stdout.
const logger = { success () {}, error (m) { console.error(m) } }

async function main () {
  const [url, taskID, csv, name, zone] = process.argv.slice(2)
  const base = new URL(url)
  const task = (await fetchTasks(base)).get(taskID)
  if (task === undefined) throw new Error(`no task ${taskID} on ${url}`)

  const info = task.trainingInformation
  const rows = readRows(csv, info.inputColumns)
  const dataset = tf.data.array(rows.map((r) => ({
    xs: info.inputColumns.map((c) => r[c]),
    ys: info.outputColumns.map((c) => r[c])
  })))
  const train = await data.TabularData.init(dataset, task, rows.length)

  const clientURL = new URL(base.href)
  clientURL.searchParams.set('client', name)
  clientURL.searchParams.set('zone', zone)
  const client = new clients.federated.Client(clientURL, task)
  // The task says scheme 'Federated', which 2.1.1 does not map; name the scheme.
  const disco = new Disco(task, { scheme: TrainingSchemes.FEDERATED, client, logger })
  await disco.fit({ train })
  await client.disconnect()
  console.log('LOWCARB_RESULT ' + JSON.stringify({
    name, clientID: client.clientID, round: client.round, statistics: client.receivedStatistics
  }))
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
