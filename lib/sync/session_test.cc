// Sync sessions between replicas in one process.

#include "edgesync/session.h"

#include <gtest/gtest.h>

#include "lib/test_util/temp_dir.h"

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
  // Incompressible, so the batch stays about this large.
  std::string big(300000, ' ');
  uint64_t x = 88172645463325252ull;
  for (char& c : big) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>('a' + x % 26);
  }
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
TEST(SessionTest, InterruptedSessionResumesWithoutResending) {
  for (int cut = 1; cut < 40; cut += 3) {
    SCOPED_TRACE(cut);
    Pair p;
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(p.a->document("d" + std::to_string(i)).Put("/v", std::to_string(i)).ok());
    }
    ASSERT_TRUE(p.a->document("big").Put("/blob", "\"" + std::string(20000, 'q') + "\"").ok());
    SessionOptions o;
    o.max_message_bytes = 1024;
    auto sa = *Session::Create(*p.a, o);
    auto sb = *Session::Create(*p.b, o);
    int sent = 0;
    for (bool busy = true; busy && sent < cut;) {
      busy = false;
      auto ma = *sa->Next();
      if (ma && sent++ < cut) {
        busy = true;
        (void)sb->Receive(*ma);
      }
      auto mb = *sb->Next();
      if (mb && sent++ < cut) {
        busy = true;
        (void)sa->Receive(*mb);
      }
    }
    const uint64_t applied_before = sb->stats().batches_applied;
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*p.a, *p.b, o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->synced);
    EXPECT_EQ(r->b.batches_duplicate, 0u) << "batches resent after " << applied_before << " arrived";
    EXPECT_EQ(*p.a->document("big").Digest(), *p.b->document("big").Digest());
  }
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

}  // namespace
}  // namespace edgesync
