// PUT /api/v1/packages/{name}/{version}/{filename}: a publish (see
// catalog.h for what becomes visible when). Everything that can be decided
// from the head is (token, the three names, the query's metadata, the
// length, the checksum's form, an existing version, a publish already
// running, the limit) before a byte of the body is asked for: the
// 100 Continue goes out only then. The body is gathered into 1 MiB pieces
// that the thread pool writes and hashes, one at a time, while the next
// piece fills (the write with the whole-file SHA-256 on one pool thread,
// the chunk hashes on another): at most two pieces per upload in memory,
// reading paused while both are taken. Once whole and fsynced (on the pool too) the file
// is read for its metadata, the request's values override what it says,
// and the catalog commits it.
//
// Hard parts: the handler can be deleted (client gone) while a piece is on
// the pool, so the upload lives in a shared State the job holds, and an
// abandoned upload is destroyed on the pool (unlinking a 15 GB temp file
// is not for the loop).
#include <uv.h>

#include <algorithm>
#include <cctype>

#include "catalog/names.h"
#include "catalog/package_draft.h"
#include "catalog/request_metadata.h"
#include "common/log.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"
#include "server/http/message.h"

namespace orchard::server {

namespace {

constexpr size_t kPiece = 1 << 20;

struct State {
  std::unique_ptr<catalog::Upload> upload;
};

// Destroys `state` (and its upload's temp file) on the thread pool.
void disposeOffLoop(uv_loop_t* loop, std::shared_ptr<State> state) {
  struct Job {
    uv_work_t req;
    std::shared_ptr<State> state;
  };
  auto* job = new Job{};
  job->req.data = job;
  job->state = std::move(state);
  auto run = [](uv_work_t* q) { static_cast<Job*>(q->data)->state.reset(); };
  auto after = [](uv_work_t* q, int) { delete static_cast<Job*>(q->data); };
  if (uv_queue_work(loop, &job->req, run, after) != 0) {
    run(&job->req);
    after(&job->req, 0);
  }
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

class PublishHandler final : public LocalHandler {
 public:
  PublishHandler(ResponseWriter* w, RequestHead req, PathParams params, catalog::Actor actor, const ServerContext* ctx)
      : LocalHandler(w, std::move(req)),
        params_(std::move(params)),
        ctx_(ctx),
        loop_(w->wc()->worker->loop()),
        actor_(std::move(actor)) {}
  ~PublishHandler() override {
    *alive_ = false;
    if (state_ && !inflight_) disposeOffLoop(loop_, std::move(state_));
  }

  void start() override {
    const Snapshot& snap = w_->wc()->snapshot();
    name_ = params_.get("name");
    version_ = params_.get("version");
    filename_ = params_.get("filename");
    if (auto p = catalog::validateName(name_)) return answerError(400, "name: " + *p);
    if (auto p = catalog::validateVersion(version_)) return answerError(400, "version: " + *p);
    if (auto p = catalog::validateFilename(filename_)) return answerError(400, "filename: " + *p);
    if (auto p = parseQuery()) return answerError(400, *p);
    if (req_.chunked || !req_.contentLength)
      return answerError(411, "a publish needs a Content-Length: the box decides from the head whether it fits");
    if (*req_.contentLength > snap.config.catalogMaxUpload) {
      w_->wc()->counters.add(w_->wc()->counters.uploads_too_large);
      return answerError(413, "the package is " + std::to_string(*req_.contentLength) +
                                  " bytes; catalog.max_upload allows at most " +
                                  std::to_string(snap.config.catalogMaxUpload));
    }
    std::string sha;
    if (auto h = req_.header("X-Checksum-Sha256")) {
      if (!isHex64(*h)) return answerError(400, "X-Checksum-Sha256 must be 64 hexadecimal digits");
      sha.assign(*h);
      std::transform(sha.begin(), sha.end(), sha.begin(), [](unsigned char c) { return std::tolower(c); });
    }
    auto begun = ctx_->catalog->begin(name_, version_, filename_, *req_.contentLength, sha);
    if (auto* p = std::get_if<catalog::Problem>(&begun)) return answerError(statusFor(*p), p->detail);
    auto& b = std::get<catalog::Catalog::Begun>(begun);
    base_ = baseUrl(snap, req_);
    if (b.identical) {
      auto j = versionJson(*b.identical, base_);
      j["created"] = false;
      return answer(200, "application/json", j.dump() + "\n");
    }
    state_ = std::make_shared<State>();
    state_->upload = std::move(b.upload);
    requireSigned_ = snap.config.catalogRequireSigned;
    roots_ = snap.trustedRoots;
    if (auto e = req_.header("Expect"); e && iequals(*e, "100-continue") && req_.versionMinor >= 1)
      w_->write("HTTP/1.1 100 Continue\r\n\r\n");
    cur_.reserve(kPiece);
    if (*req_.contentLength == 0) next();
  }

  void onRequestBody(const char* data, size_t n) override {
    if (!state_ || answered()) return;
    cur_.append(data, n);
    if (cur_.size() >= kPiece) {
      if (inflight_) {
        if (!paused_ && w_) w_->pauseReading();
        paused_ = true;
      } else {
        next();
      }
    }
  }

  void onRequestComplete() override {
    requestComplete_ = true;
    if (state_ && !inflight_ && !answered()) next();
  }

 private:
  // Query parameters are metadata that override the file's (validated now,
  // applied after the file is read).
  std::optional<std::string> parseQuery() {
    const size_t q = req_.target.find('?');
    if (q == std::string::npos) return std::nullopt;
    std::string_view rest = std::string_view(req_.target).substr(q + 1);
    catalog::PackageMetadata scratch;
    while (!rest.empty()) {
      const size_t amp = rest.find('&');
      std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (pair.empty()) continue;
      const size_t eq = pair.find('=');
      std::string key, value;
      if (!percentDecode(pair.substr(0, eq), &key) ||
          !percentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), &value))
        return "a query parameter has a malformed percent-escape";
      if (auto p = catalog::applyOverride(&scratch, key, value)) return *p;
      overrides_.emplace_back(std::move(key), std::move(value));
    }
    return std::nullopt;
  }

  // Moves the gathered piece to the pool, or finishes when the body is in.
  void next() {
    if (!cur_.empty()) return submitPiece(std::exchange(cur_, std::string()));
    if (requestComplete_ || *req_.contentLength == 0) submitFinish();
  }

  // One piece: written with the whole-file digest on one pool thread while
  // another hashes its chunks; the next piece goes once both are back.
  struct Piece {
    uv_work_t whole;
    uv_work_t chunks;
    std::weak_ptr<bool> alive;
    PublishHandler* handler;
    std::shared_ptr<State> state;
    std::string bytes;
    int pending = 2;
    std::optional<catalog::Problem> problem;
  };

  void submitPiece(std::string bytes) {
    auto* p = new Piece{};
    p->whole.data = p;
    p->chunks.data = p;
    p->alive = alive_;
    p->handler = this;
    p->state = state_;
    p->bytes = std::move(bytes);
    cur_.reserve(kPiece);
    inflight_ = true;
    auto whole = [](uv_work_t* q) {
      auto* p = static_cast<Piece*>(q->data);
      p->problem = p->state->upload->writeWhole(p->bytes.data(), p->bytes.size());
    };
    auto chunks = [](uv_work_t* q) {
      auto* p = static_cast<Piece*>(q->data);
      p->state->upload->hashChunks(p->bytes.data(), p->bytes.size());
    };
    auto after = [](uv_work_t* q, int) {
      auto* p = static_cast<Piece*>(q->data);
      if (--p->pending > 0) return;
      if (auto a = p->alive.lock(); a && *a) p->handler->pieceDone(std::move(p->problem));
      else disposeOffLoop(q->loop, std::move(p->state));
      delete p;
    };
    for (uv_work_t* q : {&p->whole, &p->chunks}) {
      auto fn = q == &p->whole ? +whole : +chunks;
      if (uv_queue_work(loop_, q, fn, after) != 0) {
        fn(q);  // the pool refused (shutting down): do it here
        after(q, 0);
      }
    }
  }

  void pieceDone(std::optional<catalog::Problem> problem) {
    inflight_ = false;
    if (answered()) return;
    if (problem) return refuse(*problem);
    if (paused_ && w_) {
      paused_ = false;
      w_->resumeReading();
    }
    if (cur_.size() >= kPiece || requestComplete_) next();
  }

  void refuse(const catalog::Problem& p) {
    OLOG_INFO("publish %s %s refused: %s", name_.c_str(), version_.c_str(), p.detail.c_str());
    disposeOffLoop(loop_, std::move(state_));
    answerError(statusFor(p), p.detail);
  }

  // The end: finish (checksum, fsync), then read and commit, on the pool.
  struct Job {
    uv_work_t req;
    std::weak_ptr<bool> alive;
    PublishHandler* handler;
    std::shared_ptr<State> state;
    std::vector<std::pair<std::string, std::string>> overrides;
    bool requireSigned = false;
    std::shared_ptr<const catalog::TrustStore> roots;
    catalog::Actor actor;
    int64_t now = 0;
    std::optional<catalog::Problem> problem;
    std::shared_ptr<const catalog::PackageVersion> committed;
    bool created = false;
  };

  void submitFinish() {
    auto* job = new Job{};
    job->req.data = job;
    job->alive = alive_;
    job->handler = this;
    job->state = state_;
    job->overrides = overrides_;
    job->requireSigned = requireSigned_;
    job->roots = roots_;
    job->actor = actor_;
    job->now = ctx_->clock->nowSeconds();
    inflight_ = true;
    auto run = [](uv_work_t* q) {
      auto* j = static_cast<Job*>(q->data);
      j->problem = j->state->upload->finish();
      if (!j->problem) commit(j);
    };
    auto after = [](uv_work_t* q, int) {
      auto* j = static_cast<Job*>(q->data);
      if (auto a = j->alive.lock(); a && *a) j->handler->done(j);
      else disposeOffLoop(q->loop, std::move(j->state));
      delete j;
    };
    if (uv_queue_work(loop_, &job->req, run, after) != 0) {
      run(&job->req);
      after(&job->req, 0);
    }
  }

  // On the pool: the file's metadata, the request's overrides, the
  // signature policy (catalog/package_draft.h), then the commit.
  static void commit(Job* j) {
    catalog::Upload& up = *j->state->upload;
    catalog::PackageVersion draft;
    catalog::DraftOptions opts;
    opts.overrides = std::move(j->overrides);
    opts.requireSigned = j->requireSigned;
    opts.roots = j->roots;
    if (auto p = catalog::draftFromFile(up.path(), up.name(), up.version(), opts, &draft)) {
      j->problem = std::move(*p);
      return;
    }
    catalog::Catalog* c = up.catalog();
    auto result = c->commit(std::move(j->state->upload), std::move(draft), j->actor, j->now);
    if (auto* p = std::get_if<catalog::Problem>(&result)) {
      j->problem = std::move(*p);
      return;
    }
    auto& ok = std::get<catalog::Catalog::Committed>(result);
    j->committed = ok.version;
    j->created = ok.created;
  }

  // Back on the loop: the answer.
  void done(Job* j) {
    inflight_ = false;
    if (answered()) return;
    if (j->problem) return refuse(*j->problem);
    state_.reset();
    auto out = versionJson(*j->committed, base_);
    out["created"] = j->created;
    if (j->created)
      OLOG_INFO("published %s %s (%s, %llu bytes)", name_.c_str(), version_.c_str(), j->committed->sha256.c_str(),
                static_cast<unsigned long long>(j->committed->size));
    answer(j->created ? 201 : 200, "application/json", out.dump() + "\n");
  }

  PathParams params_;
  const ServerContext* ctx_;
  uv_loop_t* loop_;
  std::string name_, version_, filename_, base_;
  std::vector<std::pair<std::string, std::string>> overrides_;
  bool requireSigned_ = false;
  std::shared_ptr<const catalog::TrustStore> roots_;
  catalog::Actor actor_;
  std::shared_ptr<State> state_;
  std::string cur_;
  bool inflight_ = false;
  bool paused_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

RequestHandler* makePublishHandler(HandlerRequest&& r, const ServerContext* ctx) {
  catalog::Actor actor = actorOf(r);
  return new PublishHandler(r.writer, std::move(r.head), std::move(r.params), std::move(actor), ctx);
}

}  // namespace orchard::server
