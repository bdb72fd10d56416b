// A store copied elsewhere (`cp -a`, a restored VM image or SD card copy)
// must not write with its original's key: its new batches would reissue
// seqs the original issues with other content, which sync cannot repair
// (issue 10 section 3). The copy still receives and relays; `mv` is fine.

#include <filesystem>

#include <gmock/gmock.h>

#include "edgesync/session.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "d";

void CopyTree(const std::string& from, const std::string& to) {
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

class CopiedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = MustOpen(original_);
    ES_ASSERT_OK(r->document(kDoc).Put("/a", "1"));
  }

  ScratchDir dir_;
  const std::string original_ = dir_.Sub("a");
};

TEST_F(CopiedStoreTest, ACopyRefusesToCommitAndTheOriginalKeepsWriting) {
  const std::string copy = dir_.Sub("a2");
  CopyTree(original_, copy);
  auto c = MustOpen(copy);
  EXPECT_EQ(MustGet(c->document(kDoc)), R"({"a":1})");
  const absl::Status s = c->document(kDoc).Put("/b", "2");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("was copied from elsewhere"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("must not write with the same key"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("edgesync rekey " + copy));
  // Nothing was written, and reopening does not make the copy writable.
  EXPECT_EQ(MustGet(c->document(kDoc)), R"({"a":1})");
  c.reset();
  c = MustOpen(copy);
  EXPECT_EQ(c->document(kDoc).Put("/b", "2").code(), absl::StatusCode::kFailedPrecondition);

  auto o = MustOpen(original_);
  ES_EXPECT_OK(o->document(kDoc).Put("/b", "2"));
  EXPECT_EQ(MustGet(o->document(kDoc)), R"({"a":1,"b":2})");
}

TEST_F(CopiedStoreTest, ACopyStillReceivesAndRelays) {
  const std::string copy = dir_.Sub("a2");
  CopyTree(original_, copy);
  auto c = MustOpen(copy);
  auto writer = MustOpen(dir_.Sub("writer"));
  auto reader = MustOpen(dir_.Sub("reader"));
  ES_ASSERT_OK(c->Trust(writer->public_key_hex()));
  ES_ASSERT_OK(reader->Trust(writer->public_key_hex()));
  ES_ASSERT_OK(reader->Trust(c->public_key_hex()));
  ES_ASSERT_OK(writer->document(kDoc).Put("/w", "3"));

  ApplyReport rep = c->ApplyBatches(ExportAll(*writer, dir_.Sub("writer.bundle")));
  EXPECT_EQ(rep.applied, 1u);
  EXPECT_EQ(rep.rejected, 0u);
  absl::StatusOr<LocalSyncResult> synced = SyncLocal(*c, *reader);
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_TRUE(synced->synced);
  EXPECT_EQ(MustGet(reader->document(kDoc)), R"({"a":1,"w":3})");
}

TEST_F(CopiedStoreTest, AMovedStoreKeepsWriting) {
  const std::string moved = dir_.Sub("moved");
  std::filesystem::rename(original_, moved);
  auto r = MustOpen(moved);
  ES_EXPECT_OK(r->document(kDoc).Put("/b", "2"));
}

TEST_F(CopiedStoreTest, AStoreWithoutARecordedLocationRecordsItWithoutComplaint) {
  // A store from before locations were recorded: no "location" meta key.
  {
    auto r = MustOpen(original_);
    ES_ASSERT_OK(r->core().store().Write([](internal::StoreTxn& txn) -> absl::Status {
      absl::StatusOr<bool> erased = txn.write().Del(txn.dbs().meta, "location");
      if (!erased.ok()) return erased.status();
      EXPECT_TRUE(*erased);
      return absl::OkStatus();
    }));
  }
  const std::string copy = dir_.Sub("a2");
  CopyTree(original_, copy);
  // Wherever it is first opened is where it lives from then on.
  auto c = MustOpen(copy);
  ES_EXPECT_OK(c->document(kDoc).Put("/b", "2"));
  c.reset();
  CopyTree(copy, dir_.Sub("a3"));
  auto c3 = MustOpen(dir_.Sub("a3"));
  EXPECT_EQ(c3->document(kDoc).Put("/c", "3").code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace edgesync::testing
