/**
 * The read-only Node floor: the least any Node consumer of the slot can do. A `pg` replication
 * connection (as the daemon opens it), START_REPLICATION with pgoutput, and per CopyData message
 * only a look at its type byte to count row changes; standby status on request, every 10 s and at
 * the end. No decoding, no JSON.
 */
import pg from 'pg';
import { fail, readOptions, say } from './protocol.js';

interface RawConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', listener: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
}

const XLOG_DATA = 0x77; // w
const KEEPALIVE = 0x6b; // k
const INSERT = 0x49;
const UPDATE = 0x55;
const DELETE = 0x44;
const PG_EPOCH_MS = 946_684_800_000;

const options = readOptions();
const client = new pg.Client({ host: options.host, port: options.port, user: options.user, database: options.database, replication: 'database' } as pg.ClientConfig);
client.on('error', fail);
await client.connect();
const raw = (client as unknown as { connection: RawConnection }).connection;

// Last WAL position received, as the two 32-bit halves of the LSN (no BigInt per message).
let high = 0;
let low = 0;
let rows = 0;

function sendStatus(): void {
  const status = Buffer.alloc(34);
  status[0] = 0x72; // r
  for (const at of [1, 9, 17]) {
    status.writeUInt32BE(high, at);
    status.writeUInt32BE(low, at + 4);
  }
  status.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
  raw.sendCopyFromChunk(status);
}

raw.on('copyData', ({ chunk }) => {
  if (chunk[0] === XLOG_DATA) {
    high = chunk.readUInt32BE(1);
    low = chunk.readUInt32BE(5);
    const type = chunk[25];
    if ((type === INSERT || type === UPDATE || type === DELETE) && ++rows === options.rows) {
      sendStatus();
      say(`done ${rows} 0`);
    }
  } else if (chunk[0] === KEEPALIVE && chunk[17] === 1) {
    sendStatus();
  }
});
raw.once('replicationStart', () => say('streaming'));
setInterval(sendStatus, 10_000).unref();
const pid = (client as unknown as { processID: number }).processID;
say(`ready ${pid}`);
await client.query(`START_REPLICATION SLOT "${options.slot}" LOGICAL 0/0 (proto_version '1', publication_names '"${options.publication}"')`).catch(fail);
