#include "tests/sim/workload.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace edgesync::sim {

namespace {

using transport::sim::Random;

std::string ScalarJson(Random& rng, int node, uint64_t unique) {
  switch (rng.Uniform(8)) {
    case 0:
    case 1:
      return absl::StrCat(rng.Chance(0.2) ? -static_cast<int64_t>(unique)
                                          : static_cast<int64_t>(unique));
    case 2:
      return absl::StrCat("\"v", node, ".", unique, "\"");
    case 3:
      return absl::StrCat("\"\xc3\xbc-", unique, "\"");  // non-ASCII
    case 4:
      return absl::StrCat(unique, ".5");
    case 5:
      return rng.Chance(0.5) ? "true" : "false";
    case 6:
      return "null";
    default:
      return absl::StrCat("{\"$bytes\":\"", absl::Base64Escape(rng.Bytes(1 + rng.Uniform(5))),
                          "\"}");
  }
}

// Set elements come from a small pool, so adds and removes of different
// replicas meet.
std::string ElementJson(Random& rng) {
  static const char* const kElements[] = {"\"e0\"", "\"e1\"", "\"e2\"", "\"e3\"", "\"\xc3\xa9\"",
                                          "0",      "1",      "7",      "-2",     "true"};
  return kElements[rng.Uniform(10)];
}

}  // namespace

uint64_t OrdinaryTransactionSize(Random& rng) { return rng.Chance(0.45) ? 1 : rng.Range(2, 6); }

Mutation RandomMutation(Random& rng, int node, uint64_t* unique, bool own_document) {
  Mutation m;
  auto scalar = [&] { return ScalarJson(rng, node, ++*unique); };
  if (own_document && rng.Chance(0.002)) {
    m.kind = Mutation::Kind::kDelete;  // the whole document
    return m;
  }
  const uint64_t ns = rng.Uniform(100);
  if (ns < 35) {
    m.path = absl::StrCat("/r/k", rng.Uniform(12));
    if (rng.Chance(0.85)) {
      m.json = scalar();
    } else {
      m.kind = Mutation::Kind::kDelete;
    }
  } else if (ns < 50) {
    m.path = absl::StrCat("/o/k", rng.Uniform(4));
    const uint64_t what = rng.Uniform(100);
    if (what < 45) {
      // One draw after the other: the order of a call's arguments is
      // unspecified, and a seed must replay the same with every compiler.
      const std::string a = scalar();
      const std::string b = scalar();
      m.json = absl::StrCat("{\"a\":", a, ",\"b\":", b, "}");
    } else if (what < 85) {
      m.path += rng.Chance(0.5) ? "/a" : "/b";
      m.json = scalar();
    } else {
      m.kind = Mutation::Kind::kDelete;
    }
  } else if (ns < 65) {
    m.path = absl::StrCat("/c/k", rng.Uniform(4));
    if (rng.Chance(0.92)) {
      m.kind = Mutation::Kind::kCounterAdd;
      m.n = static_cast<int64_t>(rng.Uniform(14)) - 3;
    } else {
      m.kind = Mutation::Kind::kDelete;
    }
  } else if (ns < 90) {
    m.path = absl::StrCat("/s/k", rng.Uniform(4));
    const uint64_t what = rng.Uniform(100);
    if (what < 55) {
      m.kind = Mutation::Kind::kSetAdd;
      m.json = ElementJson(rng);
    } else if (what < 80) {
      m.kind = Mutation::Kind::kSetRemove;
      m.json = ElementJson(rng);
    } else if (what < 92) {
      std::vector<std::string> elements;
      for (uint64_t i = rng.Uniform(4); i > 0; --i) elements.push_back(ElementJson(rng));
      m.json = absl::StrCat("[", absl::StrJoin(elements, ","), "]");
    } else {
      m.kind = Mutation::Kind::kDelete;
    }
  } else {
    m.path = absl::StrCat("/x/k", rng.Uniform(3));
    switch (rng.Uniform(6)) {
      case 0:
        m.json = scalar();
        break;
      case 1:
        m.json = absl::StrCat("{\"q\":", scalar(), "}");
        break;
      case 2:
        m.json = absl::StrCat("[", ElementJson(rng), "]");
        break;
      case 3:
        m.kind = Mutation::Kind::kCounterAdd;
        m.n = static_cast<int64_t>(rng.Uniform(5)) + 1;
        break;
      case 4:
        m.kind = Mutation::Kind::kSetAdd;
        m.json = ElementJson(rng);
        break;
      default:
        m.kind = Mutation::Kind::kDelete;
        break;
    }
  }
  return m;
}

std::vector<Mutation> LargeSetTransaction(Random& rng, uint64_t pool) {
  std::vector<Mutation> out;
  if (rng.Chance(0.02)) {
    Mutation m;
    m.kind = Mutation::Kind::kDelete;
    m.path = "/s/big";
    out.push_back(std::move(m));
  }
  for (uint64_t i = rng.Range(100, 400); i > 0; --i) {
    Mutation m;
    m.kind = rng.Chance(0.8) ? Mutation::Kind::kSetAdd : Mutation::Kind::kSetRemove;
    m.path = "/s/big";
    const uint64_t k = rng.Uniform(pool);
    m.json = k % 3 == 0 ? absl::StrCat(k) : absl::StrCat("\"m", k, "\"");
    out.push_back(std::move(m));
  }
  return out;
}

void ConfineKeys(Mutation* m, int node) {
  // "/ns/key...": the key is the second component.
  const size_t slash = m->path.find('/', 1);
  if (m->path.empty() || slash == std::string::npos) return;
  m->path.insert(slash + 1, absl::StrCat("n", node, "."));
}

absl::Status BufferMutation(Transaction& txn, const Mutation& m) {
  switch (m.kind) {
    case Mutation::Kind::kPut:
      return txn.Put(m.path, m.json);
    case Mutation::Kind::kDelete:
      return txn.Delete(m.path);
    case Mutation::Kind::kCounterAdd:
      return txn.CounterAdd(m.path, m.n);
    case Mutation::Kind::kSetAdd:
      return txn.SetAdd(m.path, m.json);
    case Mutation::Kind::kSetRemove:
      return txn.SetRemove(m.path, m.json);
  }
  return absl::InternalError("unknown mutation kind");
}

}  // namespace edgesync::sim
