// Small hand-built cases for Compact() (compaction.h).

#include "crdt/compaction.h"

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "crdt/canonical_codec.h"
#include "crdt/hlc.h"
#include "crdt/join.h"
#include "crdt/json.h"
#include "crdt/memory_store.h"
#include "crdt/read.h"
#include "crdt/transaction_builder.h"
#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

AuthorKey Author(uint8_t fill) {
  AuthorKey a;
  a.bytes.fill(fill);
  return a;
}

Path P(absl::string_view text) { return Path::Parse(text).value(); }

struct Writer {
  explicit Writer(uint8_t fill) : author(Author(fill)) {}
  AuthorKey author;
  MemoryStore state;
  uint64_t next_dot = 1;
  uint64_t ms = 1000;

  Delta Txn(const std::function<absl::Status(TransactionBuilder&)>& body) {
    TransactionBuilder txn(&state, author, next_dot, HlcFromMillis(++ms));
    absl::Status s = body(txn);
    EXPECT_TRUE(s.ok()) << s;
    absl::StatusOr<Delta> d = txn.Finish();
    EXPECT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(txn.dots_used(), 1u) << "each case below takes one dot per transaction";
    next_dot += txn.dots_used();
    return d.ok() ? *d : Delta();
  }
  Delta Put(absl::string_view path, absl::string_view json) {
    const Path p = P(path);
    const Tree t = ParseJsonTree(json).value();
    return Txn([&](TransactionBuilder& txn) { return txn.Put(p, t); });
  }
  Delta Del(absl::string_view path) {
    const Path p = P(path);
    return Txn([&](TransactionBuilder& txn) { return txn.Delete(p); });
  }
};

std::string Bytes(const MemoryStore& s) { return EncodeCanonical(s.ToDelta()); }

MemoryStore JoinAll(const MemoryStore& base, const std::vector<const Delta*>& deltas) {
  MemoryStore out = MemoryStore::FromDelta(base.ToDelta());
  for (const Delta* d : deltas) {
    absl::StatusOr<JoinResult> r = Join(&out, *d);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  return out;
}

// compaction.h: the context never holds a dot live in the author's state
// unless it also holds that dot's entry.
void ExpectInvariant(MemoryStore& author_state, const Delta& compacted) {
  for (const Row& live : author_state.ToDelta().rows) {
    if (!compacted.context.Contains(live.key.dot)) continue;
    const bool held = std::any_of(compacted.rows.begin(), compacted.rows.end(),
                                  [&](const Row& r) { return r.key == live.key; });
    EXPECT_TRUE(held) << "live dot " << live.key.dot.n << " at " << live.key.path.ToString()
                      << " is claimed without its entry";
  }
}

// S ⊔ compacted ⊔ X == S ⊔ δk ⊔ … ⊔ δn ⊔ X for each S.
void ExpectEquation(const std::vector<MemoryStore*>& replicas, const MemoryStore& x,
                    const Delta& compacted, const std::vector<const Delta*>& originals) {
  const Delta xd = x.ToDelta();
  for (MemoryStore* s : replicas) {
    std::vector<const Delta*> left = {&compacted, &xd};
    std::vector<const Delta*> right = originals;
    right.push_back(&xd);
    EXPECT_EQ(Bytes(JoinAll(*s, left)), Bytes(JoinAll(*s, right)));
  }
}

std::vector<Path> RowPaths(const Delta& d) {
  std::vector<Path> out;
  for (const Row& r : d.rows) out.push_back(r.key.path);
  return out;
}

TEST(CompactionTest, DeadEntriesAreDroppedButTheirDotsStayInTheContext) {
  Writer a(0xaa);
  const Delta d1 = a.Put("/a", "1");    // dot 1, overwritten by dot 3
  const Delta d2 = a.Put("/b", "2");    // dot 2, deleted by dot 4
  const Delta d3 = a.Put("/a", "3");    // dot 3, live
  const Delta d4 = a.Del("/b");         // dot 4, no entry
  const Delta d5 = a.Put("/c", "5");    // dot 5, live
  const std::vector<const Delta*> all = {&d1, &d2, &d3, &d4, &d5};

  absl::StatusOr<Delta> c = Compact(&a.state, a.author, 1, 5, all);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(ValidateDelta(*c, 1).ok());
  EXPECT_EQ(RowPaths(*c), (std::vector<Path>{P("/a"), P("/c")}));
  EXPECT_EQ(c->rows[0].key.dot.n, 3u);
  EXPECT_EQ(c->rows[1].key.dot.n, 5u);
  EXPECT_EQ(c->context.Of(a.author), RangeSet::Of(1, 5));
  EXPECT_EQ(c->context.by_author().size(), 1u);
  ExpectInvariant(a.state, *c);

  // A replica that saw only the first deltas ends where the originals take it.
  MemoryStore empty;
  MemoryStore saw_1 = JoinAll(MemoryStore(), {&d1});
  MemoryStore saw_12 = JoinAll(MemoryStore(), {&d1, &d2});
  MemoryStore saw_123 = JoinAll(MemoryStore(), {&d1, &d2, &d3});
  ExpectEquation({&empty, &saw_1, &saw_12, &saw_123}, a.state, *c, all);
  // Here the compacted delta alone already does the work of the originals.
  EXPECT_EQ(Bytes(JoinAll(saw_12, {&*c})), Bytes(JoinAll(saw_12, all)));
  EXPECT_EQ(ReadJson(&saw_12, Path()).value(), R"({"a":1,"b":2})");
  MemoryStore after = JoinAll(saw_12, {&*c});
  EXPECT_EQ(ReadJson(&after, Path()).value(), R"({"a":3,"c":5})");
}

TEST(CompactionTest, DeltasMayOmitDeadEntries) {
  Writer a(0xaa);
  const Delta d1 = a.Put("/keep", "1");
  const Delta d2 = a.Put("/a", "2");  // dead: overwritten by d3
  const Delta d3 = a.Put("/a", "3");
  absl::StatusOr<Delta> c = Compact(&a.state, a.author, 1, 3, {&d1, &d3});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(RowPaths(*c), (std::vector<Path>{P("/a"), P("/keep")}));
  EXPECT_EQ(c->context.Of(a.author), RangeSet::Of(1, 3));  // dot 2 included
  ExpectInvariant(a.state, *c);
  MemoryStore saw_2 = JoinAll(MemoryStore(), {&d2});
  ExpectEquation({&saw_2}, a.state, *c, {&d1, &d2, &d3});
}

TEST(CompactionTest, CutOfASubRangeOutOfACompactedDelta) {
  Writer a(0xaa);
  const Delta d1 = a.Put("/keep", "1");  // live, outside the cut
  const Delta d2 = a.Put("/b", "2");     // dead (d4 deletes it), outside the cut
  const Delta d3 = a.Put("/a", "3");     // dead (d5 overwrites it)
  const Delta d4 = a.Del("/b");
  const Delta d5 = a.Put("/a", "5");     // live
  absl::StatusOr<Delta> c15 = Compact(&a.state, a.author, 1, 5, {&d1, &d2, &d3, &d4, &d5});
  ASSERT_TRUE(c15.ok()) << c15.status();
  EXPECT_EQ(RowPaths(*c15), (std::vector<Path>{P("/a"), P("/keep")}));

  absl::StatusOr<Delta> c35 = Compact(&a.state, a.author, 3, 5, {&*c15});
  ASSERT_TRUE(c35.ok()) << c35.status();
  // Only the cut's live entry; dot 1 is live without its entry here, so it
  // must leave the context.
  ASSERT_EQ(c35->rows.size(), 1u);
  EXPECT_EQ(c35->rows[0].key.path, P("/a"));
  EXPECT_EQ(c35->rows[0].key.dot.n, 5u);
  EXPECT_FALSE(c35->context.Contains(Dot{a.author, 1}));
  EXPECT_TRUE(c35->context.Of(a.author).ContainsAll(3, 5));
  // Dead dot 2 lies outside the cut: keeping it is allowed, not required.
  EXPECT_EQ(c35->context.Of(a.author).Within(3, 5), RangeSet::Of(3, 5));
  EXPECT_TRUE(ValidateBatchDelta(*c35, a.author, 3, 5).ok());
  ExpectInvariant(a.state, *c35);

  MemoryStore saw_12 = JoinAll(MemoryStore(), {&d1, &d2});
  MemoryStore saw_1 = JoinAll(MemoryStore(), {&d1});
  MemoryStore empty;
  ExpectEquation({&saw_12, &saw_1, &empty}, a.state, *c35, {&d3, &d4, &d5});
  // A replica holding 1..2 needs only the cut to reach the author's state.
  EXPECT_EQ(Bytes(JoinAll(saw_12, {&*c35})), Bytes(a.state));

  // The same cut from the original deltas is the same delta.
  absl::StatusOr<Delta> direct = Compact(&a.state, a.author, 3, 5, {&d3, &d4, &d5});
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(*direct, *c35);
  ExpectInvariant(a.state, *direct);
}

TEST(CompactionTest, MissingLiveEntryIsFailedPrecondition) {
  Writer a(0xaa);
  const Delta d1 = a.Put("/a", "1");
  const Delta d2 = a.Put("/b", "2");
  const Delta d3 = a.Put("/c", "3");
  absl::StatusOr<Delta> c = Compact(&a.state, a.author, 1, 3, {&d1, &d2});
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Compact(&a.state, a.author, 1, 3, {}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Compact(&a.state, a.author, 2, 2, {&d1, &d3}).status().code(),
            StatusCode::kFailedPrecondition);
  // A live dot outside the range needs no entry.
  absl::StatusOr<Delta> part = Compact(&a.state, a.author, 2, 3, {&d2, &d3});
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_EQ(part->context.Of(a.author), RangeSet::Of(2, 3));
  ExpectInvariant(a.state, *part);
}

TEST(CompactionTest, OtherAuthorsEntriesAreNeitherCopiedNorClaimedWhileLive) {
  Writer a(0xaa), b(0xbb);
  const Delta b1 = b.Put("/z", "\"b\"");  // B's entry, live at A
  const Delta b2 = b.Put("/y", "\"b\"");  // B's entry, A overwrites it
  ASSERT_TRUE(Join(&a.state, b1).ok());
  ASSERT_TRUE(Join(&a.state, b2).ok());
  const Delta d1 = a.Put("/y", "\"a\"");  // observes B:2
  const Delta d2 = a.Put("/x", "1");
  // The caller mistakenly passes B's delta too: its entries are not A's.
  absl::StatusOr<Delta> c = Compact(&a.state, a.author, 1, 2, {&b1, &d1, &d2});
  ASSERT_TRUE(c.ok()) << c.status();
  for (const Row& r : c->rows) EXPECT_EQ(r.key.dot.author, a.author);
  EXPECT_EQ(RowPaths(*c), (std::vector<Path>{P("/x"), P("/y")}));
  EXPECT_FALSE(c->context.Contains(Dot{b.author, 1}));  // live at A, entry not here
  EXPECT_TRUE(c->context.Contains(Dot{b.author, 2}));   // dead at A: kept
  ExpectInvariant(a.state, *c);
  MemoryStore saw_b = JoinAll(MemoryStore(), {&b1, &b2});
  MemoryStore empty;
  ExpectEquation({&saw_b, &empty}, a.state, *c, {&d1, &d2});
}

TEST(CompactionTest, CounterRunningTotalsCompactToTheLastTotal) {
  Writer a(0xaa);
  std::vector<Delta> ds;
  for (int i = 1; i <= 4; ++i) {
    ds.push_back(a.Txn([&](TransactionBuilder& t) { return t.CounterAdd(P("/c"), i); }));
  }
  std::vector<const Delta*> ptrs;
  for (const Delta& d : ds) ptrs.push_back(&d);
  absl::StatusOr<Delta> c = Compact(&a.state, a.author, 1, 4, ptrs);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->rows.size(), 1u);
  EXPECT_EQ(c->rows[0].key.dot.n, 4u);
  EXPECT_EQ(DecodeCounterVariant(c->rows[0].value[0]).value(), 10);
  MemoryStore saw_1 = JoinAll(MemoryStore(), {ptrs[0]});
  MemoryStore empty;
  ExpectEquation({&saw_1, &empty}, a.state, *c, ptrs);
  ExpectInvariant(a.state, *c);
}

}  // namespace
}  // namespace edgesync::crdt
