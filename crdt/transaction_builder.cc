#include "crdt/transaction_builder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "crdt/join.h"
#include "crdt/size_limits.h"

namespace edgesync::crdt {

TransactionBuilder::TransactionBuilder(StateStore* state, const AuthorKey& author,
                                       uint64_t first_dot, uint64_t hlc)
    : state_(state), author_(author), first_dot_(first_dot), next_dot_(first_dot), hlc_(hlc) {
  ES_CHECK(first_dot >= 1);
}

absl::Status TransactionBuilder::CheckNotRoot(const Path& path, const char* what) const {
  if (path.is_root()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the document root is a map: cannot ", what, " at the root"));
  }
  return absl::OkStatus();
}

Dot TransactionBuilder::NewDot() { return Dot{author_, next_dot_++}; }

void TransactionBuilder::AddRow(Step* step, RowKey key, RowValue value) {
  step->context.Insert(key.dot);
  step->rows.push_back(Row{std::move(key), std::move(value)});
}

absl::Status TransactionBuilder::PrepareAncestors(const Path& path, Step* step) {
  for (const Path& ancestor : path.Ancestors()) {
    bool has_marker = false;
    absl::Status s = state_->ForEachRowAt(ancestor, [&](const RowKey& key, const RowValue&) {
      if (key.facet == Facet::kMap) {
        has_marker = true;
      } else {
        Observe(step, key);
      }
      return true;
    });
    if (!s.ok()) return s;
    if (!has_marker) AddRow(step, RowKey{ancestor, Facet::kMap, "", NewDot()}, SingleVariant(""));
  }
  return absl::OkStatus();
}

absl::Status TransactionBuilder::WriteTree(const Path& path, const Tree& value, Step* step) {
  switch (value.kind) {
    case Tree::Kind::kScalar:
      AddRow(step, RowKey{path, Facet::kRegister, "", NewDot()},
             SingleVariant(EncodeRegisterVariant(hlc_, value.scalar)));
      return absl::OkStatus();
    case Tree::Kind::kSet:
      AddRow(step, RowKey{path, Facet::kSet, "", NewDot()}, SingleVariant(""));
      for (const Value& element : value.set) {
        std::string encoded = element.Canonical();
        if (encoded.size() > kSetElementBytesMax) {
          return absl::InvalidArgumentError(absl::StrCat(
              "set element is over the limit of ", kSetElementBytesMax, " encoded bytes"));
        }
        AddRow(step, RowKey{path, Facet::kSet, std::move(encoded), NewDot()}, SingleVariant(""));
      }
      return absl::OkStatus();
    case Tree::Kind::kMap:
      if (!path.is_root()) AddRow(step, RowKey{path, Facet::kMap, "", NewDot()}, SingleVariant(""));
      for (const auto& [key, child] : value.map) {
        absl::StatusOr<Path> child_path = path.Child(key);
        if (!child_path.ok()) return child_path.status();
        if (absl::Status s = WriteTree(*child_path, child, step); !s.ok()) return s;
      }
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status TransactionBuilder::Put(const Path& path, const Tree& value) {
  if (path.is_root() && value.kind != Tree::Kind::kMap) {
    return absl::InvalidArgumentError("the document root is a map: only an object can be put there");
  }
  const size_t rows = value.RowCount();
  if (rows > kTransactionEntriesMax - rows_written_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "transaction writes more than ", kTransactionEntriesMax, " elements"));
  }
  Step step;
  if (absl::Status s = PrepareAncestors(path, &step); !s.ok()) return s;
  absl::Status s = state_->ForEachRowUnder(path, [&](const RowKey& key, const RowValue&) {
    Observe(&step, key);
    return true;
  });
  if (!s.ok()) return s;
  if (absl::Status w = WriteTree(path, value, &step); !w.ok()) return w;
  return Apply(std::move(step));
}

absl::Status TransactionBuilder::Delete(const Path& path) {
  Step step;
  absl::Status s = state_->ForEachRowUnder(path, [&](const RowKey& key, const RowValue&) {
    Observe(&step, key);
    return true;
  });
  if (!s.ok()) return s;
  return Apply(std::move(step));
}

absl::Status TransactionBuilder::CounterAdd(const Path& path, int64_t n) {
  if (absl::Status s = CheckNotRoot(path, "add to a counter"); !s.ok()) return s;
  Step step;
  if (absl::Status s = PrepareAncestors(path, &step); !s.ok()) return s;
  int64_t own_total = 0;
  absl::Status error;
  absl::Status s = state_->ForEachRowUnder(path, [&](const RowKey& key, const RowValue& value) {
    const bool counter_here = key.path == path && key.facet == Facet::kCounter;
    if (counter_here && key.dot.author != author_) return true;  // others' totals stay
    if (counter_here) {
      // The largest variant, as reads present it (variants sort numerically).
      absl::StatusOr<int64_t> total = DecodeCounterVariant(value.back());
      if (!total.ok()) {
        error = absl::DataLossError(absl::StrCat("stored counter row: ", total.status().message()));
        return false;
      }
      if (__builtin_add_overflow(own_total, *total, &own_total)) {
        error = absl::DataLossError("stored counter totals overflow");
        return false;
      }
    }
    Observe(&step, key);
    return true;
  });
  if (!s.ok()) return s;
  if (!error.ok()) return error;
  int64_t new_total;
  if (__builtin_add_overflow(own_total, n, &new_total)) {
    return absl::OutOfRangeError(
        absl::StrCat("counter at \"", path.ToString(), "\" would overflow int64"));
  }
  AddRow(&step, RowKey{path, Facet::kCounter, "", NewDot()},
         SingleVariant(EncodeCounterVariant(new_total)));
  return Apply(std::move(step));
}

absl::Status TransactionBuilder::SetAdd(const Path& path, const Value& element) {
  if (absl::Status s = CheckNotRoot(path, "add to a set"); !s.ok()) return s;
  std::string encoded = element.Canonical();
  if (encoded.size() > kSetElementBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("set element is over the limit of ", kSetElementBytesMax, " encoded bytes"));
  }
  Step step;
  if (absl::Status s = PrepareAncestors(path, &step); !s.ok()) return s;
  // Replaced: the other facets at the path, this member's earlier rows and
  // everything under the path. The other members and the set's marker
  // stay, so only seeks touch the set: O(log members).
  auto observe = [&](const RowKey& key, const RowValue&) {
    Observe(&step, key);
    return true;
  };
  for (const Facet facet : {Facet::kMap, Facet::kCounter, Facet::kRegister}) {
    if (absl::Status s = state_->ForEachRowAtFacet(path, facet, observe); !s.ok()) return s;
  }
  if (absl::Status s = state_->ForEachRowOfElement(path, Facet::kSet, encoded, observe); !s.ok()) {
    return s;
  }
  if (absl::Status s = state_->ForEachRowBelow(path, observe); !s.ok()) return s;
  bool has_set = false;
  absl::Status s = state_->ForEachRowAtFacet(path, Facet::kSet, [&](const RowKey&, const RowValue&) {
    has_set = true;
    return false;
  });
  if (!s.ok()) return s;
  if (!has_set) AddRow(&step, RowKey{path, Facet::kSet, "", NewDot()}, SingleVariant(""));
  AddRow(&step, RowKey{path, Facet::kSet, std::move(encoded), NewDot()}, SingleVariant(""));
  return Apply(std::move(step));
}

absl::Status TransactionBuilder::SetRemove(const Path& path, const Value& element) {
  if (absl::Status s = CheckNotRoot(path, "remove from a set"); !s.ok()) return s;
  const std::string encoded = element.Canonical();
  Step step;
  absl::Status s =
      state_->ForEachRowOfElement(path, Facet::kSet, encoded, [&](const RowKey& key, const RowValue&) {
        Observe(&step, key);
        return true;
      });
  if (!s.ok()) return s;
  return Apply(std::move(step));
}

absl::Status TransactionBuilder::Apply(Step step) {
  if (step.rows.empty() && step.context.empty()) return absl::OkStatus();
  rows_written_ += step.rows.size();
  if (rows_written_ > kTransactionEntriesMax) {
    return absl::ResourceExhaustedError(
        absl::StrCat("transaction writes more than ", kTransactionEntriesMax, " elements"));
  }
  Delta delta;
  delta.rows = std::move(step.rows);
  delta.context = std::move(step.context);
  std::sort(delta.rows.begin(), delta.rows.end(),
            [](const Row& a, const Row& b) { return a.key < b.key; });
  absl::StatusOr<JoinResult> applied = Join(state_, delta);
  if (!applied.ok()) return applied.status();
  for (const Path& p : applied->changed_paths) {
    if (changed_paths_.size() >= kChangedPathsMax) {
      changed_paths_truncated_ = true;
      break;
    }
    changed_paths_.insert(p);
  }
  changed_paths_truncated_ |= applied->changed_paths_truncated;
  absl::StatusOr<JoinResult> accumulated = Join(&delta_, delta);
  return accumulated.status();
}

absl::StatusOr<Delta> TransactionBuilder::Finish() {
  if (delta_.row_count() == 0 && dots_used() == 0) {
    bool saw_anything = false;
    absl::Status s = delta_.ForEachContext([&](const AuthorKey&, const RangeSet&) {
      saw_anything = true;
      return false;
    });
    if (!s.ok()) return s;
    if (!saw_anything) return Delta();
    // A transaction that only removes still takes one dot, so its batch has
    // a seq range; the state records it like any other.
    Step step;
    step.context.Insert(NewDot());
    if (absl::Status a = Apply(std::move(step)); !a.ok()) return a;
  }
  return delta_.ToDelta();
}

}  // namespace edgesync::crdt
