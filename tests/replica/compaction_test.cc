// Compaction: after Document::Compact(), a fresh replica importing the
// compacted log, a replica that held part of the old log, and one that held
// all of it end in the same state; the compacted batch holds no overwritten
// or deleted value; another author's overwritten value does not come back;
// and auto-compaction keeps an author's own log at O(log n) batches.

#include <cmath>
#include <random>

#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "doc";

// A's own batches of `doc` in the bundle, and everyone else's.
struct Split {
  std::vector<std::string> own;
  std::vector<std::string> others;
};

Split SplitByAuthor(const std::vector<std::string>& batches, const std::string& author_hex) {
  Split s;
  for (const std::string& b : batches) {
    absl::StatusOr<transport::OpenedBatch> o = transport::OpenBatch(b);
    EXPECT_TRUE(o.ok()) << o.status();
    if (!o.ok()) continue;
    (o->header.author.Hex() == author_hex ? s.own : s.others).push_back(b);
  }
  return s;
}

// Every string a batch's rows hold: register values and set members.
std::vector<std::string> StringsIn(const std::string& batch, transport::BatchHeader* header) {
  std::vector<std::string> out;
  absl::StatusOr<transport::OpenedBatch> o = transport::OpenBatch(batch);
  EXPECT_TRUE(o.ok()) << o.status();
  if (!o.ok()) return out;
  *header = o->header;
  absl::StatusOr<crdt::Delta> d = transport::DecodeBatchDelta(*o);
  EXPECT_TRUE(d.ok()) << d.status();
  if (!d.ok()) return out;
  for (const crdt::Row& row : d->rows) {
    if (row.key.facet == crdt::Facet::kRegister) {
      for (const std::string& variant : row.value) {
        absl::StatusOr<crdt::RegisterVariant> v = crdt::DecodeRegisterVariant(variant);
        EXPECT_TRUE(v.ok());
        if (v.ok() && v->value.type() == crdt::ValueType::kString) out.push_back(v->value.bytes_value());
      }
    } else if (row.key.facet == crdt::Facet::kSet && !row.key.element.empty()) {
      absl::StatusOr<crdt::Value> v = crdt::Value::FromCanonical(row.key.element);
      EXPECT_TRUE(v.ok());
      if (v.ok() && v->type() == crdt::ValueType::kString) out.push_back(v->bytes_value());
    }
  }
  return out;
}

class CompactionTest : public ::testing::TestWithParam<bool> {};

TEST_P(CompactionTest, CompactedLogConvergesWithFullAndPartialHistories) {
  ScratchDir dir;
  ReplicaOptions options;
  options.auto_compact = GetParam();
  auto a = MustOpen(dir.Sub("a"), options);
  auto b = MustOpen(dir.Sub("b"));
  auto full = MustOpen(dir.Sub("full"));
  auto partial = MustOpen(dir.Sub("partial"));
  auto fresh = MustOpen(dir.Sub("fresh"));
  auto fresh_own_first = MustOpen(dir.Sub("fresh-own-first"));
  for (Replica* r : {a.get(), full.get(), partial.get(), fresh.get(), fresh_own_first.get()}) {
    ES_ASSERT_OK(r->Trust(b->public_key_hex()));
  }
  for (Replica* r : {b.get(), full.get(), partial.get(), fresh.get(), fresh_own_first.get()}) {
    ES_ASSERT_OK(r->Trust(a->public_key_hex()));
  }

  // B writes values A will overwrite.
  Document db = b->document(kDoc);
  ES_ASSERT_OK(db.Put("/theirs", "\"b-old\""));
  ES_ASSERT_OK(db.Put("/b-only", "\"b-kept\""));
  ES_ASSERT_OK(db.SetAdd("/s", "\"b-member\""));
  const std::string b_bundle = dir.Sub("b.bundle");
  ASSERT_TRUE(b->ExportBundle(b_bundle).ok());
  ASSERT_TRUE(a->ImportBundle(b_bundle).ok());

  // A's history: overwrites, deletes, counters, sets, a deleted map.
  Document da = a->document(kDoc);
  for (int i = 0; i < 40; ++i) {
    ES_ASSERT_OK(da.Put("/x", absl::StrCat("\"x-old-", i, "\"")));
    if (i == 20) {
      ASSERT_TRUE(a->ExportBundle(dir.Sub("part.bundle")).ok());
      absl::StatusOr<std::vector<std::string>> part = BundleBatches(dir.Sub("part.bundle"));
      ASSERT_TRUE(part.ok());
      // Only A's own batches so far: "partial" lacks B's and A's later ones.
      ApplyReport rep = partial->ApplyBatches(SplitByAuthor(*part, a->public_key_hex()).own);
      ASSERT_EQ(rep.rejected, 0u);
    }
    ES_ASSERT_OK(da.CounterAdd("/n", i));
  }
  ES_ASSERT_OK(da.Put("/x", "\"x-final\""));
  ES_ASSERT_OK(da.Put("/gone", "\"gone-old\""));
  ES_ASSERT_OK(da.Delete("/gone"));
  ES_ASSERT_OK(da.Put("/theirs", "\"a-over\""));
  ES_ASSERT_OK(da.Put("/m", R"({"k":"m-old","j":{"deep":"m-old-deep"}})"));
  ES_ASSERT_OK(da.Delete("/m"));
  ES_ASSERT_OK(da.SetAdd("/s", "\"s-dead\""));
  ES_ASSERT_OK(da.SetRemove("/s", "\"s-dead\""));
  ES_ASSERT_OK(da.SetRemove("/s", "\"b-member\""));
  ES_ASSERT_OK(da.SetAdd("/s", "\"s-live\""));
  ES_ASSERT_OK(da.Put("/kept", "\"kept-live\""));

  // "full" gets the whole uncompacted history.
  ASSERT_TRUE(a->ExportBundle(dir.Sub("history.bundle")).ok());
  absl::StatusOr<BundleReport> hist = full->ImportBundle(dir.Sub("history.bundle"));
  ASSERT_TRUE(hist.ok()) << hist.status();
  ASSERT_EQ(hist->batches.rejected, 0u);
  const std::string digest = MustDigest(full->document(kDoc));
  ASSERT_EQ(digest, MustDigest(da));
  const std::string json = MustGet(da);

  const uint64_t compactions_before = a->stats().compactions;
  ES_ASSERT_OK(da.Compact());
  // With auto-compaction the log may already be one batch.
  if (!GetParam()) {
    EXPECT_GT(a->stats().compactions, compactions_before);
  }
  EXPECT_EQ(MustDigest(da), digest) << "compacting changed the author's state";
  std::vector<std::string> after = ExportAll(*a, dir.Sub("compacted.bundle"));
  const Split split = SplitByAuthor(after, a->public_key_hex());
  ASSERT_EQ(split.own.size(), 1u) << "one compacted batch for A's whole log";
  EXPECT_FALSE(split.others.empty()) << "A relays B's batches";

  // The compacted batch: all of A's seqs, no dead value.
  transport::BatchHeader h;
  const std::vector<std::string> strings = StringsIn(split.own[0], &h);
  EXPECT_TRUE(h.compacted);
  EXPECT_EQ(h.seq_first, 1u);
  absl::StatusOr<VersionVectors> vv = a->GetVersionVectors();
  ASSERT_TRUE(vv.ok());
  EXPECT_EQ((*vv)[kDoc][a->public_key_hex()], (SeqRanges{{1, h.seq_last}}));
  for (const std::string& s : strings) {
    EXPECT_EQ(s.find("-old"), std::string::npos) << "dead value \"" << s << "\" in the compacted batch";
    EXPECT_NE(s, "s-dead");
    EXPECT_NE(s, "b-member");
  }
  EXPECT_NE(std::find(strings.begin(), strings.end(), "x-final"), strings.end());
  EXPECT_NE(std::find(strings.begin(), strings.end(), "kept-live"), strings.end());
  EXPECT_NE(std::find(strings.begin(), strings.end(), "a-over"), strings.end());
  EXPECT_NE(std::find(strings.begin(), strings.end(), "s-live"), strings.end());
  EXPECT_LT(split.own[0].size(), 1500u) << "40 overwrites should compact to a few rows";

  // Everyone converges on the full history's state.
  for (Replica* r : {fresh.get(), partial.get(), full.get()}) {
    absl::StatusOr<BundleReport> in = r->ImportBundle(dir.Sub("compacted.bundle"));
    ASSERT_TRUE(in.ok()) << in.status();
    EXPECT_EQ(in->batches.rejected, 0u) << (in->batches.reasons.empty() ? "" : in->batches.reasons[0]);
  }
  // A's compacted batch first, B's original batches later: A's batch claims
  // B's seqs, so it waits for them (claims act only once covered), and
  // B's overwritten value and removed member must not come back.
  ApplyReport first = fresh_own_first->ApplyBatches(split.own);
  EXPECT_EQ(first.held, 1u);
  EXPECT_EQ(MustGet(fresh_own_first->document(kDoc)), "{}");
  ApplyReport later = fresh_own_first->ApplyBatches(split.others);
  EXPECT_EQ(later.rejected, 0u);
  EXPECT_EQ(later.applied, split.others.size() + 1);
  EXPECT_EQ(WaitingBatches(*fresh_own_first), 0u);
  for (Replica* r : {fresh.get(), partial.get(), full.get(), fresh_own_first.get()}) {
    EXPECT_EQ(MustDigest(r->document(kDoc)), digest);
    EXPECT_EQ(MustGet(r->document(kDoc)), json);
  }
  EXPECT_EQ(MustGet(fresh_own_first->document(kDoc), "/theirs"), "\"a-over\"");
  EXPECT_EQ(MustGet(fresh_own_first->document(kDoc), "/b-only"), "\"b-kept\"");
  EXPECT_EQ(MustGet(fresh_own_first->document(kDoc), "/s"), R"(["s-live"])");
  EXPECT_EQ(fresh->document(kDoc).Get("/gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fresh->document(kDoc).Get("/m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MustGet(fresh->document(kDoc), "/n"), absl::StrCat(39 * 40 / 2));

  // After compaction A keeps writing, and the newer batch lands everywhere.
  ES_ASSERT_OK(da.Put("/x", "\"x-after\""));
  BundleExportOptions missing;
  missing.only_missing = true;
  absl::StatusOr<VersionVectors> pvv = partial->GetVersionVectors();
  ASSERT_TRUE(pvv.ok());
  missing.since = *pvv;
  ASSERT_TRUE(a->ExportBundle(dir.Sub("newer.bundle"), missing).ok());
  ASSERT_TRUE(partial->ImportBundle(dir.Sub("newer.bundle")).ok());
  EXPECT_EQ(MustDigest(partial->document(kDoc)), MustDigest(da));
}

INSTANTIATE_TEST_SUITE_P(AutoCompact, CompactionTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? std::string("auto") : std::string("manual");
                         });

// Own log batches of `r` on kDoc, from an export.
size_t OwnBatches(Replica& r, const std::string& file) {
  return SplitByAuthor(ExportAll(r, file), r.public_key_hex()).own.size();
}

TEST(AutoCompactionTest, OwnLogStaysLogarithmic) {
  ScratchDir dir;
  ReplicaOptions options;
  options.durability = Durability::kFast;
  constexpr int kCommits = 1000;
  const size_t bound = 2 * static_cast<size_t>(std::ceil(std::log2(kCommits))) + 2;
  for (const bool distinct_keys : {true, false}) {
    const std::string name = distinct_keys ? "distinct" : "overwrite";
    auto r = MustOpen(dir.Sub(name), options);
    Document d = r->document(kDoc);
    size_t max_seen = 0;
    for (int i = 0; i < kCommits; ++i) {
      ES_ASSERT_OK(d.Put(distinct_keys ? absl::StrCat("/k", i) : std::string("/k"), absl::StrCat(i)));
      if (i % 97 == 0) max_seen = std::max(max_seen, OwnBatches(*r, dir.Sub(name + "-mid.bundle")));
    }
    const size_t batches = OwnBatches(*r, dir.Sub(name + ".bundle"));
    std::cout << "[ tiers    ] " << name << ": " << kCommits << " commits -> " << batches
              << " own log batches (max seen " << max_seen << ", bound " << bound << ")" << std::endl;
    EXPECT_LE(batches, bound) << name;
    EXPECT_LE(max_seen, bound) << name;
    EXPECT_GE(batches, 1u);
    EXPECT_GT(r->stats().compactions, 0u);
    // The tiered log still replays to the same state.
    auto fresh = MustOpen(dir.Sub(name + "-fresh"), options);
    ES_ASSERT_OK(fresh->Trust(r->public_key_hex()));
    absl::StatusOr<BundleReport> in = fresh->ImportBundle(dir.Sub(name + ".bundle"));
    ASSERT_TRUE(in.ok()) << in.status();
    EXPECT_EQ(in->batches.rejected, 0u);
    EXPECT_EQ(MustDigest(fresh->document(kDoc)), MustDigest(d));
    EXPECT_EQ(MustGet(fresh->document(kDoc), distinct_keys ? "/k999" : "/k"), "999");
  }
}


// Two compactions of one seq range: A's explicit compaction of seqs 1..3,
// then, after seq 4 deleted /a, a cut of 1..3 as a sync sends it, which no
// longer holds /a. A receiver holding the newer one keeps it when the older
// arrives (a duplicate); one holding the older upgrades to the newer.
TEST(SupersessionTest, DuplicateOfEqualRangeNeverRegressesTheLog) {
  ScratchDir dir;
  ReplicaOptions options;
  options.durability = Durability::kFast;
  options.auto_compact = false;
  auto a = MustOpen(dir.Sub("a"), options);
  Document d = a->document(kDoc);
  ES_ASSERT_OK(d.Put("/a", "\"" + std::string(200, 'x') + "\""));
  ES_ASSERT_OK(d.Put("/b", "2"));
  ES_ASSERT_OK(d.Put("/c", "3"));
  ES_ASSERT_OK(d.Compact());
  const std::vector<std::string> older = SplitByAuthor(ExportAll(*a, dir.Sub("older.bundle")),
                                                       a->public_key_hex()).own;
  ASSERT_EQ(older.size(), 1u);
  ES_ASSERT_OK(d.Delete("/a"));
  absl::StatusOr<std::string> newer = a->core().CutOwnRange(kDoc, 1, 3);
  ASSERT_TRUE(newer.ok()) << newer.status();
  ASSERT_LT(newer->size(), older[0].size());

  auto keeps = MustOpen(dir.Sub("keeps"), options);
  ES_ASSERT_OK(keeps->Trust(a->public_key_hex()));
  ASSERT_EQ(keeps->ApplyBatches({*newer}).applied, 1u);
  ApplyReport again = keeps->ApplyBatches({older[0]});
  EXPECT_EQ(again.duplicate, 1u);
  const std::vector<std::string> kept = ExportAll(*keeps, dir.Sub("keeps.bundle"));
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].size(), newer->size()) << "the older compaction replaced the newer one";
  EXPECT_TRUE(kept[0] == *newer);
  EXPECT_EQ(MustGet(keeps->document(kDoc)), "{\"b\":2,\"c\":3}");

  auto upgrades = MustOpen(dir.Sub("upgrades"), options);
  ES_ASSERT_OK(upgrades->Trust(a->public_key_hex()));
  ASSERT_EQ(upgrades->ApplyBatches({older[0]}).applied, 1u);
  ASSERT_EQ(upgrades->ApplyBatches({*newer}).rejected, 0u);
  const std::vector<std::string> upgraded = ExportAll(*upgrades, dir.Sub("upgrades.bundle"));
  ASSERT_EQ(upgraded.size(), 1u);
  EXPECT_TRUE(upgraded[0] == *newer) << upgraded[0].size() << " bytes, not " << newer->size();
  EXPECT_EQ(MustDigest(upgrades->document(kDoc)), MustDigest(keeps->document(kDoc)));
}


// Random multi-author histories with everything that reshapes logs: local
// commits, full and only-missing bundle exchanges (relays included),
// manual compactions on top of auto-compaction, and cuts of an author's
// own range (what a sync sends). Honest authors never equivocate, so no
// replica may record an equivocation, and once everyone has everything,
// every replica (and fresh ones importing the compacted logs in any order)
// holds the same state. EDGESYNC_COMPACTION_CASES sets the count (12).
std::string RandomJson(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0:
      return absl::StrCat(static_cast<int>(rng() % 100));
    case 1:
      return absl::StrCat("\"s", rng() % 7, "\"");
    case 2:
      return R"({"x":1,"y":{"z":"deep"}})";
    case 3:
      return "[1,2,\"three\"]";
    case 4:
      return "null";
    default:
      return absl::StrCat("{\"k", rng() % 3, "\":", rng() % 5, "}");
  }
}

std::string RandomApiPath(std::mt19937_64& rng) {
  static const char* const kPaths[] = {"/a", "/b", "/c", "/c/x", "/c/y", "/d/e/f", "/s", "/n"};
  return kPaths[rng() % 8];
}

absl::Status RandomApiMutation(std::mt19937_64& rng, Transaction& t) {
  const std::string p = RandomApiPath(rng);
  switch (rng() % 7) {
    case 0:
    case 1:
      return t.Put(p, RandomJson(rng));
    case 2:
      return t.Delete(p);
    case 3:
      return t.CounterAdd(p, static_cast<int64_t>(rng() % 9) - 3);
    case 4:
      return t.SetAdd(p, absl::StrCat(rng() % 4));
    case 5:
      return t.SetRemove(p, absl::StrCat(rng() % 4));
    default:
      return rng() % 10 == 0 ? t.Delete("") : t.Put(p, RandomJson(rng));
  }
}

TEST(CompactionRandomTest, HistoriesWithCompactionsRelaysAndCutsConverge) {
  const uint64_t base_seed = TestSeed();
  const uint64_t cases = EnvCount("EDGESYNC_COMPACTION_CASES", 12);
  for (uint64_t c = 0; c < cases; ++c) {
    const uint64_t seed = base_seed + c;
    const std::string where = absl::StrCat("case ", c, " (EDGESYNC_SEED=", base_seed, ")");
    std::mt19937_64 rng(seed);
    ScratchDir dir;
    FakeClock clock(1'700'000'000'000);
    ReplicaOptions options;
    options.clock = &clock;
    options.durability = Durability::kFast;
    std::vector<std::unique_ptr<Replica>> rs;
    for (int i = 0; i < 3; ++i) {
      options.auto_compact = rng() % 4 != 0;
      rs.push_back(MustOpen(dir.Sub(absl::StrCat("r", i)), options));
    }
    options.auto_compact = true;
    for (auto& r : rs) {
      for (auto& other : rs) ES_ASSERT_OK(r->Trust(other->public_key_hex()));
    }
    int file_n = 0;
    auto next_file = [&] { return dir.Sub(absl::StrCat("f", file_n++, ".bundle")); };
    auto ship = [&](Replica& from, Replica& to, bool only_missing) {
      BundleExportOptions eo;
      if (only_missing) {
        eo.only_missing = true;
        absl::StatusOr<VersionVectors> vv = to.GetVersionVectors();
        ASSERT_TRUE(vv.ok());
        eo.since = *vv;
      }
      const std::string f = next_file();
      ASSERT_TRUE(from.ExportBundle(f, eo).ok());
      absl::StatusOr<BundleReport> in = to.ImportBundle(f);
      ASSERT_TRUE(in.ok()) << where << ": " << in.status();
      ASSERT_EQ(in->batches.rejected, 0u) << where << ": " << in->batches.reasons[0];
      ASSERT_EQ(in->batches.equivocations, 0u) << where << ": honest authors equivocated";
    };
    const int steps = 60 + static_cast<int>(rng() % 80);
    for (int step = 0; step < steps; ++step) {
      clock.Advance(rng() % 3);
      Replica& r = *rs[rng() % 3];
      Replica& s = *rs[rng() % 3];
      const uint64_t action = rng() % 100;
      if (action < 55) {
        Transaction t = r.document(kDoc).Begin();
        for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
          ES_ASSERT_OK(RandomApiMutation(rng, t));
        }
        absl::StatusOr<CommitInfo> info = t.Commit();
        ASSERT_TRUE(info.ok()) << where << ": " << info.status();
      } else if (action < 80) {
        if (&r != &s) ship(s, r, rng() % 2 == 0);
      } else if (action < 90) {
        ES_ASSERT_OK(r.document(kDoc).Compact());
      } else if (&r != &s) {
        // A cut of s's own range, as a sync would send it, to r.
        absl::StatusOr<VersionVectors> vv = s.GetVersionVectors();
        ASSERT_TRUE(vv.ok());
        const SeqRanges& own = (*vv)[kDoc][s.public_key_hex()];
        if (own.empty()) continue;
        const uint64_t max = own.back().second;
        const uint64_t first = 1 + rng() % max;
        const uint64_t last = first + rng() % (max - first + 1);
        absl::StatusOr<std::string> cut = s.core().CutOwnRange(kDoc, first, last);
        ASSERT_TRUE(cut.ok()) << where << ": cut " << first << ".." << last << ": " << cut.status();
        ApplyReport rep = r.ApplyBatches({*cut});
        ASSERT_EQ(rep.rejected, 0u) << where << ": cut " << first << ".." << last << ": " << rep.reasons[0];
        ASSERT_EQ(rep.equivocations, 0u) << where << ": cut " << first << ".." << last;
      }
      if (HasFatalFailure()) return;
    }
    // Everyone gets everything (two rounds: relayed batches travel on).
    for (int round = 0; round < 2; ++round) {
      for (auto& to : rs) {
        for (auto& from : rs) {
          if (to != from) ship(*from, *to, round == 0);
        }
      }
      if (HasFatalFailure()) return;
    }
    const std::string digest = MustDigest(rs[0]->document(kDoc));
    const std::string json = MustGet(rs[0]->document(kDoc));
    for (auto& r : rs) {
      ASSERT_EQ(MustDigest(r->document(kDoc)), digest) << where;
      ASSERT_EQ(MustGet(r->document(kDoc)), json) << where;
      ASSERT_EQ(StoredEquivocations(*r, kDoc), 0u) << where;
    }
    // Compacted logs into fresh replicas, in a random order.
    std::vector<std::string> bundles;
    for (auto& r : rs) {
      ES_ASSERT_OK(r->document(kDoc).Compact());
      ASSERT_EQ(MustDigest(r->document(kDoc)), digest) << where << ": Compact changed the state";
      bundles.push_back(next_file());
      ASSERT_TRUE(r->ExportBundle(bundles.back()).ok());
    }
    for (int f = 0; f < 2; ++f) {
      std::shuffle(bundles.begin(), bundles.end(), rng);
      auto fresh = MustOpen(dir.Sub(absl::StrCat("fresh", f)), options);
      for (auto& r : rs) ES_ASSERT_OK(fresh->Trust(r->public_key_hex()));
      // Only the first bundle: that replica relays everyone's batches.
      absl::StatusOr<BundleReport> in = fresh->ImportBundle(bundles[0]);
      ASSERT_TRUE(in.ok()) << in.status();
      ASSERT_EQ(in->batches.rejected, 0u) << where;
      ASSERT_EQ(MustDigest(fresh->document(kDoc)), digest) << where << ": relayed compacted logs";
      for (size_t b = 1; b < bundles.size(); ++b) ASSERT_TRUE(fresh->ImportBundle(bundles[b]).ok());
      ASSERT_EQ(MustDigest(fresh->document(kDoc)), digest) << where;
      ASSERT_EQ(StoredEquivocations(*fresh, kDoc), 0u) << where;
    }
  }
}

}  // namespace
}  // namespace edgesync::testing
