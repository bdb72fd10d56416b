// Context poisoning (issue: security, finding 1): a batch signed by a
// trusted key whose causal context claims dots of other authors. Claims on
// accepted authors act only once this replica holds batches covering them;
// claims far ahead reject the batch; claims on authors this replica does
// not accept are inert until it accepts them (then the documents holding
// them are joined again, so the state depends only on the batches held and
// the authors accepted). Every attack goes through bundle import.

#include "crdt/size_limits.h"
#include "lib/replica/claims.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "doc1";

// A batch of `author` for seqs [first, last] with no rows whose context
// claims `claims` (plus its own range).
std::string ClaimOnly(const transport::SigningKey& author, uint64_t first, uint64_t last,
                      const std::vector<std::tuple<crdt::AuthorKey, uint64_t, uint64_t>>& claims) {
  crdt::Delta d;
  d.context.Insert(author.public_key(), first, last);
  for (const auto& [who, lo, hi] : claims) d.context.Insert(who, lo, hi);
  transport::BatchHeader h;
  h.document = kDoc;
  h.author = author.public_key();
  h.seq_first = first;
  h.seq_last = last;
  h.hlc = crdt::HlcFromMillis(SystemMillis());
  return transport::SealBatch(h, crdt::EncodeCompact(d), author).value();
}

crdt::AuthorKey KeyOf(Replica& r) { return crdt::AuthorKey::FromHex(r.public_key_hex()).value(); }

class ClaimsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ReplicaOptions o;
    o.clock = &clock_;
    a_ = MustOpen(dir_.Sub("a"), o);
    c_ = MustOpen(dir_.Sub("c"));
    ES_ASSERT_OK(a_->Trust(mallory_.hex()));
    ES_ASSERT_OK(a_->Trust(c_->public_key_hex()));
    ES_ASSERT_OK(a_->document(kDoc).Put("", R"({"a":1,"b":2})"));
  }

  absl::StatusOr<BundleReport> Import(Replica& r, const std::vector<std::string>& batches) {
    const std::string file = dir_.Sub(absl::StrCat("in", ++files_, ".bundle"));
    if (absl::Status s = WriteFile(file, MakeBundle(batches)); !s.ok()) return s;
    return r.ImportBundle(file);
  }

  ScratchDir dir_;
  FakeClock clock_{SystemMillis()};
  ForgedAuthor mallory_;
  std::unique_ptr<Replica> a_;
  std::unique_ptr<Replica> c_;
  int files_ = 0;
};

TEST_F(ClaimsTest, ThePoisonBatchIsRejectedAndChangesNothing) {
  // The reproduced attack: 1..2^62 of A and of C, and Mallory's seq 1000.
  const std::string poison =
      ClaimOnly(mallory_.key(), 1000, 1000,
                {{KeyOf(*a_), 1, crdt::kDotMax}, {KeyOf(*c_), 1, crdt::kDotMax}});
  ASSERT_LT(poison.size(), 400u);
  const std::string digest = MustDigest(a_->document(kDoc));
  absl::StatusOr<BundleReport> rep = Import(*a_, {poison});
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.applied, 0u);
  EXPECT_EQ(rep->batches.rejected, 1u);
  ASSERT_FALSE(rep->batches.reasons.empty());
  EXPECT_NE(rep->batches.reasons[0].find(mallory_.hex()), std::string::npos) << rep->batches.reasons[0];
  EXPECT_EQ(a_->stats().rejected_claims, 1u);
  EXPECT_EQ(MustDigest(a_->document(kDoc)), digest);
  EXPECT_EQ(MustGet(a_->document(kDoc)), R"({"a":1,"b":2})");

  // A keeps committing, and C's later writes appear.
  ES_ASSERT_OK(a_->document(kDoc).Put("/a", "3"));
  ES_ASSERT_OK(c_->document(kDoc).Put("/c", "\"from c\""));
  absl::StatusOr<BundleReport> from_c = Import(*a_, ExportAll(*c_, dir_.Sub("c.bundle")));
  ASSERT_TRUE(from_c.ok()) << from_c.status();
  EXPECT_EQ(from_c->batches.applied, 1u);
  EXPECT_EQ(MustGet(a_->document(kDoc)), R"({"a":3,"b":2,"c":"from c"})");
}

TEST_F(ClaimsTest, OwnSeqsNeverComeFromClaims) {
  // A claim on A's own next seqs, within the window: it waits (A holds no
  // batch of its own covering them) and A's own seqs go on from its log.
  const std::string claim = ClaimOnly(mallory_.key(), 1, 1, {{KeyOf(*a_), 1, 50}});
  absl::StatusOr<BundleReport> rep = Import(*a_, {claim});
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.held, 1u);
  Transaction t = a_->document(kDoc).Begin();
  ES_ASSERT_OK(t.Put("/a", "5"));
  absl::StatusOr<CommitInfo> info = t.Commit();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->seq_first, 3u) << "the first commit used seqs 1..2";
  EXPECT_EQ(MustGet(a_->document(kDoc), "/a"), "5");
}

TEST_F(ClaimsTest, AClaimWaitsForItsBatchesThenExpires) {
  // Mallory claims C's seqs 1..5 before C wrote them: the batch waits.
  const std::string early = ClaimOnly(mallory_.key(), 1, 1, {{KeyOf(*c_), 1, 5}});
  absl::StatusOr<BundleReport> rep = Import(*a_, {early});
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.held, 1u);
  EXPECT_EQ(WaitingBatches(*a_), 1u);
  // T later it is dropped, counted as a claim rejection.
  clock_.Advance(internal::kClaimWaitMsMax + 1);
  a_->ApplyBatches({});
  EXPECT_EQ(WaitingBatches(*a_), 0u);
  EXPECT_EQ(a_->stats().rejected_claims, 1u);
  // C's writes then appear, untouched by the expired claim.
  for (int i = 0; i < 5; ++i) ES_ASSERT_OK(c_->document(kDoc).Put(absl::StrCat("/c", i), "1"));
  absl::StatusOr<BundleReport> from_c = Import(*a_, ExportAll(*c_, dir_.Sub("c.bundle")));
  ASSERT_TRUE(from_c.ok()) << from_c.status();
  EXPECT_EQ(MustGet(a_->document(kDoc)), R"({"a":1,"b":2,"c0":1,"c1":1,"c2":1,"c3":1,"c4":1})");
}

TEST_F(ClaimsTest, WaitingIsBoundedPerAuthor) {
  std::vector<std::string> flood;
  for (uint64_t i = 0; i <= internal::kWaitingBatchesPerAuthorMax; ++i) {
    flood.push_back(ClaimOnly(mallory_.key(), i + 1, i + 1, {{KeyOf(*c_), 1, 5}}));
  }
  absl::StatusOr<BundleReport> rep = Import(*a_, flood);
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.held, internal::kWaitingBatchesPerAuthorMax);
  EXPECT_EQ(rep->batches.rejected, 1u);
  EXPECT_EQ(WaitingBatches(*a_), internal::kWaitingBatchesPerAuthorMax);
}

TEST_F(ClaimsTest, BatchesThatClaimEachOthersSeqsReleaseTogether) {
  // X and Y each write once, having seen the other's write: each batch
  // claims the other's seq. Neither is covered alone.
  ForgedAuthor x;
  ForgedAuthor y;
  ES_ASSERT_OK(a_->Trust(x.hex()));
  ES_ASSERT_OK(a_->Trust(y.hex()));
  const std::string bx = ClaimOnly(x.key(), 1, 1, {{y.key().public_key(), 1, 1}});
  const std::string by = ClaimOnly(y.key(), 1, 1, {{x.key().public_key(), 1, 1}});
  absl::StatusOr<BundleReport> first = Import(*a_, {bx});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->batches.held, 1u);
  absl::StatusOr<BundleReport> second = Import(*a_, {by});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->batches.applied, 2u);
  EXPECT_EQ(second->batches.held, 0u);
  EXPECT_EQ(WaitingBatches(*a_), 0u);
}

TEST_F(ClaimsTest, ClaimsOnAnAuthorNotAcceptedActOnceItIsTrusted) {
  // Z writes /z; Mallory, who trusts Z, deletes it. R trusts Mallory but not
  // Z: Mallory's claim on Z's dot is inert there. Once R trusts Z and gets
  // Z's batch, R must hold the same state as S, which trusted both from the
  // start: /z deleted.
  ForgedAuthor z;
  absl::StatusOr<std::string> zb = z.Commit(kDoc, crdt::HlcFromMillis(SystemMillis()),
                                            [](crdt::TransactionBuilder& t) {
                                              return t.Put(P("/z"), IntTree(1));
                                            });
  ASSERT_TRUE(zb.ok());
  crdt::Delta zd = transport::DecodeBatchDelta(*transport::OpenBatch(*zb)).value();
  ES_ASSERT_OK(mallory_.Receive(zd));
  absl::StatusOr<std::string> mb = mallory_.Commit(kDoc, crdt::HlcFromMillis(SystemMillis()),
                                                   [](crdt::TransactionBuilder& t) {
                                                     return t.Delete(P("/z"));
                                                   });
  ASSERT_TRUE(mb.ok());
  auto r = MustOpen(dir_.Sub("r"));
  auto s = MustOpen(dir_.Sub("s"));
  ES_ASSERT_OK(r->Trust(mallory_.hex()));
  ES_ASSERT_OK(s->Trust(mallory_.hex()));
  ES_ASSERT_OK(s->Trust(z.hex()));
  absl::StatusOr<BundleReport> rm = Import(*r, {*mb});
  ASSERT_TRUE(rm.ok());
  EXPECT_EQ(rm->batches.applied, 1u) << "a claim on an author not accepted is inert, not a reason to wait";
  absl::StatusOr<BundleReport> rz = Import(*r, {*zb});
  ASSERT_TRUE(rz.ok());
  EXPECT_EQ(rz->batches.rejected, 1u);
  ES_ASSERT_OK(r->Trust(z.hex()));
  rz = Import(*r, {*zb});
  ASSERT_TRUE(rz.ok());
  EXPECT_EQ(rz->batches.applied, 1u);
  ASSERT_TRUE(Import(*s, {*zb, *mb}).ok());
  EXPECT_EQ(MustGet(s->document(kDoc)), "{}");
  EXPECT_EQ(MustGet(r->document(kDoc)), "{}");
  EXPECT_EQ(MustDigest(r->document(kDoc)), MustDigest(s->document(kDoc)));
}

}  // namespace
}  // namespace edgesync::testing
