// Sync sessions between replicas in one process.

#include "edgesync/session.h"

#include <gtest/gtest.h>

#include <chrono>

#include "absl/strings/match.h"
#include "lib/test_util/temp_dir.h"
#include "tests/replica/path_bomb.h"
#include "transport/capnp_util.h"
#include "transport/sync.capnp.h"
#include "transport/sync_session.h"

namespace edgesync {
namespace {

using internal::TempDir;

struct Pair {
  TempDir dir;
  std::unique_ptr<Replica> a = *Replica::Open(dir.path() + "/a");
  std::unique_ptr<Replica> b = *Replica::Open(dir.path() + "/b");
  Pair() {
    EXPECT_TRUE(a->Trust(b->public_key_hex()).ok());
    EXPECT_TRUE(b->Trust(a->public_key_hex()).ok());
  }
};

// Incompressible text, so a batch holding it stays about this large.
std::string RandomLetters(size_t n, uint64_t seed) {
  std::string out(n, ' ');
  for (char& c : out) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    c = static_cast<char>('a' + seed % 26);
  }
  return out;
}

TEST(SessionTest, DivergentReplicasConvergeInThreeFlights) {
  Pair p;
  ASSERT_TRUE(p.a->document("d").Put("", R"({"x":1,"s":["a"]})").ok());
  ASSERT_TRUE(p.b->document("d").Put("/y", "2").ok());
  ASSERT_TRUE(p.b->document("e").CounterAdd("/n", 3).ok());
  absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->synced);
  EXPECT_EQ(r->a.flights_sent, 3u);
  EXPECT_EQ(r->b.flights_sent, 3u);
  EXPECT_EQ(*p.a->document("d").Digest(), *p.b->document("d").Digest());
  EXPECT_EQ(*p.a->document("e").Digest(), *p.b->document("e").Digest());
  EXPECT_EQ(*p.a->document("d").Get(), R"({"s":["a"],"x":1,"y":2})");

  // Already in sync: one flight each, nothing else.
  absl::StatusOr<LocalSyncResult> again = SyncLocal(*p.a, *p.b);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->synced);
  EXPECT_EQ(again->a.flights_sent, 1u);
  EXPECT_EQ(again->a.batches_sent + again->b.batches_sent, 0u);
}

TEST(SessionTest, WorksWith512ByteMessagesAndChunksLargeBatches) {
  Pair p;
  const std::string big = RandomLetters(300000, 88172645463325252ull);
  ASSERT_TRUE(p.a->document("d").Put("/blob", "\"" + big + "\"").ok());
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(p.b->document("doc" + std::to_string(i)).Put("/v", std::to_string(i)).ok());
  }
  SessionOptions o;
  o.max_message_bytes = 512;
  absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->synced);
  // 26 letters compress to about 60%: still hundreds of 512-byte chunks.
  EXPECT_GT(r->a.messages_sent, 300u);
  EXPECT_EQ(*p.b->document("d").Get("/blob"), "\"" + big + "\"");
  EXPECT_EQ(*p.a->DocumentIds(), *p.b->DocumentIds());
}

TEST(SessionTest, InterestLimitsWhatIsComparedAndSent) {
  Pair p;
  ASSERT_TRUE(p.a->document("sensor/1").Put("/t", "1").ok());
  ASSERT_TRUE(p.a->document("admin/x").Put("/t", "1").ok());
  SessionOptions o;
  o.interest = {"sensor/"};
  absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->synced);
  EXPECT_EQ(*p.b->DocumentIds(), std::vector<std::string>{"sensor/1"});
}

// Cuts the session after `cut` messages in total, then runs a new session:
// it must converge and must not send again a batch that already arrived.
void WriteResumeWorkload(Replica& r) {
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(r.document("d" + std::to_string(i)).Put("/v", std::to_string(i)).ok());
  }
  ASSERT_TRUE(r.document("big").Put("/blob", "\"" + RandomLetters(20000, 7) + "\"").ok());
}

TEST(SessionTest, InterruptedSessionResumesWithoutResending) {
  SessionOptions o;
  o.max_message_bytes = 1024;
  uint64_t uninterrupted_bytes = 0;
  {
    Pair p;
    WriteResumeWorkload(*p.a);
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b, o);
    ASSERT_TRUE(r.ok()) << r.status();
    uninterrupted_bytes = r->a.bytes_sent;
  }
  for (int cut = 1; cut < 40; cut += 3) {
    SCOPED_TRACE(cut);
    Pair p;
    WriteResumeWorkload(*p.a);
    uint64_t delivered_from_a = 0;
    {
      auto sa = *Session::Create(*p.a, o);
      auto sb = *Session::Create(*p.b, o);
      int sent = 0;
      for (bool busy = true; busy && sent < cut;) {
        busy = false;
        auto ma = *sa->Next();
        if (ma && sent++ < cut) {
          busy = true;
          delivered_from_a += ma->size();
          (void)sb->Receive(*ma);
        }
        auto mb = *sb->Next();
        if (mb && sent++ < cut) {
          busy = true;
          (void)sa->Receive(*mb);
        }
      }
    }  // The connection drops: both sessions end.
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b, o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->synced);
    EXPECT_EQ(r->b.batches_duplicate, 0u);
    // What arrived (whole batches and the prefix of the large one) is not
    // sent again: only the new session's hello and vectors are extra.
    EXPECT_LE(delivered_from_a + r->a.bytes_sent, uninterrupted_bytes + 4096);
    EXPECT_EQ(*p.a->document("big").Digest(), *p.b->document("big").Digest());
  }
}

// Hundreds of small batches (one per document) share a message: the
// encoded message must still respect the limit (capnp would add far
// pointers and a segment table past its first segment).
TEST(SessionTest, AMessageOfManySmallBatchesStaysWithinTheLimit) {
  Pair p;
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(p.a->document("doc" + std::to_string(i)).Put("/k", std::to_string(i)).ok());
  }
  absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->synced);
  EXPECT_EQ(r->a.batches_sent, 300u);
  EXPECT_LT(r->a.messages_sent, 20u) << "many batches share a message";
  EXPECT_EQ(*p.a->DocumentIds(), *p.b->DocumentIds());
}

// A relay that received an author's writes one session at a time forwards
// them compacted: the author's sessions line its batches up with its own
// compacted log, which supersedes the relay's fragments.
TEST(SessionTest, ARelayForwardsAnAuthorsManyWritesCompacted) {
  Pair p;
  TempDir dir;
  std::unique_ptr<Replica> c = *Replica::Open(dir.path() + "/c");
  ASSERT_TRUE(c->Trust(p.a->public_key_hex()).ok());
  ASSERT_TRUE(c->Trust(p.b->public_key_hex()).ok());
  ASSERT_TRUE(p.b->Trust(c->public_key_hex()).ok());
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(p.a->document("d").Put("/k" + std::to_string(i % 10), std::to_string(i)).ok());
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b);
    ASSERT_TRUE(r.ok() && r->synced) << r.status();
  }
  absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.b, *c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->synced);
  EXPECT_LE(r->a.batches_sent, 8u) << "not one batch per write";
  EXPECT_EQ(*p.a->document("d").Digest(), *c->document("d").Digest());
  EXPECT_EQ(*c->document("d").Get("/k3"), "193");
}

TEST(SessionTest, GarbageFailsTheSessionAndChangesNothing) {
  Pair p;
  ASSERT_TRUE(p.b->document("d").Put("/x", "1").ok());
  const std::string before = *p.b->document("d").Digest();
  auto sb = *Session::Create(*p.b);
  absl::Status s = sb->Receive("not a capnp message at all");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sb->Receive("x").code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::optional<std::string>> abort = sb->Next();
  ASSERT_TRUE(abort.ok());
  EXPECT_TRUE(abort->has_value());
  EXPECT_EQ(*p.b->document("d").Digest(), before);
  std::string oversize(70000, '\0');
  auto sc = *Session::Create(*p.b);
  EXPECT_EQ(sc->Receive(oversize).code(), absl::StatusCode::kResourceExhausted);
}

// Replica b does not trust author m; a does and holds m's batches (one per
// document) besides one of its own.
struct RefusedAuthor {
  Pair p;
  TempDir dir;
  std::unique_ptr<Replica> m = *Replica::Open(dir.path() + "/m");
  static constexpr uint64_t kBatchesOfM = 5;
  RefusedAuthor() {
    EXPECT_TRUE(p.a->Trust(m->public_key_hex()).ok());
    EXPECT_TRUE(m->Trust(p.a->public_key_hex()).ok());
    for (uint64_t i = 0; i < kBatchesOfM; ++i) {
      EXPECT_TRUE(m->document("m" + std::to_string(i))
                      .Put("/v", "\"" + RandomLetters(2000, i + 1) + "\"")
                      .ok());
    }
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*m, *p.a);
    EXPECT_TRUE(r.ok() && r->synced) << r.status();
    EXPECT_TRUE(p.a->document("own").Put("/x", "1").ok());
  }
};

TEST(SessionTest, BatchesOfAnAuthorThePeerRefusedAreNotSentAgain) {
  RefusedAuthor t;
  absl::StatusOr<LocalSyncResult> first = SyncLocal(*t.p.a, *t.p.b);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->synced);
  EXPECT_EQ(first->a.batches_sent, RefusedAuthor::kBatchesOfM + 1);
  EXPECT_EQ(first->b.batches_rejected, RefusedAuthor::kBatchesOfM);
  EXPECT_EQ(*t.p.a->document("own").Digest(), *t.p.b->document("own").Digest());

  absl::StatusOr<LocalSyncResult> second = SyncLocal(*t.p.a, *t.p.b);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->a.batches_sent, 0u);
  EXPECT_EQ(second->a.batches_withheld, RefusedAuthor::kBatchesOfM);
  EXPECT_EQ(second->b.batches_rejected, 0u);
  EXPECT_LT(second->a.bytes_sent + RefusedAuthor::kBatchesOfM * 1000, first->a.bytes_sent);
  EXPECT_EQ(t.p.b->DocumentIds()->size(), 1u);
}

TEST(SessionTest, ARefusalStopsTheAuthorForTheRestOfTheSession) {
  RefusedAuthor t;
  auto sa = *Session::Create(*t.p.a);
  auto sb = *Session::Create(*t.p.b);
  absl::Status a_report;  // what a's last round said, if it did not end in sync
  auto exchange = [&] {
    for (bool busy = true; busy;) {
      busy = false;
      absl::StatusOr<std::optional<std::string>> ma = sa->Next();
      ASSERT_TRUE(ma.ok()) << ma.status();
      if (ma->has_value()) busy = true, (void)sb->Receive(**ma);
      absl::StatusOr<std::optional<std::string>> mb = sb->Next();
      ASSERT_TRUE(mb.ok()) << mb.status();
      if (mb->has_value()) {
        busy = true;
        if (absl::Status st = sa->Receive(**mb); !st.ok()) a_report = st;
      }
    }
    ASSERT_TRUE(sa->failure().ok()) << sa->failure();
    ASSERT_TRUE(sb->failure().ok()) << sb->failure();
  };
  exchange();
  EXPECT_EQ(sa->stats().batches_sent, RefusedAuthor::kBatchesOfM + 1);
  EXPECT_EQ(sb->stats().batches_rejected, RefusedAuthor::kBatchesOfM);
  sa->RequestRound();
  exchange();
  EXPECT_EQ(sa->stats().rounds, 2u);
  EXPECT_EQ(sa->stats().batches_sent, RefusedAuthor::kBatchesOfM + 1);
  EXPECT_EQ(sa->stats().batches_withheld, RefusedAuthor::kBatchesOfM);
  EXPECT_EQ(sb->stats().batches_rejected, RefusedAuthor::kBatchesOfM);
  // The side that withheld them names the author the peer does not accept.
  EXPECT_TRUE(absl::IsAborted(a_report)) << a_report;
  EXPECT_TRUE(absl::StrContains(a_report.message(), t.m->public_key_hex())) << a_report;
}

TEST(SessionTest, OnceTrustedARefusedAuthorsBatchesFlowAgain) {
  RefusedAuthor t;
  ASSERT_TRUE(SyncLocal(*t.p.a, *t.p.b).ok());
  ASSERT_EQ(SyncLocal(*t.p.a, *t.p.b)->a.batches_sent, 0u);
  ASSERT_TRUE(t.p.b->Trust(t.m->public_key_hex()).ok());
  absl::StatusOr<LocalSyncResult> r = SyncLocal(*t.p.a, *t.p.b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->synced);
  EXPECT_EQ(r->a.batches_sent, RefusedAuthor::kBatchesOfM);
  EXPECT_EQ(r->a.batches_withheld, 0u);
  EXPECT_EQ(r->b.batches_applied, RefusedAuthor::kBatchesOfM);
  EXPECT_EQ(*t.p.a->DocumentIds(), *t.p.b->DocumentIds());
}

// A round-1 hello carrying `refused_bytes` of refused-author keys.
std::string HelloRefusing(size_t refused_bytes) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<transport::schema::SyncMessage>();
  m.setRound(1);
  auto hello = m.initHello();
  hello.setProtocolVersion(transport::kSyncProtocolVersion);
  hello.setMaxMessageBytes(64u << 10);
  hello.initInterest(1).set(0, "");
  const std::string keys(refused_bytes, '\x07');
  hello.setRefusedAuthors(transport::AsCapnpData(keys));
  return transport::MessageToBytes(message);
}

TEST(SessionTest, AHelloRefusingTooManyOrMalformedKeysFailsTheSession) {
  Pair p;
  ASSERT_TRUE(p.b->document("d").Put("/x", "1").ok());
  const std::string before = *p.b->document("d").Digest();
  EXPECT_TRUE((*Session::Create(*p.b))->Receive(HelloRefusing(256 * 32)).ok());

  auto too_many = *Session::Create(*p.b);
  absl::Status s = too_many->Receive(HelloRefusing(257 * 32));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "sync protocol violation: more than 256 refused authors");
  EXPECT_EQ(too_many->Receive(HelloRefusing(0)).code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::optional<std::string>> abort = too_many->Next();
  ASSERT_TRUE(abort.ok());
  EXPECT_TRUE(abort->has_value());

  auto malformed = *Session::Create(*p.b);
  s = malformed->Receive(HelloRefusing(33));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "sync protocol violation: refused authors are not whole 32-byte keys");
  EXPECT_EQ(*p.b->document("d").Digest(), before);
}

// A round-1 message from a peer claiming `documents` documents and a
// summary unlike anyone's, so that the drill-down starts.
std::string DrillHello(uint32_t documents) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<transport::schema::SyncMessage>();
  m.setRound(1);
  auto hello = m.initHello();
  hello.setProtocolVersion(transport::kSyncProtocolVersion);
  hello.setMaxMessageBytes(64u << 10);
  hello.initInterest(1).set(0, "");
  hello.setSummary(transport::AsCapnpData(std::string(16, '\x5a')));
  hello.setDocumentCount(documents);
  return transport::MessageToBytes(message);
}

std::string DigestsMessage(const std::string& payload) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<transport::schema::SyncMessage>();
  m.setRound(1);
  m.setDigests(transport::AsCapnpData(payload));
  return transport::MessageToBytes(message);
}

TEST(SessionTest, DigestsOutOfTheDrillDownFailTheSession) {
  Pair p;
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(p.b->document("d" + std::to_string(i)).Put("/x", "1").ok());
  const std::string before = *p.b->document("d7").Digest();
  auto drill = [&](uint32_t documents) {
    std::unique_ptr<Session> s = *Session::Create(*p.b);
    EXPECT_TRUE(s->Next().ok());  // its hello: the snapshot is taken
    EXPECT_TRUE(s->Receive(DrillHello(documents)).ok());
    return s;
  };
  // Depth 2 before depth 1.
  std::unique_ptr<Session> s = drill(100);
  absl::Status st = s->Receive(DigestsMessage(std::string("\x02\x00", 2)));
  EXPECT_EQ(st.message(), "sync protocol violation: digests of depth 2 while at depth 1");
  // 17 children of one opened node.
  s = drill(100);
  st = s->Receive(DigestsMessage(std::string("\x01") + std::string(17, '\x00')));
  EXPECT_EQ(st.message(), "sync protocol violation: more digests than nodes opened");
  // A listing before the drill ended.
  s = drill(100);
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<transport::schema::SyncMessage>();
  m.setRound(1);
  m.setDocuments(transport::AsCapnpData(std::string("\x00\x00", 2)));
  st = s->Receive(transport::MessageToBytes(message));
  EXPECT_EQ(st.message(), "sync protocol violation: documents before the drill-down ended");
  // A peer with no documents gets the whole listing: digests are out of place.
  s = drill(0);
  st = s->Receive(DigestsMessage(std::string("\x01\x00", 2)));
  EXPECT_EQ(st.message(), "sync protocol violation: digests outside the drill-down");
  EXPECT_EQ(*p.b->document("d7").Digest(), before);
}

// A session message pushing `batch`.
std::string PushMessage(const std::string& batch) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<transport::schema::SyncMessage>();
  m.initPush(1).set(0, transport::AsCapnpData(batch));
  return transport::MessageToBytes(message);
}

// A batch refused for its author leaves the session going (a relay forwards
// authors it trusts in good faith); the same batch signed by a trusted
// author, refused for a delta that does not decode, fails it.
TEST(SessionTest, AnInvalidBatchFailsTheSessionAnUntrustedOneDoesNot) {
  Pair p;
  const transport::SigningKey stranger = *transport::SigningKey::Generate();
  const transport::SigningKey insider = *transport::SigningKey::Generate();
  ASSERT_TRUE(p.b->Trust(insider.public_key().Hex()).ok());
  auto sb = *Session::Create(*p.b);
  EXPECT_TRUE(sb->Receive(PushMessage(testing::UndecodableBatch(stranger))).ok());
  EXPECT_EQ(p.b->stats().rejected_untrusted, 1u);
  const absl::Status s = sb->Receive(PushMessage(testing::UndecodableBatch(insider)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "peer sent an invalid batch: ")) << s;
  EXPECT_EQ(p.b->stats().rejected_malformed, 1u);
  EXPECT_TRUE(p.b->DocumentIds()->empty());
}

}  // namespace
}  // namespace edgesync

namespace edgesync {
namespace {

// Many authors and many documents: flight 1 introduces authors and splits
// vectors across 512-byte messages; every message must stay within the
// limit (the session checks it on every message it produces).
TEST(SessionTest, ManyAuthorsFitSmallMessages) {
  internal::TempDir dir;
  ReplicaOptions o;
  o.durability = Durability::kFast;
  auto hub = *Replica::Open(dir.path() + "/hub", o);
  auto fresh = *Replica::Open(dir.path() + "/fresh", o);
  std::vector<std::unique_ptr<Replica>> writers;
  for (int i = 0; i < 24; ++i) writers.push_back(*Replica::Open(dir.path() + "/w" + std::to_string(i), o));
  for (auto& w : writers) {
    ASSERT_TRUE(hub->Trust(w->public_key_hex()).ok());
    ASSERT_TRUE(fresh->Trust(w->public_key_hex()).ok());
    ASSERT_TRUE(w->Trust(hub->public_key_hex()).ok());
    for (auto& other : writers) ASSERT_TRUE(w->Trust(other->public_key_hex()).ok());
  }
  ASSERT_TRUE(fresh->Trust(hub->public_key_hex()).ok());
  ASSERT_TRUE(hub->Trust(fresh->public_key_hex()).ok());
  for (size_t i = 0; i < writers.size(); ++i) {
    for (int d = 0; d < 6; ++d) {
      // Gaps in each author's seqs make multi-range vectors.
      ASSERT_TRUE(writers[i]->document("doc" + std::to_string(d)).Put("/k" + std::to_string(i), "1").ok());
      ASSERT_TRUE(writers[i]->document("other").Put("/x", "1").ok());
    }
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*writers[i], *hub);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  for (size_t limit : {512u, 700u, 1024u, 4096u}) {
    SCOPED_TRACE(limit);
    internal::TempDir d2;
    auto b = *Replica::Open(d2.path(), o);
    for (auto& w : writers) ASSERT_TRUE(b->Trust(w->public_key_hex()).ok());
    ASSERT_TRUE(b->Trust(hub->public_key_hex()).ok());
    ASSERT_TRUE(hub->Trust(b->public_key_hex()).ok());
    SessionOptions so;
    so.max_message_bytes = limit;
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*hub, *b, so);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->synced);
    const std::vector<std::string> ids = *hub->DocumentIds();
    EXPECT_EQ(ids, *b->DocumentIds());
    for (const std::string& id : ids) {
      EXPECT_EQ(*hub->document(id).Digest(), *b->document(id).Digest()) << id;
    }
  }
}

// Milliseconds since the Unix epoch, plus a fixed offset.
class OffsetClock : public WallClock {
 public:
  explicit OffsetClock(int64_t offset_ms) : offset_ms_(offset_ms) {}
  uint64_t NowMillis() override {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    return static_cast<uint64_t>(now + offset_ms_);
  }

 private:
  int64_t offset_ms_;
};

TEST(SessionTest, APeerWhoseClockIsBeyondTheSkewWindowIsReported) {
  constexpr int64_t kMinute = 60 * 1000;
  TempDir dir;
  OffsetClock ahead(10 * kMinute);  // beyond the default 5-minute window
  OffsetClock behind(-kMinute);
  ReplicaOptions oa;
  oa.clock = &ahead;
  ReplicaOptions ob;
  ob.clock = &behind;
  std::unique_ptr<Replica> a = *Replica::Open(dir.path() + "/a", oa);
  std::unique_ptr<Replica> b = *Replica::Open(dir.path() + "/b", ob);
  std::unique_ptr<Replica> c = *Replica::Open(dir.path() + "/c");
  ASSERT_TRUE(a->document("d").Put("/x", "1").ok());

  absl::StatusOr<LocalSyncResult> skewed = SyncLocal(*a, *c);
  ASSERT_TRUE(skewed.ok()) << skewed.status();
  EXPECT_GE(skewed->a.peer_clock_skewed, 1u);
  EXPECT_GE(skewed->b.peer_clock_skewed, 1u);
  ASSERT_TRUE(skewed->a.peer_clock_known);
  ASSERT_TRUE(skewed->b.peer_clock_known);
  // Transit in one process takes well under a minute.
  EXPECT_NEAR(skewed->a.peer_clock_offset_ms, -10 * kMinute, kMinute);
  EXPECT_NEAR(skewed->b.peer_clock_offset_ms, 10 * kMinute, kMinute);

  // A minute apart is within the window: known, not reported.
  absl::StatusOr<LocalSyncResult> fine = SyncLocal(*b, *c);
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->a.peer_clock_skewed + fine->b.peer_clock_skewed, 0u);
  ASSERT_TRUE(fine->a.peer_clock_known);
  EXPECT_NEAR(fine->a.peer_clock_offset_ms, kMinute, kMinute / 2);
}

}  // namespace
}  // namespace edgesync
