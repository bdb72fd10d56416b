// The LMDB map grows past its initial size under the replica: in one
// process, and with a second process writing to the same directory at the
// same time (both processes' writes present, seqs never reused).

#include "lib/store/lmdb_env.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "grow";
constexpr uint64_t kMapInitial = uint64_t{1} << 20;
constexpr size_t kValueBytes = 64u << 10;

ReplicaOptions SmallMap() {
  ReplicaOptions o;
  o.map_bytes_initial = kMapInitial;
  return o;
}

void WriteValues(Replica& r, const std::string& prefix, uint64_t count) {
  Document d = r.document(kDoc);
  for (uint64_t i = 0; i < count; ++i) {
    absl::Status s = d.Put(GrowPath(prefix, i), GrowJson(prefix, i, kValueBytes));
    ASSERT_TRUE(s.ok()) << "write " << i << " of " << prefix << ": " << s;
  }
}

void CheckValues(Replica& r, const std::string& prefix, uint64_t count, uint64_t step = 1,
                 uint64_t first = 0) {
  Document d = r.document(kDoc);
  for (uint64_t i = first; i < count; i += step) {
    absl::StatusOr<std::string> v = d.Get(GrowPath(prefix, i));
    ASSERT_TRUE(v.ok()) << prefix << " " << i << ": " << v.status();
    ASSERT_TRUE(*v == GrowJson(prefix, i, kValueBytes)) << prefix << " " << i << " differs";
  }
}

internal::LmdbStats Stats(Replica& r) {
  absl::StatusOr<internal::LmdbStats> s = r.core().store().env().Stats();
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : internal::LmdbStats();
}

// The log replays on a fresh replica: no rejection, no equivocation, the
// same digest, and the author's seqs are one run from 1.
void CheckLogReplays(Replica& r, const ScratchDir& dir, uint64_t min_seqs) {
  absl::StatusOr<VersionVectors> vv = r.GetVersionVectors();
  ASSERT_TRUE(vv.ok()) << vv.status();
  const SeqRanges& own = (*vv)[kDoc][r.public_key_hex()];
  ASSERT_EQ(own.size(), 1u) << "own seqs are not one contiguous run";
  EXPECT_EQ(own[0].first, 1u);
  EXPECT_GE(own[0].second, min_seqs);
  EXPECT_EQ(StoredEquivocations(r, kDoc), 0u);
  auto fresh = MustOpen(dir.Sub("fresh"), SmallMap());
  ES_ASSERT_OK(fresh->Trust(r.public_key_hex()));
  ASSERT_TRUE(r.ExportBundle(dir.Sub("log.bundle")).ok());
  absl::StatusOr<BundleReport> in = fresh->ImportBundle(dir.Sub("log.bundle"));
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->batches.rejected, 0u) << (in->batches.reasons.empty() ? "" : in->batches.reasons[0]);
  EXPECT_EQ(in->batches.equivocations, 0u);
  EXPECT_EQ(in->batches.held, 0u);
  EXPECT_EQ(WaitingBatches(*fresh), 0u);
  EXPECT_EQ(StoredEquivocations(*fresh, kDoc), 0u);
  EXPECT_EQ(MustDigest(fresh->document(kDoc)), MustDigest(r.document(kDoc)));
}

TEST(MapGrowthTest, OneProcessWritesFarPastTheInitialMap) {
  ScratchDir dir;
  constexpr uint64_t kCount = 512;  // 32 MiB of values
  std::string digest;
  {
    auto r = MustOpen(dir.Sub("r"), SmallMap());
    EXPECT_EQ(Stats(*r).map_bytes, kMapInitial);
    WriteValues(*r, "solo", kCount);
    if (HasFatalFailure()) return;
    const internal::LmdbStats st = Stats(*r);
    EXPECT_GE(st.map_grow_count, 5u);
    EXPECT_GE(st.map_bytes, uint64_t{32} << 20);
    EXPECT_GE(st.used_bytes, uint64_t{30} << 20);
    CheckValues(*r, "solo", kCount);
    digest = MustDigest(r->document(kDoc));
    CheckLogReplays(*r, dir, kCount);
  }
  // Reopened with the same small initial size: the store's size wins.
  auto again = MustOpen(dir.Sub("r"), SmallMap());
  EXPECT_GE(Stats(*again).map_bytes, uint64_t{32} << 20);
  EXPECT_EQ(MustDigest(again->document(kDoc)), digest);
  CheckValues(*again, "solo", kCount, 7);
  ES_EXPECT_OK(again->document(kDoc).Put("/after", "1"));
}

TEST(MapGrowthTest, TwoProcessesGrowTheSameReplica) {
  ScratchDir dir;
  constexpr uint64_t kEach = 256;  // 16 MiB of values from each process
  const std::string replica_dir = dir.Sub("r");
  // Create the replica (and its identity) first so both processes open the
  // same one.
  { auto r = MustOpen(replica_dir, SmallMap()); }
  Child other;
  ES_ASSERT_OK(other.Start({SiblingProgram("replica_writer"), "grow", replica_dir, "theirs",
                            absl::StrCat(kEach), absl::StrCat(kValueBytes), absl::StrCat(kMapInitial)},
                           /*capture_stdout=*/true));
  auto r = MustOpen(replica_dir, SmallMap());
  // Start writing once the other process has committed, so the two overlap.
  ES_ASSERT_OK(other.WaitForLine("ready", std::chrono::minutes(2)));
  WriteValues(*r, "mine", kEach);
  if (HasFatalFailure()) return;
  absl::StatusOr<int> status = other.Wait(std::chrono::minutes(10));
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << DescribeExit(*status);

  const internal::LmdbStats st = Stats(*r);
  EXPECT_GE(st.map_grow_count + st.map_adopt_count, 1u);
  CheckValues(*r, "mine", kEach);
  CheckValues(*r, "theirs", kEach);
  CheckLogReplays(*r, dir, 2 * kEach);
}


// At map_bytes_max a commit that does not fit fails with kResourceExhausted
// and changes nothing; the replica stays usable, and once reopened with a
// larger cap its seqs continue without a gap or reuse.
TEST(MapGrowthTest, CommitPastTheCapFailsCleanly) {
  ScratchDir dir;
  ReplicaOptions capped = SmallMap();
  capped.map_bytes_max = uint64_t{4} << 20;
  uint64_t written = 0;
  std::string digest;
  {
    auto r = MustOpen(dir.Sub("r"), capped);
    Document d = r->document(kDoc);
    absl::Status s;
    for (; written < 200; ++written) {
      digest = MustDigest(d);
      s = d.Put(GrowPath("capped", written), GrowJson("capped", written, kValueBytes));
      if (!s.ok()) break;
    }
    ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    ASSERT_GT(written, 4u);
    EXPECT_EQ(MustDigest(d), digest) << "a failed commit changed the state";
    CheckValues(*r, "capped", written);
    EXPECT_EQ(d.Get(GrowPath("capped", written)).status().code(), absl::StatusCode::kNotFound);
    // Reads still work, and so does a write that fits or frees space.
    EXPECT_LE(Stats(*r).map_bytes, capped.map_bytes_max);
    ES_EXPECT_OK(d.Delete(GrowPath("capped", 0)));
  }
  ReplicaOptions bigger = SmallMap();
  auto r = MustOpen(dir.Sub("r"), bigger);
  Document d = r->document(kDoc);
  for (uint64_t i = written; i < written + 8; ++i) {
    ES_ASSERT_OK(d.Put(GrowPath("capped", i), GrowJson("capped", i, kValueBytes)));
  }
  CheckValues(*r, "capped", written + 8, 1, /*first=*/1);  // 0 was deleted
  EXPECT_EQ(d.Get(GrowPath("capped", 0)).status().code(), absl::StatusCode::kNotFound);
  if (HasFatalFailure()) return;
  CheckLogReplays(*r, dir, written + 8);
}

}  // namespace
}  // namespace edgesync::testing
