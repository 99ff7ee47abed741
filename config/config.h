// Config: the typed configuration of orchardd, and its loading from TOML.
//
// Every key, default, bound and doc line lives in one table (params.h); this
// file holds the typed struct the rest of the program reads and the loader
// that fills it. Loading never throws: it returns either a Config or every
// problem found (unknown sections and keys, wrong types, unparsable or
// out-of-bounds values, TOML syntax errors, cross-key rules), each naming its
// key and line so `orchardd --check-config` can print them all at once.
//
// Lifecycle: the server loads a Config at start and again on SIGHUP; a
// loaded Config is an immutable value shared read-only between threads
// inside a ConfigSnapshot (reload.h), where planReload() says which keys
// a reload applies and which need a restart.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "config/net.h"
#include "config/tokens.h"

namespace orchard::config {

// Field defaults below are zero values only: the real defaults come from the
// parameter table through defaults(). Do not use a value-initialized Config
// as a configuration.
struct Config {
  // [server]
  std::vector<ListenAddress> listen;      // plain HTTP listeners
  int workers = 0;                        // event loops; 0 = one per core
  int64_t drainTimeoutMs = 0;             // SIGTERM: how long to let transfers finish
  int64_t idleTimeoutMs = 0;              // close keep-alive client connections idle this long
  int64_t sendTimeoutMs = 0;              // close a client whose answer made no write progress this long
  int64_t headerTimeoutMs = 0;            // a request head must be complete this long after it may start (408)
  int64_t maxUriLength = 0;               // request targets longer than this: 414
  int64_t maxHeaderBytes = 0;             // request heads larger than this: 431
  int64_t maxHeaderCount = 0;             // request heads with more fields than this: 431
  int64_t maxConnectionsPerClient = 0;    // connections open at once from one address (503 beyond); 0 = no limit
  int64_t maxConnections = 0;             // client connections across all loops
  log::Level logLevel = log::Level::Info;
  // server.access_log: "" off, "stderr", or an absolute file path (the
  // TOML value true means "stderr").
  std::string accessLog;
  std::vector<std::string> accessLogMask;  // query parameters whose values the access log shows as ***
  std::string pacProxy;                   // "host:port" /proxy.pac names; "" = the request's Host

  // [tls] (accepted and validated; HTTPS listeners are not in this build)
  std::vector<ListenAddress> tlsListen;
  std::string tlsCertificate;
  std::string tlsPrivateKey;

  // [storage]
  std::string storageDir;   // objects, packages and the index
  uint64_t cacheLimit = 0;  // bytes of cached objects before eviction
  uint64_t maxObjectSize = 0;  // storage.max_object_size; 0: a quarter of cacheLimit (see maxStoredObject())
  // The largest object a fill may store: storage.max_object_size (or its
  // default share), never above the evictor's low watermark (90 %).
  uint64_t maxStoredObject() const {
    uint64_t cap = cacheLimit ? cacheLimit / 10 * 9 : UINT64_MAX;
    uint64_t want = maxObjectSize ? maxObjectSize : (cacheLimit ? cacheLimit / 4 : UINT64_MAX);
    return want < cap ? want : cap;
  }
  int64_t scrubIntervalMs = 0;  // re-verify every stored object's block checksums this often; 0 = never

  // [upstream]
  std::vector<std::string> upstreamAllow;                   // normalized host patterns (HostMatcher)
  std::map<std::string, ListenAddress> upstreamResolve;     // lower-case host -> connect address
  std::vector<std::string> schemeInKey;                     // hosts keyed with their scheme
  std::string upstreamCaFile;                               // extra CA bundle for HTTPS origins
  std::vector<std::string> ignoreQuery;                     // query parameters left out of the cache key
  int64_t connectTimeoutMs = 0;
  int64_t readTimeoutMs = 0;                                // between reads from an origin
  int maxIdlePerOrigin = 0;                                 // pooled idle upstream connections per origin
  std::vector<Cidr> allowPrivate;                          // non-public ranges DNS answers may be dialled in
  std::vector<std::string> tunnelAllow;                     // CONNECT hosts (HostMatcher); empty = upstreamAllow
  int64_t tunnelIdleTimeoutMs = 0;                          // close a tunnel with no byte either way this long
  std::vector<std::string> upstreamParents;  // as written; parsed into parentNodes
  std::string parentPolicy;                  // round-robin | first-available | url-path-hash | random | sticky-available
  int64_t parentDownTimeMs = 0;              // a failed parent or peer is skipped this long, then probed
  int maxHops = 0;                           // Via entries a request may carry (508 beyond)
  std::vector<std::string> upstreamPeers;    // as written; parsed into peerNodes
  std::string peerPolicy;                    // url-path-hash | off
  std::string peerName;                      // this box's entry in upstreamPeers; "" = found by listener
  // Derived at load (not parameters): the parsed lists.
  std::vector<CacheNode> parentNodes;
  std::vector<CacheNode> peerNodes;          // without this box's own entry
  std::string peerSelf;                      // this box's node id among the peers ("" = no peers)

  // [access]
  std::vector<Cidr> allowClients;  // clients outside every range get 403
  std::vector<Cidr> peerClients;   // peer boxes (their requests are never sent on to another peer)

  // [admin]
  std::string adminToken;      // bearer token named "admin" (admin scope), or empty
  std::string adminTokenFile;  // or a file holding it (read into ConfigSnapshot::adminToken)
  std::vector<TokenSpec> adminTokens;   // more tokens, each with a name and a scope (files read into the snapshot)
  std::vector<Cidr> adminAllowClients;  // who may reach the admin API; empty: see routes.h
  bool adminAllowPlainHttp = false;     // accept tokens over plain HTTP from other hosts
  std::vector<Cidr> adminLocalClients;  // "the box itself" for that rule (default: loopback)

  // [catalog]
  std::string catalogBaseUrl;        // what manifests point Macs at; "" = the request's Host
  uint64_t catalogLimit = 0;         // bytes of published packages
  uint64_t catalogMaxUpload = 0;     // largest Content-Length a publish may declare (413 beyond)
  bool catalogRequireSigned = false;
  std::string catalogTrustedRoots;   // PEM file of roots package signatures must chain to
  int64_t catalogStaleAfterMs = 0;   // a device with no status report this long counts as stale
  int catalogHaltOnFailurePercent = 0;  // a ring whose failure share passes this halts itself
  int catalogHaltMinReports = 0;        // ... once at least this many devices have reported
  std::string catalogFollow;             // hub URL this box's catalog follows; "" = its own
  std::string catalogFollowToken;        // the hub's token (or catalogFollowTokenFile)
  std::string catalogFollowTokenFile;
  int64_t catalogFollowPollMs = 0;       // long-poll wait of one changes request
  std::string catalogSite;               // this box's site name at the hub; "" = host name

  // [apple]
  std::string appleCatalogUrl;        // the software update catalog (read through the cache)
  int64_t appleCatalogRefreshMs = 0;  // how often it is read again
  uint64_t appleCatalogMaxSize = 0;   // bytes after decompression
  uint64_t appleMirrorRate = 0;       // bytes/s of mirror fills from origins; 0 = no cap
  std::string appleMirrorWindow;      // "HH:MM-HH:MM" local time; "" = always
  std::string appleOsFeedUrl;         // gdmf pmv feed; "" = off
  int64_t appleOsFeedIntervalMs = 0;
  std::string appleFeedCaFile;        // PEM trusted for the feed's host only

  // [history]
  int64_t historyRetentionMs = 0;       // per-minute samples older than this are deleted
  int64_t historySampleIntervalMs = 0;  // the sampler's period (60 s; shorter in tests)

  bool operator==(const Config&) const = default;
};

// The embedded defaults (what orchardd runs on without --config).
Config defaults();

// One thing wrong with a config file.
struct Problem {
  std::string key;      // "storage.cache_limit", a section name, or "" for syntax errors
  int line = 0;         // 1-based; 0 when unknown
  std::string message;  // "expected a size like \"200GiB\", got \"lots\""
};

// Either a Config (ok(), problems empty) or every problem found (config
// empty).
struct LoadResult {
  std::optional<Config> config;
  std::vector<Problem> problems;
  bool ok() const { return config.has_value(); }
};

// Reads and loads a file. An unreadable file is one problem with line 0.
LoadResult loadFile(const std::string& path);
// Loads TOML text. Keys left out keep their defaults. sourceName is used in
// TOML parser diagnostics only.
LoadResult loadString(std::string_view toml, std::string_view sourceName);

// "orchard.toml:12: storage.cache_limit: expected a size like \"200GiB\", got \"lots\"".
// The line is omitted when 0, the key when empty.
std::string formatProblem(const Problem& problem, std::string_view file);

// The embedded default config as commented TOML (every key, its default and
// its doc line). config/orchard.example.toml is this text.
std::string defaultsToml();

// The production config a box is installed with (/etc/orchard/orchard.toml,
// `orchardd --print-defaults --production`): the same keys and doc lines,
// with each param's productionToml value where it has one (port 80 on every
// IPv4 address, storage.dir = /var/lib/orchard), each noted as such.
std::string productionToml();

}  // namespace orchard::config
