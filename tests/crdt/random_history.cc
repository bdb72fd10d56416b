#include "tests/crdt/random_history.h"

#include "absl/strings/str_cat.h"
#include "crdt/canonical_codec.h"
#include "crdt/join.h"
#include "crdt/transaction_builder.h"

namespace edgesync::crdt::testing {

const char* MixName(Mix mix) {
  switch (mix) {
    case Mix::kRegister:
      return "register";
    case Mix::kCounter:
      return "counter";
    case Mix::kSet:
      return "set";
    case Mix::kMap:
      return "map";
    case Mix::kDocument:
      return "document";
  }
  return "?";
}

ElementHash TestElementHash(absl::string_view bytes) {
  ElementHash out;
  for (size_t lane = 0; lane < 8; ++lane) {
    uint64_t h = 0xcbf29ce484222325ull ^ (lane * 0x9e3779b97f4a7c15ull);
    for (char c : bytes) {
      h ^= static_cast<uint8_t>(c);
      h *= 0x100000001b3ull;
    }
    // splitmix64 finaliser
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    for (size_t b = 0; b < 8; ++b) out[lane * 8 + b] = static_cast<uint8_t>(h >> (8 * b));
  }
  return out;
}

std::string StateBytes(const MemoryStore& s) { return EncodeCanonical(s.ToDelta()); }

RandomHistory::RandomHistory(uint64_t seed, Mix mix, size_t authors) : rng_(seed), mix_(mix) {
  replicas_.resize(authors);
  for (size_t i = 0; i < authors; ++i) {
    // Distinct keys whose order is not the replica order.
    replicas_[i].author.bytes.fill(static_cast<uint8_t>(0x10 + ((i * 7) % 13)));
    replicas_[i].author.bytes[31] = static_cast<uint8_t>(i);
    replicas_[i].hlc = 1000 + i;
  }
}

std::vector<size_t> RandomHistory::DeltasOf(size_t author_index) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < deltas_.size(); ++i) {
    if (deltas_[i].author_index == author_index) out.push_back(i);
  }
  return out;
}

std::string RandomHistory::RandomKey() {
  static const char* const kKeys[] = {"a", "b", "c", "d"};
  return kKeys[rng_() % 4];
}

namespace {

Value RandomScalar(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0:
      return Value::Null();
    case 1:
      return Value::Bool(rng() % 2 == 0);
    case 2:
      return Value::Int(static_cast<int64_t>(rng() % 7) - 3);
    case 3:
      return Value::Double(static_cast<double>(rng() % 5) / 4.0 - 0.5).value();
    case 4:
      return Value::String(std::string(1 + rng() % 3, static_cast<char>('x' + rng() % 3))).value();
    default:
      return Value::Bytes(std::string(1, static_cast<char>(rng() % 3))).value();
  }
}

Tree RandomTree(std::mt19937_64& rng, int depth) {
  const uint64_t pick = rng() % 6;
  if (depth > 0 && pick == 0) {
    Tree t;
    t.kind = Tree::Kind::kMap;
    const size_t n = rng() % 3;
    static const char* const kKeys[] = {"a", "b", "c"};
    for (size_t i = 0; i < n; ++i) t.map.emplace_back(kKeys[i], RandomTree(rng, depth - 1));
    return t;
  }
  if (pick == 1) {
    Tree t;
    t.kind = Tree::Kind::kSet;
    for (size_t i = rng() % 3; i > 0; --i) t.set.push_back(Value::Int(static_cast<int64_t>(rng() % 4)));
    std::sort(t.set.begin(), t.set.end());
    t.set.erase(std::unique(t.set.begin(), t.set.end()), t.set.end());
    return t;
  }
  return Tree::Scalar(RandomScalar(rng));
}

}  // namespace

absl::Status RandomHistory::RandomMutation(TransactionBuilder& txn) {
  auto path_of = [this](size_t depth) {
    std::vector<std::string> keys;
    for (size_t i = 0; i < depth; ++i) keys.push_back(RandomKey());
    return Path::FromKeys(keys).value();
  };
  const uint64_t r = rng_() % 100;
  switch (mix_) {
    case Mix::kRegister:
      if (r < 85) return txn.Put(path_of(1), Tree::Scalar(RandomScalar(rng_)));
      return txn.Delete(path_of(1));
    case Mix::kCounter:
      if (r < 85) return txn.CounterAdd(path_of(1), static_cast<int64_t>(rng_() % 11) - 5);
      return txn.Delete(path_of(1));
    case Mix::kSet: {
      const Path p = path_of(1);
      const Value e = Value::Int(static_cast<int64_t>(rng_() % 5));
      if (r < 50) return txn.SetAdd(p, e);
      if (r < 85) return txn.SetRemove(p, e);
      if (r < 92) return txn.Put(p, RandomTree(rng_, 0));
      return txn.Delete(p);
    }
    case Mix::kMap:
      if (r < 45) return txn.Put(path_of(1 + rng_() % 3), Tree::Scalar(RandomScalar(rng_)));
      if (r < 70) return txn.Put(path_of(1 + rng_() % 2), RandomTree(rng_, 2));
      if (r < 97) return txn.Delete(path_of(1 + rng_() % 3));
      return txn.Delete(Path());
    case Mix::kDocument: {
      const Path p = path_of(1 + rng_() % 2);
      if (r < 25) return txn.Put(p, Tree::Scalar(RandomScalar(rng_)));
      if (r < 40) return txn.Put(p, RandomTree(rng_, 2));
      if (r < 55) return txn.CounterAdd(p, static_cast<int64_t>(rng_() % 11) - 5);
      if (r < 70) return txn.SetAdd(p, Value::Int(static_cast<int64_t>(rng_() % 4)));
      if (r < 80) return txn.SetRemove(p, Value::Int(static_cast<int64_t>(rng_() % 4)));
      if (r < 99) return txn.Delete(p);
      Tree root;
      root.kind = Tree::Kind::kMap;
      root.map.emplace_back("a", RandomTree(rng_, 1));
      return txn.Put(Path(), root);
    }
  }
  return absl::OkStatus();
}

void RandomHistory::Transaction(size_t r) {
  Replica& rep = replicas_[r];
  MemoryStore before = rep.state;
  // Times mostly rise but sometimes repeat or fall behind other replicas',
  // so register ties and author tie-breaks happen.
  rep.hlc += rng_() % 3;
  TransactionBuilder txn(&rep.state, rep.author, rep.next_dot, rep.hlc);
  const size_t ops = 1 + rng_() % 3;
  for (size_t i = 0; i < ops; ++i) {
    if (absl::Status s = RandomMutation(txn); !s.ok()) {
      failures_.push_back(absl::StrCat("mutation failed: ", s.ToString()));
      return;
    }
  }
  absl::StatusOr<Delta> delta = txn.Finish();
  if (!delta.ok()) {
    failures_.push_back(absl::StrCat("finish failed: ", delta.status().ToString()));
    return;
  }
  if (delta->empty()) return;
  const uint64_t first = rep.next_dot;
  rep.next_dot += std::max<uint64_t>(txn.dots_used(), 1);
  const uint64_t last = rep.next_dot - 1;
  if (absl::Status s = ValidateBatchDelta(*delta, rep.author, first, last); !s.ok()) {
    failures_.push_back(absl::StrCat("batch delta invalid: ", s.ToString()));
  }
  // Delta correctness: before ⊔ δ == after.
  (void)Join(&before, *delta).value();
  if (StateBytes(before) != StateBytes(rep.state)) {
    failures_.push_back("state before joined with the transaction's delta differs from the state after");
  }
  deltas_.push_back(Recorded{r, first, last, *std::move(delta)});
}

void RandomHistory::Run(size_t steps) {
  for (size_t step = 0; step < steps; ++step) {
    const size_t r = rng_() % replicas_.size();
    if (!deltas_.empty() && rng_() % 100 < 40) {
      const Recorded& d = deltas_[rng_() % deltas_.size()];
      (void)Join(&replicas_[r].state, d.delta).value();
    } else {
      Transaction(r);
    }
  }
}

}  // namespace edgesync::crdt::testing
