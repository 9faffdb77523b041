// A plain node:http server that hands each POST to the built `saveMultipart`, the way Next.js
// hands a route handler a web Request (body from the IncomingMessage, signal aborted when the
// client goes away). Used by __tests__/multipart.test.ts and by `npm run bench -- --only upload-rss`.
//
// env: UPLOAD_OPTIONS (JSON options of saveMultipart). Prints one JSON line per event on stdout:
// {event:'listening',port}, then per request {event:'saved'|'refused', code?, status, received}.
// GET /rss answers {rss, peak} (peak sampled every 10 ms since the last GET /rss/reset).
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

const { saveMultipart, UploadSyncError } = await import(fileURLToPath(new URL('../dist/next.js', import.meta.url)));
const options = JSON.parse(process.env.UPLOAD_OPTIONS ?? '{}');

/** What the example app's route answers for each refusal (examples/next-app/app/api/upload/route.ts). */
const STATUS = {
  ERR_TOO_LARGE: 413, ERR_LIMIT: 413, ERR_TYPE: 415, ERR_NOT_MULTIPART: 415, ERR_MALFORMED: 400, ERR_NO_FILE: 400,
  ERR_INVALID_NAME: 400, ERR_EXISTS: 409, ERR_ABORTED: 400,
};

let peak = process.memoryUsage.rss();
setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
}, 10).unref();

const log = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

function toRequest(req, res) {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const counter = { received: 0 };
  // The IncomingMessage as an async iterable, as Next.js passes it (Readable.toWeb of Node 20
  // throws "Controller is already closed" when the consumer cancels while data flows).
  async function* body() {
    for await (const chunk of req) {
      counter.received += chunk.byteLength;
      yield chunk;
    }
  }
  const request = new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, body: body(), duplex: 'half', signal: controller.signal });
  return { request, counter };
}

const server = createServer(async (req, res) => {
  if (req.method === 'GET') {
    if (req.url === '/rss/reset') peak = process.memoryUsage.rss();
    res.setHeader('content-type', 'application/json');
    if (req.url === '/gc' && globalThis.gc) globalThis.gc();
    res.end(JSON.stringify({ ...process.memoryUsage(), peak: Math.max(peak, process.memoryUsage.rss()) }));
    return;
  }
  const { request, counter } = toRequest(req, res);
  let status;
  let answer;
  try {
    const saved = await saveMultipart(request, options);
    status = 201;
    answer = { files: saved.files.map(({ name, size, url, field, originalName }) => ({ name, size, url, field, originalName })), fields: saved.fields, sync: saved.sync?.status ?? null };
    log({ event: 'saved', status, received: counter.received, ...answer });
  } catch (err) {
    const code = err instanceof UploadSyncError ? err.code : 'ERR_INTERNAL';
    status = STATUS[code] ?? 500;
    answer = { error: err.message, code };
    log({ event: 'refused', status, code, received: counter.received });
  }
  if (res.destroyed) return;
  // A refusal before the whole body was read: close the connection rather than read the rest.
  res.writeHead(status, { 'content-type': 'application/json', ...(status >= 400 ? { connection: 'close' } : {}) });
  res.end(JSON.stringify(answer));
});
server.listen(0, '127.0.0.1', () => log({ event: 'listening', port: server.address().port }));
