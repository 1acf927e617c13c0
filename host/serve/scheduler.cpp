// The scheduler thread: admits queued requests into free slots, runs one BatchDecoder
// step over every running sequence, hands each its logits, and lets finished ones go.
#include "host/serve/scheduler.h"

#include <malloc.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "host/serve/api_error.h"
#include "host/serve/running_sequence.h"
#include "models/engine/batch_decode.h"

namespace ph::serve {

namespace {

using Clock = std::chrono::steady_clock;

struct QueuedRequest {
  uint64_t id = 0;
  std::vector<SequenceRequest> sequences;
};

// glibc raises its mmap threshold each time a large block is freed, up to 32 MiB, after
// which KV caches come from the heap and a freed one stays in the process. A fixed
// threshold keeps every cache-sized block mmapped, so a finished sequence's cache goes
// back to the system at once and the server's RSS stays flat under any traffic.
void return_freed_caches_to_the_system() {
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // glibc's initial value, kept
}

void log_failure(const char* what, const char* message) {
  std::fprintf(stderr, "prompthost serve: scheduler: %s: %s\n", what, message);
}

// A callback's exception must not end the scheduler thread (and the server with it).
template <class Fn>
void guarded(const char* what, Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log_failure(what, e.what());
  } catch (...) {
    log_failure(what, "an exception that is not a std::exception");
  }
}

}  // namespace

struct Scheduler::Impl {
  Impl(const Model& model, SchedulerOptions options, std::function<void(const StepReport&)> on_step)
      : model(model), options(options), on_step(std::move(on_step)), decoder(model) {}

  const Model& model;
  const SchedulerOptions options;
  const std::function<void(const StepReport&)> on_step;
  BatchDecoder decoder;

  mutable std::mutex mutex;      // everything below up to `active`
  std::condition_variable wake;  // the scheduler thread: work, a cancel, a stop
  std::condition_variable idle;  // drain(): a sequence ended
  std::deque<QueuedRequest> queue;
  int queued = 0;  // sequences in `queue`
  int active_count = 0;
  int reporting = 0;  // sequences out of the queue or the batch whose on_finish is to run
  uint64_t steps = 0;
  uint64_t next_id = 1;
  std::set<uint64_t> cancelled;
  bool draining = false, shutdown = false, stop = false;

  // The scheduler thread's own.
  std::vector<std::unique_ptr<RunningSequence>> active;
  std::vector<xt::xtensor<float, 2>> logits;
  std::thread thread;

  void run();
  bool has_work() const;
  std::vector<QueuedRequest> take_admitted(std::vector<QueuedRequest>& ended);
  void end_cancelled(std::vector<QueuedRequest>& ended);
  void report_unstarted(std::vector<QueuedRequest>& requests, FinishReason reason);
  void start(std::vector<QueuedRequest> admitted);
  void step();
  void remove_finished();
  void reported(int sequences);
};

bool Scheduler::Impl::has_work() const {
  return stop || shutdown || !cancelled.empty() || !active.empty() || !queue.empty();
}

// Under the lock: requests whose sequences all fit in the free slots, in order; with
// shutdown or stop, the whole queue goes to `ended` instead.
std::vector<QueuedRequest> Scheduler::Impl::take_admitted(std::vector<QueuedRequest>& ended) {
  std::vector<QueuedRequest> admitted;
  int slots = options.max_sequences - (int)active.size();
  while (!queue.empty()) {
    const int n = (int)queue.front().sequences.size();
    const bool end = shutdown || stop;
    if (!end && n > slots) break;
    queued -= n;
    (end ? ended : admitted).push_back(std::move(queue.front()));
    queue.pop_front();
    if (!end) slots -= n;
  }
  return admitted;
}

// Under the lock: cancelled requests leave the queue (to `ended`) and the batch.
void Scheduler::Impl::end_cancelled(std::vector<QueuedRequest>& ended) {
  if (cancelled.empty()) return;
  for (auto it = queue.begin(); it != queue.end();) {
    if (!cancelled.count(it->id)) {
      ++it;
      continue;
    }
    queued -= (int)it->sequences.size();
    ended.push_back(std::move(*it));
    it = queue.erase(it);
  }
  for (auto& s : active)
    if (cancelled.count(s->request())) s->finish(FinishReason::kCancelled);
  cancelled.clear();  // ids of finished requests are dropped with them
}

// Outside the lock; `reporting` counted them when they left the queue.
void Scheduler::Impl::report_unstarted(std::vector<QueuedRequest>& requests, FinishReason reason) {
  int n = 0;
  for (QueuedRequest& r : requests)
    for (SequenceRequest& s : r.sequences) {
      ++n;
      if (s.on_finish) guarded("on_finish", [&] { s.on_finish(reason); });
    }
  reported(n);
}

void Scheduler::Impl::start(std::vector<QueuedRequest> admitted) {
  for (QueuedRequest& r : admitted)
    for (SequenceRequest& s : r.sequences) {
      const auto on_finish = s.on_finish;  // to report a failure to start
      try {
        active.push_back(std::make_unique<RunningSequence>(model, r.id, std::move(s)));
      } catch (const std::exception& e) {
        log_failure("starting a sequence", e.what());
        if (on_finish) guarded("on_finish", [&] { on_finish(FinishReason::kError); });
      }
    }
}

void Scheduler::Impl::step() {
  std::vector<DecodeItem> items;
  std::vector<RunningSequence*> owners;
  StepReport report;
  int budget = options.prefill_budget;  // prompt tokens left for this step
  for (auto& s : active) {
    if (s->finished()) continue;
    int chunk = 1;  // a decoding sequence's next token
    if (s->prompt_left() > 0) {
      if (budget == 0) continue;  // its prompt waits for the next step
      chunk = std::min({(int)std::min<size_t>(s->prompt_left(), options.prefill_chunk), budget});
      budget -= chunk;
    }
    items.push_back(s->next_item(chunk));
    owners.push_back(s.get());
    report.rows += (int)items.back().tokens.size();
  }
  if (items.empty()) return;
  report.sequences = (int)items.size();
  const auto t0 = Clock::now();
  try {
    decoder.step(items, logits);
  } catch (const std::exception& e) {
    log_failure("decoding step", e.what());
    for (RunningSequence* s : owners) s->finish(FinishReason::kError);
    return;
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (size_t i = 0; i < owners.size(); ++i) {
    try {
      owners[i]->take_logits(logits[i]);
    } catch (const std::exception& e) {
      log_failure("a sequence's callback", e.what());
      owners[i]->finish(FinishReason::kError);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    ++steps;
  }
  if (on_step) guarded("on_step", [&] { on_step(report); });
}

// Finished sequences leave the batch (and the count stats() gives) before their
// on_finish runs: a client that hears back sees its slot free.
void Scheduler::Impl::remove_finished() {
  std::vector<std::unique_ptr<RunningSequence>> finished;
  for (auto& s : active)
    if (s->finished()) finished.push_back(std::move(s));
  active.erase(std::remove(active.begin(), active.end(), nullptr), active.end());
  {
    std::lock_guard<std::mutex> lock(mutex);
    active_count = (int)active.size();
    reporting += (int)finished.size();
  }
  for (auto& s : finished) guarded("on_finish", [&] { s->report_finish(); });
  reported((int)finished.size());
}

void Scheduler::Impl::reported(int sequences) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    reporting -= sequences;
  }
  idle.notify_all();
}

void Scheduler::Impl::run() {
  for (;;) {
    std::vector<QueuedRequest> cancelled_requests, shut_down, admitted;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [this] { return has_work(); });
      end_cancelled(cancelled_requests);
      admitted = take_admitted(shut_down);
      if (shutdown || stop)
        for (auto& s : active) s->finish(FinishReason::kShutdown);
      for (const auto& r : admitted) active_count += (int)r.sequences.size();
      for (const auto* ended : {&cancelled_requests, &shut_down})
        for (const auto& r : *ended) reporting += (int)r.sequences.size();
    }
    report_unstarted(cancelled_requests, FinishReason::kCancelled);
    report_unstarted(shut_down, FinishReason::kShutdown);
    start(std::move(admitted));
    remove_finished();
    step();
    remove_finished();
    std::lock_guard<std::mutex> lock(mutex);
    if (stop && active.empty() && queue.empty()) return;
  }
}

Scheduler::Scheduler(const Model& model, SchedulerOptions options,
                     std::function<void(const StepReport&)> on_step) {
  if (options.max_sequences < 1 || options.max_queue < 0 || options.prefill_chunk < 1 ||
      options.prefill_budget < options.prefill_chunk)
    throw Error(
        "scheduler options: max_sequences and prefill_chunk must be >= 1, max_queue >= 0, "
        "prefill_budget >= prefill_chunk");
  return_freed_caches_to_the_system();
  impl_ = std::make_unique<Impl>(model, options, std::move(on_step));
  impl_->thread = std::thread([this] { impl_->run(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

uint64_t Scheduler::submit(std::vector<SequenceRequest> sequences) {
  const int n = (int)sequences.size();
  if (n == 0) throw ApiError(400, "a request with no sequences", "invalid_request_error", "n");
  if (n > impl_->options.max_sequences)
    throw ApiError(400,
                   std::to_string(n) + " choices, more than the " +
                       std::to_string(impl_->options.max_sequences) + " sequences decoded at once",
                   "invalid_request_error", "n");
  for (const SequenceRequest& s : sequences) check_sequence_request(impl_->model, s);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Impl& m = *impl_;
  // The queue holds what waits: sequences beyond the free slots.
  const int free_slots = std::max(0, m.options.max_sequences - m.active_count);
  if (m.draining || m.stop || m.queued + n > m.options.max_queue + free_slots) return 0;
  const uint64_t id = m.next_id++;
  m.queue.push_back({id, std::move(sequences)});
  m.queued += n;
  m.wake.notify_one();
  return id;
}

void Scheduler::cancel(uint64_t request) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (request == 0 || request >= impl_->next_id) return;
    impl_->cancelled.insert(request);
  }
  impl_->wake.notify_one();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  SchedulerStats s;
  s.queued = impl_->queued;
  s.active = impl_->active_count;
  s.steps = impl_->steps;
  return s;
}

void Scheduler::drain(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mutex);
  m.draining = true;
  auto empty = [&m] { return m.queue.empty() && m.active_count == 0 && m.reporting == 0; };
  if (!m.idle.wait_for(lock, timeout, empty)) {
    m.shutdown = true;
    m.wake.notify_one();
    m.idle.wait(lock, empty);
  }
}

}  // namespace ph::serve
