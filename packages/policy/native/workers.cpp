#include "workers.h"

namespace wr1 {

Workers::Workers(int32_t size) {
  for (int32_t w = 1; w < size; w++) threads_.emplace_back([this, w] { loop(w); });
}

Workers::~Workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto &t : threads_) t.join();
}

// Items are taken one at a time under the lock: a task (one sampled token over the vocabulary) is
// long next to the lock.
void Workers::work(int32_t worker) {
  for (;;) {
    int32_t item;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= count_) return;
      item = next_++;
    }
    (*task_)(item, worker);
  }
}

void Workers::loop(int32_t worker) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || round_ != seen; });
      if (stopping_) return;
      seen = round_;
    }
    work(worker);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) finished_.notify_one();
    }
  }
}

void Workers::forEach(int32_t count, const std::function<void(int32_t, int32_t)> &task) {
  if (count <= 0) return;
  if (threads_.empty() || count == 1) {
    for (int32_t i = 0; i < count; i++) task(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    count_ = count;
    next_ = 0;
    busy_ = (int32_t)threads_.size();
    round_++;
  }
  wake_.notify_all();
  work(0);
  std::unique_lock<std::mutex> lock(mutex_);
  finished_.wait(lock, [&] { return busy_ == 0; });
  task_ = nullptr;
}

}  // namespace wr1
