// A 64 MiB transaction commits as one batch, travels through a bundle and
// applies on another replica with the same digest.

#include <sys/resource.h>

#include "crdt/size_limits.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "big";
constexpr size_t kMiB = size_t{1} << 20;

uint64_t PeakRssMiB() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) / 1024;
}

TEST(LargeTransactionTest, SixtyFourMiBCommitsTravelsAndApplies) {
  ScratchDir dir;
  auto a = MustOpen(dir.Sub("a"));
  auto b = MustOpen(dir.Sub("b"));
  ES_ASSERT_OK(b->Trust(a->public_key_hex()));

  // 48 keys of 1 MiB and one 16 MiB value: 64 MiB of strings in one
  // transaction.
  constexpr size_t kKeys = 48;
  constexpr size_t kBigBytes = 16 * kMiB;
  Transaction t = a->document(kDoc).Begin();
  for (size_t i = 0; i < kKeys; ++i) {
    ES_ASSERT_OK(t.Put(absl::StrCat("/part/", i), absl::StrCat("\"", Filler(i, kMiB), "\"")));
  }
  ES_ASSERT_OK(t.Put("/big", absl::StrCat("\"", Filler(1000, kBigBytes), "\"")));
  ES_ASSERT_OK(t.CounterAdd("/n", 1));
  absl::StatusOr<CommitInfo> info = t.Commit();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_NE(info->seq_first, 0u);
  EXPECT_GT(info->batch_bytes, 40 * kMiB);  // barely compressible values
  std::cout << "[ large    ] batch " << info->batch_bytes / kMiB << " MiB, seqs " << info->seq_first
            << ".." << info->seq_last << std::endl;

  const std::string file = dir.Sub("big.bundle");
  absl::StatusOr<BundleReport> out = a->ExportBundle(file);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->batches.applied, 1u);
  absl::StatusOr<BundleReport> in = b->ImportBundle(file);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->batches.applied, 1u);
  EXPECT_EQ(in->batches.rejected, 0u) << (in->batches.reasons.empty() ? "" : in->batches.reasons[0]);

  Document da = a->document(kDoc);
  Document db = b->document(kDoc);
  EXPECT_EQ(MustDigest(db), MustDigest(da));
  absl::StatusOr<std::string> big = db.Get("/big");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->size(), kBigBytes + 2);
  EXPECT_TRUE(*big == absl::StrCat("\"", Filler(1000, kBigBytes), "\""));
  EXPECT_TRUE(MustGet(db, "/part/17") == absl::StrCat("\"", Filler(17, kMiB), "\""));
  EXPECT_EQ(MustGet(db, "/n"), "1");

  // A second import is a duplicate; overwriting the big value with a small
  // one travels as a small batch and both replicas agree again.
  absl::StatusOr<BundleReport> again = b->ImportBundle(file);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->batches.duplicate, 1u);
  ES_ASSERT_OK(da.Put("/big", "\"small\""));
  BundleExportOptions missing;
  missing.only_missing = true;
  absl::StatusOr<VersionVectors> b_vv = b->GetVersionVectors();
  ASSERT_TRUE(b_vv.ok());
  missing.since = *b_vv;
  absl::StatusOr<BundleReport> delta_out = a->ExportBundle(dir.Sub("delta.bundle"), missing);
  ASSERT_TRUE(delta_out.ok()) << delta_out.status();
  EXPECT_LT(delta_out->bytes, 64u << 10) << "the overwrite travels as a small batch";
  absl::StatusOr<BundleReport> delta_in = b->ImportBundle(dir.Sub("delta.bundle"));
  ASSERT_TRUE(delta_in.ok()) << delta_in.status();
  EXPECT_EQ(MustDigest(db), MustDigest(da));
  EXPECT_EQ(MustGet(db, "/big"), "\"small\"");
  std::cout << "[ large    ] peak RSS " << PeakRssMiB() << " MiB" << std::endl;
}


// One value of exactly the largest size (kValueBytesMax = 64 MiB) commits,
// travels and applies; one byte more is refused up front.
TEST(LargeTransactionTest, OneValueOfTheMaximumSize) {
  ScratchDir dir;
  auto a = MustOpen(dir.Sub("a"));
  auto b = MustOpen(dir.Sub("b"));
  ES_ASSERT_OK(b->Trust(a->public_key_hex()));
  Document da = a->document(kDoc);
  {
    std::string json = absl::StrCat("\"", Filler(7, crdt::kValueBytesMax + 1), "\"");
    Transaction t = da.Begin();
    const absl::Status too_big = t.Put("/v", json);
    EXPECT_TRUE(too_big.code() == absl::StatusCode::kInvalidArgument ||
                too_big.code() == absl::StatusCode::kResourceExhausted)
        << too_big;
  }
  {
    std::string json = absl::StrCat("\"", Filler(7, crdt::kValueBytesMax), "\"");
    ES_ASSERT_OK(da.Put("/v", json));
  }
  const std::string file = dir.Sub("v.bundle");
  ASSERT_TRUE(a->ExportBundle(file).ok());
  absl::StatusOr<BundleReport> in = b->ImportBundle(file);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->batches.applied, 1u) << (in->batches.reasons.empty() ? "" : in->batches.reasons[0]);
  EXPECT_EQ(MustDigest(b->document(kDoc)), MustDigest(da));
  absl::StatusOr<std::string> v = b->document(kDoc).Get("/v");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), crdt::kValueBytesMax + 2);
  std::cout << "[ large    ] peak RSS " << PeakRssMiB() << " MiB" << std::endl;
}

}  // namespace
}  // namespace edgesync::testing
