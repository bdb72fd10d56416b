#include "transport/partial_transfers.h"

#include <gtest/gtest.h>

#include <string>

namespace edgesync::transport {
namespace {

constexpr uint64_t kLimit = 1u << 20;

std::string Batch(size_t n, char fill) { return std::string(n, fill); }

TEST(PartialTransfersTest, ReassemblesChunksAndChecksTheId) {
  PartialTransfers partials(4, kLimit);
  const uint64_t owner = partials.NewOwner();
  const std::string batch = Batch(100, 'a');
  const std::string id = TransferId(batch);
  absl::StatusOr<std::string> r = partials.Append(owner, id, batch.size(), 0, batch.substr(0, 60));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->empty());
  r = partials.Append(owner, id, batch.size(), 60, batch.substr(60));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, batch);

  const std::string other = Batch(10, 'b');
  r = partials.Append(owner, id, other.size(), 0, other);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PartialTransfersTest, TwoSessionsReceivingOneBatchDoNotDisturbEachOther) {
  PartialTransfers partials(4, kLimit);
  const uint64_t a = partials.NewOwner();
  const uint64_t b = partials.NewOwner();
  const std::string batch = Batch(90, 'c');
  const std::string id = TransferId(batch);
  ASSERT_TRUE(partials.Append(a, id, 90, 0, batch.substr(0, 30)).ok());
  ASSERT_TRUE(partials.Append(b, id, 90, 0, batch.substr(0, 30)).ok());
  ASSERT_TRUE(partials.Append(a, id, 90, 30, batch.substr(30, 30)).ok());
  absl::StatusOr<std::string> done_a = partials.Append(a, id, 90, 60, batch.substr(60));
  ASSERT_TRUE(done_a.ok()) << done_a.status();
  EXPECT_EQ(*done_a, batch);
  // b continues its own copy although a finished (and dropped) the batch.
  ASSERT_TRUE(partials.Append(b, id, 90, 30, batch.substr(30, 30)).ok());
  absl::StatusOr<std::string> done_b = partials.Append(b, id, 90, 60, batch.substr(60));
  ASSERT_TRUE(done_b.ok()) << done_b.status();
  EXPECT_EQ(*done_b, batch);
}

TEST(PartialTransfersTest, AParkedPrefixIsResumedByALaterSession) {
  PartialTransfers partials(4, kLimit);
  const std::string batch = Batch(80, 'd');
  const std::string id = TransferId(batch);
  const uint64_t first = partials.NewOwner();
  ASSERT_TRUE(partials.Append(first, id, 80, 0, batch.substr(0, 50)).ok());
  EXPECT_TRUE(partials.Announce(999, 10).empty()) << "an owned transfer is not announced";
  partials.Park(first);
  ASSERT_EQ(partials.Announce(999, 10).size(), 1u);
  EXPECT_EQ(partials.Announce(999, 10)[0].bytes, 50u);

  const uint64_t second = partials.NewOwner();
  EXPECT_EQ(partials.Append(second, id, 80, 60, batch.substr(60)).status().code(),
            absl::StatusCode::kInvalidArgument)
      << "an offset past the parked bytes continues nothing";
  absl::StatusOr<std::string> done = partials.Append(second, id, 80, 50, batch.substr(50));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(*done, batch);
  EXPECT_TRUE(partials.Announce(999, 10).empty()) << "the completed batch's parked prefix is dropped";
}

TEST(PartialTransfersTest, ParkedTransfersAreBoundedInCount) {
  PartialTransfers partials(2, kLimit);
  for (char c = 'e'; c < 'j'; ++c) {
    const std::string batch = Batch(40, c);
    const uint64_t owner = partials.NewOwner();
    ASSERT_TRUE(partials.Append(owner, TransferId(batch), 40, 0, batch.substr(0, 20)).ok());
    partials.Park(owner);
  }
  std::vector<PartialTransfers::Held> held = partials.Announce(999, 10);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].id, TransferId(Batch(40, 'i'))) << "most recent first, oldest dropped";
  EXPECT_EQ(held[1].id, TransferId(Batch(40, 'h')));
}

TEST(PartialTransfersTest, BatchesBeingReceivedAreBoundedInBytes) {
  PartialTransfers partials(4, 100);
  const std::string big = Batch(70, 'k');
  const std::string second = Batch(70, 'l');
  EXPECT_EQ(partials.Append(partials.NewOwner(), TransferId(Batch(101, 'm')), 101, 0, "x")
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(partials.Append(partials.NewOwner(), TransferId(big), 70, 0, big.substr(0, 10)).ok());
  absl::StatusOr<std::string> r =
      partials.Append(partials.NewOwner(), TransferId(second), 70, 0, second.substr(0, 10));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
}

TEST(PartialTransfersTest, ASessionThatStartsAnotherBatchParksTheFirst) {
  PartialTransfers partials(4, kLimit);
  const uint64_t owner = partials.NewOwner();
  const std::string one = Batch(60, 'n');
  const std::string two = Batch(60, 'o');
  ASSERT_TRUE(partials.Append(owner, TransferId(one), 60, 0, one.substr(0, 30)).ok());
  ASSERT_TRUE(partials.Append(owner, TransferId(two), 60, 0, two.substr(0, 30)).ok());
  std::vector<PartialTransfers::Held> held = partials.Announce(999, 10);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].id, TransferId(one));
}

TEST(PartialTransfersTest, AnAnnouncedPrefixStaysResumableUntilTheSessionEnds) {
  PartialTransfers partials(1, kLimit);
  const std::string batch = Batch(90, 'p');
  const std::string id = TransferId(batch);
  const uint64_t first = partials.NewOwner();
  ASSERT_TRUE(partials.Append(first, id, 90, 0, batch.substr(0, 30)).ok());
  partials.Park(first);

  // Two sessions announce the 30-byte prefix in their hellos.
  const uint64_t a = partials.NewOwner();
  const uint64_t b = partials.NewOwner();
  ASSERT_EQ(partials.Announce(a, 8).size(), 1u);
  ASSERT_EQ(partials.Announce(b, 8).size(), 1u);
  // a resumes and completes the batch; another session parks a longer
  // prefix; other batches are parked past the count limit.
  absl::StatusOr<std::string> done = partials.Append(a, id, 90, 30, batch.substr(30));
  ASSERT_TRUE(done.ok()) << done.status();
  const uint64_t c = partials.NewOwner();
  ASSERT_TRUE(partials.Append(c, id, 90, 0, batch.substr(0, 60)).ok());
  partials.Park(c);
  for (char f = 'q'; f < 't'; ++f) {
    const std::string other = Batch(20, f);
    const uint64_t o = partials.NewOwner();
    ASSERT_TRUE(partials.Append(o, TransferId(other), 20, 0, other.substr(0, 10)).ok());
    partials.Park(o);
  }
  // b's peer resumes at the offset b announced.
  done = partials.Append(b, id, 90, 30, batch.substr(30));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(*done, batch);
  partials.Park(a);
  partials.Park(b);
  for (const PartialTransfers::Held& h : partials.Announce(999, 10)) {
    EXPECT_NE(h.id, id) << "a completed batch is not announced once unpinned";
  }
}

}  // namespace
}  // namespace edgesync::transport
