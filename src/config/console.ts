/**
 * The `console` section (DESIGN.md "Live console and SSE", + keys): the live browser console
 * (`/console`) and its Server-Sent Events feed (`/events`). Off while `addr` is empty.
 * A token is required unless the address is loopback (no one else can connect there).
 */
import { z } from 'zod';
import { parseListenAddress, type ListenAddress } from './listen-address.js';

/** Loopback hosts: 127.0.0.0/8, ::1 and localhost. An absent host means every interface (not loopback). */
export function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export const consoleSection = z
  .strictObject({
    /** ":8090", "127.0.0.1:8090" or "host:port"; empty = off. */
    addr: z.string().default(''),
    /** Bearer token (`Authorization: Bearer …` or `?token=`); required unless addr is loopback. */
    token: z.string().default(''),
    /** Connected SSE clients at most (the console page is one each); more get 503. */
    maxClients: z.number().int().min(1).max(10_000).default(50),
  })
  .prefault({})
  .transform((section, ctx) => {
    let address: ListenAddress | null;
    try {
      address = parseListenAddress(section.addr.trim());
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['addr'], message: (err as Error).message });
      return z.NEVER;
    }
    if (address && section.token === '' && !isLoopback(address.host)) {
      const where = address.host === undefined ? 'every interface' : address.host;
      ctx.addIssue({
        code: 'custom',
        path: ['token'],
        message: `is required: console.addr ${JSON.stringify(section.addr)} listens on ${where}, not loopback; set a token (WAL_CONSOLE_TOKEN) or listen on 127.0.0.1`,
      });
      return z.NEVER;
    }
    return { ...section, address };
  });

export type ConsoleConfig = z.output<typeof consoleSection>;
