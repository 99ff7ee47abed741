#include "server/server.h"

#include "server/admin/admin.h"
#include "server/admin/dashboard.h"
#include "catalog/apple/mirror_job.h"
#include "server/admin/history.h"
#include "server/apple/os_feed.h"
#include "server/apple/apple_routes.h"
#include "server/apple/apple_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <random>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "catalog/xar_signature.h"
#include "server/catalog/catalog_routes.h"
#include "server/http/client_conn.h"
#include "server/net/address_class.h"
#include "server/net/local_ca.h"
#include "server/proxy/cache_nodes.h"
#include "server/proxy/fill_driver.h"
#include "server/proxy/node_prober.h"
#include "server/proxy/internal_request.h"
#include "server/proxy/pac.h"
#include "server/proxy/tunnel.h"

namespace orchard::server {

struct Server::WorkerSlot {
  explicit WorkerSlot(int i) : worker(i) {}
  NodeProber* prober = nullptr;  // the first loop's, when there are parents or peers
  Worker worker;
  std::unique_ptr<WorkerContext> wc;
  std::vector<uv_tcp_t*> listeners;
  std::vector<int> fds;  // bound sockets, handed to the loop in start()
};

Server::Server(config::Config config) {
  ctx_.startConfig = std::move(config);
  ctx_.control = this;
  registerAdminRoutes(ctx_.routes, &ctx_);
  registerHistoryRoutes(ctx_.routes, &ctx_);
  registerDashboardRoutes(ctx_.routes);
  registerCatalogRoutes(ctx_.routes, &ctx_);
  registerAppleRoutes(ctx_.routes, &ctx_);
  registerPacRoute(ctx_.routes);
  registerOsFeedRoutes(ctx_.routes, &ctx_);
}

std::vector<config::ListenAddress> Server::allListen() const {
  std::vector<config::ListenAddress> all = ctx_.startConfig.listen;
  all.insert(all.end(), ctx_.startConfig.tlsListen.begin(), ctx_.startConfig.tlsListen.end());
  return all;
}

std::shared_ptr<const TlsState> Server::loadTls(const config::Config& cfg, const TlsState* running,
                                                std::string* error) {
  auto t = std::make_shared<TlsState>();
  if (running && running->client && running->client->caFile() == cfg.upstreamCaFile) {
    t->client = running->client;  // its session cache lives on
  } else {
    t->client = tls::ClientContext::create(cfg.upstreamCaFile, error);
    if (!t->client) return nullptr;
  }
  // tls.listen is restart-only: the listeners bound at start decide.
  if (ctx_.startConfig.tlsListen.empty()) return t;
  std::string cert = cfg.tlsCertificate, key = cfg.tlsPrivateKey;
  if (cert.empty()) {
    std::vector<std::string> names, addresses;
    std::string baseHost;
    if (auto at = cfg.catalogBaseUrl.find("://"); at != std::string::npos) {
      baseHost = cfg.catalogBaseUrl.substr(at + 3);
      baseHost = baseHost.substr(0, baseHost.find_first_of(":/"));
    }
    tls::localNamesAndAddresses(baseHost, &names, &addresses);
    for (const auto& l : ctx_.startConfig.tlsListen)
      if (l.host != "0.0.0.0" && l.host != "::") addresses.push_back(l.host);
    tls::LocalCertificate local;
    std::string why;
    if (!tls::ensureLocalCertificate(ctx_.startConfig.storageDir, names, addresses, std::time(nullptr), &local,
                                     &why)) {
      *error = "tls.certificate: the box's own certificate (storage.dir/tls): " + why;
      return nullptr;
    }
    if (local.madeCa)
      OLOG_INFO("tls: made the box's own CA %s (SHA-256 %s); push it to Macs from GET /ca.pem", local.caPath.c_str(),
                local.caFingerprint.c_str());
    if (local.madeLeaf) OLOG_INFO("tls: made a certificate %s signed by it", local.certPath.c_str());
    cert = local.certPath;
    key = local.keyPath;
    t->caPem = local.caPem;
  }
  t->server = tls::makeServerContext(cert, key, error);
  if (!t->server) return nullptr;
  t->certPath = cert;
  t->fingerprint = tls::fingerprintOfPemFile(cert);
  return t;
}

std::shared_ptr<AccessLogSink> Server::loadAccessLog(const config::Config& cfg, const Snapshot* running, bool* ok,
                                                     std::string* error) {
  *ok = true;
  if (cfg.accessLog.empty()) return nullptr;
  if (running && running->accessLog && running->accessLog->target() == cfg.accessLog) return running->accessLog;
  auto sink = AccessLogSink::open(cfg.accessLog, error);
  if (!sink) *ok = false;
  return sink;
}

bool Server::reopenLogs() {
  std::shared_ptr<const Snapshot> running = snapshot();
  if (!running || !running->accessLog) {
    OLOG_INFO("SIGUSR1: no access log file to reopen");
    return true;
  }
  std::string error;
  if (!running->accessLog->reopen(&error)) {
    OLOG_ERROR("SIGUSR1: %s: the old file stays in use", error.c_str());
    return false;
  }
  OLOG_INFO("SIGUSR1: access log %s reopened", running->accessLog->target().c_str());
  return true;
}

std::shared_ptr<const Snapshot> Server::makeSnapshot(std::shared_ptr<config::ConfigSnapshot> base,
                                                     std::shared_ptr<const TlsState> tls,
                                                     std::shared_ptr<AccessLogSink> accessLog) {
  auto s = std::make_shared<Snapshot>(std::move(*base));
  s->tls = std::move(tls);
  s->accessLog = std::move(accessLog);
  const config::HostMatcher* keyed = &s->schemeInKey;
  if (!keyed->empty()) s->router.schemeInKey = [keyed](std::string_view h) { return keyed->matches(h); };
  const config::HostMatcher* allow = &s->allow;  // lives as long as the snapshot, which holds the router
  // catalog.follow's host is an upstream too (the package bytes of the
  // hub's catalog come through the box's cache), whatever upstream.allow
  // says; no other host is added.
  std::string followHost;
  if (auto hub = config::CacheNode::parse(ctx_.startConfig.catalogFollow); hub) {
    followHost = hub->host;
    s->upstream.namedHost = hub->host;
    s->upstream.namedPort = hub->port;
  }
  s->router.allowHost = [allow, followHost](std::string_view h) {
    return allow->matches(h) || (!followHost.empty() && h == followHost);
  };
  s->router.ignoreQuery = s->config.ignoreQuery;
  if (!s->config.tunnelAllow.empty()) {
    s->tunnelAllow = config::HostMatcher(s->config.tunnelAllow);
    const config::HostMatcher* tunnel = &s->tunnelAllow;
    s->router.allowTunnelHost = [tunnel](std::string_view h) { return tunnel->matches(h); };
  }
  // Listeners are restart-only: the ones bound at start.
  s->router.isSelf = [this](std::string_view host, uint16_t port) {
    const std::vector<config::ListenAddress> all = allListen();
    for (size_t i = 0; i < all.size(); ++i) {
      const auto& l = all[i];
      uint16_t p = l.port != 0 ? l.port : (i < ports_.size() ? ports_[i] : 0);
      if (p != port) continue;
      const bool any = l.host == "0.0.0.0" || l.host == "::";
      const bool loopback = l.host.rfind("127.", 0) == 0 || l.host == "::1";
      if (any || host == l.host || (loopback && host == "localhost")) return true;
    }
    return false;
  };
  const config::Config& cfg = s->config;
  for (const auto& [host, addr] : cfg.upstreamResolve) s->upstream.resolve[host] = {addr.host, addr.port};
  s->upstream.allowPrivate = cfg.allowPrivate;
  s->upstream.connectTimeoutMs = cfg.connectTimeoutMs;
  s->upstream.readTimeoutMs = cfg.readTimeoutMs;
  s->upstream.maxIdlePerOrigin = static_cast<size_t>(cfg.maxIdlePerOrigin);
  s->upstream.tls = s->tls->client;
  if (!cfg.catalogTrustedRoots.empty()) {
    auto roots = catalog::TrustStore::loadPem(cfg.catalogTrustedRoots);
    if (roots) s->trustedRoots = std::move(roots.value());
    else
      OLOG_WARN("catalog.trusted_roots %s: %s: package signatures are verified but not trusted until it is fixed",
                cfg.catalogTrustedRoots.c_str(), roots.error().message().c_str());
  }
  return s;
}

std::shared_ptr<const Snapshot> Server::snapshot() const {
  std::lock_guard lock(snapMu_);
  return latest_;
}

void WorkerContext::installSnapshot(std::shared_ptr<const Snapshot> snap) {
  if (!(snap->upstream == current_->snap->upstream)) upstream.setOptions(snap->upstream);
  const unsigned long long generation = snap->generation;
  LoopSnapshot* old = current_;
  current_ = new LoopSnapshot{std::move(snap)};
  old->current = false;
  if (old->users == 0) delete old;  // else the last request pinning it frees it
  OLOG_DEBUG("loop %d: config generation %llu installed", worker->index(), generation);
}

Server::~Server() { stop(); }

namespace {

// Binds (and unless `probe`, listens on) a socket for `a`. The real
// listeners set SO_REUSEPORT (every loop binds its own); a probe does not,
// so that its bind fails while any other socket listens on the address.
Result<int> bindSocket(const config::ListenAddress& a, uint16_t* boundPort, bool probe = false) {
  struct sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (a.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a.port);
    if (inet_pton(AF_INET6, a.host.c_str(), &s6->sin6_addr) != 1) return Error{Errc::Invalid, 0, "listen: bad address"};
    len = sizeof *s6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(a.port);
    if (inet_pton(AF_INET, a.host.c_str(), &s4->sin_addr) != 1) return Error{Errc::Invalid, 0, "listen: bad address"};
    len = sizeof *s4;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{Errc::Io, errno, "listen: socket"};
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // libuv 1.44 has no SO_REUSEPORT flag for uv_tcp_bind: every loop binds its
  // own socket and the kernel spreads connections across them.
  if (!probe) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (a.v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    ::close(fd);
    return Error{Errc::Io, e, "listen: bind"};
  }
  if (!probe && ::listen(fd, 4096) != 0) {
    int e = errno;
    ::close(fd);
    return Error{Errc::Io, e, "listen: listen"};
  }
  struct sockaddr_storage got;
  socklen_t gl = sizeof got;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &gl);
  *boundPort = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&got)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&got)->sin_port);
  return fd;
}

// Whether a socket that is not one of `ours` (socket inodes) listens on
// `port` at an address overlapping `a` (the same, or either a wildcard),
// from /proc/net/tcp or tcp6. False when the table cannot be read.
bool foreignListener(const config::ListenAddress& a, uint16_t port, const std::vector<ino_t>& ours) {
  uint32_t want[4] = {0, 0, 0, 0};  // the address as /proc prints it: 32-bit words in host order
  if (a.v6) {
    in6_addr addr;
    if (inet_pton(AF_INET6, a.host.c_str(), &addr) != 1) return false;
    std::memcpy(want, &addr, sizeof want);
  } else {
    in_addr addr;
    if (inet_pton(AF_INET, a.host.c_str(), &addr) != 1) return false;
    std::memcpy(want, &addr, sizeof addr);
  }
  const bool wantAny = !want[0] && !want[1] && !want[2] && !want[3];
  FILE* f = std::fopen(a.v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
  if (!f) return false;
  char line[512];
  bool found = false;
  if (!std::fgets(line, sizeof line, f)) line[0] = 0;  // the header
  while (!found && std::fgets(line, sizeof line, f)) {
    char local[40];
    unsigned p = 0, st = 0;
    unsigned long inode = 0;
    if (std::sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*u %*u %lu", local, &p, &st, &inode) != 4)
      continue;
    if (st != 0x0A || p != port) continue;  // TCP_LISTEN on our port
    uint32_t got[4] = {0, 0, 0, 0};
    const size_t words = a.v6 ? 4 : 1;
    if (std::strlen(local) != words * 8) continue;
    for (size_t w = 0; w < words; ++w) {
      char word[9];
      std::memcpy(word, local + w * 8, 8);
      word[8] = 0;
      got[w] = static_cast<uint32_t>(std::strtoul(word, nullptr, 16));
    }
    const bool gotAny = !got[0] && !got[1] && !got[2] && !got[3];
    if (!wantAny && !gotAny && std::memcmp(got, want, sizeof got) != 0) continue;
    if (std::find(ours.begin(), ours.end(), static_cast<ino_t>(inode)) == ours.end()) found = true;
  }
  std::fclose(f);
  return found;
}

}  // namespace

Result<void> Server::start() {
  // A client hanging up mid-write must be an EPIPE, not a dead process.
  ::signal(SIGPIPE, SIG_IGN);
  const auto& cfg = ctx_.startConfig;
  startError_.clear();
  // Everything the config names but does not hold (admin.token_file) is
  // read before anything else is touched.
  auto built = config::buildSnapshot(cfg, 1);
  if (!built.ok()) {
    const config::Problem& p = built.problems.front();
    startError_ = p.key + ": " + p.message;
    return Error{Errc::Invalid, 0, "config"};
  }
  // One daemon per store, before anything in it is touched (Store::open
  // clears tmp/ and reconciliation removes files it does not know).
  pid_t holder = 0;
  auto lock = cache::DirLock::acquire(cfg.storageDir, &holder);
  if (!lock) {
    if (lock.error().code == Errc::Busy) {
      startError_ = "storage.dir " + cfg.storageDir + ": in use by another orchardd (" +
                    (holder > 0 ? "pid " + std::to_string(holder) : std::string("pid unknown")) + " holds " +
                    cfg.storageDir + "/" + cache::DirLock::kFileName + ")";
    } else {
      startError_ = "storage.dir " + cfg.storageDir + ": " + lock.error().message();
    }
    return lock.error();
  }
  dirLock_ = std::move(lock.value());
  // Refuse an address another process holds before opening the store.
  if (auto r = probeListeners(); !r) {
    dirLock_ = cache::DirLock();
    return r;
  }
  cache::StoreOptions storeOptions;
  storeOptions.dir = cfg.storageDir;
  storeOptions.cacheLimit = cfg.cacheLimit;
  storeOptions.scrubIntervalMs = cfg.scrubIntervalMs;
  // The box's one database (db/database.h): opened here once, shared by
  // the store and the concerns that keep their records beside the cache's.
  std::vector<std::string> families = catalog::families();
  for (const std::string& f : catalog::fleetFamilies()) families.push_back(f);
  for (const std::string& f : catalog::statusFamilies()) families.push_back(f);
  for (const std::string& f : db::historyFamilies()) families.push_back(f);
  for (const std::string& f : catalog::apple::osFeedFamilies()) families.push_back(f);
  for (const std::string& f : catalog::apple::appleFamilies()) families.push_back(f);
  auto database = cache::openStoreDatabase(cfg.storageDir, families);
  if (!database) {
    startError_ = "storage.dir " + cfg.storageDir + ": " + database.error().message();
    dirLock_ = cache::DirLock();
    return database.error();
  }
  std::shared_ptr<db::Database> shared = std::move(database).value();
  auto store = cache::Store::open(storeOptions, shared);
  if (!store) {
    startError_ = "storage.dir " + cfg.storageDir + ": " + store.error().message();
    dirLock_ = cache::DirLock();
    return store.error();
  }
  store_ = std::move(store.value());
  // Published packages: their own directory and families, their own limit.
  auto cat = catalog::Catalog::open({cfg.storageDir + "/packages", cfg.catalogLimit}, shared);
  if (!cat) {
    startError_ = "storage.dir " + cfg.storageDir + "/packages: " + cat.error().message();
    store_.reset();
    dirLock_ = cache::DirLock();
    return cat.error();
  }
  catalog_ = std::move(cat.value());
  ctx_.catalog = catalog_.get();
  changeWaiter_ = std::make_unique<ChangeWaiter>(catalog_.get());
  ctx_.changeWaiter = changeWaiter_.get();
  catalog_->setChangeHook([w = changeWaiter_.get()] { w->wake(); });
  auto fleet = catalog::FleetStore::open(shared, catalog_.get());
  if (!fleet) {
    startError_ = "storage.dir " + cfg.storageDir + ": the fleet records: " + fleet.error().message();
    closeCatalog();
    store_.reset();
    dirLock_ = cache::DirLock();
    return fleet.error();
  }
  fleet_ = std::move(fleet.value());
  ctx_.fleet = fleet_.get();
  auto status = catalog::StatusStore::open(shared);
  if (!status) {
    startError_ = "storage.dir " + cfg.storageDir + ": the status records: " + status.error().message();
    closeCatalog();
    store_.reset();
    dirLock_ = cache::DirLock();
    return status.error();
  }
  status_ = std::move(status.value());
  ctx_.status = status_.get();
  history_ = std::make_unique<db::HistoryStore>(shared);
  ctx_.history = history_.get();
  osFeedStore_ = std::make_unique<catalog::apple::OsFeedStore>(shared);
  osFeed_ = std::make_unique<OsFeed>(&ctx_, osFeedStore_.get());
  osFeed_->load();  // the last good copy, served from the first request on
  ctx_.osFeed = osFeed_.get();
  apple_ = std::make_unique<AppleService>(&ctx_, shared);
  ctx_.apple = apple_.get();
  if (!cfg.catalogFollow.empty()) {
    follower_ = std::make_unique<Follower>(&ctx_);
    ctx_.follower = follower_.get();
  }
  if (cfg.catalogBaseUrl.empty())
    OLOG_WARN("catalog.base_url is not set: package and manifest URLs name the Host each request used (http); "
              "MDM needs https:// and a real name for InstallEnterpriseApplication");
  else if (cfg.catalogBaseUrl.rfind("https://", 0) != 0)
    OLOG_WARN("catalog.base_url %s is not https://: MDM refuses manifest and package URLs that are not HTTPS",
              cfg.catalogBaseUrl.c_str());
  std::string tlsError;
  std::shared_ptr<const TlsState> tlsState = loadTls(cfg, nullptr, &tlsError);
  if (!tlsState) {
    startError_ = tlsError;
    closeCatalog();
    store_.reset();
    dirLock_ = cache::DirLock();
    return Error{Errc::Invalid, 0, "tls"};
  }
  bool logOk = true;
  std::string logError;
  std::shared_ptr<AccessLogSink> accessLog = loadAccessLog(cfg, nullptr, &logOk, &logError);
  if (!logOk) {
    startError_ = logError;
    closeCatalog();
    store_.reset();
    dirLock_ = cache::DirLock();
    return Error{Errc::Invalid, 0, "server.access_log"};
  }
  std::shared_ptr<const Snapshot> snap = makeSnapshot(std::move(built.snapshot), tlsState, std::move(accessLog));
  {
    std::lock_guard lock(snapMu_);
    latest_ = snap;
  }
  if (auto t = adminTokenAtStart(snap->adminToken); !t) {
    startError_ = "admin.token: " + t.error().message();
    closeCatalog();
    store_.reset();
    dirLock_ = cache::DirLock();
    return t.error();
  }
  fills_ = std::make_unique<cache::FillTable>(store_.get());
  // Never evict what a fill is writing.
  cache::FillTable* fills = fills_.get();
  store_->setBusyCheck([fills](const cache::Hash128& h) { return fills->busy(h); });
  ctx_.store = store_.get();
  ctx_.fills = fills_.get();
  ctx_.startedAt = ctx_.clock->nowSeconds();
  // The box's own requests prove themselves with this (internal_request.h).
  // Never logged; a test may have set one (ORCHARD_TEST_INTERNAL_SECRET).
  if (ctx_.internalSecret.empty()) ctx_.internalSecret = makeInternalSecret();
  if (!validInternalSecret(ctx_.internalSecret)) {
    startError_ = "the internal secret: no random bytes from the system";
    abandonStart();
    return Error{Errc::Io, 0, "internal secret"};
  }
  if (!mirrorThrottle_) mirrorThrottle_ = std::make_unique<RateLimiter>(*ctx_.clock);
  ctx_.mirrorThrottle = mirrorThrottle_.get();
  {
    std::random_device rd;
    char via[32];
    std::snprintf(via, sizeof via, "orchard-%08x", rd());
    ctx_.viaName = via;
  }

  if (!nodes_) {
    nodes_ = std::make_unique<CacheNodes>(cfg);
    if (cfg.peerSelf.empty() && !cfg.peerNodes.empty()) {
      // Listening on 0.0.0.0 / [::]: this box's peer entry is the one on one
      // of its interface addresses.
      std::vector<std::string> own;
      for (const auto& a : ownAddresses()) {
        char name[INET6_ADDRSTRLEN] = {};
        if (a.ss_family == AF_INET) uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&a), name, sizeof name);
        else if (a.ss_family == AF_INET6) uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&a), name, sizeof name);
        if (name[0]) own.emplace_back(name);
      }
      if (!nodes_->findSelf(own, cfg)) {
        startError_ = "upstream.peers: none of the entries is one of this box's addresses on a listener's port; set "
                      "upstream.peer_name to this box's entry as the other peers list it";
        nodes_.reset();
        abandonStart();
        return Error{Errc::Invalid, 0, "upstream.peers: this box is not among them"};
      }
    }
  }
  ctx_.nodes = nodes_.get();
  ctx_.counters.push_back(&control_);
  int n = cfg.workers > 0 ? cfg.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    auto slot = std::make_unique<WorkerSlot>(i);
    slot->wc = std::make_unique<WorkerContext>(&ctx_, &slot->worker, snap);
    ctx_.counters.push_back(&slot->wc->counters);
    ctx_.loops.push_back(slot->wc.get());
    workers_.push_back(std::move(slot));
  }
  // Bind every socket first so that a port conflict fails start-up cleanly.
  for (auto& slot : workers_) {
    auto r = openListeners(*slot);
    if (!r) {
      abandonStart();
      return r;
    }
  }
  // Closes the probe's race (see server.h): every socket is listening now,
  // so of two daemons that both passed their probes, the later to get here
  // sees the other's sockets. Both may refuse; both never run.
  {
    std::vector<ino_t> ours;
    for (auto& slot : workers_)
      for (int fd : slot->fds) {
        struct stat st;
        if (::fstat(fd, &st) == 0) ours.push_back(st.st_ino);
      }
    const std::vector<config::ListenAddress> all = allListen();
    for (size_t i = 0; i < all.size(); ++i) {
      if (!foreignListener(all[i], ports_[i], ours)) continue;
      startError_ = listenKey(i) + " " + all[i].text + ": address already in use by another process";
      abandonStart();
      return Error{Errc::Exists, EADDRINUSE, "listen: address in use by another process"};
    }
  }
  // Every loop closes its cached descriptor of a file the store unlinks
  // (evicted, removed, replaced), so the space is freed at once. Cleared
  // before the loops stop (stop(), abandonStart()).
  {
    std::vector<std::pair<Worker*, WorkerContext*>> loops;
    for (auto& slot : workers_) loops.emplace_back(&slot->worker, slot->wc.get());
    store_->setUnlinkListener([loops](const cache::Hash128& h, uint64_t gen, uint64_t size) {
      if (size > OpenFileCache::kMaxObjectSize) return;  // never cached
      for (auto [worker, wc] : loops) worker->post([wc, h, gen] { wc->files.drop(h, gen); });
    });
  }
  // Before any loop runs: the status page reads it from every loop.
  {
    const std::vector<config::ListenAddress> all = allListen();
    ctx_.listeners.clear();
    for (size_t i = 0; i < all.size(); ++i)
      ctx_.listeners.push_back(BoundListener{all[i].host, ports_[i], i >= cfg.listen.size()});
  }
  std::mutex mu;
  std::condition_variable cv;
  int ready = 0;
  std::optional<Error> failed;
  for (auto& slotPtr : workers_) {
    WorkerSlot* slot = slotPtr.get();
    const size_t plain = cfg.listen.size();
    slot->worker.start([slot, plain, &mu, &cv, &ready, &failed] {
      std::optional<Error> err;
      for (size_t k = 0; k < slot->fds.size(); ++k) {
        auto* h = new uv_tcp_t;
        uv_tcp_init(slot->worker.loop(), h);
        h->data = slot->wc.get();
        int rc = uv_tcp_open(h, slot->fds[k]);
        if (rc == 0 && k < plain)
          rc = uv_listen(reinterpret_cast<uv_stream_t*>(h), 4096, [](uv_stream_t* s, int status) {
            auto* wc = static_cast<WorkerContext*>(s->data);
            if (!wc || status != 0) return;
            ClientConn::accept(wc, s, false);
          });
        else if (rc == 0)
          rc = uv_listen(reinterpret_cast<uv_stream_t*>(h), 4096, [](uv_stream_t* s, int status) {
            auto* wc = static_cast<WorkerContext*>(s->data);
            if (!wc || status != 0) return;
            ClientConn::accept(wc, s, true);
          });
        slot->listeners.push_back(h);
        if (rc != 0 && !err) err = uvError(rc, "listen: uv_listen");
      }
      slot->fds.clear();
      if (slot->worker.index() == 0) slot->prober = NodeProber::start(slot->wc.get());
      std::lock_guard<std::mutex> lock(mu);
      if (err && !failed) failed = err;
      ++ready;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return ready == static_cast<int>(workers_.size()); });
  }
  started_ = true;
  if (failed) {
    startError_ = "server.listen: " + failed->message();
    stop();
    return *failed;
  }
  {
    std::lock_guard lock(controlMu_);
    controlStop_ = false;
  }
  controlThread_ = std::thread([this] { runControl(); });
  sampler_ = std::make_unique<HistorySampler>(&ctx_, history_.get(), cfg.historySampleIntervalMs,
                                              cfg.historyRetentionMs);
  sampler_->start();
  osFeed_->start();
  apple_->start();  // after the listeners: its jobs fetch through them
  if (follower_) follower_->start();  // after the listeners too: the package bytes come through them
  ctx_.serving.store(true, std::memory_order_relaxed);
  return ok();
}

void Server::abandonStart() {
  if (store_) store_->setUnlinkListener(nullptr);
  for (auto& slot : workers_)
    for (int fd : slot->fds) ::close(fd);
  workers_.clear();
  ctx_.counters.clear();
  ctx_.loops.clear();
  if (store_) store_->setBusyCheck(nullptr);
  fills_.reset();
  closeCatalog();
  store_.reset();
  dirLock_ = cache::DirLock();  // last: the store is closed
}

Result<void> Server::probeListeners() {
  ports_.clear();
  const std::vector<config::ListenAddress> all = allListen();
  for (const auto& a : all) {
    if (a.port == 0) {
      // Any free port (tests): nobody can hold a port the kernel has not
      // picked yet, and probing would pick one, let it go and bind it again
      // later, leaving a window in which an outgoing connection may take it
      // as its local port. The first loop's socket picks it instead and the
      // others bind that one (openListeners()).
      ports_.push_back(0);
      continue;
    }
    uint16_t port = 0;
    auto fd = bindSocket(a, &port, /*probe=*/true);
    if (!fd) {
      const Error& e = fd.error();
      const std::string k = listenKey(ports_.size());
      if (e.sys == EADDRINUSE)
        startError_ = k + " " + a.text + ": address already in use by another process";
      else
        startError_ = k + " " + a.text + ": " + e.message();
      ports_.clear();
      return e;
    }
    ::close(fd.value());
    ports_.push_back(port);
  }
  return ok();
}

Result<void> Server::openListeners(WorkerSlot& slot) {
  size_t i = 0;
  const std::vector<config::ListenAddress> all = allListen();
  for (const auto& a : all) {
    config::ListenAddress addr = a;
    addr.port = ports_[i];  // what probeListeners() found free; 0: the first loop picks one
    uint16_t port = 0;
    auto fd = bindSocket(addr, &port);
    if (!fd) {
      // Taken between the probe and this bind (see server.h).
      startError_ = listenKey(i) + " " + a.text + ": " +
                    (fd.error().sys == EADDRINUSE ? std::string("address already in use by another process")
                                                  : fd.error().message());
      return fd.error();
    }
    slot.fds.push_back(fd.value());
    if (ports_[i] == 0) ports_[i] = port;  // the later loops share the port this one got
    ++i;
  }
  return ok();
}

bool Server::loopsResponsive(int64_t timeoutMs) {
  if (!started_ || stopped_) return false;
  struct Acks {
    std::mutex mu;
    std::condition_variable cv;
    size_t n = 0;
  };
  auto acks = std::make_shared<Acks>();  // outlives a loop that answers after the wait gave up
  for (auto& slot : workers_)
    slot->worker.post([acks] {
      std::lock_guard lock(acks->mu);
      ++acks->n;
      acks->cv.notify_all();
    });
  std::unique_lock lock(acks->mu);
  return acks->cv.wait_for(lock, std::chrono::milliseconds(timeoutMs), [&] { return acks->n == workers_.size(); });
}

int64_t Server::openConnections() const {
  int64_t n = 0;
  for (const auto& s : workers_) n += s->wc->counters.open_connections.load(std::memory_order_relaxed);
  return n;
}

void Server::drain(int64_t timeoutMs) {
  // Long polls of the change feed answer now rather than hold the drain.
  if (changeWaiter_) changeWaiter_->stop();
  if (!started_ || stopped_) return;
  ctx_.serving.store(false, std::memory_order_relaxed);
  for (auto& slotPtr : workers_) {
    WorkerSlot* slot = slotPtr.get();
    slot->worker.post([slot] {
      slot->wc->draining = true;
      for (auto* h : slot->listeners) closeHandle(h);
      slot->listeners.clear();
      auto conns = slot->wc->conns;
      for (auto* c : conns) c->drain();
      auto tunnels = slot->wc->tunnels;
      for (auto* t : tunnels) t->drain();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (openConnections() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (openConnections() > 0) OLOG_WARN("drain timeout: closing %lld connections", static_cast<long long>(openConnections()));
}

void Server::stop() {
  if (!started_ || stopped_) return;
  ctx_.serving.store(false, std::memory_order_relaxed);
  // A reload under way finishes while the loops still take its snapshot
  // (and the answers it posts); none starts after this.
  stopControl();
  // Mirror jobs fetch through the loops: stop them first (a running
  // transfer is cut and resumes from its recorded blocks at the next start).
  if (apple_) apple_->stop();
  stopped_ = true;
  if (osFeed_) osFeed_->stop();  // a fetch under way is aborted
  if (follower_) follower_->stop();  // its fetches go through the loops
  if (changeWaiter_) changeWaiter_->stop();  // the waiting long polls answer now
  store_->setUnlinkListener(nullptr);  // no news is posted to loops that are stopping
  for (auto& slotPtr : workers_) {
    WorkerSlot* slot = slotPtr.get();
    slot->worker.stop([slot] {
      slot->wc->draining = true;
      for (auto* h : slot->listeners) closeHandle(h);
      slot->listeners.clear();
      auto conns = slot->wc->conns;
      for (auto* c : conns) c->close();
      auto tunnels = slot->wc->tunnels;
      for (auto* t : tunnels) t->close();
      auto drivers = slot->wc->drivers;
      for (auto* d : drivers) d->abort();
      if (slot->prober) slot->prober->stop();
      slot->prober = nullptr;
      slot->wc->upstream.closeAll();
    });
  }
  for (auto& slot : workers_) slot->worker.join();
  // The last history sample reads the loops' counters: before they go.
  if (sampler_) sampler_->stop();
  sampler_.reset();
  // Loops are done: free per-loop state, then the table, then the store.
  workers_.clear();
  ctx_.counters.clear();
  ctx_.loops.clear();
  store_->setBusyCheck(nullptr);  // the evictor must not ask a table that is going away
  fills_.reset();
  closeCatalog();
  store_.reset();
  dirLock_ = cache::DirLock();  // the store is closed: another daemon may have it
}

// ---- reload ----

namespace {

// A problem from a message that names its key first ("tls.certificate: ..."),
// as loadTls() words them; the key is "" when the message does not start so.
config::Problem problemFromMessage(const std::string& message) {
  config::Problem p;
  p.message = message;
  const size_t colon = message.find(": ");
  if (colon == std::string::npos) return p;
  const std::string key = message.substr(0, colon);
  if (key.find('.') == std::string::npos || key.find(' ') != std::string::npos) return p;
  p.key = key;
  p.message = message.substr(colon + 2);
  return p;
}

}  // namespace

Server::ReloadResult Server::refuse(std::vector<config::Problem> problems, std::string_view source) {
  ReloadResult out;
  std::shared_ptr<const Snapshot> running = snapshot();
  out.generation = running ? running->generation : 0;
  for (const config::Problem& p : problems) {
    out.problems.push_back(config::formatProblem(p, source));
    OLOG_ERROR("reload: %s", out.problems.back().c_str());
  }
  OLOG_ERROR("reload: refused, the running config (generation %llu) stays",
             static_cast<unsigned long long>(out.generation));
  out.details = std::move(problems);
  control_.add(control_.config_reload_failures);
  return out;
}

Server::ReloadResult Server::reloadFile(const std::string& path) {
  config::LoadResult loaded = config::loadFile(path);
  if (!loaded.ok()) return refuse(std::move(loaded.problems), path);
  return reload(std::move(*loaded.config), path);
}

Server::ReloadResult Server::reload(config::Config fresh, std::string_view source) {
  std::shared_ptr<const Snapshot> running = snapshot();
  if (!started_ || stopped_ || !running) return refuse({config::Problem{"", 0, "the server is not running"}}, source);
  config::ReloadPlan plan = config::planReload(running->config, fresh);
  config::SnapshotResult built = config::buildSnapshot(std::move(plan.config), running->generation + 1);
  if (!built.ok()) return refuse(std::move(built.problems), source);
  ReloadResult out;
  for (const config::Param* p : plan.needRestart) {
    OLOG_WARN("reload: %s", config::needsRestartMessage(*p).c_str());
    out.needRestart.emplace_back(p->name);
  }
  std::string applied;
  for (const config::Param* p : plan.applied) {
    out.applied.emplace_back(p->name);
    applied += (applied.empty() ? "" : ", ") + std::string(p->name);
  }
  // Certificates are read again on every reload (a renewal keeps its path).
  std::string tlsError;
  std::shared_ptr<const TlsState> tlsState = loadTls(built.snapshot->config, running->tls.get(), &tlsError);
  if (!tlsState) return refuse({problemFromMessage(tlsError)}, source);
  if (!tlsState->fingerprint.empty() && tlsState->fingerprint != running->tls->fingerprint)
    OLOG_INFO("reload: tls: new connections get the certificate %s (SHA-256 %s)", tlsState->certPath.c_str(),
              tlsState->fingerprint.c_str());
  bool logOk = true;
  std::string logError;
  std::shared_ptr<AccessLogSink> accessLog = loadAccessLog(built.snapshot->config, running.get(), &logOk, &logError);
  if (!logOk) return refuse({problemFromMessage(logError)}, source);
  std::shared_ptr<const Snapshot> snap = makeSnapshot(std::move(built.snapshot), tlsState, std::move(accessLog));
  // Process-wide settings first (the loops' debug lines below obey the new
  // level), then every loop, on its own thread.
  log::setLevel(snap->config.logLevel);
  if (snap->config.cacheLimit != running->config.cacheLimit) store_->setCacheLimit(snap->config.cacheLimit);
  if (catalog_) catalog_->setLimit(snap->config.catalogLimit);
  {
    std::lock_guard lock(snapMu_);
    latest_ = snap;
  }
  struct Acks {
    std::mutex mu;
    std::condition_variable cv;
    size_t n = 0;
  };
  auto acks = std::make_shared<Acks>();  // outlives a loop that acknowledges after the wait gave up
  for (auto& slotPtr : workers_) {
    WorkerSlot* slot = slotPtr.get();
    slot->worker.post([slot, snap, acks] {
      slot->wc->installSnapshot(snap);
      std::lock_guard lock(acks->mu);
      ++acks->n;
      acks->cv.notify_all();
    });
  }
  {
    std::unique_lock lock(acks->mu);
    if (!acks->cv.wait_for(lock, std::chrono::seconds(10), [&] { return acks->n == workers_.size(); }))
      OLOG_WARN("reload: a loop has not taken the new config after 10 s; it will once it gets to it");
  }
  if (osFeed_) osFeed_->configChanged();
  control_.add(control_.config_reloads);
  out.ok = true;
  out.generation = snap->generation;
  const std::string what = applied.empty() ? "no reloadable key changed" : "changed " + applied;
  OLOG_INFO("reload: %.*s applied as config generation %llu: %s", static_cast<int>(source.size()), source.data(),
            static_cast<unsigned long long>(out.generation), what.c_str());
  return out;
}

// ---- the control thread ----

bool Server::postControl(std::function<void()> task) {
  {
    std::lock_guard lock(controlMu_);
    if (controlStop_ || !controlThread_.joinable()) return false;
    controlTasks_.push_back(std::move(task));
  }
  controlCv_.notify_one();
  return true;
}

void Server::runControl() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(controlMu_);
      controlCv_.wait(lock, [&] { return controlStop_ || !controlTasks_.empty(); });
      if (controlTasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(controlTasks_.front());
      controlTasks_.pop_front();
    }
    task();
  }
}

void Server::stopControl() {
  {
    std::lock_guard lock(controlMu_);
    controlStop_ = true;
  }
  controlCv_.notify_all();
  if (controlThread_.joinable()) controlThread_.join();  // runs what was queued first
}

Server::ReloadResult Server::reloadOnControl() {
  if (ctx_.configPath.empty())
    return refuse({config::Problem{"", 0,
                                   "orchardd runs on the embedded defaults (no --config file): there is nothing to "
                                   "reload"}},
                  "<defaults>");
  if (beforeReload_) beforeReload_();
  ReloadResult r = reloadFile(ctx_.configPath);
  if (afterReload_) afterReload_();
  return r;
}

namespace {

// The answer to a reload asked for when the control thread no longer takes
// any: not counted as a refused file (nothing was read), and built on the
// asking thread, which must not write the control thread's counters.
ReloadResult stoppingResult(uint64_t generation) {
  ReloadResult r;
  r.generation = generation;
  r.problems.emplace_back("the server is stopping: no reload now");
  r.details.push_back(config::Problem{"", 0, r.problems.back()});
  return r;
}

}  // namespace

Server::ReloadResult Server::reloadConfigFile() {
  auto done = std::make_shared<std::promise<ReloadResult>>();
  std::future<ReloadResult> result = done->get_future();
  if (!postControl([this, done] { done->set_value(reloadOnControl()); })) {
    auto running = snapshot();
    return stoppingResult(running ? running->generation : 0);
  }
  return result.get();
}

void Server::reloadAsync(std::function<void(ReloadResult)> done) {
  auto shared = std::make_shared<std::function<void(ReloadResult)>>(std::move(done));
  if (!postControl([this, shared] { (*shared)(reloadOnControl()); })) {
    auto running = snapshot();
    (*shared)(stoppingResult(running ? running->generation : 0));
  }
}

}  // namespace orchard::server

namespace orchard::server {

void Server::closeCatalog() {
  ctx_.follower = nullptr;
  follower_.reset();  // stops its threads first
  if (catalog_) catalog_->setChangeHook(nullptr);
  ctx_.changeWaiter = nullptr;
  changeWaiter_.reset();
  ctx_.osFeed = nullptr;
  osFeed_.reset();  // stops its thread first
  osFeedStore_.reset();
  if (apple_) apple_->stop();
  ctx_.apple = nullptr;
  apple_.reset();
  ctx_.history = nullptr;
  history_.reset();
  status_.reset();
  ctx_.status = nullptr;
  fleet_.reset();
  ctx_.fleet = nullptr;
  catalog_.reset();
  ctx_.catalog = nullptr;
}

Result<void> Server::adminTokenAtStart(const std::string& configured) {
  ctx_.generatedToken.clear();
  ctx_.generatedTokens = TokenTable();
  if (!configured.empty()) return ok();
  const std::string path = ctx_.startConfig.storageDir + "/admin.token";
  if (auto existing = config::readTokenFile(path); existing) {
    ctx_.generatedToken = std::move(*existing);
    ctx_.generatedTokens = TokenTable::build(ctx_.generatedToken, {});
    OLOG_INFO("admin: no admin.token configured: the API token is the one in %s", path.c_str());
    return ok();
  } else if (existing.error().code == Errc::Invalid) {
    ::unlink(path.c_str());  // empty: a crash cut its first write short
  } else if (existing.error().code != Errc::NotFound) {
    return existing.error();
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    ERR_clear_error();
    return Error{Errc::Io, 0, "cannot make a random admin token"};
  }
  static const char kDigits[] = "0123456789abcdef";
  std::string token;
  for (unsigned char c : raw) {
    token += kDigits[c >> 4];
    token += kDigits[c & 15];
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Error{Errc::Io, errno, "cannot create storage.dir/admin.token"};
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) {
    ::unlink(path.c_str());
    return Error{Errc::Io, errno, "cannot write storage.dir/admin.token"};
  }
  ctx_.generatedToken = std::move(token);
  ctx_.generatedTokens = TokenTable::build(ctx_.generatedToken, {});
  OLOG_WARN("admin: no admin.token configured: generated one into %s (mode 0600; orchardctl on this box reads it)",
            path.c_str());
  return ok();
}

}  // namespace orchard::server
