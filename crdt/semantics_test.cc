// Scenario tests of the document semantics (transaction_builder.h, read.h):
// replicas edit concurrently, exchange deltas, and must agree on exactly the
// documented result.

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crdt/canonical_codec.h"
#include "crdt/compact_codec.h"
#include "crdt/hlc.h"
#include "crdt/join.h"
#include "crdt/json.h"
#include "crdt/memory_store.h"
#include "crdt/read.h"
#include "crdt/size_limits.h"
#include "crdt/transaction_builder.h"
#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

AuthorKey Author(uint8_t fill) {
  AuthorKey a;
  a.bytes.fill(fill);
  return a;
}

Path P(absl::string_view text) { return Path::Parse(text).value(); }
Tree T(absl::string_view json) { return ParseJsonTree(json).value(); }
Value V(absl::string_view json) { return ParseJsonScalar(json).value(); }

struct Replica {
  explicit Replica(uint8_t fill) : author(Author(fill)) {}
  AuthorKey author;
  MemoryStore state;
  uint64_t next_dot = 1;
  uint64_t clock_ms = 1000;
};

using Body = std::function<absl::Status(TransactionBuilder&)>;

// Runs one transaction at the replica's next time (or `hlc` if non-zero);
// the body must succeed.
Delta Txn(Replica& r, const Body& body, uint64_t hlc = 0) {
  if (hlc == 0) hlc = HlcFromMillis(++r.clock_ms);
  TransactionBuilder txn(&r.state, r.author, r.next_dot, hlc);
  absl::Status s = body(txn);
  EXPECT_TRUE(s.ok()) << s;
  absl::StatusOr<Delta> delta = txn.Finish();
  EXPECT_TRUE(delta.ok()) << delta.status();
  r.next_dot += txn.dots_used();
  if (!delta.ok()) return Delta();
  EXPECT_TRUE(ValidateDelta(*delta, 1).ok()) << ValidateDelta(*delta, 1);
  return *delta;
}

Delta Put(Replica& r, absl::string_view path, absl::string_view json, uint64_t hlc = 0) {
  const Path p = P(path);
  const Tree t = T(json);
  return Txn(r, [&](TransactionBuilder& txn) { return txn.Put(p, t); }, hlc);
}

Delta Del(Replica& r, absl::string_view path) {
  const Path p = P(path);
  return Txn(r, [&](TransactionBuilder& txn) { return txn.Delete(p); });
}

Delta Add(Replica& r, absl::string_view path, int64_t n) {
  const Path p = P(path);
  return Txn(r, [&](TransactionBuilder& txn) { return txn.CounterAdd(p, n); });
}

void Apply(Replica& r, const Delta& d) {
  absl::StatusOr<JoinResult> j = Join(&r.state, d);
  ASSERT_TRUE(j.ok()) << j.status();
}

std::string Json(Replica& r, absl::string_view path = "") {
  absl::StatusOr<std::string> j = ReadJson(&r.state, P(path));
  return j.ok() ? *j : j.status().ToString();
}

std::string Conflicts(Replica& r, absl::string_view path = "") {
  absl::StatusOr<std::string> j = ReadConflictsJson(&r.state, P(path));
  return j.ok() ? *j : j.status().ToString();
}

std::vector<Row> Rows(const Replica& r) { return r.state.ToDelta().rows; }

// Both replicas present the same document and hold the same rows.
void ExpectConverged(Replica& a, Replica& b) {
  EXPECT_EQ(Json(a), Json(b));
  EXPECT_EQ(Conflicts(a), Conflicts(b));
  EXPECT_EQ(Rows(a), Rows(b));
}

// A MemoryStore that counts the rows its iterations hand out.
class CountingStore : public MemoryStore {
 public:
  uint64_t rows_visited = 0;
  absl::Status ForEachRowAt(const Path& path, RowFn fn) override {
    return MemoryStore::ForEachRowAt(path, Counted(fn));
  }
  absl::Status ForEachRowUnder(const Path& path, RowFn fn) override {
    return MemoryStore::ForEachRowUnder(path, Counted(fn));
  }
  absl::Status ForEachRowAtFacet(const Path& path, Facet facet, RowFn fn) override {
    return MemoryStore::ForEachRowAtFacet(path, facet, Counted(fn));
  }
  absl::Status ForEachRowOfElement(const Path& path, Facet facet, absl::string_view element,
                                   RowFn fn) override {
    return MemoryStore::ForEachRowOfElement(path, facet, element, Counted(fn));
  }
  absl::Status ForEachRowBelow(const Path& path, RowFn fn) override {
    return MemoryStore::ForEachRowBelow(path, Counted(fn));
  }

 private:
  std::function<bool(const RowKey&, const RowValue&)> Counted(RowFn fn) {
    return [this, fn](const RowKey& k, const RowValue& v) {
      ++rows_visited;
      return fn(k, v);
    };
  }
};

// SetAdd and SetRemove on a set of 5,000 members visit only the rows they
// observe (the member's own rows, the marker to know the set exists, the
// path's other facets and descendants), never the other members: the cost
// of an op follows log(members) (issue 10: 86 ms per op at 300,000).
TEST(SemanticsTest, SetOpsVisitOnlyTheRowsTheyObserve) {
  CountingStore state;
  const AuthorKey author = Author(1);
  uint64_t next_dot = 1;
  std::string members = "[";
  for (int i = 0; i < 5000; ++i) absl::StrAppend(&members, i == 0 ? "" : ",", i);
  members += "]";
  auto run = [&](const Body& body) {
    TransactionBuilder txn(&state, author, next_dot, HlcFromMillis(1000 + next_dot));
    ASSERT_TRUE(body(txn).ok());
    ASSERT_TRUE(txn.Finish().ok());
    next_dot += txn.dots_used();
  };
  run([&](TransactionBuilder& t) { return t.Put(P("/s"), T(members)); });
  run([&](TransactionBuilder& t) { return t.Put(P("/s2/x"), T("1")); });
  state.rows_visited = 0;
  run([&](TransactionBuilder& t) { return t.SetAdd(P("/s"), V("5000")); });
  EXPECT_LE(state.rows_visited, 4u) << "SetAdd of a new member";
  state.rows_visited = 0;
  run([&](TransactionBuilder& t) { return t.SetAdd(P("/s"), V("17")); });
  EXPECT_LE(state.rows_visited, 4u) << "SetAdd of a present member";
  state.rows_visited = 0;
  run([&](TransactionBuilder& t) { return t.SetRemove(P("/s"), V("18")); });
  EXPECT_LE(state.rows_visited, 1u) << "SetRemove";
  // Same outcome as ever: the re-added member has one row, the removed one
  // none, the others and the marker stay, /s2 (a sibling sorting after
  // /s's members) is untouched.
  size_t set_rows = 0;
  for (const Row& row : state.ToDelta().rows) {
    if (row.key.path == P("/s")) ++set_rows;
  }
  EXPECT_EQ(set_rows, 1u + 5001u - 1u);
  EXPECT_EQ(ReadJson(&state, P("/s2")).value(), "{\"x\":1}");
}

TEST(SemanticsTest, ConcurrentAddAndRemoveOfASetMemberAddWins) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "/s", R"(["x","y"])"));
  const Delta remove = Txn(a, [](TransactionBuilder& t) { return t.SetRemove(P("/s"), V("\"x\"")); });
  EXPECT_EQ(Json(a, "/s"), R"(["y"])");
  const Delta add = Txn(b, [](TransactionBuilder& t) { return t.SetAdd(P("/s"), V("\"x\"")); });
  Apply(a, add);
  Apply(b, remove);
  EXPECT_EQ(Json(a, "/s"), R"(["x","y"])");
  ExpectConverged(a, b);
  // A removal that observed the add removes it everywhere.
  Apply(b, Txn(a, [](TransactionBuilder& t) { return t.SetRemove(P("/s"), V("\"x\"")); }));
  EXPECT_EQ(Json(b, "/s"), R"(["y"])");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, SetAddKeepsOtherMembersAndPresentsCanonicalOrder) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "/s", "[]"));
  const Delta da = Txn(a, [](TransactionBuilder& t) {
    absl::Status s = t.SetAdd(P("/s"), V("2"));
    return s.ok() ? t.SetAdd(P("/s"), V("\"z\"")) : s;
  });
  const Delta db = Txn(b, [](TransactionBuilder& t) {
    absl::Status s = t.SetAdd(P("/s"), V("-1"));
    if (s.ok()) s = t.SetAdd(P("/s"), V("1.5"));
    return s.ok() ? t.SetAdd(P("/s"), V("2")) : s;
  });
  Apply(a, db);
  Apply(b, da);
  EXPECT_EQ(Json(a, "/s"), R"([-1,2,1.5,"z"])");
  EXPECT_EQ(Conflicts(a), "[]");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, ConcurrentWritesOfOneKeyHighestTimeWins) {
  Replica a(0xaa), b(0xbb);
  // B has the higher author key but the lower time.
  const Delta da = Put(a, "/k", "\"from a\"", HlcFromMillis(2000));
  const Delta db = Put(b, "/k", "\"from b\"", HlcFromMillis(1999));
  Apply(a, db);
  Apply(b, da);
  EXPECT_EQ(Json(a), R"({"k":"from a"})");
  EXPECT_EQ(Conflicts(a), R"([{"conflicts":["from b"],"path":"/k","value":"from a"}])");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, ConcurrentWritesOfOneKeyAtOneTimeHighestAuthorWins) {
  Replica a(0xaa), b(0xbb);
  const uint64_t t = HlcFromMillis(5000);
  const Delta db = Put(b, "/k", "1", t);
  const Delta da = Put(a, "/k", "2", t);
  Apply(b, da);
  Apply(a, db);
  EXPECT_EQ(Json(a, "/k"), "1");
  EXPECT_EQ(Conflicts(b), R"([{"conflicts":[2],"path":"/k","value":1}])");
  ExpectConverged(a, b);
  // A later write that observed both leaves one value and no conflict.
  Apply(b, Put(a, "/k", "3"));
  EXPECT_EQ(Json(b), R"({"k":3})");
  EXPECT_EQ(Conflicts(b), "[]");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, DeleteLosesToAConcurrentUpdate) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "", R"({"m":{"x":1,"y":2},"k":"v"})"));
  const Delta del_m = Del(a, "/m");
  const Delta del_k = Del(a, "/k");
  EXPECT_EQ(Json(a), "{}");
  const Delta upd_x = Put(b, "/m/x", "5");
  const Delta upd_k = Put(b, "/k", "\"w\"");
  Apply(a, upd_x);
  Apply(a, upd_k);
  Apply(b, del_m);
  Apply(b, del_k);
  EXPECT_EQ(Json(a), R"({"k":"w","m":{"x":5}})");
  EXPECT_EQ(Conflicts(a), "[]");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, CounterSumsEveryAuthor) {
  std::vector<Replica> r;
  for (uint8_t i = 1; i <= 6; ++i) r.emplace_back(i);
  std::vector<Delta> deltas;
  int64_t want = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    for (int k = 0; k < 3; ++k) {
      const int64_t n = static_cast<int64_t>(i * 10 + static_cast<size_t>(k)) - 25;
      deltas.push_back(Add(r[i], "/c", n));
      want += n;
    }
  }
  for (Replica& x : r) {
    for (const Delta& d : deltas) Apply(x, d);
    EXPECT_EQ(Json(x, "/c"), std::to_string(want));
  }
  for (size_t i = 1; i < r.size(); ++i) ExpectConverged(r[0], r[i]);
  // Each author holds one row: its running total.
  size_t counter_rows = 0;
  for (const Row& row : Rows(r[0])) counter_rows += row.key.facet == Facet::kCounter;
  EXPECT_EQ(counter_rows, r.size());
}

TEST(SemanticsTest, CounterIncrementConcurrentWithDeleteBringsBackThatAuthorsWholeTotal) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Add(a, "/c", 5));
  Apply(a, Add(b, "/c", 10));
  EXPECT_EQ(Json(a, "/c"), "15");
  const Delta del = Del(b, "/c");
  const Delta inc = Add(a, "/c", 3);
  Apply(a, del);
  Apply(b, inc);
  // B's delete removed both totals it saw; A's new total (5 + 3) is new to B.
  EXPECT_EQ(Json(a, "/c"), "8");
  EXPECT_EQ(Json(b, "/c"), "8");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, CounterReadClampsToInt64) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Add(a, "/c", kInt64Max));
  Apply(a, Add(b, "/c", kInt64Max));
  EXPECT_EQ(Json(a, "/c"), std::to_string(kInt64Max));
  Replica c(0xcc), d(0xdd);
  Apply(d, Add(c, "/c", kInt64Min));
  Apply(c, Add(d, "/c", -1));
  EXPECT_EQ(Json(c, "/c"), std::to_string(kInt64Min));
}

TEST(SemanticsTest, CounterOverflowIsOutOfRange) {
  Replica a(0xaa);
  Add(a, "/c", kInt64Max - 1);
  Add(a, "/c", 1);
  const std::string before = EncodeCanonical(a.state.ToDelta());
  {
    TransactionBuilder txn(&a.state, a.author, a.next_dot, HlcFromMillis(++a.clock_ms));
    EXPECT_EQ(txn.CounterAdd(P("/c"), 1).code(), StatusCode::kOutOfRange);
    EXPECT_EQ(txn.dots_used(), 0u);
  }
  EXPECT_EQ(EncodeCanonical(a.state.ToDelta()), before);
  Replica b(0xbb);
  Add(b, "/c", kInt64Min);
  TransactionBuilder txn(&b.state, b.author, b.next_dot, HlcFromMillis(++b.clock_ms));
  EXPECT_EQ(txn.CounterAdd(P("/c"), -1).code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(txn.CounterAdd(P("/c"), 0).ok());
  // Another author's total does not count against this author's.
  Replica c(0xcc);
  Apply(c, Add(a, "/d", kInt64Max));
  EXPECT_TRUE(Add(c, "/d", kInt64Max).rows.size() > 0);
}

TEST(SemanticsTest, TypeClashPresentsTheMapAndKeepsTheOtherAsAConflict) {
  Replica a(0xaa), b(0xbb);
  const Delta da = Put(a, "/x", R"({"k":1})", HlcFromMillis(1000));
  const Delta db = Put(b, "/x", "\"s\"", HlcFromMillis(9000));  // a later time does not matter
  Apply(a, db);
  Apply(b, da);
  EXPECT_EQ(Json(a, "/x"), R"({"k":1})");
  EXPECT_EQ(Conflicts(a), R"([{"conflicts":["s"],"path":"/x","value":{"k":1}}])");
  ExpectConverged(a, b);
  // A write that observed both replaces both.
  Apply(a, Put(b, "/x", "7"));
  EXPECT_EQ(Json(a), R"({"x":7})");
  EXPECT_EQ(Conflicts(a), "[]");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, FacetsArePresentedInOrderMapSetCounterRegister) {
  Replica a(0xaa), b(0xbb), c(0xcc);
  const Delta dc = Add(a, "/x", 4);
  const Delta dr = Put(b, "/x", "true");
  const Delta ds = Put(c, "/x", "[1]");
  for (Replica* r : {&a, &b, &c}) {
    for (const Delta* d : {&dc, &dr, &ds}) Apply(*r, *d);
  }
  EXPECT_EQ(Json(a, "/x"), "[1]");
  EXPECT_EQ(Conflicts(a), R"([{"conflicts":[4,true],"path":"/x","value":[1]}])");
  ExpectConverged(a, b);
  ExpectConverged(a, c);
}

TEST(SemanticsTest, WritingUnderAScalarMakesItAMap) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "/a", "\"scalar\""));
  Apply(b, Put(a, "/a/b", "1"));
  EXPECT_EQ(Json(a), R"({"a":{"b":1}})");
  EXPECT_EQ(Conflicts(a), "[]");
  ExpectConverged(a, b);
  // Deeper: every missing ancestor becomes a map.
  Apply(b, Put(a, "/p/q/r", "[]"));
  EXPECT_EQ(Json(b, "/p"), R"({"q":{"r":[]}})");
  // Within one transaction too, and a counter ancestor is replaced.
  const Delta d = Txn(a, [](TransactionBuilder& t) {
    absl::Status s = t.CounterAdd(P("/n"), 1);
    return s.ok() ? t.SetAdd(P("/n/s"), V("1")) : s;
  });
  Apply(b, d);
  EXPECT_EQ(Json(b, "/n"), R"({"s":[1]})");
  EXPECT_EQ(Conflicts(b), "[]");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, DeletingTheLastKeyKeepsAnEmptyMap) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "/m", R"({"k":1})"));
  Apply(b, Del(a, "/m/k"));
  EXPECT_EQ(Json(a), R"({"m":{}})");
  EXPECT_EQ(Json(b, "/m"), "{}");
  EXPECT_EQ(ReadJson(&b.state, P("/m/k")).status().code(), StatusCode::kNotFound);
  ExpectConverged(a, b);
}

TEST(SemanticsTest, EmptyArrayKeepsAnEmptySet) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "/s", "[]"));
  EXPECT_EQ(Json(b, "/s"), "[]");
  Apply(b, Put(a, "/t", "[1]"));
  Apply(b, Txn(a, [](TransactionBuilder& t) { return t.SetRemove(P("/t"), V("1")); }));
  EXPECT_EQ(Json(b), R"({"s":[],"t":[]})");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, RootRules) {
  Replica a(0xaa);
  Put(a, "", R"({"k":1})");
  const std::string before = EncodeCanonical(a.state.ToDelta());
  TransactionBuilder txn(&a.state, a.author, a.next_dot, HlcFromMillis(++a.clock_ms));
  EXPECT_EQ(txn.Put(Path(), T("1")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.Put(Path(), T("\"s\"")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.Put(Path(), T("[1]")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.Put(Path(), T("null")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.CounterAdd(Path(), 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.SetAdd(Path(), V("1")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.SetRemove(Path(), V("1")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeCanonical(a.state.ToDelta()), before);
  EXPECT_EQ(txn.dots_used(), 0u);
  absl::StatusOr<Delta> d = txn.Finish();
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
  EXPECT_EQ(Json(a), R"({"k":1})");
}

TEST(SemanticsTest, PutOfAnObjectAtTheRootReplacesTheDocument) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "", R"({"k":1,"m":{"x":[1]}})"));
  Apply(b, Put(a, "", R"({"z":null})"));
  EXPECT_EQ(Json(b), R"({"z":null})");
  Apply(b, Put(a, "", "{}"));
  EXPECT_EQ(Json(b), "{}");
  ExpectConverged(a, b);
}

TEST(SemanticsTest, DeleteOfAMissingPathChangesNothing) {
  Replica a(0xaa);
  Put(a, "/k", "1");
  const std::string before = EncodeCanonical(a.state.ToDelta());
  for (const char* path : {"/nope", "/k/deeper", "/"}) {
    TransactionBuilder txn(&a.state, a.author, a.next_dot, HlcFromMillis(++a.clock_ms));
    EXPECT_TRUE(txn.Delete(P(path)).ok());
    EXPECT_TRUE(txn.SetRemove(P("/k"), V("1")).ok());  // not a set: nothing to remove
    absl::StatusOr<Delta> d = txn.Finish();
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->empty()) << path;
    EXPECT_EQ(txn.dots_used(), 0u);
    EXPECT_TRUE(txn.changed_paths().empty());
    EXPECT_EQ(EncodeCanonical(a.state.ToDelta()), before);
  }
  // Deleting the root of an empty document is nothing too.
  Replica e(0xee);
  TransactionBuilder txn(&e.state, e.author, 1, HlcFromMillis(1));
  EXPECT_TRUE(txn.Delete(Path()).ok());
  EXPECT_TRUE(txn.Finish()->empty());
}

TEST(SemanticsTest, ATransactionThatOnlyDeletesTakesExactlyOneDot) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "", R"({"x":1,"y":[1,2],"z":{"w":true}})"));
  const uint64_t first = a.next_dot;
  TransactionBuilder txn(&a.state, a.author, first, HlcFromMillis(++a.clock_ms));
  ASSERT_TRUE(txn.Delete(P("/x")).ok());
  ASSERT_TRUE(txn.Delete(P("/z")).ok());
  ASSERT_TRUE(txn.SetRemove(P("/y"), V("1")).ok());
  absl::StatusOr<Delta> d = txn.Finish();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(txn.dots_used(), 1u);
  EXPECT_TRUE(d->rows.empty());
  EXPECT_TRUE(d->context.Of(a.author).Contains(first));
  EXPECT_FALSE(d->context.Of(a.author).Contains(first + 1));
  EXPECT_TRUE(ValidateBatchDelta(*d, a.author, first, first).ok());
  a.next_dot += txn.dots_used();
  Apply(b, *d);
  EXPECT_EQ(Json(b), R"({"y":[2]})");
  ExpectConverged(a, b);
}

// A transaction's delta is joined into the author's state (the builder
// "applies" it), so the author's state must equal what every receiver holds,
// context included: state hashes are compared between replicas.
TEST(SemanticsTest, DeleteOnlyTransactionLeavesTheAuthorsStateEqualToTheReceivers) {
  Replica a(0xaa), b(0xbb);
  Apply(b, Put(a, "/x", "1"));
  const Delta del = Del(a, "/x");
  Apply(b, del);
  EXPECT_EQ(EncodeCanonical(a.state.ToDelta()), EncodeCanonical(b.state.ToDelta()));
  absl::StatusOr<JoinResult> again = Join(&a.state, del);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->context_changed) << "the author's state lacked its own delete dot";
}

TEST(SemanticsTest, WritersStateEqualsReceiversState) {
  Replica a(0xaa), b(0xbb);
  const std::vector<Body> bodies = {
      [](TransactionBuilder& t) { return t.Put(Path(), T(R"({"a":{"b":[1,2]},"c":"x"})")); },
      [](TransactionBuilder& t) { return t.CounterAdd(P("/n"), 3); },
      [](TransactionBuilder& t) { return t.Put(P("/a/b"), T("7")); },
      [](TransactionBuilder& t) { return t.SetAdd(P("/s"), V("1")); },
      [](TransactionBuilder& t) { return t.Delete(P("/c")); },
      [](TransactionBuilder& t) { return t.SetRemove(P("/s"), V("1")); },
  };
  for (size_t i = 0; i < bodies.size(); ++i) {
    Apply(b, Txn(a, bodies[i]));
    EXPECT_EQ(EncodeCanonical(a.state.ToDelta()), EncodeCanonical(b.state.ToDelta())) << i;
  }
}

TEST(SemanticsTest, MutationsSeeEarlierOnesInTheTransaction) {
  Replica a(0xaa), b(0xbb);
  const Delta d = Txn(a, [](TransactionBuilder& t) {
    absl::Status s = t.Put(P("/m"), T(R"({"k":1,"j":2})"));
    if (s.ok()) s = t.Delete(P("/m/k"));
    if (s.ok()) s = t.CounterAdd(P("/c"), 2);
    if (s.ok()) s = t.CounterAdd(P("/c"), 3);
    return s;
  });
  // Put: map marker + 2 registers; counter: 1 row + 1 row replacing it.
  EXPECT_EQ(a.next_dot, 6u);
  Apply(b, d);
  EXPECT_EQ(Json(b), R"({"c":5,"m":{"j":2}})");
  // The delta holds only what survived.
  EXPECT_EQ(d.rows.size(), 3u);
  EXPECT_TRUE(d.context.Of(a.author).ContainsAll(1, 5));
  ExpectConverged(a, b);
}

TEST(SemanticsTest, DeltasCommuteAndAreIdempotent) {
  Replica a(0xaa), b(0xbb), c(0xcc);
  std::vector<Delta> ds;
  ds.push_back(Put(a, "", R"({"m":{"k":1},"s":[1],"c":0})"));
  Apply(b, ds[0]);
  Apply(c, ds[0]);
  ds.push_back(Put(a, "/m/k", "2"));
  ds.push_back(Del(b, "/m"));
  ds.push_back(Txn(c, [](TransactionBuilder& t) { return t.SetAdd(P("/s"), V("2")); }));
  ds.push_back(Add(c, "/c", 4));
  ds.push_back(Add(b, "/c", 1));
  Replica fwd(0x01), rev(0x02);
  for (const Delta& d : ds) Apply(fwd, d);
  for (size_t i = ds.size(); i-- > 0;) {
    Apply(rev, ds[i]);
    Apply(rev, ds[i]);
  }
  EXPECT_EQ(EncodeCanonical(fwd.state.ToDelta()), EncodeCanonical(rev.state.ToDelta()));
  EXPECT_EQ(Json(fwd), R"({"c":5,"m":{"k":2},"s":[1,2]})");
}

// size_limits.h: "a batch a replica may author is never refused by another
// replica for its size". SetAdd refuses an element over kSetElementBytesMax;
// Put of a set holding one must too (a JSON array never reaches it, a Tree
// built in code can).
TEST(SemanticsTest, PutOfASetWithAnOversizedElementIsRefused) {
  Replica a(0xaa);
  Tree set;
  set.kind = Tree::Kind::kSet;
  set.set.push_back(Value::String(std::string(kSetElementBytesMax, 'x')).value());
  TransactionBuilder txn(&a.state, a.author, 1, HlcFromMillis(1));
  EXPECT_EQ(txn.SetAdd(P("/s"), set.set[0]).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.Put(P("/s"), set).code(), StatusCode::kInvalidArgument);
}

TEST(SemanticsTest, TooDeepPutIsRefused) {
  Replica a(0xaa);
  std::string deep_path;
  for (size_t i = 0; i < kPathDepthMax - 1; ++i) deep_path += "/d";
  TransactionBuilder txn(&a.state, a.author, 1, HlcFromMillis(1));
  EXPECT_TRUE(txn.Put(P(deep_path), T(R"({"k":1})")).ok());
  EXPECT_EQ(txn.Put(P(deep_path), T(R"({"k":{"j":1}})")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn.Put(P(deep_path + "/e"), T(R"({"k":1})")).code(), StatusCode::kInvalidArgument);
}

TEST(SemanticsTest, ReadOfAMissingPathIsNotFoundAndAnEmptyDocumentIsAnEmptyObject) {
  Replica a(0xaa);
  EXPECT_EQ(Json(a), "{}");
  EXPECT_EQ(Conflicts(a), "[]");
  EXPECT_EQ(ReadJson(&a.state, P("/x")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadConflictsJson(&a.state, P("/x")).status().code(), StatusCode::kNotFound);
  Put(a, "/b", R"({"$bytes":"AQI="})");
  EXPECT_EQ(Json(a), R"({"b":{"$bytes":"AQI="}})");
}

// An author that equivocated leaves two totals under one dot; reads count the
// largest (read.cc). The author's next increment should build on the same
// total the document presents.
TEST(SemanticsTest, CounterAddAfterAnEquivocatedTotalBuildsOnThePresentedTotal) {
  Replica a(0xaa);
  Add(a, "/c", 5);
  Delta forged = a.state.ToDelta();
  for (Row& row : forged.rows) {
    if (row.key.facet == Facet::kCounter) {
      row.value = SingleVariant(EncodeCounterVariant(-1));
    }
  }
  Apply(a, forged);
  EXPECT_EQ(Json(a, "/c"), "5");
  Add(a, "/c", 1);
  EXPECT_EQ(Json(a, "/c"), "6");
}

// --- Hybrid logical clock ---------------------------------------------------

class FakeWall : public WallClock {
 public:
  uint64_t NowMillis() override { return ms; }
  uint64_t ms = 0;
};

class MemHighWater : public HlcHighWater {
 public:
  absl::StatusOr<uint64_t> LoadHighWater() override { return value; }
  absl::Status SaveHighWater(uint64_t hlc) override {
    EXPECT_GE(hlc, value) << "the high-water mark went down";
    value = hlc;
    return absl::OkStatus();
  }
  uint64_t value = 0;
};

TEST(HlcTest, HlcNextIsStrictlyGreaterAndAtLeastTheWallTime) {
  EXPECT_EQ(HlcNext(0, 1000), HlcFromMillis(1000));
  EXPECT_EQ(HlcNext(HlcFromMillis(1000), 1000), HlcFromMillis(1000) + 1);
  EXPECT_EQ(HlcNext(HlcFromMillis(1000) + 7, 500), HlcFromMillis(1000) + 8);
  EXPECT_EQ(HlcNext(HlcFromMillis(1000) + 7, 1001), HlcFromMillis(1001));
  EXPECT_EQ(HlcMillis(HlcFromMillis(123456)), 123456u);
  // A wall time past year 10889 is clamped instead of overflowing.
  const uint64_t far = HlcNext(0, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(far, HlcFromMillis(uint64_t{1} << 47));
  EXPECT_GT(HlcNext(far, std::numeric_limits<uint64_t>::max()), far);
}

TEST(HlcTest, ClockStaysStrictlyIncreasingWhenTheWallClockJumpsBack) {
  FakeWall wall;
  MemHighWater hw;
  HybridClock clock(&wall);
  uint64_t prev = 0;
  for (uint64_t ms : {1000u, 1000u, 1000u, 999u, 10u, 0u, 1001u, 5000u, 4000u, 4000u}) {
    wall.ms = ms;
    absl::StatusOr<uint64_t> t = clock.Next(&hw);
    ASSERT_TRUE(t.ok());
    EXPECT_GT(*t, prev) << "wall " << ms;
    EXPECT_GE(*t, HlcFromMillis(ms));
    EXPECT_EQ(hw.value, *t);
    prev = *t;
  }
  EXPECT_EQ(prev, HlcFromMillis(5000) + 2);
  EXPECT_EQ(clock.WallMillis(), 4000u);
}

TEST(HlcTest, ObserveRaisesButNeverLowers) {
  FakeWall wall;
  MemHighWater hw;
  HybridClock clock(&wall);
  wall.ms = 100;
  ASSERT_TRUE(clock.Observe(&hw, HlcFromMillis(200) + 3).ok());
  EXPECT_EQ(hw.value, HlcFromMillis(200) + 3);
  ASSERT_TRUE(clock.Observe(&hw, HlcFromMillis(150)).ok());
  EXPECT_EQ(hw.value, HlcFromMillis(200) + 3);
  EXPECT_EQ(clock.Next(&hw).value(), HlcFromMillis(200) + 4);
}

class FailingHighWater : public HlcHighWater {
 public:
  absl::StatusOr<uint64_t> LoadHighWater() override { return absl::DataLossError("load"); }
  absl::Status SaveHighWater(uint64_t) override { return absl::UnavailableError("save"); }
};

TEST(HlcTest, StoreErrorsPassThrough) {
  FakeWall wall;
  HybridClock clock(&wall);
  FailingHighWater bad;
  EXPECT_EQ(clock.Next(&bad).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(clock.Observe(&bad, 5).code(), StatusCode::kDataLoss);
}

// hlc.h: "Times only ever grow for one replica". A peer's time of 2^64-1
// (Observe takes times received from peers) must not make the next local
// time wrap around to the wall time.
TEST(HlcTest, ObservingTheLargestTimeNeverMakesTimeGoBack) {
  FakeWall wall;
  MemHighWater hw;
  HybridClock clock(&wall);
  wall.ms = 1000;
  const uint64_t top = std::numeric_limits<uint64_t>::max();
  ASSERT_TRUE(clock.Observe(&hw, top).ok());
  absl::StatusOr<uint64_t> t = clock.Next(&hw);
  EXPECT_FALSE(t.ok() && *t <= top - 1) << "next time after " << top << " was " << *t;
  // hlc.h: no greater time exists, so Next refuses and the mark stays.
  EXPECT_EQ(t.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(hw.value, top);
  EXPECT_EQ(HlcNext(top, 1000), top);
  EXPECT_EQ(HlcNext(top - 1, 1000), top);
}

}  // namespace
}  // namespace edgesync::crdt
