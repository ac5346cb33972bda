// A small persistent worker pool: the engine samples (and scores) its sequences in parallel between
// decodes, with the same threads the decode uses (idle then); threads are created once, not per step.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wr1 {

class Workers {
public:
  // `size` workers in all: the calling thread and size − 1 pool threads.
  explicit Workers(int32_t size);
  ~Workers();
  Workers(const Workers &) = delete;
  Workers &operator=(const Workers &) = delete;

  int32_t size() const { return (int32_t)threads_.size() + 1; }
  // Calls task(item, worker) for every item in [0, count) across the workers; returns when all are done.
  // `worker` is in [0, size()), so a task can use per-worker scratch space.
  void forEach(int32_t count, const std::function<void(int32_t item, int32_t worker)> &task);

private:
  void loop(int32_t worker);
  void work(int32_t worker);
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void(int32_t, int32_t)> *task_ = nullptr;
  int32_t count_ = 0;
  int32_t next_ = 0;       // next item to take (under mutex_)
  int32_t busy_ = 0;       // pool threads still working on this round
  uint64_t round_ = 0;
  bool stopping_ = false;
};

}  // namespace wr1
