/**
 * `pg-logical-replication` as a change consumer: LogicalReplicationService with its PgoutputPlugin
 * (protocol 1), each row change to JSON (the new row, and the old one when the server sent it) and
 * into a null sink. Default settings: auto-acknowledge on, so the library sends a standby status
 * for every message as soon as the synchronous 'data' handlers return.
 */
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { fail, readOptions, RowSink, say } from './protocol.js';

const options = readOptions();
const sink = new RowSink(options.rows);
const service = new LogicalReplicationService({ host: options.host, port: options.port, user: options.user, database: options.database });
const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [options.publication] });

service.on('data', (_lsn: string, message: Pgoutput.Message) => {
  if (message.tag === 'insert') sink.row(JSON.stringify(message.new));
  else if (message.tag === 'update') sink.row(message.old ? JSON.stringify(message.new) + JSON.stringify(message.old) : JSON.stringify(message.new));
  else if (message.tag === 'delete') sink.row(JSON.stringify(message.old ?? message.key));
});
service.on('error', fail);
service.on('start', () => {
  const client = (service as unknown as { _client: { processID: number } })._client;
  say(`ready ${client.processID}`);
  say('streaming');
});
service.subscribe(plugin, options.slot).catch(fail);
