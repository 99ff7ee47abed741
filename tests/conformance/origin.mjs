// Starts the cache-tests origin server bound to 127.0.0.1 only (its own
// server.mjs listens on every interface).
import http from 'node:http'
import { pathToFileURL } from 'node:url'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  const callbacks = rest.filter(a => typeof a === 'function')
  return listen.call(this, Number(port), '127.0.0.1', ...callbacks)
}
await import(pathToFileURL(`${process.env.CACHE_TESTS}/test-engine/server/server.mjs`).href)
