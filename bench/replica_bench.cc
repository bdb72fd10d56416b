// Replica throughput (issue "The replica"): local commits per second with
// one mutation per transaction (kDurable and kFast) and with 1,000
// mutations per transaction; remote batches applied per second (signature
// verification included); SetAdd and SetRemove, one member per commit, on
// sets of 1,000 and 300,000 members; bytes of the batch a one-key counter
// write makes (commit latency during tier merges: tier_merge_bench.cc);
// and, in the same run for comparison, raw LMDB with one put per synced
// commit (default flags).
//
// Stores live in $EDGESYNC_BENCH_DIR, else $TMPDIR, else /tmp: put them on
// the disk you want to measure (tmpfs makes syncs free). Times are wall
// clock (UseRealTime): a synced commit waits for the disk, not the CPU.
//
//   <build>/bench/replica_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>
#include <lmdb.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crdt/compact_codec.h"
#include "crdt/memory_store.h"
#include "crdt/transaction_builder.h"
#include "crdt/hlc.h"
#include "bench/bench_dir.h"
#include "edgesync/replica.h"
#include "transport/batch.h"
#include "transport/signing_key.h"

namespace edgesync {
namespace {

Durability DurabilityArg(const benchmark::State& state) {
  return state.range(0) == 0 ? Durability::kDurable : Durability::kFast;
}

// Local commits, one Put each.
void BM_CommitOneMutation(benchmark::State& state) {
  BenchDir dir;
  ReplicaOptions options;
  options.durability = DurabilityArg(state);
  auto r = OpenOrAbort(dir.path() + "/r", options);
  Document d = r->document("bench");
  uint64_t i = 0;
  for (auto _ : state) {
    absl::Status s = d.Put(absl::StrCat("/k", i % 64), absl::StrCat(i));
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(options.durability == Durability::kDurable ? "kDurable, commits/s" : "kFast, commits/s");
}
BENCHMARK(BM_CommitOneMutation)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

// A set of state.range(0) integer members 0..n-1 at /s, written in one
// commit (kFast: disk does not dominate).
std::unique_ptr<Replica> OpenWithSet(const BenchDir& dir, int64_t members) {
  ReplicaOptions options;
  options.durability = Durability::kFast;
  auto r = OpenOrAbort(dir.path() + "/r", options);
  std::string json = "[";
  for (int64_t i = 0; i < members; ++i) absl::StrAppend(&json, i == 0 ? "" : ",", i);
  json += "]";
  if (absl::Status s = r->document("bench").Put("/s", json); !s.ok()) {
    std::fprintf(stderr, "Put: %s\n", s.ToString().c_str());
    std::abort();
  }
  return r;
}

// One SetAdd of a new member per commit into a set of state.range(0)
// members: its cost must follow log(members), not members.
void BM_SetAddPerCommit(benchmark::State& state) {
  BenchDir dir;
  auto r = OpenWithSet(dir, state.range(0));
  Document d = r->document("bench");
  int64_t next = state.range(0);
  for (auto _ : state) {
    if (absl::Status s = d.SetAdd("/s", absl::StrCat(next++)); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetLabel("kFast, one member per commit");
}
BENCHMARK(BM_SetAddPerCommit)->Arg(1000)->Arg(300000)->Iterations(200)->UseRealTime()->Unit(benchmark::kMicrosecond);

// One SetRemove of a present member per commit from a set of
// state.range(0) members.
void BM_SetRemovePerCommit(benchmark::State& state) {
  BenchDir dir;
  auto r = OpenWithSet(dir, state.range(0));
  Document d = r->document("bench");
  int64_t next = 0;
  for (auto _ : state) {
    if (absl::Status s = d.SetRemove("/s", absl::StrCat(next++)); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetLabel("kFast, one member per commit");
}
BENCHMARK(BM_SetRemovePerCommit)->Arg(1000)->Arg(300000)->Iterations(200)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Local commits of 1,000 Puts each; items are mutations.
void BM_CommitThousandMutations(benchmark::State& state) {
  BenchDir dir;
  ReplicaOptions options;
  options.durability = DurabilityArg(state);
  auto r = OpenOrAbort(dir.path() + "/r", options);
  Document d = r->document("bench");
  constexpr int kMutations = 1000;
  uint64_t round = 0;
  for (auto _ : state) {
    Transaction t = d.Begin();
    for (int k = 0; k < kMutations; ++k) {
      if (absl::Status s = t.Put(absl::StrCat("/k", k), absl::StrCat(round)); !s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
    }
    absl::StatusOr<CommitInfo> c = t.Commit();
    if (!c.ok()) {
      state.SkipWithError(c.status().ToString().c_str());
      break;
    }
    ++round;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kMutations);
  state.counters["commits/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(options.durability == Durability::kDurable ? "kDurable, mutations/s"
                                                            : "kFast, mutations/s");
}
BENCHMARK(BM_CommitThousandMutations)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// Pre-sealed single-write batches of another author, consecutive seqs.
class RemoteAuthor {
 public:
  RemoteAuthor() : key_(transport::SigningKey::Generate().value()) {}
  const transport::SigningKey& key() const { return key_; }

  std::vector<std::string> Seal(size_t n) {
    std::vector<std::string> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      crdt::TransactionBuilder t(&state_, key_.public_key(), next_dot_, hlc_++);
      (void)t.Put(crdt::Path::Parse(absl::StrCat("/k", next_dot_ % 64)).value(),
                  crdt::Tree::Scalar(crdt::Value::Int(static_cast<int64_t>(next_dot_))));
      crdt::Delta delta = t.Finish().value();
      transport::BatchHeader h;
      h.document = "bench";
      h.author = key_.public_key();
      h.seq_first = next_dot_;
      h.seq_last = next_dot_ + t.dots_used() - 1;
      h.hlc = h.seq_first + crdt::HlcFromMillis(1'600'000'000'000);
      next_dot_ += t.dots_used();
      out.push_back(transport::SealBatch(h, crdt::EncodeCompact(delta), key_).value());
    }
    return out;
  }

 private:
  transport::SigningKey key_;
  crdt::MemoryStore state_;
  uint64_t next_dot_ = 1;
  uint64_t hlc_ = crdt::HlcFromMillis(1'600'000'000'000);
};

// ApplyBatches of one pre-sealed remote batch per iteration: size checks,
// signature verification, decode, join, log append, one commit.
void BM_ApplyRemoteBatch(benchmark::State& state) {
  BenchDir dir;
  ReplicaOptions options;
  options.durability = DurabilityArg(state);
  auto r = OpenOrAbort(dir.path() + "/r", options);
  RemoteAuthor author;
  if (!r->Trust(author.key().public_key().Hex()).ok()) std::abort();
  constexpr size_t kChunk = 2000;
  std::vector<std::string> batches = author.Seal(kChunk);
  size_t next = 0;
  uint64_t bytes = 0;
  for (auto _ : state) {
    if (next == batches.size()) {
      state.PauseTiming();
      batches = author.Seal(kChunk);
      next = 0;
      state.ResumeTiming();
    }
    bytes += batches[next].size();
    ApplyReport rep = r->ApplyBatches({batches[next++]});
    if (rep.applied != 1) {
      state.SkipWithError(rep.reasons.empty() ? "not applied" : rep.reasons[0].c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetLabel(options.durability == Durability::kDurable ? "kDurable, batches/s" : "kFast, batches/s");
}
BENCHMARK(BM_ApplyRemoteBatch)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Seals one batch of `author` putting `rows` distinct keys under `prefix`,
// its seqs from `*next_dot` on (advanced past them).
std::string SealRows(const transport::SigningKey& author, crdt::MemoryStore* state,
                     uint64_t* next_dot, size_t rows, const std::string& prefix) {
  crdt::TransactionBuilder t(state, author.public_key(), *next_dot,
                             crdt::HlcFromMillis(1'600'000'000'000) + *next_dot);
  for (size_t i = 0; i < rows; ++i) {
    (void)t.Put(crdt::Path::Parse(absl::StrCat(prefix, i)).value(),
                crdt::Tree::Scalar(crdt::Value::Int(static_cast<int64_t>(i))));
  }
  crdt::Delta delta = t.Finish().value();
  transport::BatchHeader h;
  h.document = "bench";
  h.author = author.public_key();
  h.seq_first = *next_dot;
  h.seq_last = *next_dot + t.dots_used() - 1;
  h.hlc = crdt::HlcFromMillis(1'600'000'000'000) + *next_dot;
  *next_dot += t.dots_used();
  return transport::SealBatch(h, crdt::EncodeCompact(delta), author).value();
}

// Rule 0's rebuild: a document of N rows by one author, in batches of
// 10,000, then that author's equivocation (two batches for its next seq):
// the apply that completes the proof quarantines the author from that seq
// and rebuilds the document from its log (clear, join every batch). Time is
// that apply alone; items are the rows rebuilt.
void BM_RebuildAfterProof(benchmark::State& state) {
  const size_t rows = static_cast<size_t>(state.range(0));
  constexpr size_t kRowsPerBatch = 10000;
  // Outside the loop: the previous replica is removed while timing pauses.
  std::unique_ptr<Replica> r;
  std::unique_ptr<BenchDir> dir;
  for (auto _ : state) {
    state.PauseTiming();
    r.reset();
    dir = std::make_unique<BenchDir>();
    ReplicaOptions options;
    options.durability = Durability::kFast;
    r = OpenOrAbort(dir->path() + "/r", options);
    const transport::SigningKey author = transport::SigningKey::Generate().value();
    if (!r->Trust(author.public_key().Hex()).ok()) std::abort();
    crdt::MemoryStore authored;
    uint64_t next_dot = 1;
    for (size_t done = 0; done < rows; done += kRowsPerBatch) {
      const std::string b = SealRows(author, &authored, &next_dot,
                                     std::min(kRowsPerBatch, rows - done), absl::StrCat("/r", done, "_"));
      if (r->ApplyBatches({b}).applied != 1) std::abort();
    }
    const uint64_t fork = next_dot;
    crdt::MemoryStore left_state = authored;
    const std::string left = SealRows(author, &left_state, &next_dot, 1, "/fork_left");
    next_dot = fork;
    const std::string right = SealRows(author, &authored, &next_dot, 1, "/fork_right");
    if (r->ApplyBatches({left}).applied != 1) std::abort();
    state.ResumeTiming();
    ApplyReport rep = r->ApplyBatches({right});
    state.PauseTiming();
    if (rep.equivocations != 1) {
      state.SkipWithError("the second batch did not complete a proof");
      break;
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
  state.SetLabel("rows rebuilt/s");
}
BENCHMARK(BM_RebuildAfterProof)->Arg(10000)->Arg(100000)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

// Bytes of the signed batch one counter increment on one key makes.
void BM_BatchBytesOneKeyCounter(benchmark::State& state) {
  BenchDir dir;
  ReplicaOptions options;
  options.durability = Durability::kFast;
  auto r = OpenOrAbort(dir.path() + "/r", options);
  Document d = r->document("bench");
  uint64_t bytes = 0;
  uint64_t commits = 0;
  for (auto _ : state) {
    Transaction t = d.Begin();
    (void)t.CounterAdd("/n", 1);
    absl::StatusOr<CommitInfo> c = t.Commit();
    if (!c.ok()) {
      state.SkipWithError(c.status().ToString().c_str());
      break;
    }
    bytes += c->batch_bytes;
    ++commits;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["bytes_per_batch"] =
      benchmark::Counter(commits == 0 ? 0.0 : static_cast<double>(bytes) / static_cast<double>(commits));
  state.SetLabel("kFast, one CounterAdd per commit");
}
BENCHMARK(BM_BatchBytesOneKeyCounter)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Raw liblmdb for comparison: one put per commit, default flags (synced).
void BM_LmdbRawSyncedPut(benchmark::State& state) {
  BenchDir dir;
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  int rc = mdb_env_create(&env);
  if (rc == 0) rc = mdb_env_set_mapsize(env, size_t{1} << 30);
  if (rc == 0) rc = mdb_env_open(env, dir.path().c_str(), 0, 0644);
  if (rc == 0) {
    MDB_txn* txn = nullptr;
    rc = mdb_txn_begin(env, nullptr, 0, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
    if (rc == 0) rc = mdb_txn_commit(txn);
  }
  if (rc != 0) {
    state.SkipWithError(mdb_strerror(rc));
    if (env != nullptr) mdb_env_close(env);
    return;
  }
  uint64_t i = 0;
  char value[16] = "value-of-16-b..";
  for (auto _ : state) {
    MDB_txn* txn = nullptr;
    rc = mdb_txn_begin(env, nullptr, 0, &txn);
    const uint64_t key_n = i++ % 64;
    MDB_val key{sizeof(key_n), const_cast<uint64_t*>(&key_n)};
    MDB_val val{sizeof(value), value};
    if (rc == 0) rc = mdb_put(txn, dbi, &key, &val, 0);
    if (rc == 0) {
      rc = mdb_txn_commit(txn);
    } else if (txn != nullptr) {
      mdb_txn_abort(txn);
    }
    if (rc != 0) {
      state.SkipWithError(mdb_strerror(rc));
      break;
    }
  }
  mdb_env_close(env);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("liblmdb, default flags, commits/s");
}
BENCHMARK(BM_LmdbRawSyncedPut)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace edgesync

BENCHMARK_MAIN();
