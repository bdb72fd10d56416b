// A local wall-clock glitch (the wall clock a year ahead for one put, then
// back, the boot clock untouched) must not stamp later writes a year ahead,
// hide them from peers, or hide data written before it (issue 10 section 2).
// The boot clock and boot id are injected, so the wall clock jumps alone.

#include "edgesync/session.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "d";
constexpr uint64_t kMinute = 60 * 1000;
constexpr uint64_t kYear = 365 * 24 * 60 * kMinute;
constexpr uint64_t kSkew = 5 * kMinute;  // the default future_skew_max_ms

// The HLC milliseconds of every batch `r` holds of `doc`, in export order.
std::vector<uint64_t> BatchMillis(Replica& r, const std::string& file, const std::string& doc) {
  std::vector<uint64_t> out;
  for (const std::string& b : ExportAll(r, file)) {
    absl::StatusOr<transport::OpenedBatch> opened = transport::OpenBatch(b);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok() && opened->header.document == doc) {
      out.push_back(crdt::HlcMillis(opened->header.hlc));
    }
  }
  return out;
}

class ClockGlitchTest : public ::testing::Test {
 protected:
  std::unique_ptr<Replica> Open(const std::string& name, FakeClock* clock, FakeBootClock* boot) {
    ReplicaOptions o;
    o.clock = clock;
    o.boot_clock = boot;
    return MustOpen(dir_.Sub(name), o);
  }

  // Puts /before at now, /glitch with the wall clock a year ahead, then,
  // the clock back, /after.
  void WriteAcrossGlitch(Replica& r) {
    ES_ASSERT_OK(r.document(kDoc).Put("/before", "1"));
    clock_.Advance(kYear);
    boot_.Advance(1000);
    ES_ASSERT_OK(r.document(kDoc).Put("/glitch", "2"));
    clock_.Set(now_ + 2000);
    boot_.Advance(1000);
    ES_ASSERT_OK(r.document("other").Put("/after", "3"));
    ES_ASSERT_OK(r.document(kDoc).Put("/after", "3"));
  }

  ScratchDir dir_;
  const uint64_t now_ = SystemMillis();
  FakeClock clock_{now_};
  FakeBootClock boot_;
};

TEST_F(ClockGlitchTest, WritesAfterTheGlitchAreStampedNearRealTime) {
  auto author = Open("author", &clock_, &boot_);
  WriteAcrossGlitch(*author);
  EXPECT_EQ(author->stats().clock_suspect_readings, 1u);
  for (const std::string doc : {"d", "other"}) {
    for (uint64_t ms : BatchMillis(*author, dir_.Sub(doc + ".bundle"), doc)) {
      EXPECT_LE(ms, now_ + 2000 + kSkew) << doc << ": a batch is stamped "
                                         << (ms - now_) / kMinute << " minutes ahead";
    }
  }
}

TEST_F(ClockGlitchTest, APeerSeesTheLaterWritesAtOnceAndTheirTimesWin) {
  auto author = Open("author", &clock_, &boot_);
  WriteAcrossGlitch(*author);
  FakeClock peer_clock(now_ + 3000);
  FakeBootClock peer_boot;
  auto peer = Open("peer", &peer_clock, &peer_boot);
  ES_ASSERT_OK(peer->Trust(author->public_key_hex()));
  // The peer wrote /after concurrently, a little later than the author's
  // clock came back: its write must win (a year-ahead stamp would not).
  peer_clock.Advance(60 * 1000);
  ES_ASSERT_OK(peer->document(kDoc).Put("/after", "\"peer\""));
  ApplyReport rep = peer->ApplyBatches(ExportAll(*author, dir_.Sub("author.bundle")));
  EXPECT_EQ(rep.rejected, 0u);
  EXPECT_EQ(rep.held, 0u);
  EXPECT_EQ(peer->stats().batches_beyond_skew, 0u);
  EXPECT_EQ(MustGet(peer->document("other")), R"({"after":3})");
  EXPECT_EQ(MustGet(peer->document(kDoc), "/after"), "\"peer\"");
  EXPECT_EQ(MustGet(peer->document(kDoc), "/before"), "1");
  EXPECT_EQ(MustGet(peer->document(kDoc), "/glitch"), "2");
}

TEST_F(ClockGlitchTest, DataBeforeTheGlitchStaysVisibleAfterTheAuthorCompacts) {
  auto author = Open("author", &clock_, &boot_);
  WriteAcrossGlitch(*author);
  ES_ASSERT_OK(author->document(kDoc).Compact());
  const std::string want = MustGet(author->document(kDoc));
  EXPECT_EQ(want, R"({"after":3,"before":1,"glitch":2})");

  // A fresh replica with a correct clock, through a bundle...
  FakeClock fresh_clock(now_);
  FakeBootClock fresh_boot;
  auto by_bundle = Open("by_bundle", &fresh_clock, &fresh_boot);
  ES_ASSERT_OK(by_bundle->Trust(author->public_key_hex()));
  ApplyReport rep = by_bundle->ApplyBatches(ExportAll(*author, dir_.Sub("author.bundle")));
  EXPECT_EQ(rep.held, 0u);
  EXPECT_EQ(rep.rejected, 0u);
  EXPECT_EQ(MustGet(by_bundle->document(kDoc)), want);

  // ... and through a sync session.
  auto by_sync = Open("by_sync", &fresh_clock, &fresh_boot);
  ES_ASSERT_OK(by_sync->Trust(author->public_key_hex()));
  absl::StatusOr<LocalSyncResult> synced = SyncLocal(*author, *by_sync);
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_TRUE(synced->synced);
  EXPECT_EQ(MustGet(by_sync->document(kDoc)), want);
}

TEST_F(ClockGlitchTest, ASynchronisedClockIsBelieved) {
  // A device that booted with a stale clock and was stepped forward by NTP:
  // the kernel says the clock is synchronised, so its writes must carry the
  // real (later) time and win the conflicts they should win.
  auto r = Open("r", &clock_, &boot_);
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "1"));
  clock_.Advance(kYear);
  boot_.Advance(1000);
  boot_.SetSynchronized(true);
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "2"));
  EXPECT_EQ(r->stats().clock_suspect_readings, 0u);
  std::vector<uint64_t> ms = BatchMillis(*r, dir_.Sub("r.bundle"), kDoc);
  ASSERT_FALSE(ms.empty());
  EXPECT_GE(*std::max_element(ms.begin(), ms.end()), now_ + kYear);
}

TEST_F(ClockGlitchTest, AfterARebootTheWallClockIsBelieved) {
  auto r = Open("r", &clock_, &boot_);
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "1"));
  // Boot clock readings of two boots cannot be compared: nothing is
  // suspect, whatever the wall clock says.
  clock_.Advance(kYear);
  boot_.Reboot("boot-2");
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "2"));
  EXPECT_EQ(r->stats().clock_suspect_readings, 0u);
}

TEST_F(ClockGlitchTest, TimeThatTheBootClockAccountsForIsBelieved) {
  auto r = Open("r", &clock_, &boot_);
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "1"));
  // A day passes on both clocks (suspend counts in CLOCK_BOOTTIME).
  clock_.Advance(24 * 60 * kMinute);
  boot_.Advance(24 * 60 * kMinute);
  ES_ASSERT_OK(r->document(kDoc).Put("/k", "2"));
  EXPECT_EQ(r->stats().clock_suspect_readings, 0u);
  std::vector<uint64_t> ms = BatchMillis(*r, dir_.Sub("r.bundle"), kDoc);
  ASSERT_FALSE(ms.empty());
  EXPECT_GE(*std::max_element(ms.begin(), ms.end()), now_ + 24 * 60 * kMinute);
}

}  // namespace
}  // namespace edgesync::testing
