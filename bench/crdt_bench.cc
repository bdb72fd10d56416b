// Benchmarks of the CRDT core:
//   BM_JoinSingleKeyWrite     deltas of one-key writes by other authors joined
//                             into a document holding a map of 100,000 keys
//                             (items/s = deltas joined per second)
//   BM_{Encode,Decode}{Compact,Canonical}
//                             a delta of 100,000 rows (bytes/s counts the
//                             encoded size, items/s the rows)
//   BM_OverwrittenKeysBytesPerEntry
//                             5,000 one-key overwrites of a 50,000-key map
//                             joined into one delta: encoded bytes per entry
//
//   meson compile -C build && build/bench/crdt_bench

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "crdt/canonical_codec.h"
#include "crdt/check.h"
#include "crdt/compact_codec.h"
#include "crdt/hlc.h"
#include "crdt/join.h"
#include "crdt/memory_store.h"
#include "crdt/size_limits.h"
#include "crdt/transaction_builder.h"
#include "crdt/varint.h"

namespace edgesync::crdt {
namespace {

constexpr size_t kMapKeys = 100000;
constexpr size_t kJoinWrites = 50000;  // distinct keys written before the state is reset
constexpr size_t kOtherAuthors = 16;

AuthorKey Author(uint8_t seed) {
  AuthorKey a;
  for (size_t i = 0; i < kAuthorKeyBytes; ++i) a.bytes[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return a;
}

// absl::StrCat, not operator+: GCC 12 at -O3 warns falsely (-Wrestrict) on
// std::string concatenation.
Path Key(size_t i) { return Path().Child(absl::StrCat("k", i)).value(); }

// One transaction of `author` writing a map of `keys` keys at the root, the
// values alternating small ints and short strings.
Delta WriteMap(MemoryStore* state, const AuthorKey& author, size_t keys) {
  Tree map;
  map.kind = Tree::Kind::kMap;
  for (size_t i = 0; i < keys; ++i) {
    Value v = i % 2 == 0 ? Value::Int(static_cast<int64_t>(i))
                         : Value::String(absl::StrCat("v", i)).value();
    map.map.emplace_back(absl::StrCat("k", i), Tree::Scalar(std::move(v)));
  }
  std::sort(map.map.begin(), map.map.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });
  TransactionBuilder txn(state, author, 1, HlcFromMillis(1000));
  ES_CHECK(txn.Put(Path(), map).ok());
  absl::StatusOr<Delta> d = txn.Finish();
  ES_CHECK(d.ok());
  return *std::move(d);
}

struct JoinFixture {
  Delta base;                 // the 100,000-key map
  std::vector<Delta> writes;  // one-key writes to distinct keys, by other authors
};

const JoinFixture& GetJoinFixture() {
  static const JoinFixture* fixture = [] {
    auto* f = new JoinFixture;
    MemoryStore base_state;
    f->base = WriteMap(&base_state, Author(0), kMapKeys);
    std::vector<size_t> keys(kMapKeys);
    std::iota(keys.begin(), keys.end(), 0);
    std::mt19937_64 rng(1);
    std::shuffle(keys.begin(), keys.end(), rng);
    std::vector<uint64_t> next_dot(kOtherAuthors, 1);
    f->writes.reserve(kJoinWrites);
    for (size_t w = 0; w < kJoinWrites; ++w) {
      // The writer has seen the base: its state holds the key's base row.
      const Path path = Key(keys[w]);
      MemoryStore scratch;
      std::vector<Row> rows;
      ES_CHECK(base_state
                   .ForEachRowAt(path,
                                 [&](const RowKey& k, const RowValue& v) {
                                   rows.push_back(Row{k, v});
                                   return true;
                                 })
                   .ok());
      for (const Row& r : rows) ES_CHECK(scratch.PutRow(r.key, r.value).ok());
      const size_t a = w % kOtherAuthors;
      TransactionBuilder txn(&scratch, Author(static_cast<uint8_t>(1 + a)), next_dot[a],
                             HlcFromMillis(2000 + w));
      ES_CHECK(txn.Put(path, Tree::Scalar(Value::Int(static_cast<int64_t>(w)))).ok());
      absl::StatusOr<Delta> d = txn.Finish();
      ES_CHECK(d.ok());
      next_dot[a] += txn.dots_used();
      f->writes.push_back(*std::move(d));
    }
    return f;
  }();
  return *fixture;
}

void BM_JoinSingleKeyWrite(benchmark::State& state) {
  const JoinFixture& f = GetJoinFixture();
  MemoryStore store = MemoryStore::FromDelta(f.base);
  size_t next = 0;
  for (auto _ : state) {
    if (next == f.writes.size()) {
      state.PauseTiming();
      store = MemoryStore::FromDelta(f.base);
      next = 0;
      state.ResumeTiming();
    }
    absl::StatusOr<JoinResult> r = Join(&store, f.writes[next++]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_JoinSingleKeyWrite);

// The codec benchmarks use the base map: 100,000 register rows.
const Delta& CodecDelta() { return GetJoinFixture().base; }

void SetThroughput(benchmark::State& state, size_t encoded_bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * encoded_bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * CodecDelta().rows.size()));
}

void BM_EncodeCompact(benchmark::State& state) {
  const Delta& d = CodecDelta();
  size_t size = 0;
  for (auto _ : state) {
    std::string bytes = EncodeCompact(d);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes);
  }
  SetThroughput(state, size);
}
BENCHMARK(BM_EncodeCompact)->Unit(benchmark::kMillisecond);

void BM_DecodeCompact(benchmark::State& state) {
  const std::string bytes = EncodeCompact(CodecDelta());
  for (auto _ : state) {
    absl::StatusOr<Delta> d = DecodeCompact(bytes, kDeltaBytesMax, kRowVariantsMax);
    ES_CHECK(d.ok());
    benchmark::DoNotOptimize(d);
  }
  SetThroughput(state, bytes.size());
}
BENCHMARK(BM_DecodeCompact)->Unit(benchmark::kMillisecond);

void BM_EncodeCanonical(benchmark::State& state) {
  const Delta& d = CodecDelta();
  size_t size = 0;
  for (auto _ : state) {
    std::string bytes = EncodeCanonical(d);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes);
  }
  SetThroughput(state, size);
}
BENCHMARK(BM_EncodeCanonical)->Unit(benchmark::kMillisecond);

void BM_DecodeCanonical(benchmark::State& state) {
  const std::string bytes = EncodeCanonical(CodecDelta());
  for (auto _ : state) {
    absl::StatusOr<Delta> d = DecodeCanonical(bytes, kDeltaBytesMax, kRowVariantsMax);
    ES_CHECK(d.ok());
    benchmark::DoNotOptimize(d);
  }
  SetThroughput(state, bytes.size());
}
BENCHMARK(BM_DecodeCanonical)->Unit(benchmark::kMillisecond);

// Keys "k0".."k49999" written by author A in one transaction, then 5,000
// writes of small ints by A, one transaction each, to random distinct keys,
// joined into one delta.
const Delta& OverwriteDelta() {
  static const Delta* delta = [] {
    constexpr size_t kKeys = 50000;
    constexpr size_t kWrites = 5000;
    const AuthorKey a = Author(0);
    MemoryStore state;
    WriteMap(&state, a, kKeys);
    uint64_t next_dot = kKeys + 1;
    std::vector<size_t> keys(kKeys);
    std::iota(keys.begin(), keys.end(), 0);
    std::mt19937_64 rng(2);
    std::shuffle(keys.begin(), keys.end(), rng);
    MemoryStore joined;
    for (size_t w = 0; w < kWrites; ++w) {
      TransactionBuilder txn(&state, a, next_dot, HlcFromMillis(2000 + w));
      ES_CHECK(txn.Put(Key(keys[w]), Tree::Scalar(Value::Int(static_cast<int64_t>(w % 100))))
                   .ok());
      absl::StatusOr<Delta> d = txn.Finish();
      ES_CHECK(d.ok());
      next_dot += txn.dots_used();
      ES_CHECK(Join(&joined, *d).ok());
    }
    auto* out = new Delta(joined.ToDelta());
    ES_CHECK(out->rows.size() == kWrites);
    return out;
  }();
  return *delta;
}

void BM_OverwrittenKeysBytesPerEntry(benchmark::State& state) {
  const Delta& d = OverwriteDelta();
  std::string compact;
  for (auto _ : state) {
    compact = EncodeCompact(d);
    benchmark::DoNotOptimize(compact);
  }
  const double entries = static_cast<double>(d.rows.size());
  state.counters["canonical_B_per_entry"] =
      benchmark::Counter(static_cast<double>(EncodeCanonical(d).size()) / entries);
  state.counters["compact_B_per_entry"] =
      benchmark::Counter(static_cast<double>(compact.size()) / entries);
  // The compact header declares the uncompressed body size when zstd is on.
  size_t raw = compact.size();
  if (compact.size() > 2 && compact[1] == 1) {
    ByteReader header(absl::string_view(compact).substr(2));
    absl::StatusOr<uint64_t> body = header.Varint("body size");
    ES_CHECK(body.ok());
    raw = 2 + static_cast<size_t>(*body);
  }
  state.counters["compact_unzstd_B_per_entry"] =
      benchmark::Counter(static_cast<double>(raw) / entries);
}
BENCHMARK(BM_OverwrittenKeysBytesPerEntry)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgesync::crdt

BENCHMARK_MAIN();
