// Batches timestamped beyond future_skew_max_ms of the receiver's clock are
// applied at once (format 2 holds nothing for time), and never raise the
// receiver's own clock beyond its wall clock plus the skew: one device's
// clock glitch neither hides its data nor spreads to its peers.

#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "d";
constexpr uint64_t kMinute = 60 * 1000;

class FutureBatchesTest : public ::testing::Test {
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

TEST_F(FutureBatchesTest, AppliedAtOnceWithoutRaisingTheLocalClock) {
  auto r = Receiver("r");
  ApplyReport rep = r->ApplyBatches(batches_);
  EXPECT_EQ(rep.applied, batches_.size());
  EXPECT_EQ(rep.held, 0u);
  EXPECT_EQ(rep.rejected, 0u);
  EXPECT_EQ(MustDigest(r->document(kDoc)), author_digest_);
  EXPECT_EQ(MustGet(r->document(kDoc)), R"({"n":2,"t":21.5})");

  // A local write takes its time from the local clock plus at most the
  // skew window, not from the batch's future time.
  ES_ASSERT_OK(r->document("local").Put("/x", "1"));
  std::vector<std::string> all = ExportAll(*r, dir_.Sub("r.bundle"));
  uint64_t local_hlc = 0;
  for (const std::string& b : all) {
    const transport::BatchHeader h = transport::OpenBatch(b)->header;
    if (h.document == "local") local_hlc = h.hlc;
  }
  ASSERT_NE(local_hlc, 0u);
  EXPECT_LE(crdt::HlcMillis(local_hlc), clock_.NowMillis() + 5 * kMinute + 1);
}

TEST_F(FutureBatchesTest, AYearAheadIsAppliedAndOverwrittenByALaterLocalWrite) {
  ForgedAuthor glitch;
  auto r = Receiver("r");
  ES_ASSERT_OK(r->Trust(glitch.hex()));
  const uint64_t year_ahead = crdt::HlcFromMillis(clock_.NowMillis() + 365 * 24 * 60 * kMinute);
  absl::StatusOr<std::string> b = glitch.Commit(kDoc, year_ahead, [](crdt::TransactionBuilder& t) {
    return t.Put(P("/k"), StringTree("future"));
  });
  ASSERT_TRUE(b.ok()) << b.status();
  ApplyReport rep = r->ApplyBatches({*b});
  EXPECT_EQ(rep.applied, 1u);
  EXPECT_EQ(r->stats().batches_beyond_skew, 1u);
  EXPECT_EQ(MustGet(r->document(kDoc), "/k"), "\"future\"");
  // The receiver observed the value: its own later write replaces it by
  // dots, whatever the times say.
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "\"now\""));
  EXPECT_EQ(MustGet(r->document(kDoc), "/k"), "\"now\"");
}

TEST_F(FutureBatchesTest, AFormat1StoreWithHeldBatchesIsMigratedWithNothingLost) {
  const std::string dir = dir_.Sub("legacy");
  {
    auto r = Receiver("legacy");
    // Make it look like a format-1 store holding the author's batches for
    // time: the batches in `held`, format 1.
    ES_ASSERT_OK(r->core().store().Write([&](internal::StoreTxn& txn) -> absl::Status {
      for (size_t i = 0; i < batches_.size(); ++i) {
        std::string key(8, '\0');
        key[7] = static_cast<char>(i);
        key += "legacy!!";
        if (absl::Status s = txn.write().Put(txn.dbs().held, key, batches_[i]); !s.ok()) return s;
      }
      return txn.SetFormatVersion(1);
    }));
    EXPECT_EQ(MustGet(r->document(kDoc)), "{}");
  }
  auto r = Receiver("legacy");
  EXPECT_EQ(MustDigest(r->document(kDoc)), author_digest_);
  ES_ASSERT_OK(r->core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint32_t> v = txn.FormatVersion();
    if (!v.ok()) return v.status();
    EXPECT_EQ(*v, internal::kStoreFormatVersion);
    absl::StatusOr<uint64_t> n = txn.read().CountEntries(txn.dbs().held);
    if (!n.ok()) return n.status();
    EXPECT_EQ(*n, 0u);
    return absl::OkStatus();
  }));
}

TEST_F(FutureBatchesTest, UntrustedFutureBatchIsRejected) {
  ReplicaOptions o;
  o.clock = &clock_;
  auto r = MustOpen(dir_.Sub("r"), o);  // does not trust the author
  ApplyReport rep = r->ApplyBatches(batches_);
  EXPECT_EQ(rep.rejected, batches_.size());
  EXPECT_EQ(rep.held, 0u);
  EXPECT_NE(rep.reasons[0].find(author_->public_key_hex()), std::string::npos)
      << "the full key, to paste into `edgesync trust`: " << rep.reasons[0];
  ES_ASSERT_OK(r->Trust(author_->public_key_hex()));
  EXPECT_EQ(MustGet(r->document(kDoc)), "{}") << "a rejected batch must not have been kept";
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
