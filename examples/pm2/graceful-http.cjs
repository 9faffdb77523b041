// Preloaded into the `web` app (ecosystem.config.cjs: node_args --require): lets a worker that was
// told to stop (pm2 reload, pm2 stop) drain its keep-alive connections too.
//
// Next's standalone server stops on SIGINT/SIGTERM with Node's `server.close()`: no new
// connections, the requests in flight finish. But Node keeps answering `Connection: keep-alive`
// on the connections it already has, so a client that keeps sending (a browser, a proxy with
// upstream keep-alive, an audio player's range requests) keeps the old worker alive until PM2's
// kill_timeout, and PM2's SIGKILL then cuts whatever it is serving. With this file, every answer
// a closing server gives says `Connection: close` (answers already under way too, when their
// headers are not sent yet), so each client's next request opens a new connection, which goes to
// a new worker. And `close()` no longer drops the idle connections at once: a client may be
// sending on one at that very moment, and gets a reset (seen: 1 GET in 1,234). An idle
// connection either carries one more request (answered with `Connection: close`) or ends at the
// server's keep-alive timeout, which clients know from the `Keep-Alive: timeout=5` header and
// stop reusing before. Nothing changes until the server is closing.
'use strict';
const { Server } = require('node:http');

const listen = Server.prototype.listen;
Server.prototype.listen = function listenAndTrack(...args) {
  if (!this.__drainKeepAlive) {
    this.__drainKeepAlive = true;
    const open = new Set();
    let closing = false;
    this.prependListener('request', (req, res) => {
      if (closing) res.shouldKeepAlive = false;
      open.add(res);
      res.once('close', () => open.delete(res));
    });
    const close = this.close;
    this.close = function closeAndDrain(...closeArgs) {
      closing = true;
      for (const res of open) if (!res.headersSent) res.shouldKeepAlive = false;
      this.closeIdleConnections = () => undefined; // what Node's close() calls first (see above)
      return close.apply(this, closeArgs);
    };
  }
  return listen.apply(this, args);
};
