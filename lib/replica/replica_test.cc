// Replica basics: commit, read, bundles between replicas, trust, compaction,
// subscriptions, transactions and their errors.

#include "edgesync/replica.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "lib/test_util/temp_dir.h"

namespace edgesync {
namespace {

using internal::TempDir;

std::unique_ptr<Replica> OpenOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir);
  EXPECT_TRUE(r.ok()) << r.status();
  return *std::move(r);
}

TEST(ReplicaTest, WritesReadBack) {
  TempDir dir;
  auto r = OpenOrDie(dir.path());
  Document d = r->document("doc");
  ASSERT_TRUE(d.Put("", R"({"x":1,"tags":["b","a"],"m":{"k":"v"}})").ok());
  ASSERT_TRUE(d.CounterAdd("/c", 5).ok());
  ASSERT_TRUE(d.CounterAdd("/c", -2).ok());
  ASSERT_TRUE(d.SetAdd("/tags", "\"c\"").ok());
  ASSERT_TRUE(d.SetRemove("/tags", "\"a\"").ok());
  ASSERT_TRUE(d.Delete("/m/k").ok());
  EXPECT_EQ(*d.Get(), R"({"c":3,"m":{},"tags":["b","c"],"x":1})");
  EXPECT_EQ(*d.Get("/c"), "3");
  EXPECT_EQ(d.Get("/nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*r->document("absent").Get(), "{}");
  EXPECT_EQ(*r->DocumentIds(), std::vector<std::string>{"doc"});
}

TEST(ReplicaTest, StateSurvivesReopen) {
  TempDir dir;
  std::string key;
  std::string digest;
  {
    auto r = OpenOrDie(dir.path());
    key = r->public_key_hex();
    ASSERT_TRUE(r->document("d").Put("/a", "\"hello\"").ok());
    digest = *r->document("d").Digest();
  }
  auto r = OpenOrDie(dir.path());
  EXPECT_EQ(r->public_key_hex(), key);
  EXPECT_EQ(*r->document("d").Get("/a"), "\"hello\"");
  EXPECT_EQ(*r->document("d").Digest(), digest);
}

TEST(ReplicaTest, BundlesSyncTwoReplicasBothWays) {
  TempDir dir;
  auto a = OpenOrDie(dir.path() + "/a");
  auto b = OpenOrDie(dir.path() + "/b");
  ASSERT_TRUE(a->document("d").Put("/x", "1").ok());
  ASSERT_TRUE(b->document("d").Put("/x", "2").ok());
  ASSERT_TRUE(b->document("d").CounterAdd("/n", 4).ok());
  ASSERT_TRUE(a->document("d").CounterAdd("/n", 3).ok());

  // Untrusted: rejected, nothing changes. (Auto-compaction may have merged
  // the two commits of each replica into one batch.)
  absl::StatusOr<BundleReport> a_out = a->ExportBundle(dir.path() + "/a.bundle");
  ASSERT_TRUE(a_out.ok()) << a_out.status();
  const uint64_t a_batches = a_out->batches.applied;
  ASSERT_GE(a_batches, 1u);
  const std::string b_digest = *b->document("d").Digest();
  absl::StatusOr<BundleReport> rejected = b->ImportBundle(dir.path() + "/a.bundle");
  ASSERT_TRUE(rejected.ok()) << rejected.status();
  EXPECT_EQ(rejected->batches.rejected, a_batches);
  EXPECT_EQ(rejected->batches.applied, 0u);
  EXPECT_EQ(*b->document("d").Digest(), b_digest);

  ASSERT_TRUE(a->Trust(b->public_key_hex()).ok());
  ASSERT_TRUE(b->Trust(a->public_key_hex()).ok());
  absl::StatusOr<BundleReport> b_out = b->ExportBundle(dir.path() + "/b.bundle");
  ASSERT_TRUE(b_out.ok());
  absl::StatusOr<BundleReport> ab = b->ImportBundle(dir.path() + "/a.bundle");
  absl::StatusOr<BundleReport> ba = a->ImportBundle(dir.path() + "/b.bundle");
  ASSERT_TRUE(ab.ok() && ba.ok());
  EXPECT_EQ(ab->batches.applied, a_batches);
  EXPECT_EQ(ba->batches.applied, b_out->batches.applied);
  EXPECT_EQ(*a->document("d").Digest(), *b->document("d").Digest());
  EXPECT_EQ(*a->document("d").Get(), *b->document("d").Get());
  EXPECT_EQ(*a->document("d").Get("/n"), "7");

  // Importing again, or one's own batches back: duplicates, no change.
  absl::StatusOr<BundleReport> again = b->ImportBundle(dir.path() + "/a.bundle");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->batches.duplicate, a_batches);
  absl::StatusOr<BundleReport> own = a->ImportBundle(dir.path() + "/a.bundle");
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->batches.duplicate, a_batches);
  EXPECT_EQ(own->batches.rejected, 0u);
}

TEST(ReplicaTest, CompactionKeepsDigestAndShrinksLog) {
  TempDir dir;
  auto a = OpenOrDie(dir.path() + "/a");
  auto fresh = OpenOrDie(dir.path() + "/fresh");
  auto full = OpenOrDie(dir.path() + "/full");
  ASSERT_TRUE(fresh->Trust(a->public_key_hex()).ok());
  ASSERT_TRUE(full->Trust(a->public_key_hex()).ok());
  Document d = a->document("d");
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(d.Put("/x", std::to_string(i)).ok());
  ASSERT_TRUE(d.Put("/gone", "\"soon\"").ok());
  ASSERT_TRUE(d.Delete("/gone").ok());
  ASSERT_TRUE(a->ExportBundle(dir.path() + "/before.bundle").ok());
  ASSERT_TRUE(full->ImportBundle(dir.path() + "/before.bundle").ok());
  ASSERT_TRUE(d.Compact().ok());
  absl::StatusOr<BundleReport> after = a->ExportBundle(dir.path() + "/after.bundle");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->batches.applied, 1u);
  ASSERT_TRUE(fresh->ImportBundle(dir.path() + "/after.bundle").ok());
  EXPECT_EQ(*fresh->document("d").Digest(), *d.Digest());
  EXPECT_EQ(*full->document("d").Digest(), *d.Digest());
  EXPECT_EQ(*fresh->document("d").Get(), R"({"x":49})");
}

TEST(ReplicaTest, SubscriptionsSeeLocalAndRemoteChanges) {
  TempDir dir;
  auto a = OpenOrDie(dir.path() + "/a");
  auto b = OpenOrDie(dir.path() + "/b");
  ASSERT_TRUE(b->Trust(a->public_key_hex()).ok());
  std::vector<Change> seen;
  const uint64_t id = b->Subscribe("sensor/", [&](const Change& c) { seen.push_back(c); });
  ASSERT_TRUE(b->document("sensor/1").Put("/t", "20.5").ok());
  ASSERT_TRUE(b->document("other").Put("/t", "1").ok());
  ASSERT_TRUE(a->document("sensor/2").Put("/t", "21.5").ok());
  ASSERT_TRUE(a->ExportBundle(dir.path() + "/a.bundle").ok());
  ASSERT_TRUE(b->ImportBundle(dir.path() + "/a.bundle").ok());
  b->Unsubscribe(id);
  ASSERT_TRUE(b->document("sensor/3").Put("/t", "1").ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].document, "sensor/1");
  EXPECT_FALSE(seen[0].remote);
  EXPECT_EQ(seen[0].paths, std::vector<std::string>{"/t"});
  EXPECT_EQ(seen[1].document, "sensor/2");
  EXPECT_TRUE(seen[1].remote);
  EXPECT_EQ(seen[1].author, a->public_key_hex());
}

TEST(ReplicaTest, TransactionErrorsAreSpecificAndChangeNothing) {
  TempDir dir;
  auto r = OpenOrDie(dir.path());
  Document d = r->document("d");
  Transaction t = d.Begin();
  EXPECT_EQ(t.Put("no-slash", "1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Put("/a", "{bad").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Put("/a", "NaN").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Put("", "1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.CounterAdd("", 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.SetAdd("/s", "{\"a\":1}").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.mutation_count(), 0u);
  ASSERT_TRUE(t.CounterAdd("/n", INT64_MAX).ok());
  ASSERT_TRUE(t.CounterAdd("/n", 1).ok());
  EXPECT_EQ(t.Commit().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(*d.Get(), "{}");
  EXPECT_EQ(t.Put("/a", "1").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r->document("").Put("/a", "1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->document(std::string(256, 'x')).Put("/a", "1").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ReplicaTest, ConcurrentWritersLoseNoIncrement) {
  TempDir dir;
  auto r = OpenOrDie(dir.path());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (!r->document("d").CounterAdd("/n", 1).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(*r->document("d").Get("/n"), "200");
}

}  // namespace
}  // namespace edgesync
