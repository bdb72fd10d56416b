// Property tests of the CRDT core over seeded random histories of several
// authors, one suite per type mix (register, counter, set, map, document):
//
//   - delta correctness: state ⊔ δ(state) == mutated state (checked at every
//     transaction by RandomHistory)
//   - join is commutative, associative and idempotent on reachable states
//   - any delivery order of the deltas, with duplicates, gives byte-identical
//     canonical state and equal incrementally maintained hashes
//   - canonical and compact encodings round-trip byte for byte
//   - compaction: S ⊔ compact(k..n) ⊔ R == S ⊔ δk ⊔ … ⊔ δn ⊔ R for any S
//     holding any subset of the deltas (R: every other delta), the same for a
//     sub-range cut from an earlier compaction, and a compacted delta holds
//     no value dead in its author's state.
//
// EDGESYNC_PROPERTY_CASES sets the number of cases per property and mix
// (default 1000); EDGESYNC_SEED runs one case.

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "crdt/canonical_codec.h"
#include "crdt/compact_codec.h"
#include "crdt/compaction.h"
#include "crdt/join.h"
#include "crdt/size_limits.h"
#include "tests/crdt/random_history.h"

namespace edgesync::crdt::testing {
namespace {

size_t CaseCount() {
  const char* env = std::getenv("EDGESYNC_PROPERTY_CASES");
  return env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : 1000;
}

// Seeds to run: EDGESYNC_SEED alone, or base..base+CaseCount()-1.
std::vector<uint64_t> Seeds(uint64_t base) {
  if (const char* env = std::getenv("EDGESYNC_SEED")) return {std::strtoull(env, nullptr, 10)};
  std::vector<uint64_t> seeds;
  for (uint64_t i = 0; i < CaseCount(); ++i) seeds.push_back(base + i);
  return seeds;
}

MemoryStore JoinAll(const std::vector<const Delta*>& deltas) {
  MemoryStore s(TestElementHash);
  for (const Delta* d : deltas) (void)Join(&s, *d).value();
  return s;
}

MemoryStore JoinStates(const MemoryStore& a, const MemoryStore& b) {
  MemoryStore out = a;
  (void)Join(&out, b.ToDelta()).value();
  return out;
}

std::vector<const Delta*> RandomSubset(RandomHistory& h, const std::vector<const Delta*>& all) {
  std::vector<const Delta*> out;
  for (const Delta* d : all) {
    if (h.rng()() % 2 == 0) out.push_back(d);
  }
  return out;
}

std::vector<const Delta*> AllDeltas(const RandomHistory& h) {
  std::vector<const Delta*> out;
  for (const Recorded& r : h.deltas()) out.push_back(&r.delta);
  return out;
}

class Properties : public ::testing::TestWithParam<Mix> {
 protected:
  RandomHistory MakeHistory(uint64_t seed) {
    RandomHistory h(seed, GetParam(), 2 + seed % 3);
    h.Run(25 + seed % 30);
    return h;
  }
  uint64_t BaseSeed(uint64_t property) const {
    return property * 1000003u + static_cast<uint64_t>(GetParam()) * 100000007u;
  }
};

TEST_P(Properties, DeltaCorrectness) {
  for (uint64_t seed : Seeds(BaseSeed(1))) {
    SCOPED_TRACE(absl::StrCat("mix=", MixName(GetParam()), " seed=", seed));
    RandomHistory h = MakeHistory(seed);
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
  }
}

TEST_P(Properties, JoinIsCommutativeAssociativeIdempotent) {
  for (uint64_t seed : Seeds(BaseSeed(2))) {
    SCOPED_TRACE(absl::StrCat("mix=", MixName(GetParam()), " seed=", seed));
    RandomHistory h = MakeHistory(seed);
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
    const std::vector<const Delta*> all = AllDeltas(h);
    // Reachable states: replicas' own states and joins of random subsets.
    const MemoryStore& a = h.replicas()[0].state;
    const MemoryStore b = JoinAll(RandomSubset(h, all));
    const MemoryStore c = JoinStates(h.replicas()[1].state, JoinAll(RandomSubset(h, all)));
    ASSERT_EQ(StateBytes(JoinStates(a, b)), StateBytes(JoinStates(b, a)));
    ASSERT_EQ(StateBytes(JoinStates(JoinStates(a, b), c)),
              StateBytes(JoinStates(a, JoinStates(b, c))));
    ASSERT_EQ(StateBytes(JoinStates(a, a)), StateBytes(a));
    ASSERT_EQ(StateBytes(JoinStates(c, c)), StateBytes(c));
  }
}

TEST_P(Properties, AnyDeliveryOrderWithDuplicatesConverges) {
  for (uint64_t seed : Seeds(BaseSeed(3))) {
    SCOPED_TRACE(absl::StrCat("mix=", MixName(GetParam()), " seed=", seed));
    RandomHistory h = MakeHistory(seed);
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
    const std::vector<const Delta*> all = AllDeltas(h);
    const MemoryStore in_order = JoinAll(all);
    const std::string expected = StateBytes(in_order);
    for (int trial = 0; trial < 3; ++trial) {
      std::vector<const Delta*> order = all;
      for (size_t i = h.rng()() % 4; i > 0 && !all.empty(); --i) {
        order.push_back(all[h.rng()() % all.size()]);  // duplicates
      }
      std::shuffle(order.begin(), order.end(), h.rng());
      const MemoryStore shuffled = JoinAll(order);
      ASSERT_EQ(StateBytes(shuffled), expected);
      ASSERT_EQ(shuffled.hash_sum(), in_order.hash_sum());
    }
    // Replicas that then receive everything reach the same bytes, and their
    // incrementally maintained hash equals one computed from scratch.
    for (Replica& r : h.replicas()) {
      for (const Delta* d : all) (void)Join(&r.state, *d).value();
      ASSERT_EQ(StateBytes(r.state), expected);
      ASSERT_EQ(r.state.hash_sum(), in_order.hash_sum());
    }
  }
}

TEST_P(Properties, EncodingsRoundTripByteForByte) {
  for (uint64_t seed : Seeds(BaseSeed(4))) {
    SCOPED_TRACE(absl::StrCat("mix=", MixName(GetParam()), " seed=", seed));
    RandomHistory h = MakeHistory(seed);
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
    std::vector<Delta> subjects;
    for (const Recorded& r : h.deltas()) subjects.push_back(r.delta);
    for (const Replica& r : h.replicas()) subjects.push_back(r.state.ToDelta());
    for (const Delta& d : subjects) {
      const std::string canonical = EncodeCanonical(d);
      absl::StatusOr<Delta> back = DecodeCanonical(canonical, kDeltaBytesMax, kRowVariantsMax);
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_EQ(*back, d);
      ASSERT_EQ(EncodeCanonical(*back), canonical);
      const std::string compact = EncodeCompact(d);
      absl::StatusOr<Delta> back2 = DecodeCompact(compact, kDeltaBytesMax, kRowVariantsMax);
      ASSERT_TRUE(back2.ok()) << back2.status();
      ASSERT_EQ(*back2, d);
      ASSERT_EQ(EncodeCompact(*back2), compact);
    }
  }
}

// Checks the compaction invariants of `c` against the author's state, and
// the join equation for several random S.
void CheckCompacted(RandomHistory& h, size_t author_index, const Delta& c,
                    const std::vector<size_t>& replaced, uint64_t first, uint64_t last) {
  Replica& author = h.replicas()[author_index];
  ASSERT_TRUE(ValidateDelta(c, kRowVariantsMax).ok());
  ASSERT_TRUE(ValidateBatchDelta(c, author.author, first, last).ok());
  // No value that is dead in the author's state.
  for (const Row& row : c.rows) {
    ASSERT_TRUE(author.state.GetRow(row.key).value().has_value())
        << "compacted delta holds a dead entry at " << row.key.path.ToString();
  }
  // No live dot in the context without its entry.
  for (const auto& [a, dots] : c.context.by_author()) {
    for (const Range& r : dots.ranges()) {
      ASSERT_TRUE(author.state
                      .ForEachRowWithDots(a, r.first, r.last,
                                          [&](const RowKey& key) {
                                            EXPECT_TRUE(std::binary_search(
                                                c.rows.begin(), c.rows.end(), Row{key, {}},
                                                [](const Row& x, const Row& y) { return x.key < y.key; }))
                                                << "live dot in context without its entry";
                                            return true;
                                          })
                      .ok());
    }
  }
  std::vector<const Delta*> rest;
  std::vector<const Delta*> originals;
  for (size_t i = 0; i < h.deltas().size(); ++i) {
    if (std::find(replaced.begin(), replaced.end(), i) != replaced.end()) {
      originals.push_back(&h.deltas()[i].delta);
    } else {
      rest.push_back(&h.deltas()[i].delta);
    }
  }
  const std::vector<const Delta*> all = AllDeltas(h);
  for (int trial = 0; trial < 3; ++trial) {
    const std::vector<const Delta*> s = RandomSubset(h, all);
    std::vector<const Delta*> lhs = s;
    lhs.push_back(&c);
    lhs.insert(lhs.end(), rest.begin(), rest.end());
    std::vector<const Delta*> rhs = s;
    rhs.insert(rhs.end(), originals.begin(), originals.end());
    rhs.insert(rhs.end(), rest.begin(), rest.end());
    ASSERT_EQ(StateBytes(JoinAll(lhs)), StateBytes(JoinAll(rhs)));
  }
}

TEST_P(Properties, CompactionPreservesEveryJoin) {
  for (uint64_t seed : Seeds(BaseSeed(5))) {
    SCOPED_TRACE(absl::StrCat("mix=", MixName(GetParam()), " seed=", seed));
    RandomHistory h = MakeHistory(seed);
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
    const size_t a = h.rng()() % h.replicas().size();
    const std::vector<size_t> mine = h.DeltasOf(a);
    if (mine.empty()) continue;
    // A contiguous range j..n of the author's transactions, and a sub-range
    // k..n of it (k >= j).
    const size_t n = h.rng()() % mine.size();
    const size_t j = h.rng()() % (n + 1);
    const size_t k = j + h.rng()() % (n - j + 1);
    const auto range_of = [&](size_t from) {
      return std::vector<size_t>(mine.begin() + static_cast<ptrdiff_t>(from),
                                 mine.begin() + static_cast<ptrdiff_t>(n + 1));
    };
    std::vector<const Delta*> jn;
    for (size_t i : range_of(j)) jn.push_back(&h.deltas()[i].delta);
    Replica& author = h.replicas()[a];
    const uint64_t first_j = h.deltas()[mine[j]].first;
    const uint64_t first_k = h.deltas()[mine[k]].first;
    const uint64_t last = h.deltas()[mine[n]].last;

    absl::StatusOr<Delta> whole = Compact(&author.state, author.author, first_j, last, jn);
    ASSERT_TRUE(whole.ok()) << whole.status();
    CheckCompacted(h, a, *whole, range_of(j), first_j, last);

    absl::StatusOr<Delta> cut = Compact(&author.state, author.author, first_k, last, {&*whole});
    ASSERT_TRUE(cut.ok()) << cut.status();
    CheckCompacted(h, a, *cut, range_of(k), first_k, last);
  }
}

TEST_P(Properties, CutFromAnEarlierCompactionAfterMoreHistory) {
  for (uint64_t seed : Seeds(BaseSeed(6))) {
    SCOPED_TRACE(absl::StrCat("mix=", MixName(GetParam()), " seed=", seed));
    RandomHistory h(seed, GetParam(), 2 + seed % 3);
    h.Run(20 + seed % 20);
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
    const size_t a = 0;
    const std::vector<size_t> early = h.DeltasOf(a);
    if (early.empty()) continue;
    std::vector<const Delta*> jn;
    for (size_t i : early) jn.push_back(&h.deltas()[i].delta);
    Replica& author = h.replicas()[a];
    const uint64_t first = h.deltas()[early.front()].first;
    const uint64_t last = h.deltas()[early.back()].last;
    absl::StatusOr<Delta> earlier = Compact(&author.state, author.author, first, last, jn);
    ASSERT_TRUE(earlier.ok()) << earlier.status();

    h.Run(20);  // the history goes on: overwrites, deletes, deliveries
    ASSERT_TRUE(h.failures().empty()) << h.failures().front();
    const size_t k = h.rng()() % early.size();
    const uint64_t first_k = h.deltas()[early[k]].first;
    absl::StatusOr<Delta> cut = Compact(&author.state, author.author, first_k, last, {&*earlier});
    ASSERT_TRUE(cut.ok()) << cut.status();
    CheckCompacted(h, a, *cut,
                   std::vector<size_t>(early.begin() + static_cast<ptrdiff_t>(k), early.end()),
                   first_k, last);
  }
}

INSTANTIATE_TEST_SUITE_P(Mixes, Properties,
                         ::testing::Values(Mix::kRegister, Mix::kCounter, Mix::kSet, Mix::kMap,
                                           Mix::kDocument),
                         [](const ::testing::TestParamInfo<Mix>& param_info) {
                           return std::string(MixName(param_info.param));
                         });

}  // namespace
}  // namespace edgesync::crdt::testing
