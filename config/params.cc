// The parameter table (see params.h) and the size/duration parsers.
#include "config/params.h"

#include <cassert>
#include <limits>
#include <type_traits>

#include "common/log.h"

namespace orchard::config {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = kKiB * 1024;
constexpr int64_t kGiB = kMiB * 1024;
constexpr int64_t kTiB = kGiB * 1024;
constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Glue between a table row and a Config field. Integers of any width take the
// int64_t alternative (the param's bounds keep them in range); log::Level
// takes the Choice string.
template <auto Member>
struct Field {
  using T = std::remove_cvref_t<decltype(std::declval<Config&>().*Member)>;
  static void set(Config& c, Value&& v) {
    if constexpr (std::is_same_v<T, log::Level>) {
      log::Level level = log::Level::Info;
      bool known = log::parseLevel(std::get<std::string>(v).c_str(), &level);
      assert(known && "log level choices must be names log::parseLevel knows");
      (void)known;
      c.*Member = level;
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      c.*Member = static_cast<T>(std::get<int64_t>(v));
    } else {
      c.*Member = std::get<T>(std::move(v));
    }
  }
  static bool same(const Config& a, const Config& b) { return a.*Member == b.*Member; }
  static void copy(Config& to, const Config& from) { to.*Member = from.*Member; }
};

#define ORCHARD_FIELD(member)                                                          \
  .set = &Field<&Config::member>::set, .same = &Field<&Config::member>::same, \
  .copy = &Field<&Config::member>::copy

const Section kSections[] = {
    {"server", "Plain HTTP edge: listeners, event loops, connection limits, logging."},
    {"tls", "HTTPS listeners: everything served over plain HTTP, over TLS 1.2/1.3. Without a certificate the box makes its own CA (storage.dir/tls/, served at /ca.pem)."},
    {"storage", "Where cached objects live and how much disk they may use."},
    {"upstream", "Origins the box may fetch from, and how it reaches them."},
    {"access", "Who may use the cache."},
    {"admin", "The admin API (/api/v1): its tokens, and who may reach it."},
    {"catalog", "Published packages: their own space apart from the cache, what manifests point Macs at, signatures."},
    {"apple", "Apple's catalogs: the software update catalog, mirroring and prewarming, the OS-version feed."},
    {"history", "The per-minute traffic history kept in the box's database (GET /api/v1/history, the dashboard)."},
};

const Param kParams[] = {
    // [server]
    {.name = "server.listen", .type = ParamType::AddressList, .defaultToml = R"(["127.0.0.1:8080"])",
     .reloadable = false, .doc = "Plain HTTP listeners: \"addr:port\" or \"[v6]:port\".", ORCHARD_FIELD(listen),
     // Port 80 on every IPv4 address: Macs sent here by the branch DNS reach
     // it by an A record. No "[::]:80": an IPv6 socket cannot even be made
     // on a host booted with ipv6.disable=1, and one listener that fails
     // stops the start. README, Operations, says how to add it.
     .productionToml = R"(["0.0.0.0:80"])"},
    {.name = "server.workers", .type = ParamType::Integer, .defaultToml = "0", .min = 0, .max = 256,
     .reloadable = false, .doc = "Event loops (threads) serving clients; 0 = one per core.", ORCHARD_FIELD(workers)},
    {.name = "server.drain_timeout", .type = ParamType::Duration, .defaultToml = R"("30s")", .min = 0,
     .max = kHour, .reloadable = true,
     .doc = "On SIGTERM, how long transfers in progress may run before connections are closed.",
     ORCHARD_FIELD(drainTimeoutMs)},
    {.name = "server.idle_timeout", .type = ParamType::Duration, .defaultToml = R"("60s")", .min = kSecond,
     .max = kHour, .reloadable = true, .doc = "Close keep-alive client connections idle this long.",
     ORCHARD_FIELD(idleTimeoutMs)},
    {.name = "server.max_connections", .type = ParamType::Integer, .defaultToml = "20000", .min = 1,
     .max = 10'000'000, .reloadable = true,
     .doc = "Most client connections open at once, across all workers.",
     ORCHARD_FIELD(maxConnections)},
    {.name = "server.log_level", .type = ParamType::Choice, .defaultToml = R"("info")", .reloadable = true,
     .doc = "Least severe messages logged: debug, info, warn or error.", ORCHARD_FIELD(logLevel),
     .choices = "debug|info|warn|error"},
    {.name = "server.access_log", .type = ParamType::LogTarget, .defaultToml = "false", .reloadable = true,
     .doc = "One line per request with its cache status: false (off), true or \"stderr\" (standard error, the "
            "journal under systemd), or an absolute file path (appended to; reopened on SIGUSR1 for logrotate).",
     ORCHARD_FIELD(accessLog)},
    {.name = "server.access_log_mask", .type = ParamType::StringList,
     .defaultToml = R"(["accessKey", "token", "signature", "sig", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token"])",
     .reloadable = true,
     .doc = "Query parameters whose values the access log shows as *** (names compared without regard to case).",
     ORCHARD_FIELD(accessLogMask)},
    {.name = "server.send_timeout", .type = ParamType::Duration, .defaultToml = R"("60s")", .min = kSecond,
     .max = kHour, .reloadable = true,
     .doc = "Close a client connection whose answer made no write progress for this long (it stopped reading).",
     ORCHARD_FIELD(sendTimeoutMs)},
    {.name = "server.header_timeout", .type = ParamType::Duration, .defaultToml = R"("10s")", .min = 100,
     .max = kHour, .reloadable = true,
     .doc = "A client must send a whole request head within this long of connecting (or of the first byte of a "
            "later request on a keep-alive connection), else it gets 408 and is closed.",
     ORCHARD_FIELD(headerTimeoutMs)},
    {.name = "server.max_uri_length", .type = ParamType::Size, .defaultToml = R"("8KiB")", .min = 64, .max = kMiB,
     .reloadable = true, .doc = "Longest request target (path and query) taken; longer ones get 414.",
     ORCHARD_FIELD(maxUriLength)},
    {.name = "server.max_header_bytes", .type = ParamType::Size, .defaultToml = R"("64KiB")", .min = kKiB,
     .max = kMiB, .reloadable = true,
     .doc = "Largest request head (target, field names and values) taken; larger ones get 431.",
     ORCHARD_FIELD(maxHeaderBytes)},
    {.name = "server.max_header_count", .type = ParamType::Integer, .defaultToml = "100", .min = 8, .max = 10'000,
     .reloadable = true, .doc = "Most header fields in a request head; more get 431.", ORCHARD_FIELD(maxHeaderCount)},
    {.name = "server.max_connections_per_client", .type = ParamType::Integer, .defaultToml = "256", .min = 0,
     .max = 10'000'000, .reloadable = true,
     .doc = "Most connections open at once from one client address, across all workers; a connection beyond it "
            "gets 503 with Retry-After and is closed. 0 = no limit (many Macs behind one NAT address).",
     ORCHARD_FIELD(maxConnectionsPerClient)},
    {.name = "server.pac_proxy", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "\"host:port\" that /proxy.pac sends clients to (this box as they reach it); empty = the Host "
            "the PAC file was fetched with.",
     ORCHARD_FIELD(pacProxy)},

    // [tls]
    {.name = "tls.listen", .type = ParamType::AddressList, .defaultToml = "[]", .reloadable = false,
     .doc = "HTTPS listeners: \"addr:port\" or \"[v6]:port\"; everything served over HTTP is served here too.",
     ORCHARD_FIELD(tlsListen)},
    {.name = "tls.certificate", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "PEM certificate chain (leaf first) for the HTTPS listeners; re-read on SIGHUP (certbot renewals). "
            "Empty: a leaf from the box's own CA, made under storage.dir/tls/.",
     ORCHARD_FIELD(tlsCertificate)},
    {.name = "tls.private_key", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "PEM private key for the certificate.", ORCHARD_FIELD(tlsPrivateKey)},

    // [storage]
    {.name = "storage.dir", .type = ParamType::String, .defaultToml = R"("./var/orchard")", .reloadable = false,
     .doc = "Directory for objects, packages and the index.", ORCHARD_FIELD(storageDir),
     // The unit's StateDirectory=orchard.
     .productionToml = R"("/var/lib/orchard")"},
    {.name = "storage.cache_limit", .type = ParamType::Size, .defaultToml = R"("200GiB")", .min = kMiB,
     .max = kMax, .reloadable = true,
     .doc = "Disk space cached objects may use before eviction starts (B, KiB, MiB, GiB, TiB).",
     ORCHARD_FIELD(cacheLimit)},
    {.name = "storage.max_object_size", .type = ParamType::Size, .defaultToml = R"("0B")", .min = 0, .max = kMax,
     .reloadable = true,
     .doc = "Largest object stored; larger ones pass through uncached. 0B = a quarter of storage.cache_limit. "
            "Never more than 90 % of storage.cache_limit (a bigger one could not stay).",
     ORCHARD_FIELD(maxObjectSize)},
    {.name = "storage.scrub_interval", .type = ParamType::Duration, .defaultToml = R"("24h")", .min = 0,
     .max = 366 * 24 * kHour, .reloadable = false,
     .doc = "How often a background scrub re-checks every stored object's block checksums (at most 64 MiB/s) "
            "and drops those that fail; 0 disables it.",
     ORCHARD_FIELD(scrubIntervalMs)},

    // [upstream]
    {.name = "upstream.allow", .type = ParamType::HostList,
     .defaultToml = R"([
  "swcdn.apple.com",
  "swdist.apple.com",
  "swdownload.apple.com",
  "swscan.apple.com",
  "appldnld.apple.com",
  "oscdn.apple.com",
  "updates.cdn-apple.com",
  "updates-http.cdn-apple.com",
  "*.cdn-apple.com",
  "osxapps.itunes.apple.com",
  "iosapps.itunes.apple.com",
  "mesu.apple.com",
  "audiocontentdownload.apple.com",
  "devimages-cdn.apple.com",
  "devstreaming-cdn.apple.com",
  "playgrounds-cdn.apple.com",
  "skl.apple.com",
  "*.aaplimg.com",
])",
     .reloadable = true,
     .doc = "Hosts the box may fetch from: exact names or \"*.domain\" (default: Apple's content hosts).",
     ORCHARD_FIELD(upstreamAllow)},
    {.name = "upstream.resolve", .type = ParamType::AddressTable, .defaultToml = "{}", .reloadable = true,
     .doc = "Host -> \"addr:port\" to connect to instead of asking DNS (like curl --resolve).",
     ORCHARD_FIELD(upstreamResolve)},
    {.name = "upstream.ca_file", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "Extra CA bundle (PEM) for HTTPS origins; the system CAs are always trusted.",
     ORCHARD_FIELD(upstreamCaFile)},
    {.name = "upstream.scheme_in_key", .type = ParamType::HostList, .defaultToml = "[]", .reloadable = false,
     .doc = "Hosts whose http and https answers are cached as separate objects. Elsewhere the scheme is not in "
            "the key: bytes fetched over plain HTTP may answer a client that asked with sourceScheme=https.",
     ORCHARD_FIELD(schemeInKey)},
    {.name = "upstream.ignore_query", .type = ParamType::StringList, .defaultToml = "[]", .reloadable = false,
     .doc = "Query parameters left out of the cache key (changing them re-keys the cache).",
     ORCHARD_FIELD(ignoreQuery)},
    {.name = "upstream.connect_timeout", .type = ParamType::Duration, .defaultToml = R"("10s")", .min = 100,
     .max = 10 * kMinute, .reloadable = true, .doc = "How long connecting to an origin (TCP and TLS) may take.",
     ORCHARD_FIELD(connectTimeoutMs)},
    {.name = "upstream.read_timeout", .type = ParamType::Duration, .defaultToml = R"("60s")", .min = kSecond,
     .max = kHour, .reloadable = true, .doc = "Give up on an origin that sends nothing for this long.",
     ORCHARD_FIELD(readTimeoutMs)},
    {.name = "upstream.max_idle_per_origin", .type = ParamType::Integer, .defaultToml = "32", .min = 0,
     .max = 4096, .reloadable = true, .doc = "Idle connections to each origin kept open for reuse.",
     ORCHARD_FIELD(maxIdlePerOrigin)},
    {.name = "upstream.allow_private", .type = ParamType::CidrList, .defaultToml = "[]", .reloadable = true,
     .doc = "Address ranges an allowed name may resolve to although they are not public (loopback, private, "
            "link-local, CGNAT, the box's own): a hub box or a central repo on the company network. Others "
            "are refused unless upstream.resolve names the host.",
     ORCHARD_FIELD(allowPrivate)},
    {.name = "upstream.tunnel_allow", .type = ParamType::HostList, .defaultToml = "[]", .reloadable = true,
     .doc = "Hosts CONNECT may tunnel to, on port 443 only (HTTPS, not cached): exact names or "
            "\"*.domain\"; empty = the hosts of upstream.allow.",
     ORCHARD_FIELD(tunnelAllow)},
    {.name = "upstream.tunnel_idle_timeout", .type = ParamType::Duration, .defaultToml = R"("5m")", .min = kSecond,
     .max = 24 * kHour, .reloadable = true,
     .doc = "Close a CONNECT tunnel that carried no byte either way for this long.",
     ORCHARD_FIELD(tunnelIdleTimeoutMs)},
    {.name = "upstream.parents", .type = ParamType::StringList, .defaultToml = "[]", .reloadable = false,
     .doc = "Parent caches misses go to before the origin (another Orchard, or any cache that takes Apple's "
            "?source= form): \"host:port\", \"http://host[:port]\" or \"https://host[:port]\". A parent that "
            "fails is skipped; with every parent down the box goes to the origin itself.",
     ORCHARD_FIELD(upstreamParents)},
    {.name = "upstream.parent_policy", .type = ParamType::String, .defaultToml = R"("round-robin")",
     .reloadable = false,
     .doc = "Which parent a miss goes to: \"round-robin\", \"first-available\", \"url-path-hash\" (each key "
            "has one parent; adding one moves only the keys it takes), \"random\" or \"sticky-available\".",
     ORCHARD_FIELD(parentPolicy)},
    {.name = "upstream.parent_down_time", .type = ParamType::Duration, .defaultToml = R"("30s")", .min = kSecond,
     .max = kHour, .reloadable = true,
     .doc = "How long a parent or peer that failed (no connection, a timeout, a 5xx) is skipped; it is then "
            "probed (GET / with Max-Forwards: 0) until it answers.",
     ORCHARD_FIELD(parentDownTimeMs)},
    {.name = "upstream.max_hops", .type = ParamType::Integer, .defaultToml = "8", .min = 1, .max = 64,
     .reloadable = true,
     .doc = "Caches (Via entries) a request may already have passed through; more get 508 (a loop or a chain "
            "too long).",
     ORCHARD_FIELD(maxHops)},
    {.name = "upstream.peers", .type = ParamType::StringList, .defaultToml = "[]", .reloadable = false,
     .doc = "Boxes on the same site, this one included or not (\"host:port\" or a URL as for parents): with "
            "peer_policy \"url-path-hash\" each key has one owner among them and this box, and a miss for "
            "a key another peer owns is fetched through it, so the site stores each object once.",
     ORCHARD_FIELD(upstreamPeers)},
    {.name = "upstream.peer_policy", .type = ParamType::String, .defaultToml = R"("url-path-hash")",
     .reloadable = false,
     .doc = "\"url-path-hash\" (misses go to the key's owner) or \"off\" (peers are not asked; they may "
            "still ask this box).",
     ORCHARD_FIELD(peerPolicy)},
    {.name = "upstream.peer_name", .type = ParamType::String, .defaultToml = R"("")", .reloadable = false,
     .doc = "This box's own entry in upstream.peers, as the other peers write it; \"\" = the entry that "
            "names one of server.listen or tls.listen.",
     ORCHARD_FIELD(peerName)},

    // [access]
    {.name = "access.allow_clients", .type = ParamType::CidrList,
     .defaultToml = R"(["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"])",
     .reloadable = true, .doc = "Client address ranges that may use the cache; others get 403.",
     ORCHARD_FIELD(allowClients)},
    {.name = "access.peer_clients", .type = ParamType::CidrList, .defaultToml = "[]", .reloadable = true,
     .doc = "Address ranges of peer boxes: a request from one of them that came through an Orchard (its Via "
            "names one) is served as a peer's: from the store or this box's parents and origin, never sent "
            "on to another peer.",
     ORCHARD_FIELD(peerClients)},

    // [admin]
    {.name = "admin.token", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "The admin token (named \"admin\", scope admin) for the admin API (/api/v1); empty = the one the box "
            "generates into storage.dir/admin.token.",
     ORCHARD_FIELD(adminToken)},
    {.name = "admin.token_file", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "File holding the admin token, instead of token (not both).", ORCHARD_FIELD(adminTokenFile)},
    {.name = "admin.tokens", .type = ParamType::TokenList, .defaultToml = "[]", .reloadable = true,
     .doc = "More tokens, each a [[admin.tokens]] table: name = \"jamf\", token = \"...\" or token_file = "
            "\"/path\", scope = \"read\", \"mdm\", \"publish\" or \"admin\" (tokens of 16 characters or more).",
     ORCHARD_FIELD(adminTokens)},
    {.name = "admin.allow_clients", .type = ParamType::CidrList, .defaultToml = "[]", .reloadable = true,
     .doc = "Client address ranges that may reach the admin API (/api/v1, /metrics); others get 403. Empty: any "
            "address with a token, and access.allow_clients for /metrics and /api/v1/status.",
     ORCHARD_FIELD(adminAllowClients)},
    {.name = "admin.allow_plain_http", .type = ParamType::Bool, .defaultToml = "false", .reloadable = true,
     .doc = "Accept tokens over plain HTTP from other hosts (from the box itself they always are).",
     ORCHARD_FIELD(adminAllowPlainHttp)},
    {.name = "admin.local_clients", .type = ParamType::CidrList, .defaultToml = R"(["127.0.0.0/8", "::1/128"])",
     .reloadable = true,
     .doc = "Client addresses that count as the box itself: a token from one of them is taken over plain HTTP.",
     ORCHARD_FIELD(adminLocalClients)},

    // [catalog]
    {.name = "catalog.follow", .type = ParamType::String, .defaultToml = R"("")", .reloadable = false,
     .doc = "A hub box whose catalog this box follows (\"https://hub.example\"): its changes are applied "
            "here in order, a version shows once its bytes are here and verified, and catalog writes here "
            "get 409. \"\" = this box keeps its own catalog.",
     ORCHARD_FIELD(catalogFollow)},
    {.name = "catalog.follow_token", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "A token of the hub (scope mdm or read) for catalog.follow.", ORCHARD_FIELD(catalogFollowToken)},
    {.name = "catalog.follow_token_file", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "File holding catalog.follow_token, instead of it (not both).", ORCHARD_FIELD(catalogFollowTokenFile)},
    {.name = "catalog.follow_poll", .type = ParamType::Duration, .defaultToml = R"("60s")", .min = kSecond,
     .max = 10 * kMinute, .reloadable = true,
     .doc = "How long one request for the hub's changes waits for a new one (long poll).",
     ORCHARD_FIELD(catalogFollowPollMs)},
    {.name = "catalog.site", .type = ParamType::String, .defaultToml = R"("")", .reloadable = false,
     .doc = "This box's site name in the hub's GET /api/v1/sites; \"\" = the host name.",
     ORCHARD_FIELD(catalogSite)},
    {.name = "catalog.base_url", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "Base URL that package and manifest URLs are built from (MDM requires https:// and a real name); "
            "empty = from each request's Host.",
     ORCHARD_FIELD(catalogBaseUrl)},
    {.name = "catalog.limit", .type = ParamType::Size, .defaultToml = R"("100GiB")", .min = kMiB, .max = kMax,
     .reloadable = true,
     .doc = "Disk space published packages may use, apart from the cache; a publish that would not fit is "
            "refused with 507.",
     ORCHARD_FIELD(catalogLimit)},
    {.name = "catalog.max_upload", .type = ParamType::Size, .defaultToml = R"("32GiB")", .min = kMiB, .max = kMax,
     .reloadable = true,
     .doc = "Largest package a publish may declare (Content-Length); larger ones are refused with 413 before "
            "any byte of the body is read.",
     ORCHARD_FIELD(catalogMaxUpload)},
    {.name = "catalog.require_signed", .type = ParamType::Bool, .defaultToml = "false", .reloadable = true,
     .doc = "Refuse packages that are not signed distribution packages with a verified signature.",
     ORCHARD_FIELD(catalogRequireSigned)},
    {.name = "catalog.trusted_roots", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "PEM file of root certificates a package signature must chain to (e.g. Apple's Developer ID roots); "
            "empty = signatures are verified but never trusted.",
     ORCHARD_FIELD(catalogTrustedRoots)},
    {.name = "catalog.stale_after", .type = ParamType::Duration, .defaultToml = R"("7d")", .min = kHour,
     .max = 366 * 24 * kHour, .reloadable = true,
     .doc = "A device with no status report for this long counts as stale in a rollout's health.",
     ORCHARD_FIELD(catalogStaleAfterMs)},
    {.name = "catalog.halt_on_failure_percent", .type = ParamType::Integer, .defaultToml = "20", .min = 0,
     .max = 100, .reloadable = true,
     .doc = "A ring whose share of failed installs (of the devices reporting) passes this percentage halts "
            "its own promotion (100 = never).",
     ORCHARD_FIELD(catalogHaltOnFailurePercent)},
    {.name = "catalog.halt_min_reports", .type = ParamType::Integer, .defaultToml = "10", .min = 1,
     .max = 1'000'000, .reloadable = true,
     .doc = "Devices of a ring that must have reported before its failure share can halt it.",
     ORCHARD_FIELD(catalogHaltMinReports)},

    // [apple]
    {.name = "apple.catalog_url", .type = ParamType::String,
     .defaultToml = R"("https://swscan.apple.com/content/catalogs/others/index-26-15-14-13-12-10.16-10.15-10.14-10.13-10.12-10.11-10.10-10.9-mountainlion-lion-snowleopard-leopard.merged-1.sucatalog.gz")",
     .reloadable = true,
     .doc = "Apple's software update catalog (XML plist, optionally .gz), read through the box's own cache; "
            "its host must be in upstream.allow.",
     ORCHARD_FIELD(appleCatalogUrl)},
    {.name = "apple.catalog_refresh", .type = ParamType::Duration, .defaultToml = R"("6h")", .min = kSecond,
     .max = 30 * 24 * kHour, .reloadable = true,
     .doc = "How often the catalog is read again (a 304 from the cache when it did not change).",
     ORCHARD_FIELD(appleCatalogRefreshMs)},
    {.name = "apple.catalog_max_size", .type = ParamType::Size, .defaultToml = R"("256MiB")", .min = kMiB,
     .max = 4 * kGiB, .reloadable = true,
     .doc = "Largest catalog accepted, after decompression; a larger one is refused, the last good one kept.",
     ORCHARD_FIELD(appleCatalogMaxSize)},
    {.name = "apple.mirror_rate", .type = ParamType::Size, .defaultToml = R"("0B")", .min = 0, .max = kMax,
     .reloadable = true,
     .doc = "Bytes per second mirror and prewarm fills may take from origins (never applied to hits, and "
            "lifted for a fill a Mac joins); 0B = no cap.",
     ORCHARD_FIELD(appleMirrorRate)},
    {.name = "apple.mirror_window", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "Local time window \"HH:MM-HH:MM\" mirror and prewarm jobs run in (may cross midnight); empty = "
            "any time. Jobs pause at its end and resume at its start.",
     ORCHARD_FIELD(appleMirrorWindow)},
    {.name = "apple.os_feed_url", .type = ParamType::String, .defaultToml = R"("https://gdmf.apple.com/v2/pmv")",
     .reloadable = true,
     .doc = "Apple's OS-version feed (JSON), mirrored on a schedule for GET /api/v1/apple/os-versions; empty = "
            "not fetched.",
     ORCHARD_FIELD(appleOsFeedUrl)},
    {.name = "apple.os_feed_interval", .type = ParamType::Duration, .defaultToml = R"("6h")", .min = kSecond,
     .max = 30 * 24 * kHour, .reloadable = true, .doc = "How often the OS-version feed is fetched.",
     ORCHARD_FIELD(appleOsFeedIntervalMs)},
    {.name = "apple.feed_ca_file", .type = ParamType::String, .defaultToml = R"("")", .reloadable = true,
     .doc = "PEM file of CA certificates trusted for the OS-version feed's host only (Apple's root: see the "
            "README), besides the system CAs.",
     ORCHARD_FIELD(appleFeedCaFile)},

    // [history]
    {.name = "history.retention", .type = ParamType::Duration, .defaultToml = R"("35d")", .min = kHour,
     .max = 400 * 24 * kHour, .reloadable = false,
     .doc = "How long per-minute traffic samples are kept; older minutes are deleted (at start and hourly).",
     ORCHARD_FIELD(historyRetentionMs)},
    {.name = "history.sample_interval", .type = ParamType::Duration, .defaultToml = R"("60s")", .min = 100,
     .max = kMinute, .reloadable = false,
     .doc = "How often the counters are sampled into the current minute's record; keep 60s (shorter is for "
            "tests that must not wait minutes).",
     ORCHARD_FIELD(historySampleIntervalMs)},
};

#undef ORCHARD_FIELD

// Checked a * b + c on non-negative values.
bool mulAdd(int64_t a, int64_t b, int64_t c, int64_t* out) {
  int64_t m;
  if (__builtin_mul_overflow(a, b, &m)) return false;
  return !__builtin_add_overflow(m, c, out);
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Reads leading digits of s into *value, advancing s. False on none or overflow.
bool takeNumber(std::string_view* s, int64_t* value) {
  size_t i = 0;
  int64_t v = 0;
  while (i < s->size() && isDigit((*s)[i])) {
    if (!mulAdd(v, 10, (*s)[i] - '0', &v)) return false;
    ++i;
  }
  if (i == 0) return false;
  s->remove_prefix(i);
  *value = v;
  return true;
}

Error invalid(const char* context) { return Error{Errc::Invalid, 0, context}; }

}  // namespace

const char* paramTypeName(ParamType t) noexcept {
  switch (t) {
    case ParamType::String: return "string";
    case ParamType::StringList: return "string list";
    case ParamType::Choice: return "choice";
    case ParamType::Size: return "size";
    case ParamType::Duration: return "duration";
    case ParamType::Integer: return "integer";
    case ParamType::Bool: return "bool";
    case ParamType::AddressList: return "address list";
    case ParamType::CidrList: return "address range list";
    case ParamType::HostList: return "host pattern list";
    case ParamType::AddressTable: return "host to address table";
    case ParamType::TokenList: return "token table list";
    case ParamType::LogTarget: return "log target";
  }
  return "?";
}

std::span<const Param> params() { return kParams; }
std::span<const Section> sections() { return kSections; }

const Param* findParam(std::string_view name) {
  for (const Param& p : kParams) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const Section* findSection(std::string_view name) {
  for (const Section& s : kSections) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<const Param*> changedParams(const Config& a, const Config& b) {
  std::vector<const Param*> out;
  for (const Param& p : kParams) {
    if (!p.same(a, b)) out.push_back(&p);
  }
  return out;
}

Result<int64_t> parseSize(std::string_view text) {
  static const char* kShape = "expected a size like \"200GiB\"";
  std::string_view s = text;
  int64_t n = 0;
  if (s.empty() || !isDigit(s.front())) return invalid(kShape);
  if (!takeNumber(&s, &n)) return invalid("size too large");
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  static const struct {
    std::string_view unit;
    int64_t factor;
  } kUnits[] = {{"", 1}, {"B", 1}, {"KiB", kKiB}, {"MiB", kMiB}, {"GiB", kGiB}, {"TiB", kTiB}};
  for (const auto& u : kUnits) {
    if (s == u.unit) {
      int64_t bytes;
      if (!mulAdd(n, u.factor, 0, &bytes)) return invalid("size too large");
      return bytes;
    }
  }
  static const std::string_view kDecimal[] = {"K", "M", "G", "T", "KB", "MB", "GB", "TB", "k", "kB", "kb", "mb", "gb", "tb"};
  for (std::string_view d : kDecimal) {
    if (s == d) return invalid("expected a size like \"200GiB\" (units are B, KiB, MiB, GiB, TiB)");
  }
  return invalid(kShape);
}

Result<int64_t> parseDuration(std::string_view text) {
  static const char* kShape = "expected a duration like \"30s\" or \"500ms\"";
  std::string_view s = text;
  if (s.empty()) return invalid(kShape);
  int64_t total = 0;
  bool bare = true;
  while (!s.empty()) {
    int64_t n = 0;
    if (!isDigit(s.front())) return invalid(kShape);
    if (!takeNumber(&s, &n)) return invalid("duration too long");
    int64_t unit;
    if (s.empty()) {
      if (!bare) return invalid(kShape);  // "1m30": the last number needs a unit
      unit = kSecond;
    } else if (s.starts_with("ms")) {
      unit = 1;
      s.remove_prefix(2);
    } else if (s.front() == 's') {
      unit = kSecond;
      s.remove_prefix(1);
    } else if (s.front() == 'm') {
      unit = kMinute;
      s.remove_prefix(1);
    } else if (s.front() == 'h') {
      unit = kHour;
      s.remove_prefix(1);
    } else if (s.front() == 'd') {
      unit = 24 * kHour;
      s.remove_prefix(1);
    } else {
      return invalid("expected a duration like \"30s\" or \"500ms\" (units are ms, s, m, h, d)");
    }
    bare = false;
    if (!mulAdd(n, unit, total, &total)) return invalid("duration too long");
  }
  return total;
}

std::string formatSize(int64_t bytes) {
  static const struct {
    const char* unit;
    int64_t factor;
  } kUnits[] = {{"TiB", kTiB}, {"GiB", kGiB}, {"MiB", kMiB}, {"KiB", kKiB}};
  if (bytes > 0) {
    for (const auto& u : kUnits) {
      if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + u.unit;
    }
  }
  return std::to_string(bytes) + "B";
}

std::string formatDuration(int64_t ms) {
  static const struct {
    const char* unit;
    int64_t factor;
  } kUnits[] = {{"h", kHour}, {"m", kMinute}, {"s", kSecond}};
  if (ms == 0) return "0s";
  for (const auto& u : kUnits) {
    if (ms % u.factor == 0) return std::to_string(ms / u.factor) + u.unit;
  }
  return std::to_string(ms) + "ms";
}

}  // namespace orchard::config
