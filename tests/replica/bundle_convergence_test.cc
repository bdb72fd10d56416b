// Replicas that exchange bundles in every order, with duplicates and
// relays, converge: equal digests and equal reads, with the documented
// winners (concurrent register writes, counters, add-wins sets, deletes).

#include <algorithm>
#include <map>
#include <random>

#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "plant/line-1";
// Every replica's wall clock reads this, so concurrent writes made after the
// same history get the same HLC time and the author key breaks the tie.
constexpr uint64_t kNowMs = 1'700'000'000'000;

struct Fleet {
  ScratchDir dir;
  FakeClock clock{kNowMs};
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<std::string> keys;

  ReplicaOptions Options() {
    ReplicaOptions o;
    o.clock = &clock;
    return o;
  }
  // A new replica trusting every writer.
  std::unique_ptr<Replica> Observer(const std::string& name) {
    std::unique_ptr<Replica> r = MustOpen(dir.Sub(name), Options());
    for (const std::string& k : keys) EXPECT_TRUE(r->Trust(k).ok());
    return r;
  }
};

// Imports `file` into `r` and checks nothing was rejected.
void Import(Replica& r, const std::string& file) {
  absl::StatusOr<BundleReport> rep = r.ImportBundle(file);
  ASSERT_TRUE(rep.ok()) << file << ": " << rep.status();
  EXPECT_EQ(rep->batches.rejected, 0u) << file;
  EXPECT_EQ(rep->batches.held, 0u) << file;
  EXPECT_EQ(rep->batches.equivocations, 0u) << file;
}

std::string Export(Replica& r, const std::string& file) {
  absl::StatusOr<BundleReport> rep = r.ExportBundle(file);
  EXPECT_TRUE(rep.ok()) << rep.status();
  return file;
}

// n writers (2 or 3). Phase 1: writer 0 creates shared content and every
// other writer imports it. Phase 2: every writer changes the document
// concurrently. Returns each writer's phase-2 bundle.
std::vector<std::string> RunConcurrentWrites(Fleet& f, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    f.replicas.push_back(MustOpen(f.dir.Sub(absl::StrCat("w", i)), f.Options()));
    f.keys.push_back(f.replicas.back()->public_key_hex());
  }
  for (auto& r : f.replicas) {
    for (const std::string& k : f.keys) EXPECT_TRUE(r->Trust(k).ok());
  }
  Document d0 = f.replicas[0]->document(kDoc);
  EXPECT_TRUE(d0.Put("", R"({"m":{"p":1},"gone":"soon","s":["x","y"]})").ok());
  EXPECT_TRUE(d0.CounterAdd("/n", 1).ok());
  const std::string phase1 = Export(*f.replicas[0], f.dir.Sub("phase1.bundle"));
  for (size_t i = 1; i < n; ++i) Import(*f.replicas[i], phase1);
  for (size_t i = 1; i < n; ++i) {
    EXPECT_EQ(MustDigest(f.replicas[i]->document(kDoc)), MustDigest(d0));
  }

  // Phase 2: concurrent. The first commit of each is the register write, so
  // all three get the same HLC time (same history, same wall clock).
  std::vector<std::string> bundles;
  for (size_t i = 0; i < n; ++i) {
    Document d = f.replicas[i]->document(kDoc);
    EXPECT_TRUE(d.Put("/k", absl::StrCat("\"from-", i, "\"")).ok());
    EXPECT_TRUE(d.CounterAdd("/n", static_cast<int64_t>(10 * (i + 1))).ok());
    EXPECT_TRUE(d.CounterAdd("/n", -1).ok());
    EXPECT_TRUE(d.Put(absl::StrCat("/only-", i), absl::StrCat(i)).ok());
    switch (i) {
      case 0:
        EXPECT_TRUE(d.SetAdd("/s", "\"x\"").ok());   // re-add, concurrent with a remove
        break;
      case 1:
        EXPECT_TRUE(d.SetRemove("/s", "\"x\"").ok());
        EXPECT_TRUE(d.SetRemove("/s", "\"y\"").ok());  // uncontested
        EXPECT_TRUE(d.Delete("/gone").ok());
        EXPECT_TRUE(d.Delete("/m").ok());
        break;
      case 2:
        EXPECT_TRUE(d.Put("/m/z", "2").ok());  // update concurrent with the map's delete
        break;
    }
    bundles.push_back(Export(*f.replicas[i], f.dir.Sub(absl::StrCat("w", i, ".bundle"))));
  }
  return bundles;
}

// What every replica must read once it has everything.
void ExpectConverged(Fleet& f, size_t n, const std::vector<Replica*>& all) {
  ASSERT_FALSE(all.empty());
  Document ref = all[0]->document(kDoc);
  const std::string digest = MustDigest(ref);
  const std::string json = MustGet(ref);
  absl::StatusOr<std::string> conflicts = ref.Conflicts("/k");
  ASSERT_TRUE(conflicts.ok()) << conflicts.status();
  for (Replica* r : all) {
    Document d = r->document(kDoc);
    EXPECT_EQ(MustDigest(d), digest);
    EXPECT_EQ(MustGet(d), json);
    EXPECT_EQ(d.Conflicts("/k").value_or("?"), *conflicts);
    EXPECT_EQ(MustIds(*r), std::vector<std::string>{kDoc});
  }
  // Equal HLC times: the highest author key wins the register.
  size_t winner = 0;
  for (size_t i = 1; i < n; ++i) {
    if (f.keys[i] > f.keys[winner]) winner = i;
  }
  EXPECT_EQ(MustGet(ref, "/k"), absl::StrCat("\"from-", winner, "\""));
  for (size_t i = 0; i < n; ++i) {
    if (i == winner) continue;
    EXPECT_NE(conflicts->find(absl::StrCat("\"from-", i, "\"")), std::string::npos) << *conflicts;
    EXPECT_EQ(MustGet(ref, absl::StrCat("/only-", i)), absl::StrCat(i));
  }
  int64_t sum = 1;
  for (size_t i = 0; i < n; ++i) sum += static_cast<int64_t>(10 * (i + 1)) - 1;
  EXPECT_EQ(MustGet(ref, "/n"), absl::StrCat(sum));
  // Add wins over the concurrent remove; the uncontested remove holds.
  EXPECT_EQ(MustGet(ref, "/s"), R"(["x"])");
  EXPECT_EQ(ref.Get("/gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ref.Get("/m/p").status().code(), absl::StatusCode::kNotFound);
  if (n >= 3) {
    EXPECT_EQ(MustGet(ref, "/m/z"), "2");  // update beats delete
  } else {
    EXPECT_EQ(ref.Get("/m").status().code(), absl::StatusCode::kNotFound);
  }
}

TEST(BundleConvergenceTest, TwoReplicasBothWaysWithDuplicates) {
  Fleet f;
  std::vector<std::string> bundles = RunConcurrentWrites(f, 2);
  Replica& a = *f.replicas[0];
  Replica& b = *f.replicas[1];
  const std::string b_before = MustDigest(b.document(kDoc));
  absl::StatusOr<BundleReport> first = b.ImportBundle(bundles[0]);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GE(first->batches.applied, 1u);
  EXPECT_NE(MustDigest(b.document(kDoc)), b_before);
  Import(a, bundles[1]);
  // Duplicates: again, and each one's own bundle back.
  for (Replica* r : {&a, &b}) {
    const std::string before = MustDigest(r->document(kDoc));
    for (const std::string& bundle : bundles) {
      absl::StatusOr<BundleReport> again = r->ImportBundle(bundle);
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(again->batches.applied, 0u);
      EXPECT_EQ(again->batches.rejected, 0u);
      EXPECT_GE(again->batches.duplicate, 1u);
    }
    EXPECT_EQ(MustDigest(r->document(kDoc)), before);
  }
  // Fresh observers, both orders, each bundle twice.
  auto ab = f.Observer("o-ab");
  auto ba = f.Observer("o-ba");
  for (const std::string& file : {bundles[0], bundles[1], bundles[0]}) Import(*ab, file);
  for (const std::string& file : {bundles[1], bundles[1], bundles[0]}) Import(*ba, file);
  ExpectConverged(f, 2, {&a, &b, ab.get(), ba.get()});
}

TEST(BundleConvergenceTest, ThreeReplicasEveryImportOrder) {
  Fleet f;
  std::vector<std::string> bundles = RunConcurrentWrites(f, 3);
  std::vector<std::unique_ptr<Replica>> observers;
  std::vector<size_t> order = {0, 1, 2};
  int permutation = 0;
  do {
    auto o = f.Observer(absl::StrCat("perm-", permutation));
    // Each bundle in this order; then the first again (a duplicate).
    for (size_t i : order) Import(*o, bundles[i]);
    Import(*o, bundles[order[0]]);
    observers.push_back(std::move(o));
    ++permutation;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(permutation, 6);

  // The writers: each imports the other two in a different order, one of
  // them twice.
  Import(*f.replicas[0], bundles[1]);
  Import(*f.replicas[0], bundles[2]);
  Import(*f.replicas[1], bundles[2]);
  Import(*f.replicas[1], bundles[0]);
  Import(*f.replicas[1], bundles[2]);
  Import(*f.replicas[2], bundles[0]);
  Import(*f.replicas[2], bundles[1]);

  // A relay: a replica that only ever sees writer 2's bundle of everything
  // (writer 2 forwards the others' batches verbatim).
  const std::string relayed = Export(*f.replicas[2], f.dir.Sub("relay.bundle"));
  auto via_relay = f.Observer("via-relay");
  Import(*via_relay, relayed);

  std::vector<Replica*> all;
  for (auto& r : f.replicas) all.push_back(r.get());
  for (auto& r : observers) all.push_back(r.get());
  all.push_back(via_relay.get());
  ExpectConverged(f, 3, all);
}

// Every writer's batches, one by one, shuffled and duplicated: any order of
// single batches converges too (not only whole bundles).
TEST(BundleConvergenceTest, ShuffledSingleBatchesConverge) {
  const uint64_t seed = TestSeed();
  std::mt19937_64 rng(seed);
  Fleet f;
  std::vector<std::string> bundles = RunConcurrentWrites(f, 3);
  std::vector<std::string> batches;
  for (size_t i = 0; i < 3; ++i) {
    // Without auto-compaction, the writers' logs would hold one batch per
    // commit; either way each bundle holds at least one.
    absl::StatusOr<std::vector<std::string>> b = BundleBatches(bundles[i]);
    ASSERT_TRUE(b.ok()) << b.status();
    batches.insert(batches.end(), b->begin(), b->end());
  }
  absl::StatusOr<std::vector<std::string>> p1 = BundleBatches(f.dir.Sub("phase1.bundle"));
  ASSERT_TRUE(p1.ok());
  batches.insert(batches.end(), p1->begin(), p1->end());
  Import(*f.replicas[0], bundles[1]);
  Import(*f.replicas[0], bundles[2]);
  std::vector<std::unique_ptr<Replica>> observers;
  std::vector<Replica*> all = {f.replicas[0].get()};
  for (int round = 0; round < 12; ++round) {
    std::vector<std::string> shuffled = batches;
    for (size_t i = 0, extra = rng() % 4; i < extra; ++i) shuffled.push_back(batches[rng() % batches.size()]);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    auto o = f.Observer(absl::StrCat("shuffle-", round));
    // In random slices, so batches of one call and of later calls mix.
    size_t at = 0;
    while (at < shuffled.size()) {
      const size_t take = 1 + rng() % 3;
      std::vector<std::string> slice(shuffled.begin() + static_cast<std::ptrdiff_t>(at),
                                     shuffled.begin() + static_cast<std::ptrdiff_t>(std::min(at + take, shuffled.size())));
      ApplyReport rep = o->ApplyBatches(slice);
      EXPECT_EQ(rep.rejected, 0u) << (rep.reasons.empty() ? "" : rep.reasons[0]);
      at += take;
    }
    // A batch arriving before the batches its context claims waits for
    // them; once all are in, nothing waits.
    EXPECT_EQ(WaitingBatches(*o), 0u);
    all.push_back(o.get());
    observers.push_back(std::move(o));
  }
  ExpectConverged(f, 3, all);
}

}  // namespace
}  // namespace edgesync::testing
