// Sessions under the faults of real fleets: relays holding an author's
// fragments, replicas holding different batches for the same seqs, idle
// rounds between replicas already in sync (issue 10).

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "edgesync/session.h"
#include "lib/test_util/temp_dir.h"
#include "transport/capnp_util.h"
#include "transport/sync.capnp.h"
#include "transport/sync_session.h"

namespace edgesync {
namespace {

using internal::TempDir;

ReplicaOptions Fast(bool auto_compact = true) {
  ReplicaOptions o;
  o.durability = Durability::kFast;
  o.auto_compact = auto_compact;
  return o;
}

std::unique_ptr<Replica> Open(const std::string& dir, const ReplicaOptions& o = Fast()) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

void TrustEachOther(Replica& a, Replica& b) {
  ASSERT_TRUE(a.Trust(b.public_key_hex()).ok());
  ASSERT_TRUE(b.Trust(a.public_key_hex()).ok());
}

// Bytes of every batch `r` stores: its log, as a bundle carries it.
uint64_t LogBytes(Replica& r, const std::string& file) {
  absl::StatusOr<BundleReport> report = r.ExportBundle(file);
  EXPECT_TRUE(report.ok()) << report.status();
  return report.ok() ? report->bytes : 0;
}

LocalSyncResult MustSync(Replica& a, Replica& b) {
  absl::StatusOr<LocalSyncResult> r = SyncLocal(a, b);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  EXPECT_TRUE(r->synced);
  return *std::move(r);
}

// The author's writes reached the relay one batch per commit (as gossip
// pushes or bundles carry them); the author then compacted. One session
// with the author gives the relay the compaction, and a newcomer syncing
// from the relay receives about what the author would send it.
TEST(ConvergenceTest, ARelayHoldingAnAuthorsFragmentsGetsItsCompaction) {
  TempDir dir;
  std::unique_ptr<Replica> a = Open(dir.path() + "/a", Fast(/*auto_compact=*/false));
  std::unique_ptr<Replica> relay = Open(dir.path() + "/relay");
  TrustEachOther(*a, *relay);
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(a->document("d").Put("/k", std::to_string(i)).ok());
    BundleExportOptions only_new;
    only_new.only_missing = true;
    only_new.since = *relay->GetVersionVectors();
    const std::string file = absl::StrCat(dir.path(), "/push", i);
    ASSERT_TRUE(a->ExportBundle(file, only_new).ok());
    ASSERT_TRUE(relay->ImportBundle(file).ok());
  }
  ASSERT_TRUE(a->document("d").Compact().ok());
  const uint64_t author_bytes = LogBytes(*a, dir.path() + "/a.bundle");
  const uint64_t relay_before = LogBytes(*relay, dir.path() + "/relay0.bundle");
  ASSERT_GT(relay_before, 20 * author_bytes) << "the relay holds one batch per write";

  MustSync(*a, *relay);
  const uint64_t relay_after = LogBytes(*relay, dir.path() + "/relay1.bundle");
  EXPECT_LE(relay_after, 2 * author_bytes) << "before: " << relay_before;
  EXPECT_EQ(*relay->document("d").Digest(), *a->document("d").Digest());

  // Newcomers: one syncing from the relay, one from the author.
  std::unique_ptr<Replica> via_relay = Open(dir.path() + "/n1");
  std::unique_ptr<Replica> direct = Open(dir.path() + "/n2");
  ASSERT_TRUE(via_relay->Trust(a->public_key_hex()).ok());
  ASSERT_TRUE(via_relay->Trust(relay->public_key_hex()).ok());
  ASSERT_TRUE(relay->Trust(via_relay->public_key_hex()).ok());
  TrustEachOther(*a, *direct);
  const LocalSyncResult from_relay = MustSync(*relay, *via_relay);
  const LocalSyncResult from_author = MustSync(*a, *direct);
  EXPECT_LE(from_relay.b.bytes_received * 2, from_author.b.bytes_received * 3)
      << from_relay.b.bytes_received << " bytes from the relay, " << from_author.b.bytes_received
      << " from the author";
  EXPECT_EQ(*via_relay->document("d").Get(), R"({"k":299})");
}

// Equal coverage, different state: replicas that trust different authors
// receive different batches for the same seqs (one the author's writes, the
// other its later compaction, made after a delete the second replica does
// not accept). A session finds the batches that differ; both sides end equal.
TEST(ConvergenceTest, SameSeqsDifferentStateIsRepairedBySession) {
  TempDir dir;
  std::unique_ptr<Replica> a = Open(dir.path() + "/a", Fast(/*auto_compact=*/false));
  std::unique_ptr<Replica> b = Open(dir.path() + "/b");
  std::unique_ptr<Replica> r1 = Open(dir.path() + "/r1");
  std::unique_ptr<Replica> r2 = Open(dir.path() + "/r2");
  TrustEachOther(*a, *b);
  for (Replica* r : {r1.get(), r2.get()}) {
    ASSERT_TRUE(r->Trust(a->public_key_hex()).ok());
    ASSERT_TRUE(a->Trust(r->public_key_hex()).ok());
  }
  ASSERT_TRUE(r1->Trust(r2->public_key_hex()).ok());
  ASSERT_TRUE(r2->Trust(r1->public_key_hex()).ok());
  // Each write reaches r1 and b as its own batch.
  ASSERT_TRUE(a->document("d").Put("/x", "1").ok());
  MustSync(*a, *r1);
  MustSync(*a, *b);
  ASSERT_TRUE(a->document("d").Put("/y", "2").ok());
  MustSync(*a, *r1);
  ASSERT_TRUE(b->document("d").Delete("/x").ok());
  MustSync(*a, *b);
  // a compacts its two writes into one batch, which no longer holds /x (b
  // deleted it); r2 receives that batch and refuses b's delete.
  ASSERT_TRUE(a->document("d").Compact().ok());
  absl::StatusOr<LocalSyncResult> to_r2 = SyncLocal(*a, *r2);
  ASSERT_TRUE(to_r2.ok()) << to_r2.status();
  ASSERT_EQ(*r1->document("d").Get(), R"({"x":1,"y":2})");
  ASSERT_EQ(*r2->document("d").Get(), R"({"y":2})");
  ASSERT_EQ(*r1->GetVersionVectors(), *r2->GetVersionVectors());

  const LocalSyncResult repaired = MustSync(*r1, *r2);
  EXPECT_GT(repaired.a.batches_sent + repaired.b.batches_sent, 0u);
  EXPECT_EQ(*r1->document("d").Get(), R"({"y":2})");
  EXPECT_EQ(*r1->document("d").Digest(), *r2->document("d").Digest());
  // And it stays repaired: the next session finds nothing to do.
  const LocalSyncResult again = MustSync(*r1, *r2);
  EXPECT_EQ(again.a.batches_sent + again.b.batches_sent, 0u);
}

// Bytes of one idle round (both ways) between two replicas in sync that
// hold `documents` documents.
uint64_t IdleRoundBytes(int documents) {
  TempDir dir;
  std::unique_ptr<Replica> a = Open(dir.path() + "/a");
  std::unique_ptr<Replica> b = Open(dir.path() + "/b");
  TrustEachOther(*a, *b);
  for (int i = 0; i < documents; ++i) {
    EXPECT_TRUE(a->document(absl::StrCat("doc", i)).Put("/v", std::to_string(i)).ok());
  }
  MustSync(*a, *b);
  const LocalSyncResult idle = MustSync(*a, *b);
  EXPECT_EQ(idle.a.batches_sent + idle.b.batches_sent, 0u);
  EXPECT_EQ(idle.a.rounds_idle, 1u);
  return idle.a.bytes_sent + idle.b.bytes_sent;
}

TEST(ConvergenceTest, AnIdleRoundCostsTheSameWhateverTheDocumentCount) {
  const uint64_t few = IdleRoundBytes(3);
  const uint64_t many = IdleRoundBytes(300);
  EXPECT_EQ(few, many);
  EXPECT_LT(many, 512u) << "hello and end of flight, each way";
}

// Bytes (both ways) of the session after `changed` of `documents` documents,
// in sync before, changed on one side.
LocalSyncResult SessionAfterChanges(int documents, int changed) {
  TempDir dir;
  std::unique_ptr<Replica> a = Open(dir.path() + "/a");
  std::unique_ptr<Replica> b = Open(dir.path() + "/b");
  TrustEachOther(*a, *b);
  for (int i = 0; i < documents; ++i) {
    EXPECT_TRUE(a->document(absl::StrCat("doc", i)).Put("/v", std::to_string(i)).ok());
  }
  MustSync(*a, *b);
  for (int i = 0; i < changed; ++i) {
    EXPECT_TRUE(a->document(absl::StrCat("doc", i * 7 % documents)).Put("/v", "-1").ok());
  }
  const LocalSyncResult r = MustSync(*a, *b);
  EXPECT_EQ(*a->document("doc0").Digest(), *b->document("doc0").Digest());
  return r;
}

uint64_t Bytes(const LocalSyncResult& r) { return r.a.bytes_sent + r.b.bytes_sent; }

// The sides walk a digest tree down to the documents that differ: a session
// for one changed document costs about the same among 400 documents as
// among 10, and lists a handful of them.
TEST(ConvergenceTest, ASessionForOneChangedDocumentCostsAboutTheSameWhateverTheDocumentCount) {
  const LocalSyncResult few = SessionAfterChanges(10, 1);
  const LocalSyncResult many = SessionAfterChanges(400, 1);
  EXPECT_LT(Bytes(many), Bytes(few) + 1024) << Bytes(few);
  EXPECT_LE(many.a.documents_listed, 2 * transport::kTreeLeafDocuments);
  EXPECT_GE(many.a.drill_depths, 2u);
  // k changed documents cost about k times one.
  const LocalSyncResult eight = SessionAfterChanges(400, 8);
  EXPECT_LT(Bytes(eight), 8 * Bytes(many));
  EXPECT_LE(eight.a.documents_listed, 8 * 2 * transport::kTreeLeafDocuments);
}

// Both sides change, create and hold documents the other lacks: one
// session walks the tree from both ends and leaves them equal.
TEST(ConvergenceTest, TheDrillDownFindsDifferencesOnBothSides) {
  TempDir dir;
  std::unique_ptr<Replica> a = Open(dir.path() + "/a");
  std::unique_ptr<Replica> b = Open(dir.path() + "/b");
  TrustEachOther(*a, *b);
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(a->document(absl::StrCat("doc", i)).Put("/v", std::to_string(i)).ok());
  }
  MustSync(*a, *b);
  for (int i = 0; i < 300; i += 37) ASSERT_TRUE(a->document(absl::StrCat("doc", i)).Put("/a", "1").ok());
  for (int i = 5; i < 300; i += 41) ASSERT_TRUE(b->document(absl::StrCat("doc", i)).Put("/b", "2").ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(a->document(absl::StrCat("only-a", i)).Put("/v", "10").ok());
    ASSERT_TRUE(b->document(absl::StrCat("only-b", i)).Put("/v", "20").ok());
  }
  const LocalSyncResult r = MustSync(*a, *b);
  EXPECT_GT(r.a.drill_depths, 0u);
  EXPECT_LT(r.a.documents_listed + r.b.documents_listed, 300u);
  for (const std::string& id : {std::string("doc0"), std::string("doc5"), std::string("only-a3"),
                                std::string("only-b19")}) {
    EXPECT_EQ(*a->document(id).Get(), *b->document(id).Get()) << id;
  }
  EXPECT_EQ(*a->GetVersionVectors(), *b->GetVersionVectors());
  const LocalSyncResult idle = MustSync(*a, *b);
  EXPECT_EQ(idle.a.rounds_idle, 1u);
}

// A peer that speaks only another version is refused, both versions named.
TEST(ConvergenceTest, APeerOfAnotherProtocolVersionIsRefusedNamingBoth) {
  TempDir dir;
  std::unique_ptr<Replica> a = Open(dir.path() + "/a");
  absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(*a);
  ASSERT_TRUE(s.ok());
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<transport::schema::SyncMessage>();
  m.setRound(1);
  auto hello = m.initHello();
  hello.setProtocolVersion(1);  // a build before version ranges
  hello.setMaxMessageBytes(64u << 10);
  hello.initInterest(1).set(0, "");
  absl::Status st = (*s)->Receive(transport::MessageToBytes(message));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(), "peer speaks sync protocol version 1, this build speaks version 2");
}

}  // namespace
}  // namespace edgesync
