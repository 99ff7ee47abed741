#include "server/loop.h"

#include "common/log.h"

namespace orchard::server {

Error uvError(int status, const char* context) {
  Errc code = Errc::Io;
  switch (status) {
    case UV_ETIMEDOUT: code = Errc::Timeout; break;
    case UV_ENOENT: code = Errc::NotFound; break;
    case UV_ENOSPC: code = Errc::NoSpace; break;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_ECANCELED: code = Errc::Closed; break;
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL: code = Errc::NotFound; break;
    default: break;
  }
  return Error{code, status < 0 ? -status : status, context};
}

LoopExecutor::LoopExecutor(uv_loop_t* loop) : async_(new uv_async_t) {
  uv_async_init(loop, async_, &LoopExecutor::onAsync);
  async_->data = this;
}

LoopExecutor::~LoopExecutor() { close(); }

void LoopExecutor::post(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    tasks_.push_back(std::move(task));
  }
  uv_async_send(async_);
}

void LoopExecutor::onAsync(uv_async_t* h) {
  auto* self = static_cast<LoopExecutor*>(h->data);
  if (self) self->drain();
}

void LoopExecutor::drain() {
  // Bounded batch: tasks posted while running wait for the next wake-up,
  // so a busy producer cannot starve I/O.
  std::deque<Task> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(tasks_);
  }
  for (auto& t : batch) t();
}

void LoopExecutor::close() {
  std::deque<Task> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    left.swap(tasks_);
  }
  // Run what was queued (deferred deletes in particular) before closing.
  for (auto& t : left) t();
  closeHandle(async_);
  async_ = nullptr;
}

Worker::Worker(int index) : index_(index) {
  uv_loop_init(&loop_);
  executor_ = std::make_unique<LoopExecutor>(&loop_);
}

Worker::~Worker() {
  join();
  executor_.reset();
  // Run until every handle has been closed and freed.
  for (int i = 0; i < 100 && uv_loop_close(&loop_) == UV_EBUSY; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
}

void Worker::start(std::function<void()> onStart) {
  thread_ = std::thread([this, onStart = std::move(onStart)] {
    threadId_ = std::this_thread::get_id();
    if (onStart) onStart();
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

void Worker::stop(std::function<void()> onStop) {
  executor_->post([this, onStop = std::move(onStop)] {
    if (onStop) onStop();
    executor_->close();
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace orchard::server
