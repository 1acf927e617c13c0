#include "host/trainer/ranks.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "models/common/error.h"

#ifdef PROMPTHOST_MPI
// The C API only: Open MPI's deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace ph::trainer {

namespace {

// The number of ranks mpirun (or another PMI launcher) started, from the environment it
// gives each process; 1 when not started by one.
int launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) {
    const char* v = std::getenv(name);
    if (v && *v) return std::max(1, std::atoi(v));
  }
  return 1;
}

}  // namespace

bool built_with_mpi() {
#ifdef PROMPTHOST_MPI
  return true;
#else
  return false;
#endif
}

void sum_gradients(const std::vector<ParamRef>& refs, Ranks& ranks) {
  if (!ranks.distributed()) return;
  size_t total = 0;
  for (const ParamRef& r : refs) total += r.numel;
  std::vector<float> all(total);
  size_t at = 0;
  for (const ParamRef& r : refs) std::copy_n(r.grad, r.numel, all.data() + at), at += r.numel;
  ranks.sum(all.data(), all.size());
  at = 0;
  // The optimizer only reads gradients (ParamRef), but they are the plugin's and the
  // head's own writable gradient buffers.
  for (const ParamRef& r : refs)
    std::copy_n(all.data() + at, r.numel, const_cast<float*>(r.grad)), at += r.numel;
}

std::vector<int> rank_share(const std::vector<int>& batch, const std::vector<int>& lengths,
                            int rank, int size) {
  if (size <= 1) return batch;
  long long total = 0;
  for (int i : batch) total += lengths.at(i);
  std::vector<int> share;
  long long before = 0;
  for (size_t j = 0; j < batch.size(); ++j) {
    const long long len = lengths.at(batch[j]);
    // the rank whose part of the tokens holds this example's middle token
    const long long owner =
        total > 0 ? std::min<long long>(size - 1, (2 * before + len) * size / (2 * total))
                  : (long long)(j * size / batch.size());
    if (owner == rank) share.push_back(batch[j]);
    before += len;
  }
  return share;
}

std::string Ranks::prefix() const {
  if (size_ <= 1) return "";
  return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": ";
}

#ifndef PROMPTHOST_MPI

Ranks::Ranks() {
  const int n = launcher_size();
  if (n > 1)
    throw Error("started by mpirun with " + std::to_string(n) +
                " ranks, but this prompthost was built without Open MPI: each rank would train "
                "a copy of its own (install libopenmpi-dev and rebuild, or run one process)");
}

Ranks& Ranks::world() {
  static Ranks ranks;
  return ranks;
}

void Ranks::sum(double*, size_t) {}
void Ranks::sum(float*, size_t) {}
std::vector<std::string> Ranks::gather(const std::string& text) {
  return {text};
}
void Ranks::barrier() {}
void Ranks::finalize() {}

void Ranks::abort(const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(code);
}

#else  // PROMPTHOST_MPI

namespace {

// Waits for every request, polling, for at most `timeout` seconds; `peer[i]` is the rank
// request i waits for. Aborts the job naming the ranks still missing after that.
void wait_all(std::vector<MPI_Request>& requests, const std::vector<int>& peer, double timeout,
              const char* what, Ranks& ranks) {
  const auto start = std::chrono::steady_clock::now();
  // Most exchanges complete within microseconds: poll, yielding, before sleeping.
  auto pause = std::chrono::microseconds(50);
  for (int polls = 0;; ++polls) {
    int done = 0;
    MPI_Testall((int)requests.size(), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (done) return;
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > timeout) {
      std::string missing;
      for (size_t i = 0; i < requests.size(); ++i) {
        int flag = 0;
        MPI_Test(&requests[i], &flag, MPI_STATUS_IGNORE);
        if (!flag) missing += (missing.empty() ? "" : ", ") + std::to_string(peer[i]);
      }
      ranks.abort(ranks.prefix() + "rank " + missing + " did not reach the " + what + " within " +
                      std::to_string((int)timeout) +
                      " s (stopped or hung): stopping the job (--resume continues from the last "
                      "checkpoint)",
                  1);
    }
    if (polls < 2000) {
      std::this_thread::yield();
      continue;
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(1)) pause *= 2;
  }
}

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}

// Rank 0 receives every rank's values, adds them in rank order and sends the sums back.
template <class T>
void sum_in_rank_order(T* values, size_t n, int tag, double timeout, Ranks& ranks) {
  const int size = ranks.size();
  if (n > (size_t)INT32_MAX) ranks.abort(ranks.prefix() + "a sum of over 2^31 values", 1);
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  if (ranks.root()) {
    std::vector<std::vector<T> > parts(size);
    for (int r = 1; r < size; ++r) {
      parts[r].resize(n);
      requests.emplace_back();
      peers.push_back(r);
      MPI_Irecv(parts[r].data(), (int)n, mpi_type<T>(), r, tag, MPI_COMM_WORLD, &requests.back());
    }
    wait_all(requests, peers, timeout, "exchange of gradients", ranks);
    for (int r = 1; r < size; ++r)
      for (size_t i = 0; i < n; ++i) values[i] += parts[r][i];
    requests.clear();
    peers.clear();
    for (int r = 1; r < size; ++r) {
      requests.emplace_back();
      peers.push_back(r);
      MPI_Isend(values, (int)n, mpi_type<T>(), r, tag, MPI_COMM_WORLD, &requests.back());
    }
    wait_all(requests, peers, timeout, "exchange of gradients", ranks);
    return;
  }
  std::vector<T> own(values, values + n);
  requests.resize(2);
  peers = {0, 0};
  MPI_Isend(own.data(), (int)n, mpi_type<T>(), 0, tag, MPI_COMM_WORLD, &requests[0]);
  MPI_Irecv(values, (int)n, mpi_type<T>(), 0, tag, MPI_COMM_WORLD, &requests[1]);
  wait_all(requests, peers, timeout, "exchange of gradients", ranks);
}

}  // namespace

Ranks::Ranks() {
  if (launcher_size() <= 1) return;  // not under mpirun: no MPI at all
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  mpi_ = true;
}

Ranks& Ranks::world() {
  static Ranks ranks;
  return ranks;
}

void Ranks::sum(double* values, size_t n) {
  if (size_ <= 1) return;
  sum_in_rank_order(values, n, (int)(++tag_ % 30000), timeout_, *this);
}

void Ranks::sum(float* values, size_t n) {
  if (size_ <= 1) return;
  sum_in_rank_order(values, n, (int)(++tag_ % 30000), timeout_, *this);
}

void Ranks::barrier() {
  double nothing = 0.0;
  sum(&nothing, 1);
}

// Lengths first (a sum of one-hot vectors), then every text to every rank from its owner.
std::vector<std::string> Ranks::gather(const std::string& text) {
  if (size_ <= 1) return {text};
  std::vector<double> lengths(size_, 0.0);
  lengths[rank_] = (double)text.size();
  sum(lengths.data(), lengths.size());
  std::vector<std::string> texts(size_);
  const int tag = (int)(++tag_ % 30000);
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  for (int r = 0; r < size_; ++r) {
    if (lengths[r] > (double)INT32_MAX) abort(prefix() + "a result of over 2 GB", 1);
    if (r == rank_) {
      texts[r] = text;
      for (int to = 0; to < size_; ++to) {
        if (to == rank_) continue;
        requests.emplace_back();
        peers.push_back(to);
        MPI_Isend(text.data(), (int)text.size(), MPI_CHAR, to, tag, MPI_COMM_WORLD,
                  &requests.back());
      }
    } else {
      texts[r].resize((size_t)lengths[r]);
      requests.emplace_back();
      peers.push_back(r);
      MPI_Irecv(texts[r].data(), (int)texts[r].size(), MPI_CHAR, r, tag, MPI_COMM_WORLD,
                &requests.back());
    }
  }
  wait_all(requests, peers, timeout_, "exchange of evaluation results", *this);
  return texts;
}

void Ranks::abort(const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

void Ranks::finalize() {
  if (!mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  mpi_ = false;
}

#endif  // PROMPTHOST_MPI

}  // namespace ph::trainer
