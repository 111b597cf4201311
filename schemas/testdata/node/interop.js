// Speaks to rtstack's schema registry as a Node producer in another service
// would, with @kafkajs/confluent-schema-registry, and prints what it saw as
// one JSON object for schemas/registry_node_test.go to check.
//
// usage: node interop.js REGISTRY_URL AVSC_FILE RTSTACK_RECORD_HEX
'use strict';

const fs = require('fs');
const { SchemaRegistry, SchemaType, COMPATIBILITY } = require('@kafkajs/confluent-schema-registry');

async function main() {
  const [url, avscFile, recordHex] = process.argv.slice(2);
  const registry = new SchemaRegistry({ host: url, retry: { retries: 0 } });
  const schema = fs.readFileSync(avscFile, 'utf8');
  const subject = 'rtstack.events.MessageSent';
  const out = {};

  // A producer with auto-registration: rtstack already has this schema.
  const registered = await registry.register(
    { type: SchemaType.AVRO, schema },
    { subject, compatibility: COMPATIBILITY.BACKWARD_TRANSITIVE },
  );
  out.registeredId = registered.id;
  // A producer without it: look the schema up, or take the latest.
  out.lookupId = await registry.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema });
  out.latestId = await registry.getLatestSchemaId(subject);

  out.encodedHex = (await registry.encode(out.latestId, {
    id: 'e-node', room: 'lobby', user: 'nodeuser', ts: 1700000000456,
    message_id: 'm-node', client_id: 'c-node', text: 'hi from node @bob', mentions: ['bob'],
  })).toString('hex');
  out.decoded = await registry.decode(Buffer.from(recordHex, 'hex'));

  // A schema rtstack does not have is refused, in Confluent's shape.
  const other = JSON.parse(schema);
  other.fields.push({ name: 'extra', type: 'string', default: '' });
  try {
    await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(other) },
      { subject, compatibility: COMPATIBILITY.BACKWARD_TRANSITIVE });
    out.refused = null;
  } catch (err) {
    out.refused = { status: err.status, message: err.message };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
