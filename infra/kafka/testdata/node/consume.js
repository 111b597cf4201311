// Reads COUNT records of TOPIC from the start with kafkajs and prints them
// as JSON lines
// ({"partition","offset","eventType","magic"}). With "snappy" as the last
// argument it registers kafkajs-snappy first; without it, kafkajs cannot
// decompress the batches and the script exits 1 with kafkajs's error.
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')

const [broker, topic, count, codec] = process.argv.slice(2)
if (codec === 'snappy') {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
}

const kafka = new Kafka({
  clientId: 'kafkajs-interop',
  brokers: [broker],
  logLevel: logLevel.NOTHING,
  retry: { retries: 2 },
})

async function main () {
  const consumer = kafka.consumer({ groupId: 'kafkajs-interop-' + Date.now(), retry: { retries: 0 } })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let seen = 0
  let failed = null
  await new Promise((resolve) => {
    consumer.on(consumer.events.CRASH, (e) => { failed = e.payload.error; resolve() })
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const eventType = (message.headers['event-type'] || '').toString()
        console.log(JSON.stringify({ partition, offset: Number(message.offset), eventType, magic: message.value[0] }))
        if (++seen >= Number(count)) resolve()
      },
    }).catch((e) => { failed = e; resolve() })
  })
  await consumer.disconnect().catch(() => {})
  if (failed) {
    console.error(String((failed && failed.message) || failed))
    process.exit(1)
  }
}

main().catch((e) => { console.error(String(e && e.message || e)); process.exit(1) })
