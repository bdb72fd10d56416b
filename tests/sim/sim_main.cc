// The `sim` command: runs simulator seeds and prints, per seed, its
// configuration, writes, faults, rounds and bytes to converge, and verdict.
//
//   sim --seed 123                  one seed
//   sim --seed 123 --trace          ... with every event
//   sim --seeds 1000 --first 5000   seeds 5000..5999
//   sim --known-bug 2               the reproducer of (fixed) bug 2
//   sim --long [--writers 1|2] [--sync-every N] [--writes N] [--keys N] [--txn N]
//
// Exits 1 if any seed (or the reproducer, or the long run) failed, 2 on a
// usage error.

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tests/sim/known_bugs.h"
#include "tests/sim/long_disconnection.h"
#include "tests/sim/simulation.h"

namespace {

int Usage() {
  std::cerr
      << "usage: sim [--seed N | --seeds COUNT [--first N]] [--trace | --trace-messages]\n"
         "           [--keep] [--quiet]\n"
         "       sim --known-bug K\n"
         "       sim --long [--seed N] [--writers 1|2] [--sync-every N] [--writes N] [--keys N]\n"
         "                  [--txn N] [--max-message-bytes N]\n";
  return 2;
}

int RunKnownBug(int bug) {
  const absl::Status s = edgesync::sim::ReproduceKnownBug(bug);
  std::cout << "known bug " << bug << ": " << (s.ok() ? "not reproduced" : s.ToString()) << "\n";
  return s.ok() ? 0 : 1;
}

int RunLong(const edgesync::sim::LongDisconnectionOptions& options) {
  const edgesync::sim::LongDisconnectionResult r = edgesync::sim::RunLongDisconnection(options);
  std::cout << r.report;
  for (const std::string& f : r.failures) std::cout << "  FAILURE: " << f << "\n";
  std::cout << (r.ok ? "PASS" : "FAIL") << "\n";
  return r.ok ? 0 : 1;
}

int RunSeeds(uint64_t first, uint64_t count, const edgesync::sim::SimOptions& options, bool quiet) {
  std::vector<uint64_t> failed;
  std::vector<int> rounds;
  std::vector<uint64_t> bytes;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    if (!quiet) std::cout << edgesync::sim::DescribeSeed(seed) << std::flush;
    const edgesync::sim::SimResult r = edgesync::sim::RunSeed(seed, options);
    if (!quiet) std::cout << r.summary;
    if (quiet && !r.ok) std::cout << r.config << r.summary;
    for (const std::string& f : r.failures) std::cout << "  FAILURE: " << f << "\n";
    std::cout.flush();
    if (!r.ok) failed.push_back(seed);
    rounds.push_back(r.rounds_to_converge);
    bytes.push_back(r.bytes_to_converge);
  }
  if (count > 1) {
    std::sort(rounds.begin(), rounds.end());
    std::sort(bytes.begin(), bytes.end());
    std::cout << count - failed.size() << "/" << count << " seeds passed; rounds to converge p50 "
              << rounds[rounds.size() / 2] << " max " << rounds.back() << "; bytes p50 "
              << bytes[bytes.size() / 2] << " p99 " << bytes[bytes.size() * 99 / 100] << " max "
              << bytes.back() << "\n";
    if (!failed.empty()) {
      std::cout << "failed seeds:";
      for (uint64_t s : failed) std::cout << " " << s;
      std::cout << "\n";
    }
  }
  return failed.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t first = 1;
  uint64_t count = 1;
  bool quiet = false;
  bool long_run = false;
  int known_bug = 0;
  bool trace = false;
  edgesync::sim::SimOptions options;
  edgesync::sim::LongDisconnectionOptions long_options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> uint64_t {
      if (i + 1 >= argc) std::exit(Usage());
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (arg == "--seed") {
      first = value();
      count = 1;
      long_options.seed = first;
    } else if (arg == "--seeds") {
      count = value();
    } else if (arg == "--first") {
      first = value();
    } else if (arg == "--trace") {
      trace = true;
    } else if (arg == "--trace-messages") {
      trace = true;
      options.trace_messages = true;
    } else if (arg == "--keep") {
      options.keep_dirs = true;
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--known-bug") {
      known_bug = static_cast<int>(value());
    } else if (arg == "--long") {
      long_run = true;
    } else if (arg == "--writers") {
      long_options.writers = static_cast<int>(value());
    } else if (arg == "--sync-every") {
      long_options.sync_every_txns = std::max<uint64_t>(1, value());
    } else if (arg == "--writes") {
      long_options.writes = value();
    } else if (arg == "--keys") {
      long_options.keys = std::max<uint64_t>(1, value());
    } else if (arg == "--txn") {
      long_options.txn_mutations_max = value();
    } else if (arg == "--max-message-bytes") {
      long_options.max_message_bytes = value();
    } else {
      return Usage();
    }
  }
  if (known_bug != 0) return RunKnownBug(known_bug);
  if (long_run) return RunLong(long_options);
  if (count == 0) return Usage();
  if (trace) options.trace_log = &std::cout;
  return RunSeeds(first, count, options, quiet);
}
