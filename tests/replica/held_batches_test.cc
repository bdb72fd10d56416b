// Batches timestamped beyond future_skew_max_ms of the receiver's clock are
// held, not applied, and applied once the clock catches up (on the next
// ApplyBatches, even of nothing, or the next bundle import), also across a
// reopen.

#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "d";
constexpr uint64_t kMinute = 60 * 1000;

class HeldBatchesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    author_ = MustOpen(dir_.Sub("author"));  // the system clock
    Document d = author_->document(kDoc);
    ES_ASSERT_OK(d.Put("/t", "21.5"));
    ES_ASSERT_OK(d.CounterAdd("/n", 2));
    batches_ = ExportAll(*author_, dir_.Sub("author.bundle"));
    ASSERT_FALSE(batches_.empty());
    author_digest_ = MustDigest(d);
    // The receiver's clock is 10 minutes behind the author's: its batches
    // are beyond the default 5-minute window.
    clock_.Set(SystemMillis() - 10 * kMinute);
  }

  std::unique_ptr<Replica> Receiver(const std::string& name) {
    ReplicaOptions o;
    o.clock = &clock_;
    std::unique_ptr<Replica> r = MustOpen(dir_.Sub(name), o);
    EXPECT_TRUE(r->Trust(author_->public_key_hex()).ok());
    return r;
  }

  ScratchDir dir_;
  FakeClock clock_{0};
  std::unique_ptr<Replica> author_;
  std::vector<std::string> batches_;
  std::string author_digest_;
};

TEST_F(HeldBatchesTest, HeldUntilTheClockCatchesUp) {
  auto r = Receiver("r");
  const std::string empty = MustDigest(r->document(kDoc));
  ApplyReport rep = r->ApplyBatches(batches_);
  EXPECT_EQ(rep.held, batches_.size());
  EXPECT_EQ(rep.applied, 0u);
  EXPECT_EQ(rep.rejected, 0u);
  EXPECT_EQ(r->stats().batches_held, batches_.size());
  EXPECT_EQ(MustDigest(r->document(kDoc)), empty);
  EXPECT_EQ(MustGet(r->document(kDoc)), "{}");
  EXPECT_TRUE(MustIds(*r).empty());

  // A local write meanwhile takes its time from the local clock, not from
  // the held batch's future time.
  ES_ASSERT_OK(r->document("local").Put("/x", "1"));
  std::vector<std::string> own = ExportAll(*r, dir_.Sub("r.bundle"));
  ASSERT_EQ(own.size(), 1u) << "held batches are not in the log";
  EXPECT_LE(crdt::HlcMillis(transport::OpenBatch(own[0])->header.hlc), clock_.NowMillis() + 1000);

  // Four minutes later: still six minutes ahead, still held.
  clock_.Advance(4 * kMinute);
  ApplyReport nothing = r->ApplyBatches({});
  EXPECT_EQ(nothing.applied + nothing.held + nothing.rejected, 0u);
  EXPECT_EQ(MustDigest(r->document(kDoc)), empty);

  // Two more: four minutes ahead, inside the window: applied.
  clock_.Advance(2 * kMinute);
  r->ApplyBatches({});
  EXPECT_EQ(MustDigest(r->document(kDoc)), author_digest_);
  EXPECT_EQ(MustGet(r->document(kDoc)), R"({"n":2,"t":21.5})");
  EXPECT_EQ(r->stats().batches_applied, batches_.size());
  // Released once: the same batches again are duplicates.
  ApplyReport again = r->ApplyBatches(batches_);
  EXPECT_EQ(again.duplicate, batches_.size());
  EXPECT_EQ(again.held, 0u);
}

TEST_F(HeldBatchesTest, BundleImportHoldsAndALaterImportReleases) {
  auto r = Receiver("r");
  const std::string empty = MustDigest(r->document(kDoc));
  absl::StatusOr<BundleReport> in = r->ImportBundle(dir_.Sub("author.bundle"));
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->batches.held, batches_.size());
  EXPECT_EQ(in->batches.applied, 0u);
  EXPECT_EQ(MustDigest(r->document(kDoc)), empty);
  // A second copy of the same future batch is held again or recognised;
  // either way it is applied once.
  ASSERT_TRUE(r->ImportBundle(dir_.Sub("author.bundle")).ok());
  EXPECT_EQ(MustDigest(r->document(kDoc)), empty);

  // Another author's current batch arrives in a bundle after the clock
  // caught up: the import applies it and releases the held ones.
  clock_.Set(SystemMillis());
  ReplicaOptions o;
  o.clock = &clock_;
  auto other = MustOpen(dir_.Sub("other"), o);
  ES_ASSERT_OK(r->Trust(other->public_key_hex()));
  ES_ASSERT_OK(other->document("other-doc").Put("/y", "true"));
  ASSERT_TRUE(other->ExportBundle(dir_.Sub("other.bundle")).ok());
  absl::StatusOr<BundleReport> in2 = r->ImportBundle(dir_.Sub("other.bundle"));
  ASSERT_TRUE(in2.ok()) << in2.status();
  EXPECT_EQ(in2->batches.applied, 1u);
  EXPECT_EQ(MustDigest(r->document(kDoc)), author_digest_);
  EXPECT_EQ(MustGet(r->document("other-doc"), "/y"), "true");
  EXPECT_EQ(MustIds(*r), (std::vector<std::string>{kDoc, "other-doc"}));
}

TEST_F(HeldBatchesTest, HeldBatchesSurviveAReopen) {
  {
    auto r = Receiver("r");
    ApplyReport rep = r->ApplyBatches(batches_);
    ASSERT_EQ(rep.held, batches_.size());
  }
  clock_.Set(SystemMillis());
  auto r = Receiver("r");
  r->ApplyBatches({});
  EXPECT_EQ(MustDigest(r->document(kDoc)), author_digest_);
}

TEST_F(HeldBatchesTest, UntrustedFutureBatchIsRejectedNotHeld) {
  ReplicaOptions o;
  o.clock = &clock_;
  auto r = MustOpen(dir_.Sub("r"), o);  // does not trust the author
  ApplyReport rep = r->ApplyBatches(batches_);
  EXPECT_EQ(rep.rejected, batches_.size());
  EXPECT_EQ(rep.held, 0u);
  clock_.Set(SystemMillis());
  ES_ASSERT_OK(r->Trust(author_->public_key_hex()));
  r->ApplyBatches({});
  EXPECT_EQ(MustGet(r->document(kDoc)), "{}") << "a rejected batch must not have been kept";
}

TEST_F(HeldBatchesTest, AWiderWindowAppliesAtOnce) {
  ReplicaOptions o;
  o.clock = &clock_;
  o.future_skew_max_ms = 15 * kMinute;
  auto r = MustOpen(dir_.Sub("r"), o);
  ES_ASSERT_OK(r->Trust(author_->public_key_hex()));
  ApplyReport rep = r->ApplyBatches(batches_);
  EXPECT_EQ(rep.applied, batches_.size());
  EXPECT_EQ(rep.held, 0u);
  EXPECT_EQ(MustDigest(r->document(kDoc)), author_digest_);
}

// The other side of clocks: a replica whose wall clock jumps back (also
// across a reopen) still stamps every new batch later than the last one.
TEST(ClockTest, LocalTimesGrowWhenTheWallClockGoesBack) {
  ScratchDir dir;
  FakeClock clock(SystemMillis());
  ReplicaOptions o;
  o.clock = &clock;
  o.auto_compact = false;
  uint64_t last_hlc = 0;
  auto own_times = [&](Replica& r) {
    // Bundles hold batches in no particular order: sort by seq.
    std::map<uint64_t, uint64_t> by_seq;
    for (const std::string& b : ExportAll(r, dir.Sub("r.bundle"))) {
      const transport::BatchHeader h = transport::OpenBatch(b)->header;
      by_seq[h.seq_first] = h.hlc;
    }
    std::vector<uint64_t> times;
    for (const auto& entry : by_seq) times.push_back(entry.second);
    return times;
  };
  {
    auto r = MustOpen(dir.Sub("r"), o);
    ES_ASSERT_OK(r->document(kDoc).Put("/x", "1"));
    clock.Set(clock.NowMillis() - 60 * kMinute);
    ES_ASSERT_OK(r->document(kDoc).Put("/x", "2"));
    std::vector<uint64_t> t = own_times(*r);
    ASSERT_EQ(t.size(), 2u);
    EXPECT_LT(t[0], t[1]);
    last_hlc = t[1];
  }
  clock.Set(clock.NowMillis() - 60 * kMinute);
  auto r = MustOpen(dir.Sub("r"), o);
  ES_ASSERT_OK(r->document(kDoc).Put("/x", "3"));
  std::vector<uint64_t> t = own_times(*r);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_LT(last_hlc, t[2]) << "a time was reused or went back after a reopen";
  EXPECT_EQ(MustGet(r->document(kDoc), "/x"), "3");
}

}  // namespace
}  // namespace edgesync::testing
