// Bad input changes nothing and authenticity holds: damaged bundles,
// damaged and untrusted batches, replays and batches whose delta claims
// dots outside their signed seq range (equivocation: equivocation_test.cc).

#include <algorithm>
#include <random>

#include "crdt/size_limits.h"
#include "lib/replica/identity.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

using internal::ApplyOutcome;
using internal::ApplyResult;

// Everything an import must not change.
struct Snapshot {
  std::vector<std::string> ids;
  std::map<std::string, std::string> digests;
  VersionVectors vv;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

Snapshot Take(Replica& r) {
  Snapshot s;
  s.ids = MustIds(r);
  for (const std::string& id : s.ids) s.digests[id] = MustDigest(r.document(id));
  absl::StatusOr<VersionVectors> vv = r.GetVersionVectors();
  EXPECT_TRUE(vv.ok()) << vv.status();
  if (vv.ok()) s.vv = *vv;
  return s;
}

std::string FlipBit(std::string bytes, size_t bit) {
  bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
  return bytes;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    author_ = MustOpen(dir_.Sub("author"));
    target_ = MustOpen(dir_.Sub("target"));
    ASSERT_TRUE(target_->Trust(author_->public_key_hex()).ok());
    // The target holds state of its own that nothing below may touch.
    ASSERT_TRUE(target_->document("mine").Put("/x", "\"kept\"").ok());
    ASSERT_TRUE(target_->document("mine").CounterAdd("/n", 3).ok());
  }

  ScratchDir dir_;
  std::unique_ptr<Replica> author_;
  std::unique_ptr<Replica> target_;
};

TEST_F(SecurityTest, EveryFlippedBitOfASmallBundleIsDataLossAndChangesNothing) {
  ASSERT_TRUE(author_->document("d").Put("/a", "\"b\"").ok());
  const std::string file = dir_.Sub("small.bundle");
  ASSERT_TRUE(author_->ExportBundle(file).ok());
  absl::StatusOr<std::string> bytes = ReadFile(file);
  ASSERT_TRUE(bytes.ok());
  ASSERT_LT(bytes->size(), 2048u) << "the exhaustive test wants a small bundle";
  const Snapshot before = Take(*target_);
  const std::string damaged = dir_.Sub("damaged.bundle");
  for (size_t bit = 0; bit < bytes->size() * 8; ++bit) {
    ASSERT_TRUE(WriteFile(damaged, FlipBit(*bytes, bit)).ok());
    absl::StatusOr<BundleReport> rep = target_->ImportBundle(damaged);
    ASSERT_EQ(rep.status().code(), absl::StatusCode::kDataLoss)
        << "bit " << bit << " of " << bytes->size() * 8 << ": " << rep.status();
  }
  // Every truncation too.
  for (size_t len = 0; len < bytes->size(); ++len) {
    ASSERT_TRUE(WriteFile(damaged, bytes->substr(0, len)).ok());
    ASSERT_EQ(target_->ImportBundle(damaged).status().code(), absl::StatusCode::kDataLoss)
        << "truncated to " << len;
  }
  EXPECT_TRUE(Take(*target_) == before);
  EXPECT_EQ(target_->stats().batches_applied, 0u);
  EXPECT_EQ(target_->stats().batches_rejected, 0u);
  // The intact file still imports.
  absl::StatusOr<BundleReport> ok = target_->ImportBundle(file);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->batches.applied, 1u);
  EXPECT_EQ(MustGet(target_->document("d")), R"({"a":"b"})");
}

TEST_F(SecurityTest, SampledFlippedBitsOfALargeBundleAreDataLoss) {
  const uint64_t seed = TestSeed();
  std::mt19937_64 rng(seed);
  for (int doc = 0; doc < 30; ++doc) {
    Transaction t = author_->document(absl::StrCat("doc-", doc)).Begin();
    for (int k = 0; k < 20; ++k) {
      ASSERT_TRUE(t.Put(absl::StrCat("/k", k), absl::StrCat("\"", Filler(rng(), 100), "\"")).ok());
    }
    ASSERT_TRUE(t.Commit().ok());
  }
  const std::string file = dir_.Sub("large.bundle");
  ASSERT_TRUE(author_->ExportBundle(file).ok());
  absl::StatusOr<std::string> bytes = ReadFile(file);
  ASSERT_TRUE(bytes.ok());
  ASSERT_GT(bytes->size(), 30000u);
  const Snapshot before = Take(*target_);
  const std::string damaged = dir_.Sub("damaged.bundle");
  // Positions: random, plus the header, the first length field and the
  // checksum, where a parser is most likely to go wrong.
  std::vector<size_t> bits;
  for (size_t b = 0; b < 20 * 8; ++b) bits.push_back(b);
  for (size_t b = (bytes->size() - 32) * 8; b < bytes->size() * 8; b += 7) bits.push_back(b);
  for (int i = 0; i < 250; ++i) bits.push_back(rng() % (bytes->size() * 8));
  for (size_t bit : bits) {
    ASSERT_TRUE(WriteFile(damaged, FlipBit(*bytes, bit)).ok());
    absl::StatusOr<BundleReport> rep = target_->ImportBundle(damaged);
    ASSERT_EQ(rep.status().code(), absl::StatusCode::kDataLoss) << "bit " << bit << ": " << rep.status();
  }
  EXPECT_TRUE(Take(*target_) == before);
  absl::StatusOr<BundleReport> ok = target_->ImportBundle(file);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->batches.rejected, 0u);
  EXPECT_EQ(MustIds(*target_).size(), 31u);
}

// A bundle whose checksum was recomputed over a tampered batch (the
// checksum catches accidents, signatures catch forgers): the import
// succeeds, the tampered batch is rejected, the intact ones apply.
TEST_F(SecurityTest, BundleWithAValidChecksumOverATamperedBatch) {
  ASSERT_TRUE(author_->document("d1").Put("/a", "1").ok());
  ASSERT_TRUE(author_->document("d2").Put("/b", "\"genuine\"").ok());
  std::vector<std::string> batches = ExportAll(*author_, dir_.Sub("two.bundle"));
  ASSERT_EQ(batches.size(), 2u);
  size_t victim = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (transport::OpenBatch(batches[i])->header.document == "d2") victim = i;
  }
  // Change "genuine" into "GENUINE" wherever the bytes show it (the delta
  // may be compressed: then flip a byte in its middle instead).
  std::string& b = batches[victim];
  const size_t at = b.find("genuine");
  if (at != std::string::npos) {
    b.replace(at, 7, "GENUINE");
  } else {
    b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 0x20);
  }
  ASSERT_TRUE(WriteFile(dir_.Sub("forged.bundle"), MakeBundle(batches)).ok());
  absl::StatusOr<BundleReport> rep = target_->ImportBundle(dir_.Sub("forged.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.applied, 1u);
  EXPECT_EQ(rep->batches.rejected, 1u);
  EXPECT_EQ(MustGet(target_->document("d1"), "/a"), "1");
  EXPECT_EQ(target_->document("d2").Get("/b").status().code(), absl::StatusCode::kNotFound);
}

// A damaged batch (not bundle: straight into ApplyBatches) is refused, or
// (when the flip only touched framing the signature does not cover) opens
// to exactly the signed content. Either way no unsigned change gets in.
TEST_F(SecurityTest, FlippedBitsInABatchNeverChangeStateUnsigned) {
  const uint64_t seed = TestSeed();
  std::mt19937_64 rng(seed);
  ASSERT_TRUE(author_->document("d").Put("/a", "\"signed\"").ok());
  std::vector<std::string> batches = ExportAll(*author_, dir_.Sub("one.bundle"));
  ASSERT_EQ(batches.size(), 1u);
  const std::string& batch = batches[0];
  absl::StatusOr<transport::OpenedBatch> original = transport::OpenBatch(batch);
  ASSERT_TRUE(original.ok());
  const Snapshot before = Take(*target_);
  size_t refused = 0;
  for (size_t bit = 0; bit < batch.size() * 8; ++bit) {
    const std::string flipped = FlipBit(batch, bit);
    absl::StatusOr<transport::OpenedBatch> opened = transport::OpenBatch(flipped);
    if (opened.ok()) {
      // Only unsigned framing changed: the content is the signed one.
      EXPECT_EQ(opened->header, original->header) << "bit " << bit;
      EXPECT_EQ(opened->delta, original->delta) << "bit " << bit;
    } else {
      ++refused;
    }
  }
  // The envelope has one encoding, so no changed bit opens (issue 9).
  EXPECT_EQ(refused, batch.size() * 8);
  // Through the replica, a sample: every refused one changes nothing.
  for (int i = 0; i < 200; ++i) {
    const size_t bit = rng() % (batch.size() * 8);
    const std::string flipped = FlipBit(batch, bit);
    if (transport::OpenBatch(flipped).ok()) continue;
    ApplyReport rep = target_->ApplyBatches({flipped});
    ASSERT_EQ(rep.rejected, 1u) << "bit " << bit;
    ASSERT_EQ(rep.reasons.size(), 1u);
    ASSERT_TRUE(Take(*target_) == before) << "bit " << bit;
  }
  EXPECT_GT(target_->stats().rejected_bad_signature + target_->stats().rejected_malformed, 0u);
  // A wrong signature specifically: kUnauthenticated.
  std::string bad_sig = batch;
  bad_sig[bad_sig.size() - 9] = static_cast<char>(bad_sig[bad_sig.size() - 9] ^ 0x40);
  ApplyResult r = target_->core().ApplyBatch(bad_sig);
  EXPECT_EQ(r.outcome, ApplyOutcome::kRejected);
  EXPECT_TRUE(r.status.code() == absl::StatusCode::kUnauthenticated ||
              r.status.code() == absl::StatusCode::kInvalidArgument)
      << r.status;
  EXPECT_TRUE(Take(*target_) == before);
}

TEST_F(SecurityTest, UntrustedAuthorIsRejectedAndChangesNothing) {
  auto stranger = MustOpen(dir_.Sub("stranger"));
  ASSERT_TRUE(stranger->document("mine").Put("/x", "\"hijacked\"").ok());
  ASSERT_TRUE(stranger->document("theirs").Put("/y", "1").ok());
  std::vector<std::string> batches = ExportAll(*stranger, dir_.Sub("stranger.bundle"));
  ASSERT_EQ(batches.size(), 2u);
  const Snapshot before = Take(*target_);
  const ReplicaStats stats_before = target_->stats();

  ApplyReport rep = target_->ApplyBatches(batches);
  EXPECT_EQ(rep.rejected, 2u);
  EXPECT_EQ(rep.applied + rep.duplicate + rep.held, 0u);
  ASSERT_EQ(rep.reasons.size(), 2u);
  EXPECT_NE(rep.reasons[0].find("not trusted"), std::string::npos) << rep.reasons[0];
  ApplyResult one = target_->core().ApplyBatch(batches[0]);
  EXPECT_EQ(one.outcome, ApplyOutcome::kRejected);
  EXPECT_EQ(one.status.code(), absl::StatusCode::kUnauthenticated) << one.status;
  absl::StatusOr<BundleReport> imported = target_->ImportBundle(dir_.Sub("stranger.bundle"));
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->batches.rejected, 2u);
  EXPECT_EQ(imported->batches.applied, 0u);

  EXPECT_TRUE(Take(*target_) == before);
  EXPECT_EQ(MustGet(target_->document("mine"), "/x"), "\"kept\"");
  EXPECT_EQ(target_->stats().rejected_untrusted - stats_before.rejected_untrusted, 5u);
  EXPECT_EQ(target_->stats().batches_applied, stats_before.batches_applied);
  // Its batches are not kept for relaying either.
  const std::string relay = dir_.Sub("relay.bundle");
  absl::StatusOr<BundleReport> out = target_->ExportBundle(relay);
  ASSERT_TRUE(out.ok());
  absl::StatusOr<std::vector<std::string>> relayed = BundleBatches(relay);
  ASSERT_TRUE(relayed.ok());
  for (const std::string& b : *relayed) {
    EXPECT_EQ(transport::OpenBatch(b)->header.author.Hex(), target_->public_key_hex());
  }
  // Once trusted, the same batches apply.
  ASSERT_TRUE(target_->Trust(stranger->public_key_hex()).ok());
  ApplyReport later = target_->ApplyBatches(batches);
  EXPECT_EQ(later.applied, 2u);
  EXPECT_EQ(MustGet(target_->document("theirs"), "/y"), "1");
}

// What sessions announce as refused: the last kRefusedAuthorsMax untrusted
// authors, most recent first; trusting one takes it out.
TEST_F(SecurityTest, RefusedAuthorsAreBoundedAndTrustTakesThemOut) {
  std::vector<std::unique_ptr<ForgedAuthor>> strangers;
  auto refuse = [&](ForgedAuthor& a) {
    absl::StatusOr<std::string> batch = a.Commit("d", 1, [](crdt::TransactionBuilder& t) {
      return t.Put(P("/v"), StringTree("x"));
    });
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(target_->core().ApplyBatch(*batch).status.code(), absl::StatusCode::kUnauthenticated);
  };
  for (size_t i = 0; i <= transport::kRefusedAuthorsMax; ++i) {
    strangers.push_back(std::make_unique<ForgedAuthor>());
    refuse(*strangers.back());
  }
  absl::StatusOr<std::vector<crdt::AuthorKey>> refused = target_->core().RefusedAuthors();
  ASSERT_TRUE(refused.ok()) << refused.status();
  ASSERT_EQ(refused->size(), transport::kRefusedAuthorsMax);
  EXPECT_EQ(refused->front(), strangers.back()->key().public_key());
  EXPECT_EQ(refused->back(), strangers[1]->key().public_key()) << "the oldest is forgotten";

  refuse(*strangers[1]);
  ASSERT_TRUE(target_->Trust(strangers.back()->hex()).ok());
  refused = target_->core().RefusedAuthors();
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->size(), transport::kRefusedAuthorsMax - 1);
  EXPECT_EQ(refused->front(), strangers[1]->key().public_key());
  EXPECT_EQ(std::count(refused->begin(), refused->end(), strangers.back()->key().public_key()), 0);

  // A batch whose signature does not verify is refused before its author
  // is looked at: it names no one.
  ForgedAuthor forger;
  absl::StatusOr<std::string> forged = forger.Commit("d", 1, [](crdt::TransactionBuilder& t) {
    return t.Put(P("/v"), StringTree("x"));
  });
  ASSERT_TRUE(forged.ok()) << forged.status();
  EXPECT_EQ(target_->core().ApplyBatch(FlipBit(*forged, forged->size() * 8 - 1)).outcome,
            ApplyOutcome::kRejected);
  refused = target_->core().RefusedAuthors();
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(std::count(refused->begin(), refused->end(), forger.key().public_key()), 0);
}

TEST_F(SecurityTest, ReplayedOldBatchIsDuplicateAndChangesNothing) {
  ReplicaOptions no_compact;
  no_compact.auto_compact = false;
  auto writer = MustOpen(dir_.Sub("writer"), no_compact);
  ASSERT_TRUE(target_->Trust(writer->public_key_hex()).ok());
  Document d = writer->document("d");
  ASSERT_TRUE(d.Put("/x", "\"v1\"").ok());
  const std::vector<std::string> first = ExportAll(*writer, dir_.Sub("1.bundle"));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(d.Put("/x", "\"v2\"").ok());
  ASSERT_TRUE(d.CounterAdd("/n", 1).ok());
  const std::vector<std::string> all = ExportAll(*writer, dir_.Sub("all.bundle"));
  ASSERT_EQ(all.size(), 3u);
  ApplyReport rep = target_->ApplyBatches(all);
  ASSERT_EQ(rep.applied, 3u);
  const Snapshot before = Take(*target_);
  const ReplicaStats stats_before = target_->stats();

  ApplyReport replay = target_->ApplyBatches({first[0], first[0], all[2]});
  EXPECT_EQ(replay.duplicate, 3u);
  EXPECT_EQ(replay.applied, 0u);
  EXPECT_EQ(replay.rejected, 0u);
  EXPECT_EQ(target_->core().ApplyBatch(first[0]).outcome, ApplyOutcome::kDuplicate);
  EXPECT_TRUE(Take(*target_) == before);
  EXPECT_EQ(MustGet(target_->document("d"), "/x"), "\"v2\"");
  EXPECT_EQ(MustGet(target_->document("d"), "/n"), "1");
  EXPECT_EQ(target_->stats().batches_duplicate - stats_before.batches_duplicate, 4u);
  EXPECT_EQ(target_->stats().batches_applied, stats_before.batches_applied);
  // The author itself sees its own batches as duplicates.
  ApplyReport own = writer->ApplyBatches(all);
  EXPECT_EQ(own.duplicate, 3u);
}

// Validly signed, but the delta claims what its seq range does not cover:
// kInvalidArgument, nothing changes.
TEST_F(SecurityTest, DeltaOutsideItsSeqRangeIsInvalidArgument) {
  ForgedAuthor e;
  ASSERT_TRUE(target_->Trust(e.hex()).ok());
  const uint64_t hlc = crdt::HlcFromMillis(SystemMillis());
  const Snapshot before = Take(*target_);
  std::vector<std::pair<std::string, std::string>> forged;

  // Rows with dot 5 under a header claiming 1..1.
  e.set_next_dot(5);
  absl::StatusOr<std::string> beyond = e.Commit(
      "d", hlc, [](crdt::TransactionBuilder& t) { return t.Put(P("/x"), IntTree(1)); },
      std::make_pair(uint64_t{1}, uint64_t{1}));
  ASSERT_TRUE(beyond.ok()) << beyond.status();
  forged.emplace_back("dot beyond the range", *beyond);

  // A range 1..3 whose delta holds only dot 1 (the context lacks 2 and 3).
  ForgedAuthor e2(e.key());
  absl::StatusOr<std::string> short_ctx = e2.Commit(
      "d", hlc, [](crdt::TransactionBuilder& t) { return t.Put(P("/x"), IntTree(2)); },
      std::make_pair(uint64_t{1}, uint64_t{3}));
  ASSERT_TRUE(short_ctx.ok());
  forged.emplace_back("range not in the context", *short_ctx);

  // Rows of another (trusted) author, signed by e.
  {
    crdt::MemoryStore scratch;
    crdt::TransactionBuilder t(&scratch, author_->core().self(), 1, hlc);
    ASSERT_TRUE(t.Put(P("/x"), IntTree(3)).ok());
    absl::StatusOr<crdt::Delta> d = t.Finish();
    ASSERT_TRUE(d.ok());
    transport::BatchHeader h;
    h.document = "mine";
    h.author = e.key().public_key();
    h.seq_first = 1;
    h.seq_last = 1;
    h.hlc = hlc;
    absl::StatusOr<std::string> b = transport::SealBatch(h, crdt::EncodeCompact(*d), e.key());
    ASSERT_TRUE(b.ok());
    forged.emplace_back("another author's dots", *b);
  }

  // Well-framed deltas that break a row rule, signed by a trusted author.
  auto seal_rows = [&](const std::string& what, std::vector<crdt::Row> rows) {
    crdt::Delta d;
    d.rows = std::move(rows);
    d.context.Insert(e.key().public_key(), 1, 1);
    transport::BatchHeader h;
    h.document = "d";
    h.author = e.key().public_key();
    h.seq_first = 1;
    h.seq_last = 1;
    h.hlc = hlc;
    absl::StatusOr<std::string> b = transport::SealBatch(h, crdt::EncodeCompact(d), e.key());
    ASSERT_TRUE(b.ok()) << what;
    forged.emplace_back(what, *b);
  };
  const crdt::Dot dot1{e.key().public_key(), 1};
  {
    crdt::Row root;
    root.key.path = crdt::Path();
    root.key.facet = crdt::Facet::kRegister;
    root.key.dot = dot1;
    root.value = crdt::SingleVariant(crdt::EncodeRegisterVariant(hlc, crdt::Value::Int(1)));
    seal_rows("a register at the root", {root});
  }
  {
    crdt::Row many;
    many.key.path = P("/x");
    many.key.facet = crdt::Facet::kRegister;
    many.key.dot = dot1;
    for (int i = 0; i <= static_cast<int>(crdt::kRowVariantsMax); ++i) {
      many.value.push_back(crdt::EncodeRegisterVariant(hlc, crdt::Value::Int(i)));
    }
    std::sort(many.value.begin(), many.value.end());
    seal_rows("more variants than kRowVariantsMax", {many});
  }
  {
    crdt::Row member;
    member.key.path = P("/s");
    member.key.facet = crdt::Facet::kSet;
    member.key.element = crdt::Value::String(std::string(crdt::kSetElementBytesMax, 'e')).value().Canonical();
    member.key.dot = dot1;
    member.value = crdt::SingleVariant("");
    seal_rows("a set element over kSetElementBytesMax", {member});
  }

  for (const auto& entry : forged) {
    ASSERT_TRUE(transport::OpenBatch(entry.second).ok()) << entry.first << ": the signature is valid";
    ApplyResult r = target_->core().ApplyBatch(entry.second);
    EXPECT_EQ(r.outcome, ApplyOutcome::kRejected) << entry.first;
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << entry.first << ": " << r.status;
    ApplyReport rep = target_->ApplyBatches({entry.second});
    EXPECT_EQ(rep.rejected, 1u) << entry.first;
  }
  EXPECT_TRUE(Take(*target_) == before);
  EXPECT_EQ(target_->stats().rejected_malformed, 2 * forged.size());
}

// Security issue 9, finding B: the signature covers the body only; a relay
// padded an honest batch's envelope and the padded copy replaced the stored
// batch. Only the canonical encoding is accepted now.
TEST_F(SecurityTest, PaddedCopyOfAStoredBatchIsRejectedAndTheStoredOneKept) {
  ASSERT_TRUE(author_->document("d").Put("/a", "\"honest\"").ok());
  std::vector<std::string> batches = ExportAll(*author_, dir_.Sub("honest.bundle"));
  ASSERT_EQ(batches.size(), 1u);
  const std::string& honest = batches[0];
  absl::StatusOr<BundleReport> first = target_->ImportBundle(dir_.Sub("honest.bundle"));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->batches.applied, 1u);
  const Snapshot before = Take(*target_);
  const std::vector<std::string> stored_before = ExportAll(*target_, dir_.Sub("before.bundle"));
  ASSERT_NE(std::find(stored_before.begin(), stored_before.end(), honest), stored_before.end());

  const std::string padded = PaddedBatch(honest);
  ASSERT_TRUE(transport::PeekBatchHeader(padded).ok()) << "a valid message";
  ASSERT_TRUE(WriteFile(dir_.Sub("padded.bundle"), MakeBundle({padded, padded})).ok());
  absl::StatusOr<BundleReport> rep = target_->ImportBundle(dir_.Sub("padded.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  // The store still holds the honest bytes, and only them (before, the
  // padded copy counted as a duplicate and replaced the stored batch).
  EXPECT_EQ(ExportAll(*target_, dir_.Sub("after.bundle")), stored_before);
  EXPECT_TRUE(Take(*target_) == before);
  EXPECT_EQ(rep->batches.rejected, 2u);
  EXPECT_EQ(rep->batches.applied + rep->batches.duplicate + rep->batches.held, 0u);
  EXPECT_EQ(rep->batches.first_rejection, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rep->batches.rejected_by_reason, (std::map<std::string, uint64_t>{{"not_canonical", 2}}));
  ASSERT_EQ(rep->batches.reasons.size(), 2u);
  EXPECT_EQ(rep->batches.reasons[0], "batch 1: not_canonical: batch envelope is not in canonical form");

  ApplyReport direct = target_->ApplyBatches({padded});
  EXPECT_EQ(direct.rejected_by_reason, (std::map<std::string, uint64_t>{{"not_canonical", 1}}));
  EXPECT_EQ(ExportAll(*target_, dir_.Sub("after2.bundle")), stored_before);
}

// Security issue 9, finding C: a bundle of 5,000,000 zero-length entries
// made one reason line each (597 MB). The report is bounded now.
TEST_F(SecurityTest, ManyBadEntriesGiveABoundedReport) {
  constexpr uint64_t kEntries = 200000;
  ASSERT_TRUE(WriteFile(dir_.Sub("junk.bundle"), MakeBundle(std::vector<std::string>(kEntries))).ok());
  const Snapshot before = Take(*target_);
  absl::StatusOr<BundleReport> rep = target_->ImportBundle(dir_.Sub("junk.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.rejected, kEntries);
  EXPECT_EQ(rep->batches.first_rejection, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rep->batches.rejected_by_reason,
            (std::map<std::string, uint64_t>{{"malformed", kEntries}}));
  ASSERT_EQ(rep->batches.reasons.size(), kRejectionExamplesMax);
  for (size_t i = 0; i < kRejectionExamplesMax; ++i) {
    EXPECT_EQ(rep->batches.reasons[i].rfind(absl::StrCat("batch ", i + 1, ": malformed: "), 0), 0u)
        << rep->batches.reasons[i];
  }
  EXPECT_EQ(rep->documents, 0u);
  EXPECT_TRUE(Take(*target_) == before);

  // The same through ApplyBatches.
  ApplyReport direct = target_->ApplyBatches(std::vector<std::string>(20000));
  EXPECT_EQ(direct.rejected, 20000u);
  EXPECT_EQ(direct.reasons.size(), kRejectionExamplesMax);
}

// Every reason class keeps an example with its whole message, however
// much junk comes first; an untrusted author's batches naming many
// documents do not grow the report either.
TEST_F(SecurityTest, ReportKeepsAnExampleOfEveryReason) {
  auto stranger = MustOpen(dir_.Sub("stranger"));
  ASSERT_TRUE(stranger->document("x").Put("/a", "1").ok());
  std::vector<std::string> theirs = ExportAll(*stranger, dir_.Sub("stranger.bundle"));
  ASSERT_EQ(theirs.size(), 1u);
  ASSERT_TRUE(author_->document("d").Put("/a", "1").ok());
  std::vector<std::string> ours = ExportAll(*author_, dir_.Sub("author.bundle"));
  ASSERT_EQ(ours.size(), 1u);
  std::string bad_signature = ours[0];
  bad_signature.back() = static_cast<char>(bad_signature.back() ^ 1);

  std::vector<std::string> batches(30);  // 30 malformed first
  batches.push_back(theirs[0]);
  batches.push_back(bad_signature);
  batches.push_back(PaddedBatch(ours[0]));
  batches.push_back(ours[0]);  // applies
  ASSERT_TRUE(WriteFile(dir_.Sub("mixed.bundle"), MakeBundle(batches)).ok());
  absl::StatusOr<BundleReport> rep = target_->ImportBundle(dir_.Sub("mixed.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.applied, 1u);
  EXPECT_EQ(rep->batches.rejected, 33u);
  EXPECT_EQ(rep->documents, 1u) << "the rejected batch's document is not counted";
  EXPECT_EQ(rep->batches.rejected_by_reason,
            (std::map<std::string, uint64_t>{{"bad_signature", 1},
                                             {"malformed", 30},
                                             {"not_canonical", 1},
                                             {"untrusted_author", 1}}));
  const std::vector<std::string>& r = rep->batches.reasons;
  ASSERT_EQ(r.size(), kRejectionExamplesMax);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r[i].rfind(absl::StrCat("batch ", i + 1, ": malformed: "), 0), 0u) << r[i];
  }
  EXPECT_EQ(r[5].rfind("batch 31: untrusted_author: ", 0), 0u) << r[5];
  EXPECT_NE(r[5].find("not trusted"), std::string::npos) << r[5];
  EXPECT_EQ(r[6], absl::StrCat("batch 32: bad_signature: batch signature by ",
                               author_->public_key_hex(), " does not verify"));
  EXPECT_EQ(r[7], "batch 33: not_canonical: batch envelope is not in canonical form");
}

}  // namespace
}  // namespace edgesync::testing
