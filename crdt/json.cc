#include "crdt/json.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crdt/json_internal.h"
#include "crdt/path.h"

namespace edgesync::crdt {

namespace {

constexpr absl::string_view kBytesKey = "$bytes";

// Builds a Tree from SAX events; the first error stops the parse.
class TreeBuilder {
 public:
  explicit TreeBuilder(size_t depth_max) : depth_max_(depth_max) {}

  bool null() { return AddScalar(Value::Null()); }
  bool boolean(bool b) { return AddScalar(Value::Bool(b)); }
  bool number_integer(int64_t i) { return AddScalar(Value::Int(i)); }
  bool number_unsigned(uint64_t u) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Fail(absl::StrCat("integer ", u, " is outside the int64 range"));
    }
    return AddScalar(Value::Int(static_cast<int64_t>(u)));
  }
  bool number_float(double d, const std::string& text) {
    // An integer literal too large for int64 arrives here as a double;
    // refuse it rather than silently change its type and value.
    if (text.find_first_of(".eE") == std::string::npos) {
      return Fail(absl::StrCat("integer ", text.substr(0, 40), " is outside the int64 range"));
    }
    absl::StatusOr<Value> v = Value::Double(d);
    if (!v.ok()) return Fail(absl::StrCat("number ", text, ": ", v.status().message()));
    return AddScalar(*std::move(v));
  }
  bool string(std::string& s) {
    absl::StatusOr<Value> v = Value::String(std::move(s));
    if (!v.ok()) return Fail(std::string(v.status().message()));
    return AddScalar(*std::move(v));
  }
  bool binary(std::vector<uint8_t>&) { return Fail("binary JSON values are not supported"); }
  bool start_object(size_t) { return Push(Tree::Kind::kMap); }
  bool key(std::string& k) {
    if (absl::Status s = ValidateMapKey(k); !s.ok()) return Fail(std::string(s.message()));
    stack_.back().key = std::move(k);
    return true;
  }
  bool end_object() {
    Tree t = std::move(stack_.back().tree);
    stack_.pop_back();
    std::sort(t.map.begin(), t.map.end(),
              [](const auto& a, const auto& b) { return a.key < b.key; });
    for (size_t i = 1; i < t.map.size(); ++i) {
      if (t.map[i - 1].key == t.map[i].key) {
        return Fail(absl::StrCat("duplicate key \"", t.map[i].key.substr(0, 64), "\""));
      }
    }
    if (t.map.size() == 1 && t.map[0].key == kBytesKey &&
        t.map[0].value.kind == Tree::Kind::kScalar &&
        t.map[0].value.scalar.type() == ValueType::kString) {
      std::string raw;
      if (!absl::Base64Unescape(t.map[0].value.scalar.bytes_value(), &raw)) {
        return Fail("\"$bytes\" holds invalid base64");
      }
      absl::StatusOr<Value> b = Value::Bytes(std::move(raw));
      if (!b.ok()) return Fail(std::string(b.status().message()));
      return Add(Tree::Scalar(*std::move(b)));
    }
    return Add(std::move(t));
  }
  bool start_array(size_t) { return Push(Tree::Kind::kSet); }
  bool end_array() {
    Tree t = std::move(stack_.back().tree);
    stack_.pop_back();
    std::sort(t.set.begin(), t.set.end());
    t.set.erase(std::unique(t.set.begin(), t.set.end()), t.set.end());
    return Add(std::move(t));
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& ex) {
    // what() starts with "[json.exception.parse_error.101] "; keep the rest.
    absl::string_view what = ex.what();
    if (size_t p = what.find("] "); p != absl::string_view::npos) what.remove_prefix(p + 2);
    return Fail(absl::StrCat("invalid JSON: ", what));
  }

  absl::StatusOr<Tree> Result() {
    if (!error_.ok()) return error_;
    if (!done_) return absl::InvalidArgumentError("invalid JSON: no value");
    return std::move(result_);
  }

 private:
  struct Frame {
    Tree tree;
    std::string key;
  };

  bool Fail(std::string message) {
    if (error_.ok()) error_ = absl::InvalidArgumentError(std::move(message));
    return false;
  }
  bool Push(Tree::Kind kind) {
    if (stack_.size() >= depth_max_) {
      return Fail(absl::StrCat("JSON nesting is deeper than the limit of ", depth_max_));
    }
    stack_.emplace_back();
    stack_.back().tree.kind = kind;
    return true;
  }
  bool AddScalar(Value v) { return Add(Tree::Scalar(std::move(v))); }
  bool Add(Tree t) {
    if (stack_.empty()) {
      result_ = std::move(t);
      done_ = true;
      return true;
    }
    Tree& parent = stack_.back().tree;
    if (parent.kind == Tree::Kind::kMap) {
      parent.map.emplace_back(std::move(stack_.back().key), std::move(t));
      return true;
    }
    if (t.kind != Tree::Kind::kScalar) {
      return Fail("arrays may hold only scalars (an array is stored as a set)");
    }
    if (t.scalar.Canonical().size() > kSetElementBytesMax) {
      return Fail(absl::StrCat("set element is over the limit of ", kSetElementBytesMax,
                               " encoded bytes"));
    }
    parent.set.push_back(std::move(t.scalar));
    return true;
  }

  size_t depth_max_;
  std::vector<Frame> stack_;
  Tree result_;
  bool done_ = false;
  absl::Status error_;
};

}  // namespace

absl::StatusOr<Tree> ParseJsonTree(absl::string_view text, size_t depth_max) {
  if (text.size() > kJsonBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("JSON text of ", text.size(),
                                                   " bytes is over the limit of ", kJsonBytesMax));
  }
  TreeBuilder builder(depth_max);
  try {
    nlohmann::json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
  return builder.Result();
}

absl::StatusOr<Value> ParseJsonScalar(absl::string_view text) {
  absl::StatusOr<Tree> t = ParseJsonTree(text, 1);
  if (!t.ok()) return t.status();
  if (t->kind != Tree::Kind::kScalar) {
    return absl::InvalidArgumentError("expected a JSON scalar, not an object or array");
  }
  return std::move(t->scalar);
}

std::string ScalarToJson(const Value& v) {
  return internal::DumpCompact(internal::ScalarToJsonValue(v));
}

namespace internal {

nlohmann::json ScalarToJsonValue(const Value& v) {
  switch (v.type()) {
    case ValueType::kNull:
      return nullptr;
    case ValueType::kBool:
      return v.bool_value();
    case ValueType::kInt:
      return v.int_value();
    case ValueType::kDouble:
      return v.double_value();
    case ValueType::kString:
      return v.bytes_value();
    case ValueType::kBytes: {
      nlohmann::json j = nlohmann::json::object();
      j[std::string(kBytesKey)] = absl::Base64Escape(v.bytes_value());
      return j;
    }
  }
  return nullptr;
}

std::string DumpCompact(const nlohmann::json& j) { return j.dump(); }

}  // namespace internal

}  // namespace edgesync::crdt
