// Worker: one libuv loop on its own thread, with the executor that lets
// other threads post work to it and the deferred-delete list.
//
// Handle rules (STYLE "libuv lifetimes"): a uv handle is never moved after
// uv_*_init and its memory is freed only by a close callback, in one of
// three ways:
//   - in its own heap box, closed with closeHandle(), whose close callback
//     frees the box (the executor's async and idle handles, listeners);
//   - inside a Stream (server/net/stream.h): TcpStream embeds its uv_tcp_t
//     and frees itself in the handle's close callback, after telling its
//     owner (the close notification);
//   - embedded in the object that owns it (ClientConn's and UpstreamConn's
//     timers): the object counts its open handles, held streams and posted
//     tasks, each close callback or notification drops one, and the object
//     deletes itself when the count reaches zero.
// Objects that own a callback stack are destroyed through deferDelete(),
// which runs after the current callback returns.
#pragma once

#include <uv.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/executor.h"
#include "common/result.h"

namespace orchard::server {

// Translates a libuv status code (negative errno) into an Error.
Error uvError(int status, const char* context);

// Closes a heap-boxed handle; the box is freed in the close callback.
template <typename H>
void closeHandle(H* h) {
  if (!h) return;
  h->data = nullptr;
  uv_handle_t* hh = reinterpret_cast<uv_handle_t*>(h);
  if (uv_is_closing(hh)) return;
  uv_close(hh, [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}

// Posts from other threads go through a locked queue and a uv_async_t;
// posts from the loop's own thread (the common case: deferred deletes,
// same-loop wake-ups) go to a plain local queue drained by a uv_idle_t, so
// they cost no lock and no system call.
class LoopExecutor final : public Executor {
 public:
  explicit LoopExecutor(uv_loop_t* loop);
  ~LoopExecutor() override;
  void post(Task task) override;
  // Stops accepting tasks and closes the handles (loop thread only).
  void close();
  void setLoopThread(std::thread::id id) { loopThread_ = id; }
  // After the loop ended: runs tasks the loop thread posted late. False if none.
  bool finalDrain();

 private:
  static void onAsync(uv_async_t* h);
  static void onIdle(uv_idle_t* h);
  void drain();
  void drainLocal();

  uv_async_t* async_;
  uv_idle_t* idle_;
  std::mutex mu_;
  std::deque<Task> tasks_;
  std::deque<Task> local_;  // loop thread only
  bool idleActive_ = false;
  std::atomic<bool> closed_{false};
  std::atomic<std::thread::id> loopThread_{};
};

class Worker {
 public:
  explicit Worker(int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int index() const { return index_; }
  uv_loop_t* loop() { return &loop_; }
  LoopExecutor& executor() { return *executor_; }

  // Starts the loop on a new thread. `onStart` runs first, on that thread.
  void start(std::function<void()> onStart);
  // Runs `fn` on the loop thread (posted).
  void post(Executor::Task fn) { executor_->post(std::move(fn)); }
  // Deletes `p` after the current callback stack unwinds.
  template <typename T>
  void deferDelete(T* p) {
    executor_->post([p] { delete p; });
  }
  // Asks the loop to finish: `onStop` runs on the loop thread and must close
  // every handle it owns; then the executor closes and the loop runs dry.
  void stop(std::function<void()> onStop);
  void join();
  bool onLoopThread() const { return std::this_thread::get_id() == threadId_.load(); }

 private:
  const int index_;
  uv_loop_t loop_;
  std::unique_ptr<LoopExecutor> executor_;
  std::thread thread_;
  std::atomic<std::thread::id> threadId_{};
};

}  // namespace orchard::server
