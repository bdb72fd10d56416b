// Path front-coding as an amplifier (issue: security, finding 2): a delta
// whose rows each repeat a 16,448-byte path for a few bytes once made
// `edgesync import` abort with std::bad_alloc (4 Mi rows x 16 KiB). Now an
// untrusted author's batch is refused on its header before any decoding,
// and decoding interns paths, so even a trusted author's bomb costs the
// decompressed bytes plus its distinct path bytes.

#include <sys/resource.h>

#include "crdt/size_limits.h"
#include "tests/replica/path_bomb.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

// Peak resident set of this process so far, in bytes.
uint64_t PeakRssBytes() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

TEST(DecodeBombTest, AnUntrustedBombIsRefusedBeforeDecoding) {
  ScratchDir dir;
  auto r = MustOpen(dir.Sub("r"));
  const transport::SigningKey stranger = transport::SigningKey::Generate().value();
  const std::string bomb = PathBomb(stranger, crdt::kDeltaRowsMax);
  EXPECT_LT(bomb.size(), 8000u);
  ES_ASSERT_OK(WriteFile(dir.Sub("bomb.bundle"), MakeBundle({bomb})));
  const uint64_t before = PeakRssBytes();
  absl::StatusOr<BundleReport> rep = r->ImportBundle(dir.Sub("bomb.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.rejected, 1u);
  EXPECT_EQ(r->stats().rejected_untrusted, 1u);
  EXPECT_LT(PeakRssBytes() - before, uint64_t{16} << 20) << "decoded before the trust check";
}

TEST(DecodeBombTest, ATrustedBombCostsItsDistinctBytesNotItsRepetitions) {
  ScratchDir dir;
  auto r = MustOpen(dir.Sub("r"));
  const transport::SigningKey insider = transport::SigningKey::Generate().value();
  ES_ASSERT_OK(r->Trust(insider.public_key().Hex()));
  // 1 Mi rows: 16 GiB of path copies without interning.
  const std::string bomb = PathBomb(insider, uint64_t{1} << 20);
  ES_ASSERT_OK(WriteFile(dir.Sub("bomb.bundle"), MakeBundle({bomb})));
  const uint64_t before = PeakRssBytes();
  absl::StatusOr<BundleReport> rep = r->ImportBundle(dir.Sub("bomb.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.rejected, 1u);
  EXPECT_EQ(rep->batches.applied, 0u);
  const uint64_t grew = PeakRssBytes() - before;
  std::cout << "[ bomb     ] trusted 1 Mi-row path bomb of " << bomb.size()
            << " bytes: peak RSS grew " << (grew >> 20) << " MiB" << std::endl;
  EXPECT_LT(grew, uint64_t{512} << 20);
  EXPECT_TRUE(MustIds(*r).empty());
}

}  // namespace
}  // namespace edgesync::testing
