// Preloaded into the cache-tests client (node --import): sends every request
// through the proxy under test in absolute form (no CONNECT tunnel), also the
// ones the client makes with an undici Agent of its own (the interim-response
// tests), which would otherwise bypass the proxy.
import { pathToFileURL } from 'node:url'

const undici = await import(pathToFileURL(`${process.env.CACHE_TESTS}/node_modules/undici/index.js`).href)
const proxy = new undici.ProxyAgent({ uri: process.env.ORCHARD_PROXY, proxyTunnel: false })
undici.setGlobalDispatcher(proxy)
globalThis.fetch = undici.fetch
undici.Agent.prototype.compose = function (...interceptors) { return proxy.compose(...interceptors) }
