#include "tests/sim/long_disconnection.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "edgesync/document.h"
#include "tests/sim/harness.h"
#include "transport/signing_key.h"

namespace edgesync::sim {

namespace {

namespace tsim = transport::sim;
using Json = nlohmann::json;

constexpr int kA = 0;
constexpr int kB = 1;
constexpr int kR = 2;
constexpr char kDocument[] = "big";
// The bound on what R receives: per live key changed, plus a fixed part
// (hellos, document lists, batch envelopes).
constexpr uint64_t kBytesPerChangedKeyMax = 64;
constexpr uint64_t kFixedBytesMax = 16u << 10;

// The logs one replica keeps of A's and B's writes.
struct LogTotals {
  LogSize of[2];
};

class LongDisconnection {
 public:
  explicit LongDisconnection(const LongDisconnectionOptions& options)
      : options_(options), rng_(options.seed) {}

  LongDisconnectionResult Run();

 private:
  Replica& replica(int i) { return *replicas_.replicas[static_cast<size_t>(i)]; }
  void Fail(const std::string& what) { result_.failures.push_back(what); }
  PairSync Sync(int a, int b);
  // One transaction of `writer`: `count` puts of keys first_key.. (fill),
  // or random puts and deletes.
  void Commit(int writer, uint64_t count, bool fill, uint64_t first_key);
  // The logs replica `holder` keeps of A's and B's writes.
  LogTotals ReadLogTotals(int holder);
  // R's state is the sequential history's (or, with concurrent writers,
  // holds only values written to each key). Returns the number of values.
  uint64_t CheckState(const Json& state);

  const LongDisconnectionOptions options_;
  tsim::Random rng_;
  ScratchDir scratch_;
  tsim::EventQueue time_;  // only its clock is used
  TrustedReplicas replicas_;
  uint64_t transactions_ = 0;
  std::map<uint64_t, std::string> live_;  // key -> value (JSON), the sequential history
  std::map<uint64_t, std::set<std::string>> written_;  // key -> every value put there
  LongDisconnectionResult result_;
};

PairSync LongDisconnection::Sync(int a, int b) {
  PairSync p = SyncPair(replica(a), replica(b), options_.max_message_bytes);
  if (!p.status.ok()) Fail(absl::StrCat("sync ", a, "-", b, ": ", p.status.ToString()));
  if (!p.synced) Fail(absl::StrCat("sync ", a, "-", b, ": not synced"));
  return p;
}

void LongDisconnection::Commit(int writer, uint64_t count, bool fill, uint64_t first_key) {
  time_.AdvanceTo(time_.now_us() + tsim::kMicrosPerSecond);
  const uint64_t txn_no = ++transactions_;
  Transaction txn = replica(writer).document(kDocument).Begin();
  for (uint64_t m = 0; m < count; ++m) {
    const uint64_t key = fill ? first_key + m : rng_.Uniform(options_.keys);
    const std::string path = absl::StrCat("/k", key);
    absl::Status s;
    if (!fill && rng_.Chance(0.25)) {
      s = txn.Delete(path);
      live_.erase(key);
    } else {
      const std::string value = rng_.Chance(0.5) ? absl::StrCat("\"w", txn_no, ".", m, "\"")
                                                 : absl::StrCat(txn_no * 1000 + m);
      s = txn.Put(path, value);
      live_[key] = value;
      written_[key].insert(Json::parse(value).dump());
    }
    if (!s.ok()) Fail(absl::StrCat("buffering: ", s.ToString()));
  }
  absl::StatusOr<CommitInfo> info = txn.Commit();
  if (!info.ok()) Fail(absl::StrCat("commit: ", info.status().ToString()));
}

LogTotals LongDisconnection::ReadLogTotals(int holder) {
  LogTotals t;
  for (int w = kA; w <= kB; ++w) {
    absl::StatusOr<LogSize> log =
        StoredLog(replica(holder), kDocument, replicas_.keys_hex[static_cast<size_t>(w)]);
    if (!log.ok()) {
      Fail(absl::StrCat("reading the logs of ", holder, ": ", log.status().ToString()));
      continue;
    }
    t.of[w] = *log;
  }
  return t;
}

uint64_t LongDisconnection::CheckState(const Json& state) {
  const bool sequential = options_.writers == 1 || options_.sync_every_txns == 1;
  uint64_t values = 0;
  for (auto it = state.begin(); it != state.end(); ++it) {
    ++values;
    const uint64_t key = std::strtoull(it.key().c_str() + 1, nullptr, 10);
    if (!sequential) {
      if (!written_[key].contains(it.value().dump())) {
        Fail(absl::StrCat("/", it.key(), " reads ", it.value().dump(), ", never written there"));
      }
      continue;
    }
    auto want = live_.find(key);
    if (want == live_.end()) {
      Fail(absl::StrCat("/", it.key(), " came back: ", it.value().dump(), " (deleted)"));
    } else if (Json::parse(want->second) != it.value()) {
      Fail(absl::StrCat("/", it.key(), " reads ", it.value().dump(), ", last written ",
                        want->second));
    }
  }
  if (sequential && values != live_.size()) {
    Fail(absl::StrCat("R holds ", values, " keys, the history ", live_.size()));
  }
  return values;
}

LongDisconnectionResult LongDisconnection::Run() {
  if (!transport::InitSodium().ok()) std::abort();
  absl::StatusOr<TrustedReplicas> opened = OpenTrustedReplicas(scratch_.path(), 3, rng_, &time_);
  if (!opened.ok()) {
    Fail(absl::StrCat("opening the replicas: ", opened.status().ToString()));
    return result_;
  }
  replicas_ = *std::move(opened);

  // What one write costs on its own (a batch of one put).
  absl::StatusOr<CommitInfo> probe = [&]() -> absl::StatusOr<CommitInfo> {
    Transaction t = replica(kA).document("probe").Begin();
    if (absl::Status s = t.Put("/k1234", "\"w12.345\""); !s.ok()) return s;
    return t.Commit();
  }();
  if (!probe.ok()) Fail(absl::StrCat("probe write: ", probe.status().ToString()));
  const uint64_t bytes_per_write = probe.ok() ? probe->batch_bytes : 0;

  // Everyone holds the first version of every key.
  for (uint64_t first = 0; first < options_.keys; first += 1000) {
    Commit(kA, std::min<uint64_t>(1000, options_.keys - first), true, first);
  }
  Sync(kA, kB);
  Sync(kA, kR);
  Sync(kB, kR);
  const std::map<uint64_t, std::string> r_had = live_;
  absl::StatusOr<std::string> r_digest_before = replica(kR).document(kDocument).Digest();

  // R is away: the others write, overwrite and delete.
  const uint64_t transactions_before = transactions_;
  const uint64_t authored_before =
      replica(kA).stats().bytes_authored + replica(kB).stats().bytes_authored;
  uint64_t txns = 0;
  for (uint64_t written = 0; written < options_.writes; ++txns) {
    const int writer = options_.writers == 2 && txns % 2 == 1 ? kB : kA;
    const uint64_t size =
        rng_.Chance(0.5) ? 1 : rng_.Range(2, std::max<uint64_t>(2, options_.txn_mutations_max));
    const uint64_t count = std::min(size, options_.writes - written);
    Commit(writer, count, false, 0);
    written += count;
    if (options_.writers == 2 && (txns + 1) % options_.sync_every_txns == 0) Sync(kA, kB);
  }
  Sync(kA, kB);
  result_.transactions = transactions_ - transactions_before;
  const uint64_t authored =
      replica(kA).stats().bytes_authored + replica(kB).stats().bytes_authored - authored_before;
  // Months later: every clock has moved on.
  time_.AdvanceTo(time_.now_us() + 90 * tsim::kMicrosPerDay);
  const LogTotals logs_before = ReadLogTotals(kR);

  // R rejoins: one session with A.
  const PairSync back = Sync(kR, kA);
  result_.bytes_received = back.bytes_to_a;
  result_.messages_received = back.messages_to_a;
  result_.rounds = back.rounds_a;
  result_.batches_received = back.batches_applied_a;
  result_.live_keys = live_.size();
  for (const auto& [key, value] : live_) {
    auto had = r_had.find(key);
    if (had == r_had.end() || had->second != value) ++result_.live_keys_changed;
  }
  absl::StatusOr<uint64_t> rows = StoredRows(replica(kR), kDocument);
  if (!rows.ok()) Fail(absl::StrCat("counting rows: ", rows.status().ToString()));
  result_.rows = rows.ok() ? *rows : 0;

  // One session, one round, the same state everywhere.
  absl::StatusOr<std::string> digest_a = replica(kA).document(kDocument).Digest();
  absl::StatusOr<std::string> digest_b = replica(kB).document(kDocument).Digest();
  absl::StatusOr<std::string> digest_r = replica(kR).document(kDocument).Digest();
  if (!digest_a.ok() || !digest_b.ok() || !digest_r.ok() || !r_digest_before.ok()) {
    Fail("reading digests failed");
  } else {
    if (*digest_r != *digest_a || *digest_a != *digest_b) Fail("digests differ after R's session");
    if (*digest_r == *r_digest_before) Fail("R did not change");
  }
  if (back.rounds_a != 1 || back.rounds_b != 1) {
    Fail(absl::StrCat("R converged in ", back.rounds_a, "/", back.rounds_b, " rounds, not one"));
  }
  // Nothing deleted or overwritten came back; no tombstones.
  absl::StatusOr<std::string> state = replica(kR).document(kDocument).Get();
  absl::StatusOr<std::string> conflicts = replica(kR).document(kDocument).Conflicts();
  uint64_t values = 0;
  uint64_t losers = 0;
  if (!state.ok() || !conflicts.ok()) {
    Fail(
        absl::StrCat("reading R: ", state.status().ToString(), " ", conflicts.status().ToString()));
  } else {
    values = CheckState(Json::parse(*state));
    for (const Json& c : Json::parse(*conflicts)) {
      losers += c.value("conflicts", Json::array()).size();
    }
  }
  if (result_.rows != values + losers) {
    Fail(absl::StrCat("R's store holds ", result_.rows, " rows for ", values, " live values and ",
                      losers, " conflicts (tombstones?)"));
  }

  // Bytes follow live keys changed, not writes. What R now holds of each
  // writer's seqs is what it received: A's own seqs as A's compacted log,
  // B's as A stored them (relayed).
  const LogTotals logs_after = ReadLogTotals(kR);
  const LogTotals b_logs = ReadLogTotals(kB);
  const uint64_t own_bytes = logs_after.of[kA].bytes - logs_before.of[kA].bytes;
  const uint64_t relayed_bytes = logs_after.of[kB].bytes - logs_before.of[kB].bytes;
  const uint64_t relayed_batches = logs_after.of[kB].batches - logs_before.of[kB].batches;
  const uint64_t bound = result_.live_keys_changed * kBytesPerChangedKeyMax + kFixedBytesMax;
  if (own_bytes > bound) {
    Fail(absl::StrCat("R received ", own_bytes, " bytes of A's own seqs for ",
                      result_.live_keys_changed, " live keys changed (bound ", bound, ")"));
  }
  if (result_.bytes_received > bound) {
    const std::string what = absl::StrCat(
        "R received ", result_.bytes_received, " bytes for ", result_.live_keys_changed,
        " live keys changed (bound ", bound, "): ", relayed_bytes, " of them in ", relayed_batches,
        " batches of B relayed by A, as B's own log holds them (", b_logs.of[kB].batches,
        " batches)");
    Fail(what);
  }
  if (result_.bytes_received * 20 > options_.writes * bytes_per_write) {
    Fail(absl::StrCat("R received ", result_.bytes_received, " bytes, not far less than ",
                      options_.writes, " writes x ", bytes_per_write, " bytes"));
  }

  const auto per = [](uint64_t a, uint64_t b) {
    return static_cast<double>(a) / static_cast<double>(std::max<uint64_t>(1, b));
  };
  result_.report = absl::StrFormat(
      "long disconnection (seed %d, %d writer(s), sync every %d txns): %d writes in %d txns on %d "
      "keys "
      "(%d B authored; one write alone: %d B) -> %d live keys, %d of them changed\n"
      "  R got %d bytes in %d messages, %d batches, %d round(s): %.1f B per live key changed "
      "(bound %d B per key + %d B = %d B), %.4f of writes x B/write; of it A's own seqs %d B, B's "
      "relayed by A %d B in %d batches\n"
      "  R's store: %d rows for %d values + %d conflicts; B's own log: %d B in %d batches\n",
      options_.seed, options_.writers, options_.sync_every_txns, options_.writes,
      result_.transactions, options_.keys, authored, bytes_per_write, result_.live_keys,
      result_.live_keys_changed, result_.bytes_received, result_.messages_received,
      result_.batches_received, result_.rounds,
      per(result_.bytes_received, result_.live_keys_changed), kBytesPerChangedKeyMax,
      kFixedBytesMax, bound, per(result_.bytes_received, options_.writes * bytes_per_write),
      own_bytes, relayed_bytes, relayed_batches, result_.rows, values, losers, b_logs.of[kB].bytes,
      b_logs.of[kB].batches);
  result_.ok = result_.failures.empty();
  return result_;
}

}  // namespace

LongDisconnectionResult RunLongDisconnection(const LongDisconnectionOptions& options) {
  LongDisconnection scenario(options);
  return scenario.Run();
}

}  // namespace edgesync::sim
