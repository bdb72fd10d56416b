// The public C++ API (include/edgesync/replica.h, document.h) over
// ReplicaCore: input parsing and checks happen here, at the edge.

#include "edgesync/replica.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crdt/json.h"
#include "crdt/size_limits.h"
#include "lib/replica/bundle.h"
#include "lib/replica/replica_core.h"
#include "transport/batch.h"

namespace edgesync {

namespace {

absl::StatusOr<crdt::Path> ParsePath(absl::string_view path) { return crdt::Path::Parse(path); }

absl::StatusOr<internal::PendingMutation> MakePut(absl::string_view path, absl::string_view json) {
  internal::PendingMutation m;
  m.kind = internal::PendingMutation::Kind::kPut;
  absl::StatusOr<crdt::Path> p = ParsePath(path);
  if (!p.ok()) return p.status();
  m.path = *std::move(p);
  absl::StatusOr<crdt::Tree> tree = crdt::ParseJsonTree(json, crdt::kPathDepthMax - m.path.depth());
  if (!tree.ok()) return tree.status();
  if (m.path.is_root() && tree->kind != crdt::Tree::Kind::kMap) {
    return absl::InvalidArgumentError("the document root is a map: only an object can be put there");
  }
  m.tree = *std::move(tree);
  return m;
}

absl::StatusOr<internal::PendingMutation> MakeSetOp(internal::PendingMutation::Kind kind,
                                                    absl::string_view path,
                                                    absl::string_view json_scalar) {
  internal::PendingMutation m;
  m.kind = kind;
  absl::StatusOr<crdt::Path> p = ParsePath(path);
  if (!p.ok()) return p.status();
  if (p->is_root()) return absl::InvalidArgumentError("the document root is a map, not a set");
  m.path = *std::move(p);
  absl::StatusOr<crdt::Value> v = crdt::ParseJsonScalar(json_scalar);
  if (!v.ok()) return v.status();
  if (v->Canonical().size() > crdt::kSetElementBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("set element is over the limit of ",
                                                   crdt::kSetElementBytesMax, " encoded bytes"));
  }
  m.element = *std::move(v);
  return m;
}

}  // namespace

// ---------------------------------------------------------------- Replica

Replica::Replica(std::shared_ptr<internal::ReplicaCore> core) : core_(std::move(core)) {}
Replica::~Replica() = default;

absl::StatusOr<std::unique_ptr<Replica>> Replica::Open(const std::string& dir,
                                                       const ReplicaOptions& options) {
  absl::StatusOr<std::shared_ptr<internal::ReplicaCore>> core = internal::ReplicaCore::Open(dir, options);
  if (!core.ok()) return core.status();
  return std::unique_ptr<Replica>(new Replica(*std::move(core)));
}

absl::StatusOr<std::string> Replica::Rekey(const std::string& dir, const ReplicaOptions& options) {
  absl::StatusOr<crdt::AuthorKey> key = internal::ReplicaCore::Rekey(dir, options);
  if (!key.ok()) return key.status();
  return key->Hex();
}

const std::string& Replica::public_key_hex() const { return core_->public_key_hex(); }

absl::Status Replica::Trust(absl::string_view key_hex) {
  absl::StatusOr<crdt::AuthorKey> key = crdt::AuthorKey::FromHex(key_hex);
  if (!key.ok()) return key.status();
  return core_->Trust(*key);
}

absl::StatusOr<std::vector<std::string>> Replica::TrustedKeys() const {
  absl::StatusOr<std::vector<crdt::AuthorKey>> keys = core_->TrustedKeys();
  if (!keys.ok()) return keys.status();
  std::vector<std::string> out;
  for (const crdt::AuthorKey& k : *keys) out.push_back(k.Hex());
  return out;
}

Document Replica::document(absl::string_view id) { return Document(core_, std::string(id)); }

absl::StatusOr<std::vector<std::string>> Replica::DocumentIds(absl::string_view prefix) const {
  return core_->DocumentIds(prefix);
}

absl::StatusOr<VersionVectors> Replica::GetVersionVectors(absl::string_view prefix) const {
  return internal::ReadVersionVectors(*core_, prefix);
}

ApplyReport Replica::ApplyBatches(const std::vector<std::string>& batches) {
  return core_->ApplyBatches(batches);
}

absl::StatusOr<BundleReport> Replica::ExportBundle(const std::string& file,
                                                   const BundleExportOptions& options) {
  return internal::ExportBundle(*core_, file, options);
}

absl::StatusOr<BundleReport> Replica::ImportBundle(const std::string& file) {
  return internal::ImportBundle(*core_, file);
}

uint64_t Replica::Subscribe(absl::string_view prefix, std::function<void(const Change&)> callback) {
  return core_->Subscribe(prefix, std::move(callback));
}

void Replica::Unsubscribe(uint64_t id) { core_->Unsubscribe(id); }

ReplicaStats Replica::stats() const { return core_->stats(); }

void Replica::WaitForCompaction() { core_->WaitForMerges(); }

// ---------------------------------------------------------------- Transaction

Transaction::Transaction(std::shared_ptr<internal::ReplicaCore> core, std::string document)
    : core_(std::move(core)),
      document_(std::move(document)),
      mutations_(std::make_unique<std::vector<internal::PendingMutation>>()) {}
Transaction::Transaction(Transaction&&) noexcept = default;
Transaction& Transaction::operator=(Transaction&&) noexcept = default;
Transaction::~Transaction() = default;

size_t Transaction::mutation_count() const { return mutations_ ? mutations_->size() : 0; }

namespace {

absl::StatusOr<internal::PendingMutation> MakePathOnly(internal::PendingMutation::Kind kind,
                                                       absl::string_view path) {
  internal::PendingMutation m;
  m.kind = kind;
  absl::StatusOr<crdt::Path> p = ParsePath(path);
  if (!p.ok()) return p.status();
  if (kind == internal::PendingMutation::Kind::kCounterAdd && p->is_root()) {
    return absl::InvalidArgumentError("the document root is a map, not a counter");
  }
  m.path = *std::move(p);
  return m;
}

}  // namespace

absl::Status Transaction::Buffer(uint64_t input_bytes,
                                 absl::StatusOr<internal::PendingMutation> m) {
  if (!m.ok()) return m.status();
  if (mutations_->size() >= crdt::kTransactionEntriesMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a transaction holds at most ", crdt::kTransactionEntriesMax, " mutations"));
  }
  if (buffered_bytes_ + input_bytes > crdt::kJsonBytesMax) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a transaction holds at most ", crdt::kJsonBytesMax, " bytes of input"));
  }
  buffered_bytes_ += input_bytes;
  mutations_->push_back(*std::move(m));
  return absl::OkStatus();
}

absl::Status Transaction::CheckOpen() const {
  if (ended_) return absl::FailedPreconditionError("the transaction has already ended");
  return absl::OkStatus();
}

absl::Status Transaction::Put(absl::string_view path, absl::string_view json) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  return Buffer(path.size() + json.size(), MakePut(path, json));
}

absl::Status Transaction::Delete(absl::string_view path) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  return Buffer(path.size(), MakePathOnly(internal::PendingMutation::Kind::kDelete, path));
}

absl::Status Transaction::CounterAdd(absl::string_view path, int64_t n) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  absl::StatusOr<internal::PendingMutation> m =
      MakePathOnly(internal::PendingMutation::Kind::kCounterAdd, path);
  if (m.ok()) m->n = n;
  return Buffer(path.size() + sizeof(n), std::move(m));
}

absl::Status Transaction::SetAdd(absl::string_view path, absl::string_view json_scalar) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  return Buffer(path.size() + json_scalar.size(),
                MakeSetOp(internal::PendingMutation::Kind::kSetAdd, path, json_scalar));
}

absl::Status Transaction::SetRemove(absl::string_view path, absl::string_view json_scalar) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  return Buffer(path.size() + json_scalar.size(),
                MakeSetOp(internal::PendingMutation::Kind::kSetRemove, path, json_scalar));
}

absl::StatusOr<CommitInfo> Transaction::Commit() {
  if (ended_) return absl::FailedPreconditionError("the transaction has already ended");
  ended_ = true;
  absl::StatusOr<CommitInfo> info = core_->Commit(document_, *mutations_);
  mutations_->clear();
  return info;
}

void Transaction::Abort() {
  ended_ = true;
  if (mutations_) mutations_->clear();
}

// ---------------------------------------------------------------- Document

Transaction Document::Begin() const { return Transaction(core_, id_); }

namespace {

absl::Status CommitOne(Transaction txn, absl::Status buffered) {
  if (!buffered.ok()) return buffered;
  return txn.Commit().status();
}

}  // namespace

absl::Status Document::Put(absl::string_view path, absl::string_view json) const {
  Transaction t = Begin();
  absl::Status s = t.Put(path, json);
  return CommitOne(std::move(t), s);
}

absl::Status Document::Delete(absl::string_view path) const {
  Transaction t = Begin();
  absl::Status s = t.Delete(path);
  return CommitOne(std::move(t), s);
}

absl::Status Document::CounterAdd(absl::string_view path, int64_t n) const {
  Transaction t = Begin();
  absl::Status s = t.CounterAdd(path, n);
  return CommitOne(std::move(t), s);
}

absl::Status Document::SetAdd(absl::string_view path, absl::string_view json_scalar) const {
  Transaction t = Begin();
  absl::Status s = t.SetAdd(path, json_scalar);
  return CommitOne(std::move(t), s);
}

absl::Status Document::SetRemove(absl::string_view path, absl::string_view json_scalar) const {
  Transaction t = Begin();
  absl::Status s = t.SetRemove(path, json_scalar);
  return CommitOne(std::move(t), s);
}

absl::StatusOr<std::string> Document::Get(absl::string_view path) const {
  return core_->ReadJson(id_, path);
}

absl::StatusOr<std::string> Document::Conflicts(absl::string_view path) const {
  return core_->ReadConflictsJson(id_, path);
}

absl::StatusOr<std::string> Document::Digest() const {
  absl::StatusOr<std::string> raw = core_->Digest(id_);
  if (!raw.ok()) return raw.status();
  return absl::BytesToHexString(*raw);
}

absl::Status Document::Compact() const { return core_->Compact(id_); }

}  // namespace edgesync
