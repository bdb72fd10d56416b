// Two replicas of one document edit it concurrently while apart, exchange
// their deltas in opposite orders, and end with the same state: the same
// JSON and the same canonical bytes.
//
// This is the CRDT core alone (in-memory stores); the mesh demo of gossiping
// nodes replaces it as the main job once the node exists.

#include <cstdio>
#include <functional>
#include <string>

#include "crdt/canonical_codec.h"
#include "crdt/join.h"
#include "crdt/json.h"
#include "crdt/memory_store.h"
#include "crdt/read.h"
#include "crdt/transaction_builder.h"

namespace {

using edgesync::crdt::AuthorKey;
using edgesync::crdt::Delta;
using edgesync::crdt::MemoryStore;
using edgesync::crdt::Path;

struct Replica {
  const char* name;
  AuthorKey author;
  MemoryStore state;
  uint64_t next_dot = 1;
  uint64_t clock = 1000;
};

Delta Write(Replica& r, const char* what, const std::function<absl::Status(edgesync::crdt::TransactionBuilder&)>& body) {
  edgesync::crdt::TransactionBuilder txn(&r.state, r.author, r.next_dot, ++r.clock << 16);
  absl::Status s = body(txn);
  absl::StatusOr<Delta> delta = txn.Finish();
  if (!s.ok() || !delta.ok()) {
    std::fprintf(stderr, "write failed: %s\n", std::string(s.ok() ? delta.status().message() : s.message()).c_str());
    std::exit(1);
  }
  r.next_dot += txn.dots_used();
  std::printf("  %s: %-42s -> %s\n", r.name, what, edgesync::crdt::ReadJson(&r.state, Path()).value().c_str());
  return *delta;
}

Path P(const char* text) { return Path::Parse(text).value(); }

}  // namespace

int main() {
  Replica a{"A", {}, {}};
  Replica b{"B", {}, {}};
  a.author.bytes.fill(0xaa);
  b.author.bytes.fill(0xbb);

  std::printf("A creates the document and B receives it:\n");
  Delta base = Write(a, "put {\"title\":\"pump 7\",\"tags\":[\"ok\"]}", [](auto& t) {
    return t.Put(Path(), edgesync::crdt::ParseJsonTree(R"({"title":"pump 7","tags":["ok"]})").value());
  });
  (void)edgesync::crdt::Join(&b.state, base).value();

  std::printf("\nApart, both edit concurrently:\n");
  Delta a1 = Write(a, "set /title \"pump 7 (north)\"", [](auto& t) {
    return t.Put(P("/title"), edgesync::crdt::ParseJsonTree(R"js("pump 7 (north)")js").value());
  });
  Delta a2 = Write(a, "counter /starts += 2", [](auto& t) { return t.CounterAdd(P("/starts"), 2); });
  Delta a3 = Write(a, "tags: remove \"ok\", add \"hot\"", [](auto& t) {
    absl::Status s = t.SetRemove(P("/tags"), edgesync::crdt::ParseJsonScalar("\"ok\"").value());
    return s.ok() ? t.SetAdd(P("/tags"), edgesync::crdt::ParseJsonScalar("\"hot\"").value()) : s;
  });
  Delta b1 = Write(b, "set /title \"pump 7 (spare)\"", [](auto& t) {
    return t.Put(P("/title"), edgesync::crdt::ParseJsonTree(R"js("pump 7 (spare)")js").value());
  });
  Delta b2 = Write(b, "counter /starts += 5", [](auto& t) { return t.CounterAdd(P("/starts"), 5); });
  Delta b3 = Write(b, "tags: add \"ok\" again (concurrent)", [](auto& t) {
    return t.SetAdd(P("/tags"), edgesync::crdt::ParseJsonScalar("\"ok\"").value());
  });

  std::printf("\nThey exchange deltas, in opposite orders and with a duplicate:\n");
  for (const Delta* d : {&b3, &b1, &b2, &b1}) (void)edgesync::crdt::Join(&a.state, *d).value();
  for (const Delta* d : {&a1, &a2, &a3}) (void)edgesync::crdt::Join(&b.state, *d).value();
  const std::string ja = edgesync::crdt::ReadJson(&a.state, Path()).value();
  const std::string jb = edgesync::crdt::ReadJson(&b.state, Path()).value();
  std::printf("  A: %s\n  B: %s\n", ja.c_str(), jb.c_str());
  std::printf("  conflicts kept at A: %s\n",
              edgesync::crdt::ReadConflictsJson(&a.state, Path()).value().c_str());

  const bool same = edgesync::crdt::EncodeCanonical(a.state.ToDelta()) ==
                    edgesync::crdt::EncodeCanonical(b.state.ToDelta());
  std::printf("\ncanonical state bytes equal: %s\n", same ? "yes" : "NO");
  return same && ja == jb ? 0 : 1;
}
