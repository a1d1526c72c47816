'use strict';
// The hand-written peer of Yiju's ingest (bench/ingest/run.py --compare, issue 18): what a developer
// would write in an afternoon with `mqtt` and `pg`. One persistent MQTT 5 session (clean start off,
// session expiry set, like Yiju's) subscribed at QoS 1; every message becomes one row (device, ts,
// seq, payload as JSON) in a multi-row INSERT, flushed at 1,000 rows or 50 ms, one INSERT in flight.
//
// Unlike Yiju it acknowledges each message on receipt (mqtt.js sends the PUBACK as soon as the
// 'message' handler returns), so what it has received but not yet committed lives only in its
// memory; nor does it validate anything beyond parsing the JSON.
//
// Configuration (environment): PEER_MQTT_URL, PEER_CLIENT_ID, PEER_TOPIC, PEER_DB_URL, PEER_TABLE.
// It prints "subscribed" once messages can flow and "stored N" when it exits (SIGTERM).

const mqtt = require('mqtt');
const pg = require('pg');

const MAX_ROWS = 1000;
const MAX_AGE_MS = 50;
const COLUMNS = 4;

const table = process.env.PEER_TABLE || 'peer_node';
if (!/^[a-z_][a-z0-9_]*$/.test(table)) {
  throw new Error(`bad table name ${table}`);
}

function insertText(rows) {
  const values = [];
  for (let r = 0; r < rows; r++) {
    const b = r * COLUMNS;
    values.push(`($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4})`);
  }
  // the natural key makes a redelivered message (QoS 1 is at least once) a no-op, as in Yiju
  return `INSERT INTO ${table} (device, ts, seq, payload) VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`;
}

const FULL_INSERT = insertText(MAX_ROWS);
const db = new pg.Client({ connectionString: process.env.PEER_DB_URL });
let buffer = [];
let oldestAt = 0;
let writing = false;
let stored = 0;
let timer = null;

async function flush() {
  if (writing || buffer.length === 0) {
    return;
  }
  writing = true;
  const rows = buffer.splice(0, MAX_ROWS);
  if (!buffer.length) {
    oldestAt = 0; // else the rest is at most as old as the oldest was: flushed next, soon enough
  }
  const values = [];
  for (const row of rows) {
    values.push(row[0], row[1], row[2], row[3]);
  }
  try {
    // a full batch reuses one prepared statement; a partial one is parsed each time
    const query = rows.length === MAX_ROWS
      ? { name: 'insert_full', text: FULL_INSERT, values }
      : { text: insertText(rows.length), values };
    await db.query(query);
    stored += rows.length;
  } catch (err) {
    // the rows are already acknowledged to the broker: there is nothing to retry from
    console.error(`insert of ${rows.length} rows failed: ${err.message}`);
  } finally {
    writing = false;
  }
  if (buffer.length >= MAX_ROWS || (buffer.length && Date.now() - oldestAt >= MAX_AGE_MS)) {
    setImmediate(flush);
  }
}

function onMessage(topic, payload) {
  const text = payload.toString('utf8');
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    return;
  }
  if (!buffer.length) {
    oldestAt = Date.now();
  }
  buffer.push([doc.device, doc.ts, doc.seq, text]);
  if (buffer.length >= MAX_ROWS) {
    flush();
  }
}

async function main() {
  await db.connect();
  const client = mqtt.connect(process.env.PEER_MQTT_URL, {
    clientId: process.env.PEER_CLIENT_ID,
    protocolVersion: 5,
    clean: false,
    keepalive: 30,
    reconnectPeriod: 1000,
    properties: { sessionExpiryInterval: 7 * 24 * 3600, receiveMaximum: 5000 },
  });
  client.on('connect', () => {
    client.subscribe(process.env.PEER_TOPIC || 'bench/#', { qos: 1 }, (err) => {
      if (err) {
        console.error(`subscribe failed: ${err.message}`);
      } else {
        console.log('subscribed');
      }
    });
  });
  client.on('error', (err) => console.error(`mqtt: ${err.message}`));
  client.on('message', onMessage);
  timer = setInterval(() => {
    if (buffer.length && Date.now() - oldestAt >= MAX_AGE_MS) {
      flush();
    }
  }, 10);
  process.on('SIGTERM', () => {
    clearInterval(timer);
    client.end(false, {}, async () => {
      while (writing || buffer.length) {
        await flush();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await db.end();
      console.log(`stored ${stored}`);
      process.exit(0);
    });
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
