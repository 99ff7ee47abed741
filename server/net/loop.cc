#include "server/net/loop.h"

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

LoopExecutor::LoopExecutor(uv_loop_t* loop) : async_(new uv_async_t), idle_(new uv_idle_t) {
  uv_async_init(loop, async_, &LoopExecutor::onAsync);
  async_->data = this;
  uv_idle_init(loop, idle_);
  idle_->data = this;
}

LoopExecutor::~LoopExecutor() { close(); }

void LoopExecutor::post(Task task) {
  if (std::this_thread::get_id() == loopThread_.load(std::memory_order_relaxed)) {
    // Even after close(): the loop thread drains these before it exits.
    local_.push_back(std::move(task));
    if (!idleActive_ && idle_) {
      idleActive_ = true;
      uv_idle_start(idle_, &LoopExecutor::onIdle);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    tasks_.push_back(std::move(task));
  }
  uv_async_send(async_);
}

void LoopExecutor::onIdle(uv_idle_t* h) {
  auto* self = static_cast<LoopExecutor*>(h->data);
  if (self) self->drainLocal();
}

void LoopExecutor::drainLocal() {
  // Bounded batch: tasks posted while running wait for the next iteration,
  // after the loop has polled for I/O once more.
  std::deque<Task> batch;
  batch.swap(local_);
  for (auto& t : batch) t();
  if (local_.empty() && idleActive_ && idle_) {
    idleActive_ = false;
    uv_idle_stop(idle_);
  }
}

bool LoopExecutor::finalDrain() {
  if (local_.empty()) return false;
  drainLocal();
  return true;
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
    left.swap(tasks_);
  }
  // Run what was queued (deferred deletes in particular) before closing;
  // tasks they post locally run too.
  for (auto& t : left) t();
  while (!local_.empty()) drainLocal();
  closed_ = true;
  closeHandle(async_);
  async_ = nullptr;
  idleActive_ = false;
  closeHandle(idle_);
  idle_ = nullptr;
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
    executor_->setLoopThread(threadId_);
    if (onStart) onStart();
    uv_run(&loop_, UV_RUN_DEFAULT);
    // Close callbacks may have deferred deletes after the executor closed.
    while (executor_->finalDrain()) uv_run(&loop_, UV_RUN_NOWAIT);
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
