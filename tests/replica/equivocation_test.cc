// Equivocation quarantine (issue: security, finding 3): once a replica holds
// a proof that an author signed two values for one of its dots on a
// document, that author's batches there reaching the proof's seq are not
// accepted, the document is rebuilt from the rest, one proof per (document,
// author) is kept, and the proof travels. Attacks go through ApplyBatches
// and bundle import, as a relay or a copied key would mount them.

#include <algorithm>

#include "edgesync/session.h"
#include "lib/replica/identity.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "d";

uint64_t Now() { return crdt::HlcFromMillis(SystemMillis()); }

std::string PutBatch(ForgedAuthor& author, uint64_t first, const std::string& path,
                     const std::string& value) {
  author.set_next_dot(first);
  return author
      .Commit(kDoc, Now(), [&](crdt::TransactionBuilder& t) { return t.Put(P(path), StringTree(value)); })
      .value();
}

// The seq of the proof `r` holds for `author` on kDoc; 0 if none.
uint64_t ProofSeq(Replica& r, const ForgedAuthor& author) {
  uint64_t seq = 0;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    seq = 0;
    absl::StatusOr<std::optional<internal::DocumentRecord>> doc = txn.FindDocument(kDoc);
    if (!doc.ok() || !doc->has_value()) return doc.status();
    absl::StatusOr<std::optional<internal::EquivocationProof>> proof =
        txn.GetEquivocationProof((*doc)->num, author.key().public_key());
    if (!proof.ok()) return proof.status();
    if (proof->has_value()) seq = (*proof)->seq;
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return seq;
}

class EquivocationTest : public ::testing::Test {
 protected:
  std::unique_ptr<Replica> Trusting(const std::string& name) {
    auto r = MustOpen(dir_.Sub(name));
    EXPECT_TRUE(r->Trust(mallory_.hex()).ok());
    return r;
  }

  // Applies `batches` one at a time; every rejection must be of class
  // equivocated_author (a batch above the proof).
  static ApplyReport ApplyEach(Replica& r, const std::vector<std::string>& batches) {
    ApplyReport total;
    for (const std::string& b : batches) {
      ApplyReport rep = r.ApplyBatches({b});
      total.applied += rep.applied;
      total.duplicate += rep.duplicate;
      total.rejected += rep.rejected;
      total.equivocations += rep.equivocations;
      for (const auto& [reason, n] : rep.rejected_by_reason) {
        EXPECT_EQ(reason, kRejectedEquivocated) << rep.reasons[0];
        total.rejected_by_reason[reason] += n;
      }
    }
    return total;
  }

  ScratchDir dir_;
  ForgedAuthor mallory_;
};

// Seq 1 honest, seq 2 signed twice (left, right), seq 3 after it: in any
// order of arrival every replica ends with seq 1 only and one proof at 2.
TEST_F(EquivocationTest, TheAuthorIsQuarantinedAtTheProofInAnyOrder) {
  const std::string s1 = PutBatch(mallory_, 1, "/a", "keep");
  const std::string left = PutBatch(mallory_, 2, "/v", "left");
  const std::string right = PutBatch(mallory_, 2, "/v", "right");
  const std::string s3 = PutBatch(mallory_, 3, "/c", "after");
  std::vector<std::string> order = {s1, left, right, s3};
  std::sort(order.begin(), order.end());
  std::string digest;
  int runs = 0;
  do {
    auto r = Trusting(absl::StrCat("r", runs++));
    ApplyReport rep = ApplyEach(*r, order);
    EXPECT_EQ(rep.equivocations, 1u);
    EXPECT_EQ(ProofSeq(*r, mallory_), 2u);
    EXPECT_EQ(MustGet(r->document(kDoc)), R"({"a":"keep"})");
    if (digest.empty()) digest = MustDigest(r->document(kDoc));
    EXPECT_EQ(MustDigest(r->document(kDoc)), digest);
    // Whatever Mallory signs there later is refused, naming her key.
    ApplyReport later = r->ApplyBatches({PutBatch(mallory_, 4, "/d", "x")});
    EXPECT_EQ(later.rejected, 1u);
    ASSERT_FALSE(later.reasons.empty());
    EXPECT_NE(later.reasons[0].find(mallory_.hex()), std::string::npos) << later.reasons[0];
    EXPECT_EQ(later.rejected_by_reason[kRejectedEquivocated], 1u);
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(runs, 24);
}

// More equivocations by the same author on the same document add nothing:
// one proof, no new log entries, no growth.
TEST_F(EquivocationTest, OneProofPerAuthorAndDocumentSuffices) {
  auto r = Trusting("r");
  ApplyEach(*r, {PutBatch(mallory_, 1, "/a", "keep"), PutBatch(mallory_, 2, "/v", "left"),
                 PutBatch(mallory_, 2, "/v", "right")});
  ASSERT_EQ(ProofSeq(*r, mallory_), 2u);
  const std::string digest = MustDigest(r->document(kDoc));
  const uint64_t stored = StoredBatchCount(*r);
  std::vector<std::string> more;
  for (int i = 0; i < 50; ++i) more.push_back(PutBatch(mallory_, 2 + i % 5, "/v", absl::StrCat("v", i)));
  ApplyReport rep = ApplyEach(*r, more);
  EXPECT_EQ(rep.rejected, 50u);
  EXPECT_EQ(rep.equivocations, 0u);
  EXPECT_EQ(StoredEquivocations(*r, kDoc), 1u);
  EXPECT_EQ(StoredBatchCount(*r), stored);
  EXPECT_EQ(MustDigest(r->document(kDoc)), digest);
  EXPECT_EQ(r->stats().rejected_equivocated, 50u);
}

// One dot used for two different rows (two paths) is a proof too.
TEST_F(EquivocationTest, OneDotAtTwoPathsIsAProof) {
  const std::string x = PutBatch(mallory_, 1, "/v", "at-v");
  const std::string y = PutBatch(mallory_, 1, "/w", "at-w");
  auto r0 = Trusting("r0");
  auto r1 = Trusting("r1");
  EXPECT_EQ(ApplyEach(*r0, {x, y}).equivocations, 1u);
  EXPECT_EQ(ApplyEach(*r1, {y, x, y}).equivocations, 1u);
  EXPECT_EQ(MustGet(r0->document(kDoc)), "{}");
  EXPECT_EQ(MustDigest(r0->document(kDoc)), MustDigest(r1->document(kDoc)));
  EXPECT_EQ(ProofSeq(*r1, mallory_), 1u);
}

// The proof travels in bundles (after the author's accepted batches), to a
// replica that knew nothing and to one that held one half.
TEST_F(EquivocationTest, TheProofTravelsByBundle) {
  const std::string s1 = PutBatch(mallory_, 1, "/a", "keep");
  const std::string left = PutBatch(mallory_, 2, "/v", "left");
  const std::string right = PutBatch(mallory_, 2, "/v", "right");
  auto witness = Trusting("witness");
  ApplyEach(*witness, {s1, left, right});
  const std::string file = dir_.Sub("proof.bundle");
  ASSERT_TRUE(witness->ExportBundle(file).ok());
  absl::StatusOr<std::vector<std::string>> in_bundle = BundleBatches(file);
  ASSERT_TRUE(in_bundle.ok());
  EXPECT_EQ(in_bundle->size(), 3u) << "seq 1 and both batches of the proof";

  auto late = Trusting("late");
  absl::StatusOr<BundleReport> rep = late->ImportBundle(file);
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.equivocations, 1u);
  EXPECT_EQ(MustDigest(late->document(kDoc)), MustDigest(witness->document(kDoc)));

  auto half = Trusting("half");
  ApplyEach(*half, {s1, right});
  EXPECT_EQ(MustGet(half->document(kDoc)), R"({"a":"keep","v":"right"})");
  ASSERT_TRUE(half->ImportBundle(file).ok());
  EXPECT_EQ(MustDigest(half->document(kDoc)), MustDigest(witness->document(kDoc)));
  EXPECT_EQ(ProofSeq(*half, mallory_), 2u);
}

// A lower proof replaces a higher one, even when one of its batches reaches
// past the higher proof's seq (such a batch alone is refused there; the
// replica remembers it for the other half, which a peer sends next).
TEST_F(EquivocationTest, ALowerProofReplacesAHigherOne) {
  const std::string s1 = PutBatch(mallory_, 1, "/a", "keep");
  const std::string high_a = PutBatch(mallory_, 4, "/h", "one");
  const std::string high_b = PutBatch(mallory_, 4, "/h", "two");
  // Seqs 2..5 in one batch, /v at seq 2; and seq 2 alone with another /v.
  mallory_.set_next_dot(2);
  const std::string span =
      mallory_
          .Commit(kDoc, Now(),
                  [](crdt::TransactionBuilder& t) {
                    for (const char* p : {"/v", "/w", "/x", "/y"}) {
                      if (absl::Status s = t.Put(P(p), StringTree("span")); !s.ok()) return s;
                    }
                    return absl::OkStatus();
                  })
          .value();
  ASSERT_EQ(transport::OpenBatch(span)->header.seq_first, 2u);
  ASSERT_EQ(transport::OpenBatch(span)->header.seq_last, 5u);
  const std::string low = PutBatch(mallory_, 2, "/v", "low");

  auto r0 = Trusting("r0");
  ApplyEach(*r0, {s1, high_a, high_b});
  ASSERT_EQ(ProofSeq(*r0, mallory_), 4u);
  ApplyReport rep = ApplyEach(*r0, {span, low});
  EXPECT_EQ(rep.equivocations, 1u);
  EXPECT_EQ(ProofSeq(*r0, mallory_), 2u);
  EXPECT_EQ(StoredEquivocations(*r0, kDoc), 1u);

  auto r1 = Trusting("r1");
  ApplyEach(*r1, {low, span, high_b, s1, high_a});
  EXPECT_EQ(ProofSeq(*r1, mallory_), 2u);
  EXPECT_EQ(MustDigest(r1->document(kDoc)), MustDigest(r0->document(kDoc)));
  EXPECT_EQ(MustGet(r0->document(kDoc)), R"({"a":"keep"})");
}

// A batch signed with the replica's own key that contradicts its log (a
// copied directory, a restored backup, a stolen key) proves the key
// equivocated: the replica quarantines it like any author, so it ends where
// its peers do, and refuses commits until `edgesync rekey`.
TEST_F(EquivocationTest, ABatchForgedWithTheReplicasOwnKeyQuarantinesItAndStopsCommits) {
  auto own = MustOpen(dir_.Sub("own"));
  ES_ASSERT_OK(own->document(kDoc).Put("/own", "\"honest\""));
  const std::vector<std::string> honest = ExportAll(*own, dir_.Sub("honest.bundle"));
  absl::StatusOr<transport::SigningKey> key = internal::LoadIdentity(dir_.Sub("own"));
  ASSERT_TRUE(key.ok()) << key.status();
  ForgedAuthor copy(*key);
  const std::string forged = PutBatch(copy, 1, "/own", "forged");

  ApplyReport rep = own->ApplyBatches({forged});
  EXPECT_EQ(rep.rejected, 0u);
  EXPECT_EQ(rep.equivocations, 1u);
  EXPECT_EQ(own->stats().own_key_equivocated, 1u);
  EXPECT_EQ(MustGet(own->document(kDoc)), "{}");
  const absl::Status s = own->document(kDoc).Put("/more", "1");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("edgesync rekey"), absl::string_view::npos) << s;

  auto peer = MustOpen(dir_.Sub("peer"));
  ES_ASSERT_OK(peer->Trust(own->public_key_hex()));
  std::vector<std::string> both = honest;
  both.push_back(forged);
  EXPECT_EQ(peer->ApplyBatches(both).equivocations, 1u);
  EXPECT_EQ(MustGet(peer->document(kDoc)), "{}");
  EXPECT_EQ(MustDigest(peer->document(kDoc)), MustDigest(own->document(kDoc)));
}

// Runs messages between two sessions until neither has one to send. A
// round ending with documents still differing (kAborted) is no failure.
void Deliver(Session& to, const std::string& message) {
  absl::Status s = to.Receive(message);
  EXPECT_TRUE(s.ok() || absl::IsAborted(s)) << s;
  ES_EXPECT_OK(to.failure());
}

void Pump(Session& a, Session& b) {
  for (bool busy = true; busy;) {
    busy = false;
    absl::StatusOr<std::optional<std::string>> ma = a.Next();
    ASSERT_TRUE(ma.ok()) << ma.status();
    if (ma->has_value()) {
      busy = true;
      Deliver(b, **ma);
    }
    absl::StatusOr<std::optional<std::string>> mb = b.Next();
    ASSERT_TRUE(mb.ok()) << mb.status();
    if (mb->has_value()) {
      busy = true;
      Deliver(a, **mb);
    }
  }
}

// A session sends a document's proofs once, though the document still
// differs in later rounds (B refuses another author A holds there).
TEST_F(EquivocationTest, ASessionSendsAProofOnce) {
  ForgedAuthor xavier;
  auto a = Trusting("a");
  auto b = Trusting("b");
  ES_ASSERT_OK(a->Trust(xavier.hex()));
  ApplyEach(*a, {PutBatch(mallory_, 1, "/a", "keep"), PutBatch(mallory_, 2, "/v", "left"),
                 PutBatch(mallory_, 2, "/v", "right")});
  ASSERT_EQ(a->ApplyBatches({PutBatch(xavier, 1, "/x", "x")}).applied, 1u);
  std::unique_ptr<Session> sa = Session::Create(*a).value();
  std::unique_ptr<Session> sb = Session::Create(*b).value();
  Pump(*sa, *sb);
  EXPECT_EQ(ProofSeq(*b, mallory_), 2u);
  EXPECT_EQ(MustGet(b->document(kDoc)), R"({"a":"keep"})");
  for (int i = 0; i < 3; ++i) {
    sa->RequestRound();
    Pump(*sa, *sb);
  }
  EXPECT_GE(sa->stats().rounds, 4u);
  EXPECT_NE(MustDigest(a->document(kDoc)), MustDigest(b->document(kDoc)));
  // A proof sent again would be refused: both its batches reach seq 2.
  EXPECT_EQ(b->stats().rejected_equivocated, 0u);
}

// Format 1 kept both batches of an equivocated dot in the log and recorded
// the dot; opening such a store turns the record into the proof.
TEST_F(EquivocationTest, AFormat1StoreWithAnEquivocationIsMigrated) {
  const std::string s1 = PutBatch(mallory_, 1, "/a", "keep");
  const std::string left = PutBatch(mallory_, 2, "/v", "left");
  const std::string right = PutBatch(mallory_, 2, "/v", "right");
  {
    auto r = Trusting("legacy");
    ApplyEach(*r, {s1, left});
    ES_ASSERT_OK(r->core().store().Write([&](internal::StoreTxn& txn) -> absl::Status {
      absl::StatusOr<std::optional<internal::DocumentRecord>> doc = txn.FindDocument(kDoc);
      if (!doc.ok()) return doc.status();
      const crdt::AuthorKey author = mallory_.key().public_key();
      absl::StatusOr<std::optional<uint32_t>> num = txn.FindAuthor(author);
      if (!num.ok()) return num.status();
      if (absl::Status s = txn.PutLog((*doc)->num, author, 2, 2, right); !s.ok()) return s;
      std::string key;
      for (uint64_t v : {uint64_t{(*doc)->num}, uint64_t{**num}}) {
        for (int i = 3; i >= 0; --i) key.push_back(static_cast<char>(v >> (8 * i)));
      }
      for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(uint64_t{2} >> (8 * i)));
      if (absl::Status s = txn.write().Put(txn.dbs().equivocations, key, ""); !s.ok()) return s;
      return txn.SetFormatVersion(1);
    }));
  }
  auto r = Trusting("legacy");
  EXPECT_EQ(ProofSeq(*r, mallory_), 2u);
  EXPECT_EQ(StoredEquivocations(*r, kDoc), 1u);
  EXPECT_EQ(MustGet(r->document(kDoc)), R"({"a":"keep"})");
  auto fresh = Trusting("fresh");
  ApplyEach(*fresh, {s1, left, right});
  EXPECT_EQ(MustDigest(r->document(kDoc)), MustDigest(fresh->document(kDoc)));
}

}  // namespace
}  // namespace edgesync::testing
