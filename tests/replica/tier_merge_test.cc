// Tier merges on the merge thread (ReplicaOptions::compact_in_background):
// a commit completes while a large merge is held half-way (a hook stops the
// merge thread after it computed the merged batch, before it installs it);
// a merge whose sources changed meanwhile is not installed; and with
// compact_in_background off, the merge happens inside the commit. No
// timing: the hook holds the merge until the test lets it go.

#include <future>

#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "doc";

// A replica in `dir` whose own log of kDoc holds two batches of ~40 KiB of
// incompressible values each (written with auto_compact off, so they did
// not merge), reopened with `options` (auto_compact on): the next commit
// makes their merge due, too large for a commit to make itself.
std::unique_ptr<Replica> WithTwoLargeTiers(const std::string& dir, ReplicaOptions options) {
  ReplicaOptions setup;
  setup.auto_compact = false;
  {
    auto r = MustOpen(dir, setup);
    std::mt19937_64 rng(5);
    for (const char* prefix : {"/a", "/b"}) {
      Transaction t = r->document(kDoc).Begin();
      for (int k = 0; k < 40; ++k) {
        std::string v = "\"";
        for (int c = 0; c < 1024; ++c) v.push_back(static_cast<char>('a' + rng() % 26));
        v += "\"";
        EXPECT_TRUE(t.Put(absl::StrCat(prefix, k), v).ok());
      }
      EXPECT_TRUE(t.Commit().ok());
    }
  }
  options.auto_compact = true;
  return MustOpen(dir, options);
}

// Holds the first background merge at the hook until Release().
class MergeGate {
 public:
  explicit MergeGate(Replica& r) : r_(r), released_(release_.get_future().share()) {
    r.core().SetMergeHook([this](const std::string&) {
      if (calls_++ > 0) return;
      reached_.set_value();
      released_.wait();
    });
  }
  ~MergeGate() { r_.core().SetMergeHook(nullptr); }
  void WaitReached() { reached_.get_future().wait(); }
  void Release() { release_.set_value(); }
  int calls() const { return calls_.load(); }

 private:
  Replica& r_;
  std::promise<void> reached_;
  std::promise<void> release_;
  std::shared_future<void> released_;
  std::atomic<int> calls_{0};
};

TEST(TierMergeTest, CommitsCompleteWhileALargeMergeIsHeld) {
  ScratchDir dir;
  auto r = WithTwoLargeTiers(dir.Sub("r"), ReplicaOptions());
  ASSERT_EQ(CheckedOwnLog(*r, kDoc).size(), 2u);
  MergeGate gate(*r);
  Document d = r->document(kDoc);
  ES_ASSERT_OK(d.Put("/k", "0"));  // makes the merge due
  gate.WaitReached();

  // The merge thread holds its merged batch: commits go on meanwhile.
  for (int i = 1; i <= 20; ++i) ES_ASSERT_OK(d.Put("/k", absl::StrCat(i)));
  EXPECT_EQ(MustGet(d, "/k"), "20");
  std::vector<std::pair<uint64_t, uint64_t>> held = CheckedOwnLog(*r, kDoc);
  ASSERT_GE(held.size(), 3u);
  EXPECT_EQ(held[0], std::make_pair(uint64_t{1}, uint64_t{40}));
  EXPECT_EQ(held[1], std::make_pair(uint64_t{41}, uint64_t{80}));
  const uint64_t compactions_held = r->stats().compactions;

  gate.Release();
  r->WaitForCompaction();
  std::vector<std::pair<uint64_t, uint64_t>> merged = CheckedOwnLog(*r, kDoc);
  ASSERT_FALSE(merged.empty());
  EXPECT_EQ(merged[0].first, 1u);
  EXPECT_GE(merged[0].second, 80u) << "the pair was not merged";
  EXPECT_GT(r->stats().compactions, compactions_held);
  EXPECT_EQ(r->stats().compaction_failures, 0u);

  // The merged log stands for the same state.
  auto fresh = RebuiltFromLogs(*r, dir, "fresh");
  EXPECT_EQ(MustDigest(fresh->document(kDoc)), MustDigest(d));
  EXPECT_EQ(MustGet(fresh->document(kDoc), "/k"), "20");
}

TEST(TierMergeTest, AMergeWhoseSourcesChangedIsNotInstalled) {
  ScratchDir dir;
  auto r = WithTwoLargeTiers(dir.Sub("r"), ReplicaOptions());
  MergeGate gate(*r);
  Document d = r->document(kDoc);
  ES_ASSERT_OK(d.Put("/k", "0"));
  gate.WaitReached();
  // While the merge is held, an explicit compaction replaces its sources.
  ES_ASSERT_OK(d.Compact());
  const std::vector<std::pair<uint64_t, uint64_t>> compacted = CheckedOwnLog(*r, kDoc);
  ASSERT_EQ(compacted.size(), 1u);
  const uint64_t compactions = r->stats().compactions;

  gate.Release();
  r->WaitForCompaction();
  EXPECT_EQ(CheckedOwnLog(*r, kDoc), compacted) << "a merge of replaced batches was installed";
  EXPECT_EQ(r->stats().compactions, compactions);
  EXPECT_EQ(r->stats().compaction_failures, 0u);

  auto fresh = RebuiltFromLogs(*r, dir, "fresh");
  EXPECT_EQ(MustDigest(fresh->document(kDoc)), MustDigest(d));
}

TEST(TierMergeTest, WithoutBackgroundTheCommitMergesItself) {
  ScratchDir dir;
  ReplicaOptions options;
  options.compact_in_background = false;
  auto r = WithTwoLargeTiers(dir.Sub("r"), options);
  MergeGate gate(*r);
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "0"));
  // Merged by the commit, before it returned; the merge thread never ran.
  std::vector<std::pair<uint64_t, uint64_t>> log = CheckedOwnLog(*r, kDoc);
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log[0].first, 1u);
  EXPECT_GE(log[0].second, 80u);
  EXPECT_EQ(gate.calls(), 0);
}

}  // namespace
}  // namespace edgesync::testing
