/**
 * The read-only Node floor: the least any Node consumer of the slot can do. A `pg` replication
 * connection (as the daemon opens it), START_REPLICATION with pgoutput, and per CopyData message
 * only a look at its type byte to count row changes; standby status on request, every 10 s and at
 * the end. No decoding, no JSON.
 *
 * With `echo` (the floor-stdout contender): also writes each row change's message, as received,
 * `echo` times and a line break to stdout, the way the daemon's stdout publisher writes (corked
 * writes of the Buffers as they are, no copy), once per turn of the event loop; `done` waits for
 * the last write. The least a consumer that writes about as many bytes as it reads can spend. Its
 * bench lines go to stderr then. It does not pause the stream when the pipe is full: the bench
 * reads its stdout as it reads the daemon's.
 */
import pg from 'pg';
import { fail, readOptions, say as sayOnStdout } from './protocol.js';

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
const echo = options.echo ?? 0;
const say = echo > 0 ? (line: string): void => void process.stderr.write(`${line}\n`) : sayOnStdout;
const client = new pg.Client({ host: options.host, port: options.port, user: options.user, database: options.database, replication: 'database' } as pg.ClientConfig);
client.on('error', fail);
await client.connect();
const raw = (client as unknown as { connection: RawConnection }).connection;

// Last WAL position received, as the two 32-bit halves of the LSN (no BigInt per message).
let high = 0;
let low = 0;
let rows = 0;

const NEWLINE = Buffer.from('\n');
/** Row change messages not yet written (echo only). */
let pending: Buffer[] = [];
let written = 0;

/** Writes what is pending (corked: one writev); `then` runs once it is handed to the OS. */
function flush(then?: () => void): void {
  const parts = pending;
  pending = [];
  if (parts.length === 0) {
    then?.();
    return;
  }
  const out = process.stdout;
  out.cork();
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    for (let k = 0; k < echo; k++) out.write(part);
    if (then && i === parts.length - 1) out.write(NEWLINE, () => then());
    else out.write(NEWLINE);
    written += echo * part.length + 1;
  }
  out.uncork();
}

function echoed(chunk: Buffer): void {
  if (pending.length === 0) setImmediate(flush);
  pending.push(chunk);
}

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
    if (type !== INSERT && type !== UPDATE && type !== DELETE) return;
    if (echo > 0) echoed(chunk);
    if (++rows !== options.rows) return;
    sendStatus();
    if (echo > 0) flush(() => say(`done ${rows} ${written}`));
    else say(`done ${rows} 0`);
  } else if (chunk[0] === KEEPALIVE && chunk[17] === 1) {
    sendStatus();
  }
});
raw.once('replicationStart', () => say('streaming'));
setInterval(sendStatus, 10_000).unref();
const pid = (client as unknown as { processID: number }).processID;
say(`ready ${pid}`);
await client.query(`START_REPLICATION SLOT "${options.slot}" LOGICAL 0/0 (proto_version '1', publication_names '"${options.publication}"')`).catch(fail);
