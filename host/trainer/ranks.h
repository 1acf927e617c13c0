// The processes of one data-parallel training run (Open MPI), or this process alone.
//
// Every rank holds the frozen model and all of the data, takes its share of each batch,
// runs forward and backward on it, and the ranks then sum their gradients, losses and
// counts and take the same optimizer step. Sums go to rank 0 and back, added in rank order
// (not MPI_Allreduce, whose order is the library's choice): a run is bit-for-bit
// repeatable for a given number of ranks and threads.
//
// Faults: every exchange waits at most timeout() for the other ranks; then the job is
// aborted with a message naming the ranks that did not arrive (a hung or stopped rank).
// A rank that dies is reported by mpirun itself, which then ends the job.
//
// MPI is initialised only when the process was started by mpirun (its environment says
// so): a plain `prompthost train` never touches it. A build without Open MPI started by
// mpirun with several ranks refuses to run (it would train N copies side by side).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "host/trainer/optimizer.h"

namespace ph::trainer {

class Ranks {
 public:
  // The run's ranks: MPI_COMM_WORLD under mpirun (initialised on the first call), else
  // this process alone. Throws ph::Error for several ranks in a build without MPI.
  static Ranks& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // On every rank, values[i] becomes the sum over ranks of values[i], added in rank order
  // (((v0 + v1) + v2) + ...). Every rank must pass the same n. No-op alone.
  void sum(double* values, size_t n);
  void sum(float* values, size_t n);
  // Every rank's text, in rank order, on every rank.
  std::vector<std::string> gather(const std::string& text);
  // Waits for every rank (a sum of nothing).
  void barrier();

  // Seconds an exchange waits for the other ranks before aborting the job (default 600).
  void set_timeout(double seconds) { timeout_ = seconds; }
  double timeout() const { return timeout_; }

  // Ends the whole job after printing "RANK_PREFIX message" on standard error: MPI_Abort
  // under mpirun (mpirun then stops every rank), exit(code) alone.
  [[noreturn]] void abort(const std::string& message, int code);
  // "rank 1 of 2: " under mpirun, "" alone.
  std::string prefix() const;

  // Shuts MPI down (at the end of main); nothing alone.
  void finalize();

 private:
  Ranks();
  int rank_ = 0;
  int size_ = 1;
  double timeout_ = 600.0;
  // Exchanges are numbered, so messages of two exchanges never mix (both unused without MPI).
  [[maybe_unused]] unsigned tag_ = 0;
  [[maybe_unused]] bool mpi_ = false;
};

// Every rank's gradients (the optimizer's parameters' grad buffers) summed in rank order,
// in one exchange. No-op alone.
void sum_gradients(const std::vector<ParamRef>& refs, Ranks& ranks);

// Whether this build can run under mpirun with several ranks.
bool built_with_mpi();

// The slice of `batch` (example indices, in order) that `rank` of `size` trains on:
// consecutive examples holding about a size-th of the batch's tokens (lengths[i] per
// example), so that ranks finish a step together. Every example goes to exactly one rank;
// a rank may get none when the batch has fewer examples than ranks.
std::vector<int> rank_share(const std::vector<int>& batch, const std::vector<int>& lengths,
                            int rank, int size);

}  // namespace ph::trainer
