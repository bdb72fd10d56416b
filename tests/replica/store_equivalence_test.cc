// The LMDB store and the in-memory reference store give identical state for
// the same random history: several authors make random transactions on
// their own MemoryStores (receiving each other's deltas at random), each
// sealed as a signed batch; a replica applies the batches in a shuffled
// order with duplicates while a reference MemoryStore joins the same deltas
// in the same order. Compared at checkpoints: the replica's digest against
// the reference's hash sum, the canonical bytes of the rows the LMDB store
// holds against the reference's, the hash recomputed from the stored rows,
// and the JSON reads.
//
// EDGESYNC_EQUIV_CASES sets the number of histories (50 by default).

#include <algorithm>

#include "crdt/read.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr uint64_t kBaseMs = 1'600'000'000'000;

crdt::Value RandomScalar(std::mt19937_64& rng) {
  switch (rng() % 8) {
    case 0:
      return crdt::Value::Null();
    case 1:
      return crdt::Value::Bool(rng() % 2 == 0);
    case 2:
      return crdt::Value::Int(static_cast<int64_t>(rng() % 9) - 4);
    case 3:
      return crdt::Value::Int(static_cast<int64_t>(rng()));  // any int64
    case 4:
      return crdt::Value::Double(static_cast<double>(rng() % 7) / 4.0 - 0.75).value();
    case 5:
      return crdt::Value::String(std::string(1 + rng() % 3, static_cast<char>('x' + rng() % 3))).value();
    case 6:
      return crdt::Value::String("\xc3\xa9t\xc3\xa9 \xe2\x82\xac").value();  // "été €"
    default:
      return crdt::Value::Bytes(std::string(1 + rng() % 2, static_cast<char>(rng() % 256))).value();
  }
}

crdt::Value RandomElement(std::mt19937_64& rng) {
  if (rng() % 3 == 0) return crdt::Value::String(std::string(1, static_cast<char>('p' + rng() % 3))).value();
  return crdt::Value::Int(static_cast<int64_t>(rng() % 5));
}

crdt::Tree RandomTree(std::mt19937_64& rng, int depth) {
  const uint64_t pick = rng() % 5;
  if (depth > 0 && pick == 0) {
    crdt::Tree t;
    t.kind = crdt::Tree::Kind::kMap;
    static const char* const kKeys[] = {"a", "b", "c"};
    for (size_t i = 0, n = rng() % 4; i < n; ++i) t.map.emplace_back(kKeys[i], RandomTree(rng, depth - 1));
    return t;
  }
  if (pick == 1) {
    crdt::Tree t;
    t.kind = crdt::Tree::Kind::kSet;
    for (size_t i = rng() % 4; i > 0; --i) t.set.push_back(RandomElement(rng));
    std::sort(t.set.begin(), t.set.end());
    t.set.erase(std::unique(t.set.begin(), t.set.end()), t.set.end());
    return t;
  }
  return crdt::Tree::Scalar(RandomScalar(rng));
}

crdt::Path RandomPath(std::mt19937_64& rng) {
  static const char* const kKeys[] = {"a", "b", "c", "d"};
  std::vector<std::string> keys;
  for (size_t i = 0, n = 1 + rng() % 3; i < n; ++i) keys.push_back(kKeys[rng() % 4]);
  return crdt::Path::FromKeys(keys).value();
}

absl::Status RandomMutation(std::mt19937_64& rng, crdt::TransactionBuilder& t) {
  const crdt::Path p = RandomPath(rng);
  const uint64_t r = rng() % 100;
  if (r < 22) return t.Put(p, crdt::Tree::Scalar(RandomScalar(rng)));
  if (r < 34) return t.Put(p, RandomTree(rng, 2));
  if (r < 50) return t.CounterAdd(p, static_cast<int64_t>(rng() % 11) - 5);
  if (r < 64) return t.SetAdd(p, RandomElement(rng));
  if (r < 74) return t.SetRemove(p, RandomElement(rng));
  if (r < 97) return t.Delete(rng() % 2 == 0 ? p : p.Parent().is_root() ? p : p.Parent());
  if (r < 98) return t.Delete(crdt::Path());
  crdt::Tree root;
  root.kind = crdt::Tree::Kind::kMap;
  root.map.emplace_back("a", RandomTree(rng, 1));
  return t.Put(crdt::Path(), root);
}

struct Sealed {
  std::string batch;
  crdt::Delta delta;
};

// One seeded multi-author history on document `doc`.
std::vector<Sealed> MakeHistory(uint64_t seed, const std::string& doc, std::vector<ForgedAuthor>& authors) {
  std::mt19937_64 rng(seed);
  authors.clear();
  authors.resize(2 + rng() % 3);
  std::vector<uint64_t> hlc(authors.size(), crdt::HlcFromMillis(kBaseMs));
  std::vector<Sealed> out;
  // Mostly short histories; one in eight long (paths created and collected
  // many times over).
  const size_t steps = rng() % 8 == 0 ? 200 + rng() % 200 : 30 + rng() % 60;
  for (size_t step = 0; step < steps; ++step) {
    const size_t a = rng() % authors.size();
    if (!out.empty() && rng() % 100 < 35) {
      EXPECT_TRUE(authors[a].Receive(out[rng() % out.size()].delta).ok());
      continue;
    }
    hlc[a] += rng() % 3;  // sometimes equal to another author's: key breaks ties
    Sealed s;
    const size_t ops = 1 + rng() % 4;
    absl::StatusOr<std::string> batch = authors[a].Commit(
        doc, hlc[a],
        [&](crdt::TransactionBuilder& t) {
          for (size_t i = 0; i < ops; ++i) {
            if (absl::Status st = RandomMutation(rng, t); !st.ok()) return st;
          }
          return absl::OkStatus();
        },
        std::nullopt, &s.delta);
    if (absl::IsFailedPrecondition(batch.status())) continue;  // changed nothing
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) continue;
    s.batch = *std::move(batch);
    out.push_back(std::move(s));
  }
  return out;
}

std::string Canonical(const crdt::MemoryStore& s) { return crdt::EncodeCanonical(s.ToDelta()); }

// Compares the replica's document with the reference; `where` names the
// case and checkpoint.
void Compare(Replica& r, const std::string& doc, crdt::MemoryStore& ref, const std::string& where, bool full) {
  const std::string digest = MustDigest(r.document(doc));
  ASSERT_EQ(digest, HexDigest(ref.hash_sum())) << where << ": digest differs from the memory store's";
  if (!full) return;
  crdt::MemoryStore stored;
  ES_ASSERT_OK(ReadStoredState(r, doc, &stored));
  ASSERT_EQ(stored.row_count(), ref.row_count()) << where;
  ASSERT_TRUE(Canonical(stored) == Canonical(ref)) << where << ": canonical state bytes differ";
  ASSERT_EQ(HexDigest(stored.hash_sum()), digest) << where << ": the stored hash is not the hash of the stored rows";
  absl::StatusOr<std::string> want = crdt::ReadJson(&ref, crdt::Path());
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ(MustGet(r.document(doc)), *want) << where;
  absl::StatusOr<std::string> want_conflicts = crdt::ReadConflictsJson(&ref, crdt::Path());
  ASSERT_TRUE(want_conflicts.ok());
  ASSERT_EQ(r.document(doc).Conflicts().value_or("?"), *want_conflicts) << where;
}

TEST(StoreEquivalenceTest, LmdbAndMemoryStoresAgreeOnRandomHistories) {
  const uint64_t base_seed = TestSeed();
  const uint64_t cases = EnvCount("EDGESYNC_EQUIV_CASES", 50);
  ScratchDir dir;
  ReplicaOptions options;
  options.durability = Durability::kFast;  // thousands of applies; durability is not under test
  auto r = MustOpen(dir.Sub("r"), options);
  uint64_t total_batches = 0;
  for (uint64_t c = 0; c < cases; ++c) {
    const uint64_t seed = base_seed + c;
    const std::string doc = absl::StrCat("eq-", c);
    const std::string where0 = absl::StrCat("case ", c, " (EDGESYNC_SEED=", base_seed, ", case seed ", seed, ")");
    std::vector<ForgedAuthor> authors;
    std::vector<Sealed> history = MakeHistory(seed, doc, authors);
    if (HasFailure()) FAIL() << where0 << ": generating the history failed";
    for (const ForgedAuthor& a : authors) ES_ASSERT_OK(r->Trust(a.hex()));

    std::mt19937_64 rng(seed ^ 0x5eed);
    std::vector<size_t> order(history.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (size_t i = 0, dups = rng() % 6; i < dups && !history.empty(); ++i) order.push_back(rng() % history.size());
    std::shuffle(order.begin(), order.end(), rng);

    crdt::MemoryStore ref(internal::Blake2bElementHash);
    size_t at = 0;
    int checkpoint = 0;
    while (at < order.size()) {
      const size_t take = std::min(order.size() - at, 1 + static_cast<size_t>(rng() % 8));
      std::vector<std::string> slice;
      for (size_t i = at; i < at + take; ++i) {
        slice.push_back(history[order[i]].batch);
        ASSERT_TRUE(crdt::Join(&ref, history[order[i]].delta).ok());
      }
      ApplyReport rep = r->ApplyBatches(slice);
      ASSERT_EQ(rep.rejected, 0u) << where0 << ": " << (rep.reasons.empty() ? "" : rep.reasons[0]);
      ASSERT_EQ(rep.equivocations, 0u) << where0;
      at += take;
      // A batch whose context claims seqs not yet held waits for them; the
      // state equals the join of everything delivered once nothing waits.
      if (WaitingBatches(*r) != 0) {
        ASSERT_LT(at, order.size()) << where0 << ": batches still waiting after the whole history";
        continue;
      }
      Compare(*r, doc, ref, absl::StrCat(where0, ", after ", at, " of ", order.size(), " batches"),
              /*full=*/++checkpoint % 4 == 0 || at == order.size());
      if (HasFatalFailure()) return;
    }
    total_batches += order.size();
  }
  std::cout << "[ equiv    ] " << cases << " histories, " << total_batches << " batches applied" << std::endl;
}

}  // namespace
}  // namespace edgesync::testing
