/** Addresses the HTTP servers listen on: listener.serverPort and monitoring.promAddr. */

export interface ListenAddress {
  /** undefined = every interface. */
  host: string | undefined;
  port: number;
}

/** `:2112`, `host:2112`, `[::1]:2112` or `2112`. Empty = off (null). Throws on anything else. */
export function parseListenAddress(text: string): ListenAddress | null {
  if (text === '') return null;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`expected ":<port>" or "<host>:<port>" (such as ":2112"), got ${JSON.stringify(text)}`);
  const host = match[1] || match[2] || undefined;
  return { host, port };
}
