#include "crdt/read.h"

#include <algorithm>
#include <limits>
#include <map>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"
#include "crdt/json_internal.h"

namespace edgesync::crdt {

namespace {

using nlohmann::json;

struct RegisterEntry {
  uint64_t hlc;
  AuthorKey author;
  Value value;
};

// Rows of one path, grouped by facet, plus the paths below it.
struct Node {
  bool map_marker = false;
  bool set_marker = false;
  std::vector<std::string> members;  // canonical element bytes, may repeat
  bool has_counter = false;
  absl::int128 counter = 0;  // exact: the sum must not depend on row order
  std::vector<RegisterEntry> registers;
  std::map<std::string, Node> children;

  bool has_map() const { return map_marker || !children.empty(); }
  bool has_set() const { return set_marker || !members.empty(); }
};

absl::Status AddRow(Node* root, size_t base_depth, const RowKey& key, const RowValue& value) {
  Node* node = root;
  std::vector<std::string> keys = key.path.Keys();
  for (size_t i = base_depth; i < keys.size(); ++i) node = &node->children[keys[i]];
  switch (key.facet) {
    case Facet::kMap:
      node->map_marker = true;
      break;
    case Facet::kSet:
      if (key.element.empty()) {
        node->set_marker = true;
      } else {
        if (absl::StatusOr<Value> v = Value::FromCanonical(key.element); !v.ok()) {
          return absl::DataLossError(absl::StrCat("stored set member: ", v.status().message()));
        }
        node->members.push_back(key.element);
      }
      break;
    case Facet::kCounter: {
      // Equivocation may leave several totals for one dot; the largest counts.
      int64_t best = std::numeric_limits<int64_t>::min();
      for (const std::string& v : value) {
        absl::StatusOr<int64_t> total = DecodeCounterVariant(v);
        if (!total.ok()) return absl::DataLossError(absl::StrCat("stored counter row: ", total.status().message()));
        best = std::max(best, *total);
      }
      node->has_counter = true;
      node->counter += best;
      break;
    }
    case Facet::kRegister:
      for (const std::string& v : value) {
        absl::StatusOr<RegisterVariant> r = DecodeRegisterVariant(v);
        if (!r.ok()) return absl::DataLossError(absl::StrCat("stored register row: ", r.status().message()));
        node->registers.push_back(RegisterEntry{r->hlc, key.dot.author, std::move(r->value)});
      }
      break;
  }
  return absl::OkStatus();
}

json Render(Node& node);

json RenderMap(Node& node) {
  json out = json::object();
  for (auto& [key, child] : node.children) out[key] = Render(child);
  return out;
}

json RenderSet(Node& node) {
  std::sort(node.members.begin(), node.members.end());
  node.members.erase(std::unique(node.members.begin(), node.members.end()), node.members.end());
  json out = json::array();
  // Members were checked when they were added (AddRow).
  for (const std::string& m : node.members) out.push_back(internal::ScalarToJsonValue(*Value::FromCanonical(m)));
  return out;
}

json RenderCounter(const Node& node) {
  const absl::int128 lo = std::numeric_limits<int64_t>::min();
  const absl::int128 hi = std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(std::clamp(node.counter, lo, hi));
}

// Winner first.
void SortRegisters(Node& node) {
  std::sort(node.registers.begin(), node.registers.end(),
            [](const RegisterEntry& a, const RegisterEntry& b) {
              if (a.hlc != b.hlc) return a.hlc > b.hlc;
              if (a.author != b.author) return a.author > b.author;
              return a.value > b.value;
            });
}

// The value and, in `conflicts`, the losing facets and register variants.
json RenderWithConflicts(Node& node, json* conflicts) {
  SortRegisters(node);
  std::vector<json> values;
  if (node.has_map()) values.push_back(RenderMap(node));
  if (node.has_set()) values.push_back(RenderSet(node));
  if (node.has_counter) values.push_back(RenderCounter(node));
  for (const RegisterEntry& r : node.registers) values.push_back(internal::ScalarToJsonValue(r.value));
  if (values.empty()) return nullptr;
  for (size_t i = 1; i < values.size(); ++i) conflicts->push_back(std::move(values[i]));
  return std::move(values[0]);
}

json Render(Node& node) {
  json ignored = json::array();
  return RenderWithConflicts(node, &ignored);
}

void CollectConflicts(Node& node, const Path& path, json* out) {
  json conflicts = json::array();
  json value = RenderWithConflicts(node, &conflicts);
  if (!conflicts.empty()) {
    out->push_back(json{{"path", path.ToString()}, {"value", value}, {"conflicts", conflicts}});
  }
  // Recurse only into a map that is the presented value.
  if (!node.has_map()) return;
  for (auto& [key, child] : node.children) CollectConflicts(child, path.ChildUnchecked(key), out);
}

absl::StatusOr<Node> Load(StateStore* state, const Path& path) {
  Node root;
  absl::Status error;
  const size_t base_depth = path.depth();
  absl::Status s = state->ForEachRowUnder(path, [&](const RowKey& key, const RowValue& value) {
    error = AddRow(&root, base_depth, key, value);
    return error.ok();
  });
  if (!s.ok()) return s;
  if (!error.ok()) return error;
  const bool present = root.has_map() || root.has_set() || root.has_counter || !root.registers.empty();
  if (!present && !path.is_root()) {
    return absl::NotFoundError(absl::StrCat("no value at \"", path.ToString(), "\""));
  }
  if (!present) root.map_marker = true;  // the root is always a map
  return root;
}

}  // namespace

absl::StatusOr<std::string> ReadJson(StateStore* state, const Path& path) {
  absl::StatusOr<Node> node = Load(state, path);
  if (!node.ok()) return node.status();
  return internal::DumpCompact(Render(*node));
}

absl::StatusOr<std::string> ReadConflictsJson(StateStore* state, const Path& path) {
  absl::StatusOr<Node> node = Load(state, path);
  if (!node.ok()) return node.status();
  json out = json::array();
  CollectConflicts(*node, path, &out);
  return internal::DumpCompact(out);
}

}  // namespace edgesync::crdt
