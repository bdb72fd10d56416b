// Commit latency while large tier merges happen (issue 10, section 4): the
// latency of small commits must not follow the size of the tiers they make
// due. Uses only the public API, so the same file measures any version.
//
// - BM_CommitLatencyDuringTierMerge/<0 kDurable, 1 kFast>: the document's
//   own log holds two ~7 MiB batches (written with auto_compact off, so
//   they did not merge); the replica is reopened with auto_compact on and
//   makes one-key commits for 12 s; the first commit makes the merge of the
//   pair due (it takes a few seconds of CPU). Then the log is exported:
//   `log_batches` counts its batches (2 or fewer once the pair merged).
// - BM_CommitLatencyGrowingTiers: 12,000 commits of one new key each (a
//   512-byte value), kFast: tiers grow through every size up to ~4 MiB, so
//   merges of every size are made due along the way.
//
// Counters: the commits' latency median, p99 and maximum in microseconds,
// the commits made, and the compactions counted.
//
//   <build>/bench/tier_merge_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_dir.h"
#include "edgesync/replica.h"

namespace edgesync {
namespace {

constexpr auto kMergeWindow = std::chrono::seconds(12);

std::string RandomString(std::mt19937_64& rng, int bytes) {
  constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
  std::string v = "\"";
  for (int c = 0; c < bytes; ++c) v += kAlphabet[rng() % 64];
  v += "\"";
  return v;
}

// Times one commit of `put` into `us`.
template <typename Put>
void TimeCommit(Put put, std::vector<double>* us) {
  const auto start = std::chrono::steady_clock::now();
  if (!put().ok()) std::abort();
  us->push_back(
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
}

void Report(benchmark::State& state, std::vector<double> us, const Replica& r) {
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
  state.counters["max_us"] = us.back();
  state.counters["commits"] = static_cast<double>(us.size());
  state.counters["compactions"] = static_cast<double>(r.stats().compactions);
}

void BM_CommitLatencyDuringTierMerge(benchmark::State& state) {
  const Durability durability = state.range(0) == 0 ? Durability::kDurable : Durability::kFast;
  for (auto _ : state) {
    state.PauseTiming();
    BenchDir dir;
    ReplicaOptions options;
    options.durability = Durability::kFast;
    options.auto_compact = false;
    {
      auto r = OpenOrAbort(dir.path() + "/r", options);
      std::mt19937_64 rng(7);
      for (const char* prefix : {"/a", "/b"}) {
        Transaction t = r->document("bench").Begin();
        for (int k = 0; k < 9000; ++k) {
          if (!t.Put(absl::StrCat(prefix, k), RandomString(rng, 1024)).ok()) std::abort();
        }
        if (!t.Commit().ok()) std::abort();
      }
    }
    options.auto_compact = true;
    options.durability = durability;
    auto r = OpenOrAbort(dir.path() + "/r", options);
    Document d = r->document("bench");
    std::vector<double> us;
    const auto end = std::chrono::steady_clock::now() + kMergeWindow;
    for (uint64_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
      TimeCommit([&] { return d.Put("/k", absl::StrCat(i)); }, &us);
    }
    Report(state, us, *r);
    absl::StatusOr<BundleReport> log = r->ExportBundle(dir.path() + "/log.bundle");
    if (!log.ok()) std::abort();
    state.counters["log_batches"] = static_cast<double>(log->batches.applied);
    state.ResumeTiming();
  }
  state.SetLabel(durability == Durability::kDurable ? "kDurable, one-key commits"
                                                    : "kFast, one-key commits");
}
BENCHMARK(BM_CommitLatencyDuringTierMerge)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_CommitLatencyGrowingTiers(benchmark::State& state) {
  for (auto _ : state) {
    BenchDir dir;
    ReplicaOptions options;
    options.durability = Durability::kFast;
    auto r = OpenOrAbort(dir.path() + "/r", options);
    Document d = r->document("bench");
    std::mt19937_64 rng(11);
    std::vector<double> us;
    for (int i = 0; i < 12000; ++i) {
      const std::string value = RandomString(rng, 512);
      TimeCommit([&] { return d.Put(absl::StrCat("/k", i), value); }, &us);
    }
    Report(state, us, *r);
  }
  state.SetLabel("kFast, one new key per commit");
}
BENCHMARK(BM_CommitLatencyGrowingTiers)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgesync

BENCHMARK_MAIN();
