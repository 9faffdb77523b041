/**
 * A logging HTTP proxy in front of the test gateway, for tests that count and time the requests a
 * store sends, whichever sends them (the AWS SDK or lean-http.ts's signed requests). It forwards
 * each request as it came, its Host header included, so a SigV4 signature made for the proxy's
 * address holds at the gateway (which checks it against the Host it receives).
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoggingProxy {
  /** `http://127.0.0.1:port`: the endpoint to give the store. */
  readonly url: string;
  /** `METHOD key` of each request (the key decoded, the bucket left out); ` presigned` appended for a query-signed one. */
  readonly sent: string[];
  /** The client port of each request, in `sent`'s order: equal ports, one kept-alive connection. */
  readonly ports: number[];
  /** How many requests the AWS SDK sent (its User-Agent): none for a store read and written without it. */
  bySdk: number;
  /** Each GET whose answer the store's side closed before its body was all sent (`METHOD key`). */
  readonly cut: string[];
  /** Runs after the gateway's answer and before it is forwarded (to change the bucket in between). */
  after: ((method: string, key: string) => Promise<void>) | null;
  close(): Promise<void>;
}

export async function loggingProxy(target: string, bucket: string): Promise<LoggingProxy> {
  const to = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const proxy: Omit<LoggingProxy, 'url' | 'close'> = { sent: [], ports: [], bySdk: 0, cut: [], after: null };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const key = decodeURIComponent(url.pathname.replace(new RegExp(`^/${bucket}/?`), ''));
    const entry = `${req.method} ${key}`;
    if (/aws-sdk-js/.test(String(req.headers['user-agent'] ?? '') + String(req.headers['x-amz-user-agent'] ?? ''))) proxy.bySdk++;
    proxy.ports.push(req.socket.remotePort!);
    proxy.sent.push(url.searchParams.has('X-Amz-Signature') ? `${entry} presigned` : entry);
    const up = http.request({ hostname: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
      void (async () => {
        await proxy.after?.(req.method!, key);
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
        res.on('close', () => {
          if (!res.writableFinished) {
            proxy.cut.push(entry);
            answer.destroy();
          }
        });
      })();
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  });
}
