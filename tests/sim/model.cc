#include "tests/sim/model.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace edgesync::sim {

namespace {

using Json = nlohmann::json;

bool IsBytes(const Json& v) { return v.is_object() && v.size() == 1 && v.contains("$bytes"); }
bool IsScalar(const Json& v) { return v.is_primitive() || IsBytes(v); }

// True if `a` is `b` or an ancestor of it ("" is the root).
bool AtOrAbove(const std::string& a, const std::string& b) {
  return a == b || (absl::StartsWith(b, a) && b.size() > a.size() && b[a.size()] == '/');
}
bool StrictlyAbove(const std::string& a, const std::string& b) { return a != b && AtOrAbove(a, b); }

std::vector<std::string> Keys(const std::string& path) {
  if (path.empty()) return {};
  std::vector<std::string> keys = absl::StrSplit(path.substr(1), '/');
  return keys;
}

std::string Key(const Json& scalar) { return scalar.dump(); }

// The sequential model's tree.
struct Node {
  enum class Kind { kMap, kRegister, kCounter, kSet };
  Kind kind = Kind::kMap;
  std::map<std::string, Node> children;
  Json scalar;
  int64_t counter = 0;
  std::map<std::string, Json> elements;  // by Key()
};

Node FromJson(const Json& v) {
  Node n;
  if (IsScalar(v)) {
    n.kind = Node::Kind::kRegister;
    n.scalar = v;
  } else if (v.is_array()) {
    n.kind = Node::Kind::kSet;
    for (const Json& e : v) n.elements[Key(e)] = e;
  } else {
    n.kind = Node::Kind::kMap;
    for (auto it = v.begin(); it != v.end(); ++it) n.children[it.key()] = FromJson(it.value());
  }
  return n;
}

Json ToJson(const Node& n) {
  switch (n.kind) {
    case Node::Kind::kRegister:
      return n.scalar;
    case Node::Kind::kCounter:
      return Json(n.counter);
    case Node::Kind::kSet: {
      Json a = Json::array();
      for (const auto& e : n.elements) a.push_back(e.second);
      return a;
    }
    case Node::Kind::kMap: {
      Json o = Json::object();
      for (const auto& c : n.children) o[c.first] = ToJson(c.second);
      return o;
    }
  }
  return Json();
}

// The node's parent map, every ancestor made a map (as a write does).
Node* Parent(Node* root, const std::vector<std::string>& keys) {
  Node* n = root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    Node& child = n->children[keys[i]];
    if (child.kind != Node::Kind::kMap) child = Node();
    n = &child;
  }
  return n;
}

// The node at `keys`, or nullptr; never creates.
Node* Find(Node* root, const std::vector<std::string>& keys) {
  Node* n = root;
  for (const std::string& k : keys) {
    if (n->kind != Node::Kind::kMap) return nullptr;
    auto it = n->children.find(k);
    if (it == n->children.end()) return nullptr;
    n = &it->second;
  }
  return n;
}

void ApplySequential(Node* root, const Mutation& m) {
  const std::vector<std::string> keys = Keys(m.path);
  switch (m.kind) {
    case Mutation::Kind::kPut: {
      Node value = FromJson(Json::parse(m.json));
      if (keys.empty()) {
        *root = std::move(value);
        return;
      }
      Parent(root, keys)->children[keys.back()] = std::move(value);
      return;
    }
    case Mutation::Kind::kDelete: {
      if (keys.empty()) {
        *root = Node();
        return;
      }
      std::vector<std::string> parent_keys(keys.begin(), keys.end() - 1);
      Node* parent = Find(root, parent_keys);
      if (parent != nullptr && parent->kind == Node::Kind::kMap) {
        parent->children.erase(keys.back());
      }
      return;
    }
    case Mutation::Kind::kCounterAdd: {
      Node& n = Parent(root, keys)->children[keys.back()];
      if (n.kind != Node::Kind::kCounter) {
        n = Node();
        n.kind = Node::Kind::kCounter;
      }
      n.counter += m.n;
      return;
    }
    case Mutation::Kind::kSetAdd: {
      Node& n = Parent(root, keys)->children[keys.back()];
      if (n.kind != Node::Kind::kSet) {
        n = Node();
        n.kind = Node::Kind::kSet;
      }
      const Json e = Json::parse(m.json);
      n.elements[Key(e)] = e;
      return;
    }
    case Mutation::Kind::kSetRemove: {
      Node* n = Find(root, keys);
      if (n != nullptr && n->kind == Node::Kind::kSet) n->elements.erase(Key(Json::parse(m.json)));
      return;
    }
  }
}

// First difference between two normalised values, for the report.
std::string FirstDifference(const std::string& path, const Json& want, const Json& got) {
  if (want.is_object() && got.is_object() && !IsBytes(want)) {
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!got.contains(it.key())) {
        return absl::StrCat(path, "/", it.key(), ": missing, want ", it.value().dump());
      }
      if (got[it.key()] != it.value()) {
        return FirstDifference(path + "/" + it.key(), it.value(), got[it.key()]);
      }
    }
    for (auto it = got.begin(); it != got.end(); ++it) {
      if (!want.contains(it.key())) {
        return absl::StrCat(path, "/", it.key(), ": unexpected ", it.value().dump());
      }
    }
  }
  return absl::StrCat(path.empty() ? "/" : path, ": want ", want.dump(), ", got ", got.dump());
}

}  // namespace

std::string Mutation::Describe() const {
  switch (kind) {
    case Kind::kPut:
      return absl::StrCat("put ", path, " ", json);
    case Kind::kDelete:
      return absl::StrCat("delete ", path);
    case Kind::kCounterAdd:
      return absl::StrCat("add ", path, " ", n);
    case Kind::kSetAdd:
      return absl::StrCat("set-add ", path, " ", json);
    case Kind::kSetRemove:
      return absl::StrCat("set-remove ", path, " ", json);
  }
  return "?";
}

Json Normalize(const Json& v) {
  if (v.is_array()) {
    std::vector<std::pair<std::string, Json>> items;
    for (const Json& e : v) {
      Json n = Normalize(e);
      items.emplace_back(n.dump(), n);
    }
    std::sort(items.begin(), items.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Json out = Json::array();
    for (auto& item : items) out.push_back(std::move(item.second));
    return out;
  }
  if (v.is_object()) {
    Json out = Json::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = Normalize(it.value());
    return out;
  }
  return v;
}

void ReferenceModel::Acknowledge(AckedTransaction txn) {
  ++transactions_;
  mutations_ += txn.mutations.size();
  std::string doc = txn.document;
  documents_[doc].push_back(std::move(txn));
}

ReferenceModel ReferenceModel::Only(const std::set<std::string>& authors) const {
  ReferenceModel out;
  for (const auto& d : documents_) {
    for (const AckedTransaction& t : d.second) {
      if (authors.contains(t.author)) out.Acknowledge(t);
    }
  }
  return out;
}

std::vector<std::string> ReferenceModel::Documents() const {
  std::vector<std::string> out;
  for (const auto& d : documents_) {
    const bool changed = std::any_of(d.second.begin(), d.second.end(),
                                     [](const AckedTransaction& t) { return t.seq_first != 0; });
    if (changed) out.push_back(d.first);
  }
  return out;
}

bool ReferenceModel::SingleWriter(const std::string& document) const {
  auto it = documents_.find(document);
  if (it == documents_.end() || it->second.empty()) return true;
  for (const AckedTransaction& t : it->second) {
    if (t.node != it->second.front().node) return false;
  }
  return true;
}

Json ReferenceModel::Evaluate(const std::string& document) const {
  Node root;
  auto it = documents_.find(document);
  if (it != documents_.end()) {
    for (const AckedTransaction& t : it->second) {
      for (const Mutation& m : t.mutations) ApplySequential(&root, m);
    }
  }
  return Normalize(ToJson(root));
}

void ReferenceModel::Check(const std::string& who, const std::string& document, const Json& state,
                           const Json& conflicts, std::vector<std::string>* failures) const {
  if (!documents_.contains(document)) {
    if (state != Json::object()) {
      failures->push_back(absl::StrCat(who, ": ", document, " holds ", state.dump().substr(0, 200),
                                       " but no write to it was acknowledged"));
    }
    return;
  }
  if (SingleWriter(document)) {
    const Json want = Evaluate(document);
    const Json got = Normalize(state);
    if (want != got) {
      failures->push_back(absl::StrCat(who, ": single-writer document ", document,
                                       " differs from the model at ",
                                       FirstDifference("", want, got)));
    }
  }
  CheckCausal(who, document, state, conflicts, failures);
}

namespace {

// An element some acknowledged mutation wrote.
struct Row {
  enum class Facet { kRegister, kSet, kCounter };
  Facet facet = Facet::kRegister;
  std::string path;
  std::string element;  // register value or set member, as Key()
  size_t txn = 0;       // index in the document's transactions
  size_t index = 0;     // mutation index in the transaction
  int64_t total = 0;    // counter: the author's running total
};

struct OpRef {
  size_t txn;
  size_t index;
};

bool InNamespaces(const std::string& path) {
  return absl::StartsWith(path, "/r/") || absl::StartsWith(path, "/o/") ||
         absl::StartsWith(path, "/c/") || absl::StartsWith(path, "/s/");
}

bool SeenContains(const VersionVector& seen, const std::string& author, uint64_t first,
                  uint64_t last) {
  auto it = seen.find(author);
  if (it == seen.end()) return false;
  uint64_t need = first;
  for (const auto& range : it->second) {
    if (range.first > need) break;
    if (range.second >= need) need = range.second + 1;
    if (need > last) return true;
  }
  return need > last;
}

// True if mutation `r` (by `r_author`) removes `w` when its replica has
// seen it (TransactionBuilder's rules, restated).
bool Affects(const Mutation& r, const std::string& r_author, const Row& w,
             const std::string& w_author) {
  const std::string& q = r.path;
  const std::string& p = w.path;
  switch (r.kind) {
    case Mutation::Kind::kDelete:
      return AtOrAbove(q, p);
    case Mutation::Kind::kPut:
      return AtOrAbove(q, p) || StrictlyAbove(p, q);
    case Mutation::Kind::kCounterAdd:
      if (StrictlyAbove(p, q) || StrictlyAbove(q, p)) return true;
      if (q != p) return false;
      return !(w.facet == Row::Facet::kCounter && w_author != r_author);
    case Mutation::Kind::kSetAdd:
      if (StrictlyAbove(p, q) || StrictlyAbove(q, p)) return true;
      if (q != p) return false;
      return !(w.facet == Row::Facet::kSet && w.element != Key(Json::parse(r.json)));
    case Mutation::Kind::kSetRemove:
      return q == p && w.facet == Row::Facet::kSet && w.element == Key(Json::parse(r.json));
  }
  return false;
}

void RowsOf(const std::string& path, const Json& v, size_t txn, size_t index,
            std::vector<Row>* out) {
  if (IsScalar(v)) {
    out->push_back(Row{Row::Facet::kRegister, path, Key(v), txn, index, 0});
  } else if (v.is_array()) {
    for (const Json& e : v) out->push_back(Row{Row::Facet::kSet, path, Key(e), txn, index, 0});
  } else {
    for (auto it = v.begin(); it != v.end(); ++it) {
      RowsOf(path + "/" + it.key(), it.value(), txn, index, out);
    }
  }
}

}  // namespace

void ReferenceModel::CheckCausal(const std::string& who, const std::string& document,
                                 const Json& state, const Json& conflicts,
                                 std::vector<std::string>* failures) const {
  const std::vector<AckedTransaction>& txns = documents_.at(document);
  auto fail = [&](const std::string& what) {
    failures->push_back(absl::StrCat(who, ": ", document, ": ", what));
  };
  // Every effective mutation by path, and the rows written. At a row's own
  // path a set add or remove reaches a set member only if it names the
  // same element, so those are also kept by (path, element) and a large
  // set's members are not each compared with every other member's ops.
  std::map<std::string, std::vector<OpRef>> ops;
  std::map<std::string, std::vector<OpRef>> plain_ops;  // neither set add nor remove
  std::map<std::pair<std::string, std::string>, std::vector<OpRef>> element_ops;
  std::vector<Row> rows;
  for (size_t t = 0; t < txns.size(); ++t) {
    if (txns[t].seq_first == 0) continue;  // changed nothing
    for (size_t i = 0; i < txns[t].mutations.size(); ++i) {
      const Mutation& m = txns[t].mutations[i];
      ops[m.path].push_back(OpRef{t, i});
      if (m.kind == Mutation::Kind::kSetAdd || m.kind == Mutation::Kind::kSetRemove) {
        element_ops[{m.path, Key(Json::parse(m.json))}].push_back(OpRef{t, i});
      } else {
        plain_ops[m.path].push_back(OpRef{t, i});
      }
      if (!InNamespaces(m.path)) continue;
      switch (m.kind) {
        case Mutation::Kind::kPut:
          RowsOf(m.path, Json::parse(m.json), t, i, &rows);
          break;
        case Mutation::Kind::kCounterAdd:
          rows.push_back(Row{Row::Facet::kCounter, m.path, txns[t].author, t, i, m.n});
          break;
        case Mutation::Kind::kSetAdd:
          rows.push_back(Row{Row::Facet::kSet, m.path, Key(Json::parse(m.json)), t, i, 0});
          break;
        default:
          break;
      }
    }
  }
  // Calls fn for every mutation that may reach row `w`.
  auto for_each_related = [&](const Row& w, auto fn) {
    const std::string& path = w.path;
    std::string at;
    for (const std::string& k : Keys(path)) {  // ancestors and the path itself
      if (auto it = ops.find(at); it != ops.end()) {
        for (const OpRef& r : it->second) fn(r);
      }
      at += "/" + k;
    }
    if (w.facet == Row::Facet::kSet) {
      if (auto it = plain_ops.find(path); it != plain_ops.end()) {
        for (const OpRef& r : it->second) fn(r);
      }
      if (auto it = element_ops.find({path, w.element}); it != element_ops.end()) {
        for (const OpRef& r : it->second) fn(r);
      }
    } else if (auto it = ops.find(path); it != ops.end()) {
      for (const OpRef& r : it->second) fn(r);
    }
    for (auto it = ops.lower_bound(path + "/");
         it != ops.end() && absl::StartsWith(it->first, path + "/"); ++it) {
      for (const OpRef& r : it->second) fn(r);
    }
  };
  // Does mutation r remove row w, r having been committed by a replica that
  // had seen w (r covers w)?
  auto covers = [&](const OpRef& r, const Row& w) {
    if (r.txn == w.txn) return r.index > w.index;
    const AckedTransaction& wt = txns[w.txn];
    return SeenContains(txns[r.txn].seen, wt.author, wt.seq_first, wt.seq_last);
  };
  auto removes = [&](const OpRef& r, const Row& w) {
    if (r.txn == w.txn && r.index == w.index) return false;
    return Affects(txns[r.txn].mutations[r.index], txns[r.txn].author, w, txns[w.txn].author) &&
           covers(r, w);
  };
  // Visible to the replica that wrote row x, when it wrote it.
  auto visible_at = [&](const OpRef& r, const Row& x) {
    if (r.txn == x.txn) return r.index < x.index;
    const AckedTransaction& rt = txns[r.txn];
    return SeenContains(txns[x.txn].seen, rt.author, rt.seq_first, rt.seq_last);
  };
  auto remover = [&](const Row& w, const Row* at_view) -> std::optional<OpRef> {
    std::optional<OpRef> found;
    for_each_related(w, [&](const OpRef& r) {
      if (found.has_value() || !removes(r, w)) return;
      if (at_view != nullptr && !visible_at(r, *at_view)) return;
      found = r;
    });
    return found;
  };

  // Counter totals: each author's running sum since the last removal it saw.
  std::map<std::pair<std::string, std::string>, size_t> last_add;  // (path, author) -> row
  for (size_t k = 0; k < rows.size(); ++k) {
    Row& w = rows[k];
    if (w.facet != Row::Facet::kCounter) continue;
    auto key = std::make_pair(w.path, w.element);
    auto prev = last_add.find(key);
    if (prev != last_add.end()) {
      const Row& p = rows[prev->second];
      if (!remover(p, &w).has_value()) w.total += p.total;
    }
    last_add[key] = k;
  }

  // The surviving elements, by path.
  std::map<std::string, std::set<std::string>> want_registers;
  std::map<std::string, std::set<std::string>> want_sets;
  std::map<std::string, int64_t> want_counters;
  for (const Row& w : rows) {
    if (remover(w, nullptr).has_value()) continue;
    switch (w.facet) {
      case Row::Facet::kRegister:
        want_registers[w.path].insert(w.element);
        break;
      case Row::Facet::kSet:
        want_sets[w.path].insert(w.element);
        break;
      case Row::Facet::kCounter:
        want_counters[w.path] += w.total;
        break;
    }
  }

  // What the replica shows.
  std::map<std::string, std::set<std::string>> got_registers;
  std::map<std::string, std::set<std::string>> got_sets;
  std::map<std::string, int64_t> got_counters;
  if (!state.is_object()) {
    fail("state is not an object");
    return;
  }
  for (auto ns = state.begin(); ns != state.end(); ++ns) {
    const std::string top = "/" + ns.key();
    if (ns.key() == "x") continue;
    if (ns.key() != "r" && ns.key() != "o" && ns.key() != "c" && ns.key() != "s") {
      fail(absl::StrCat(top, ": unexpected key ", ns.value().dump()));
      continue;
    }
    if (!ns.value().is_object() || IsBytes(ns.value())) {
      fail(absl::StrCat(top, ": not an object: ", ns.value().dump()));
      continue;
    }
    for (auto k = ns.value().begin(); k != ns.value().end(); ++k) {
      const std::string path = top + "/" + k.key();
      const Json& v = k.value();
      if (ns.key() == "r") {
        if (!IsScalar(v)) fail(absl::StrCat(path, ": not a scalar: ", v.dump()));
        got_registers[path].insert(Key(v));
      } else if (ns.key() == "o") {
        if (!v.is_object() || IsBytes(v)) {
          fail(absl::StrCat(path, ": not an object: ", v.dump()));
          continue;
        }
        for (auto f = v.begin(); f != v.end(); ++f) {
          if (!IsScalar(f.value())) {
            fail(absl::StrCat(path, "/", f.key(), ": not a scalar: ", f.value().dump()));
          }
          got_registers[path + "/" + f.key()].insert(Key(f.value()));
        }
      } else if (ns.key() == "c") {
        if (!v.is_number_integer()) {
          fail(absl::StrCat(path, ": counter reads ", v.dump()));
          continue;
        }
        got_counters[path] = v.get<int64_t>();
      } else {
        if (!v.is_array()) {
          fail(absl::StrCat(path, ": set reads ", v.dump()));
          continue;
        }
        for (const Json& e : v) got_sets[path].insert(Key(e));
      }
    }
  }
  if (conflicts.is_array()) {
    for (const Json& c : conflicts) {
      const std::string path = c.value("path", "");
      if (!absl::StartsWith(path, "/r/") && !absl::StartsWith(path, "/o/")) continue;
      if (c.contains("conflicts") && c["conflicts"].is_array()) {
        for (const Json& v : c["conflicts"]) got_registers[path].insert(Key(v));
      }
    }
  } else {
    fail("conflicts are not an array");
  }

  auto describe = [&](const OpRef& r) {
    const AckedTransaction& t = txns[r.txn];
    return absl::StrCat("node ", t.node, " seq ", t.seq_first, "..", t.seq_last, " #", r.index, " ",
                        t.mutations[r.index].Describe());
  };
  auto explain = [&](const std::string& path, const std::string& element, Row::Facet facet) {
    // Which write made it, and what removed it (if the model says so).
    for (const Row& w : rows) {
      if (w.path != path || w.facet != facet ||
          (facet != Row::Facet::kCounter && w.element != element))
        continue;
      std::optional<OpRef> r = remover(w, nullptr);
      return absl::StrCat(
          " [written by ", describe(OpRef{w.txn, w.index}),
          r ? absl::StrCat("; removed by ", describe(*r)) : std::string("; never removed"), "]");
    }
    return std::string(" [never written]");
  };
  auto compare_sets = [&](const char* what, Row::Facet facet,
                          const std::map<std::string, std::set<std::string>>& want,
                          const std::map<std::string, std::set<std::string>>& got) {
    std::set<std::string> paths;
    for (const auto& e : want) paths.insert(e.first);
    for (const auto& e : got) paths.insert(e.first);
    for (const std::string& path : paths) {
      static const std::set<std::string> kNone;
      auto w = want.find(path);
      auto g = got.find(path);
      const std::set<std::string>& ws = w == want.end() ? kNone : w->second;
      const std::set<std::string>& gs = g == got.end() ? kNone : g->second;
      for (const std::string& e : ws) {
        if (!gs.contains(e)) {
          fail(absl::StrCat(path, ": ", what, " ", e, " lost", explain(path, e, facet)));
        }
      }
      for (const std::string& e : gs) {
        if (!ws.contains(e)) {
          fail(absl::StrCat(path, ": ", what, " ", e, " should not be there",
                            explain(path, e, facet)));
        }
      }
    }
  };
  compare_sets("value", Row::Facet::kRegister, want_registers, got_registers);
  compare_sets("member", Row::Facet::kSet, want_sets, got_sets);
  std::set<std::string> counter_paths;
  for (const auto& e : want_counters) counter_paths.insert(e.first);
  for (const auto& e : got_counters) counter_paths.insert(e.first);
  for (const std::string& path : counter_paths) {
    auto w = want_counters.find(path);
    auto g = got_counters.find(path);
    if (w == want_counters.end() || g == got_counters.end() || w->second != g->second) {
      std::vector<std::string> totals;  // what the model's figure is made of
      for (const Row& r : rows) {
        if (r.facet == Row::Facet::kCounter && r.path == path && !remover(r, nullptr).has_value()) {
          totals.push_back(absl::StrCat(describe(OpRef{r.txn, r.index}), " (total ", r.total, ")"));
        }
      }
      fail(absl::StrCat(
          path, ": counter reads ", g == got_counters.end() ? "nothing" : absl::StrCat(g->second),
          ", the model says ", w == want_counters.end() ? "nothing" : absl::StrCat(w->second), " [",
          absl::StrJoin(totals, "; "), "]"));
    }
  }
}

}  // namespace edgesync::sim
