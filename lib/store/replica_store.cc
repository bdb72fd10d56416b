#include "lib/store/replica_store.h"

#include <lmdb.h>

#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"
#include "lib/store/element_hash.h"
#include "lib/store/key_codec.h"

namespace edgesync::internal {

namespace {

constexpr absl::string_view kMetaFormat = "format";
constexpr absl::string_view kMetaPublicKey = "public_key";
constexpr absl::string_view kMetaHlc = "hlc";
constexpr absl::string_view kMetaClock = "clock";
constexpr absl::string_view kMetaLocation = "location";
constexpr absl::string_view kMetaOwnEquivocation = "own_equivocation";
// Changes kept in the feed, and paths kept per change.
constexpr uint64_t kChangesKept = 10000;
constexpr size_t kChangePathsKept = 256;

absl::Status Damaged(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("store record is damaged: ", what));
}

std::string U32Key(uint32_t v) {
  std::string k;
  AppendU32(&k, v);
  return k;
}

std::string U64Value(uint64_t v) {
  std::string s;
  AppendU64(&s, v);
  return s;
}

absl::StatusOr<DocumentRecord> ParseDocument(absl::string_view id, absl::string_view value) {
  FieldReader in(value);
  DocumentRecord doc;
  doc.id = std::string(id);
  doc.num = in.U32();
  doc.next_path = in.U64();
  absl::string_view hash = in.Rest();
  if (!in.ok()) return Damaged("document");
  absl::StatusOr<crdt::StateHashSum> sum = crdt::StateHashSum::Decode(hash);
  if (!sum.ok()) return Damaged("document hash");
  doc.hash = *sum;
  return doc;
}

std::string EncodeDocument(const DocumentRecord& doc) {
  std::string v;
  AppendU32(&v, doc.num);
  AppendU64(&v, doc.next_path);
  v += doc.hash.Encode();
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicaStore>> ReplicaStore::Open(const std::string& dir,
                                                                 const LmdbOptions& options,
                                                                 const crdt::AuthorKey& self) {
  absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir, options);
  if (!env.ok()) return env.status();
  StoreDbs dbs;
  struct Named {
    const char* name;
    Dbi* dbi;
    unsigned flags;
  };
  const Named named[] = {
      {"meta", &dbs.meta, 0},
      {"documents", &dbs.documents, 0},
      {"document_ids", &dbs.document_ids, 0},
      {"authors", &dbs.authors, 0},
      {"author_keys", &dbs.author_keys, 0},
      {"trusted", &dbs.trusted, 0},
      {"paths", &dbs.paths, 0},
      {"path_parents", &dbs.path_parents, 0},
      {"rows", &dbs.rows, 0},
      {"dots", &dbs.dots, 0},
      {"context", &dbs.context, 0},
      {"coverage", &dbs.coverage, 0},
      {"log", &dbs.log, 0},
      {"held", &dbs.held, 0},
      {"waiting", &dbs.waiting, 0},
      {"inert_claims", &dbs.inert_claims, 0},
      {"equivocations", &dbs.equivocations, 0},
      {"changes", &dbs.changes, 0},
      {"own_missing", &dbs.own_missing, 0},
  };
  for (const Named& n : named) {
    absl::StatusOr<Dbi> dbi = (*env)->OpenDb(n.name, n.flags | MDB_CREATE);
    if (!dbi.ok()) return dbi.status();
    *n.dbi = *dbi;
  }
  std::unique_ptr<ReplicaStore> store(new ReplicaStore(*std::move(env), dbs));
  absl::Status init = store->Write([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<absl::string_view>> format = txn.read().Get(dbs.meta, kMetaFormat);
    if (!format.ok()) return format.status();
    if (!format->has_value()) {
      if (absl::Status s = txn.write().Put(dbs.meta, kMetaFormat, U32Key(kStoreFormatVersion)); !s.ok()) {
        return s;
      }
      if (absl::Status s = txn.write().Put(dbs.meta, kMetaPublicKey, self.view()); !s.ok()) return s;
      return txn.AddTrusted(self);
    }
    FieldReader in(**format);
    const uint32_t version = in.U32();
    if (!in.done()) return Damaged("format version");
    if (version > kStoreFormatVersion) {
      return absl::UnimplementedError(absl::StrCat("store format ", version,
                                                   " is newer than this build reads (",
                                                   kStoreFormatVersion, ")"));
    }
    absl::StatusOr<std::optional<absl::string_view>> key = txn.read().Get(dbs.meta, kMetaPublicKey);
    if (!key.ok()) return key.status();
    if (!key->has_value() || **key != self.view()) {
      return absl::DataLossError(
          "the identity file does not belong to this store (public keys differ)");
    }
    return absl::OkStatus();
  });
  if (!init.ok()) return init;
  return store;
}

absl::Status ReplicaStore::Write(absl::FunctionRef<absl::Status(StoreTxn&)> body) {
  return env_->Write([&](WriteTxn& w) {
    StoreTxn txn(dbs_, &w, &w);
    return body(txn);
  });
}

absl::Status ReplicaStore::Read(absl::FunctionRef<absl::Status(StoreTxn&)> body) {
  return env_->Read([&](ReadTxn& r) {
    StoreTxn txn(dbs_, &r, nullptr);
    return body(txn);
  });
}

WriteTxn& StoreTxn::write() {
  ES_CHECK(write_ != nullptr);
  return *write_;
}

absl::StatusOr<std::optional<std::string>> StoreTxn::GetCopy(Dbi db, absl::string_view key) {
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(db, key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(**v));
}

absl::StatusOr<uint64_t> StoreTxn::NextCounter(absl::string_view name) {
  const std::string key = absl::StrCat("next_", name);
  absl::StatusOr<std::optional<std::string>> v = GetCopy(dbs_.meta, key);
  if (!v.ok()) return v.status();
  uint64_t next = 1;
  if (v->has_value()) {
    FieldReader in(**v);
    next = in.U64();
    if (!in.done()) return Damaged(key);
  }
  if (absl::Status s = write().Put(dbs_.meta, key, U64Value(next + 1)); !s.ok()) return s;
  return next;
}

absl::StatusOr<uint64_t> StoreTxn::HlcHighWater() {
  absl::StatusOr<std::optional<std::string>> v = GetCopy(dbs_.meta, kMetaHlc);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return uint64_t{0};
  FieldReader in(**v);
  const uint64_t hlc = in.U64();
  if (!in.done()) return Damaged("hlc");
  return hlc;
}

absl::Status StoreTxn::SetHlcHighWater(uint64_t hlc) {
  return write().Put(dbs_.meta, kMetaHlc, U64Value(hlc));
}

absl::StatusOr<std::optional<ClockMark>> StoreTxn::GetClockMark() {
  absl::StatusOr<std::optional<std::string>> v = GetCopy(dbs_.meta, kMetaClock);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<ClockMark>();
  FieldReader in(**v);
  ClockMark m;
  m.hlc = in.U64();
  m.boot_ms = in.U64();
  m.boot_id = std::string(in.Rest());
  if (!in.ok() || m.boot_id.size() > kBootIdBytesMax) return Damaged("clock");
  return std::optional<ClockMark>(std::move(m));
}

absl::Status StoreTxn::SetClockMark(const ClockMark& mark) {
  ES_CHECK(mark.boot_id.size() <= kBootIdBytesMax);
  std::string v;
  AppendU64(&v, mark.hlc);
  AppendU64(&v, mark.boot_ms);
  v += mark.boot_id;
  return write().Put(dbs_.meta, kMetaClock, v);
}

absl::StatusOr<std::optional<StoreLocation>> StoreTxn::GetLocation() {
  absl::StatusOr<std::optional<std::string>> v = GetCopy(dbs_.meta, kMetaLocation);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<StoreLocation>();
  FieldReader in(**v);
  StoreLocation l;
  l.device = in.U64();
  l.inode = in.U64();
  l.machine_id = std::string(in.Rest());
  if (!in.ok() || l.machine_id.size() > kMachineIdBytesMax) return Damaged("location");
  return std::optional<StoreLocation>(std::move(l));
}

absl::Status StoreTxn::SetLocation(const StoreLocation& location) {
  ES_CHECK(location.machine_id.size() <= kMachineIdBytesMax);
  std::string v;
  AppendU64(&v, location.device);
  AppendU64(&v, location.inode);
  v += location.machine_id;
  return write().Put(dbs_.meta, kMetaLocation, v);
}

absl::StatusOr<std::optional<OwnEquivocation>> StoreTxn::GetOwnEquivocation() {
  absl::StatusOr<std::optional<std::string>> v = GetCopy(dbs_.meta, kMetaOwnEquivocation);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<OwnEquivocation>();
  FieldReader in(**v);
  OwnEquivocation e;
  e.seq = in.U64();
  e.document = std::string(in.Rest());
  if (!in.ok() || e.document.empty()) return Damaged("own equivocation");
  return std::optional<OwnEquivocation>(std::move(e));
}

absl::Status StoreTxn::SetOwnEquivocation(const OwnEquivocation& e) {
  ES_CHECK(!e.document.empty());
  std::string v;
  AppendU64(&v, e.seq);
  v += e.document;
  return write().Put(dbs_.meta, kMetaOwnEquivocation, v);
}

absl::Status StoreTxn::SetPublicKey(const crdt::AuthorKey& key) {
  if (absl::Status s = write().Put(dbs_.meta, kMetaPublicKey, key.view()); !s.ok()) return s;
  if (absl::Status s = AddTrusted(key); !s.ok()) return s;
  if (absl::StatusOr<bool> d = write().Del(dbs_.meta, kMetaOwnEquivocation); !d.ok()) {
    return d.status();
  }
  std::vector<std::string> documents;
  absl::Status s = ForEachOwnMissing([&](absl::string_view document, const crdt::RangeSet&) {
    documents.emplace_back(document);
    return true;
  });
  if (!s.ok()) return s;
  for (const std::string& d : documents) {
    if (absl::StatusOr<bool> del = write().Del(dbs_.own_missing, d); !del.ok()) return del.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<crdt::RangeSet> StoreTxn::OwnMissing(absl::string_view document) {
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.own_missing, document);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return crdt::RangeSet();
  crdt::ByteReader in(**v);
  absl::StatusOr<crdt::RangeSet> seqs = crdt::RangeSet::Decode(&in, SIZE_MAX);
  if (!seqs.ok() || !in.empty()) return Damaged("own missing seqs");
  return seqs;
}

absl::Status StoreTxn::SetOwnMissing(absl::string_view document, const crdt::RangeSet& seqs) {
  if (seqs.empty()) return write().Del(dbs_.own_missing, document).status();
  std::string v;
  seqs.AppendEncoded(&v);
  return write().Put(dbs_.own_missing, document, v);
}

absl::Status StoreTxn::ForEachOwnMissing(
    absl::FunctionRef<bool(absl::string_view document, const crdt::RangeSet& seqs)> fn) {
  bool bad = false;
  absl::Status s = read_->ForEachWithPrefix(dbs_.own_missing, "",
                                            [&](absl::string_view k, absl::string_view v) {
                                              crdt::ByteReader in(v);
                                              absl::StatusOr<crdt::RangeSet> seqs =
                                                  crdt::RangeSet::Decode(&in, SIZE_MAX);
                                              bad = !seqs.ok() || !in.empty();
                                              return !bad && fn(k, *seqs);
                                            });
  if (!s.ok()) return s;
  return bad ? Damaged("own missing seqs") : absl::OkStatus();
}

absl::StatusOr<std::optional<uint32_t>> StoreTxn::FindAuthor(const crdt::AuthorKey& key) {
  if (auto it = author_nums_.find(key); it != author_nums_.end()) return std::optional<uint32_t>(it->second);
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.authors, key.view());
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<uint32_t>();
  FieldReader in(**v);
  const uint32_t num = in.U32();
  if (!in.done()) return Damaged("author");
  author_nums_[key] = num;
  author_keys_[num] = key;
  return std::optional<uint32_t>(num);
}

absl::StatusOr<uint32_t> StoreTxn::InternAuthor(const crdt::AuthorKey& key) {
  absl::StatusOr<std::optional<uint32_t>> found = FindAuthor(key);
  if (!found.ok()) return found.status();
  if (found->has_value()) return **found;
  absl::StatusOr<uint64_t> next = NextCounter("author");
  if (!next.ok()) return next.status();
  if (*next > UINT32_MAX) return absl::ResourceExhaustedError("too many authors in one store");
  const uint32_t num = static_cast<uint32_t>(*next);
  if (absl::Status s = write().Put(dbs_.authors, key.view(), U32Key(num)); !s.ok()) return s;
  if (absl::Status s = write().Put(dbs_.author_keys, U32Key(num), key.view()); !s.ok()) return s;
  author_nums_[key] = num;
  author_keys_[num] = key;
  return num;
}

absl::StatusOr<crdt::AuthorKey> StoreTxn::AuthorKeyOf(uint32_t num) {
  if (auto it = author_keys_.find(num); it != author_keys_.end()) return it->second;
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.author_keys, U32Key(num));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Damaged("unknown author number");
  absl::StatusOr<crdt::AuthorKey> key = crdt::AuthorKey::FromBytes(**v);
  if (!key.ok()) return Damaged("author key");
  author_keys_[num] = *key;
  author_nums_[*key] = num;
  return *key;
}

absl::StatusOr<bool> StoreTxn::IsTrusted(const crdt::AuthorKey& key) {
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.trusted, key.view());
  if (!v.ok()) return v.status();
  return v->has_value();
}

absl::Status StoreTxn::AddTrusted(const crdt::AuthorKey& key) {
  return write().Put(dbs_.trusted, key.view(), "");
}

absl::Status StoreTxn::ForEachTrusted(absl::FunctionRef<void(const crdt::AuthorKey&)> fn) {
  absl::Status bad;
  absl::Status s = read_->ForEachWithPrefix(dbs_.trusted, "", [&](absl::string_view k, absl::string_view) {
    absl::StatusOr<crdt::AuthorKey> key = crdt::AuthorKey::FromBytes(k);
    if (!key.ok()) {
      bad = Damaged("trusted key");
      return false;
    }
    fn(*key);
    return true;
  });
  return s.ok() ? bad : s;
}

absl::StatusOr<std::optional<DocumentRecord>> StoreTxn::FindDocument(absl::string_view id) {
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.documents, id);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<DocumentRecord>();
  absl::StatusOr<DocumentRecord> doc = ParseDocument(id, **v);
  if (!doc.ok()) return doc.status();
  return std::optional<DocumentRecord>(*std::move(doc));
}

absl::StatusOr<DocumentRecord> StoreTxn::GetOrCreateDocument(absl::string_view id) {
  absl::StatusOr<std::optional<DocumentRecord>> found = FindDocument(id);
  if (!found.ok()) return found.status();
  if (found->has_value()) return **found;
  absl::StatusOr<uint64_t> next = NextCounter("document");
  if (!next.ok()) return next.status();
  if (*next > UINT32_MAX) return absl::ResourceExhaustedError("too many documents in one store");
  DocumentRecord doc;
  doc.id = std::string(id);
  doc.num = static_cast<uint32_t>(*next);
  if (absl::Status s = write().Put(dbs_.document_ids, U32Key(doc.num), id); !s.ok()) return s;
  if (absl::Status s = SaveDocument(doc); !s.ok()) return s;
  return doc;
}

absl::Status StoreTxn::SaveDocument(const DocumentRecord& doc) {
  return write().Put(dbs_.documents, doc.id, EncodeDocument(doc));
}

absl::Status StoreTxn::ForEachDocument(absl::string_view prefix,
                                       absl::FunctionRef<bool(const DocumentRecord&)> fn) {
  absl::Status bad;
  absl::Status s = read_->ForEachWithPrefix(dbs_.documents, prefix,
                                            [&](absl::string_view k, absl::string_view v) {
                                              absl::StatusOr<DocumentRecord> doc = ParseDocument(k, v);
                                              if (!doc.ok()) {
                                                bad = doc.status();
                                                return false;
                                              }
                                              return fn(*doc);
                                            });
  return s.ok() ? bad : s;
}

absl::StatusOr<std::string> StoreTxn::DocAuthorKey(uint32_t doc, const crdt::AuthorKey& author,
                                                   bool intern) {
  std::string key;
  AppendU32(&key, doc);
  if (intern) {
    absl::StatusOr<uint32_t> a = InternAuthor(author);
    if (!a.ok()) return a.status();
    AppendU32(&key, *a);
    return key;
  }
  absl::StatusOr<std::optional<uint32_t>> a = FindAuthor(author);
  if (!a.ok()) return a.status();
  if (!a->has_value()) return std::string();
  AppendU32(&key, **a);
  return key;
}

absl::StatusOr<crdt::RangeSet> StoreTxn::Coverage(uint32_t doc, const crdt::AuthorKey& author) {
  absl::StatusOr<std::string> key = DocAuthorKey(doc, author, false);
  if (!key.ok()) return key.status();
  if (key->empty()) return crdt::RangeSet();
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.coverage, *key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return crdt::RangeSet();
  crdt::ByteReader in(**v);
  absl::StatusOr<crdt::RangeSet> seqs = crdt::RangeSet::Decode(&in, SIZE_MAX);
  if (!seqs.ok() || !in.empty()) return Damaged("coverage");
  return seqs;
}

absl::Status StoreTxn::SetCoverage(uint32_t doc, const crdt::AuthorKey& author,
                                   const crdt::RangeSet& seqs) {
  absl::StatusOr<std::string> key = DocAuthorKey(doc, author, true);
  if (!key.ok()) return key.status();
  std::string v;
  seqs.AppendEncoded(&v);
  return write().Put(dbs_.coverage, *key, v);
}

absl::Status StoreTxn::ForEachCoverage(
    uint32_t doc, absl::FunctionRef<bool(const crdt::AuthorKey&, const crdt::RangeSet&)> fn) {
  std::vector<std::pair<uint32_t, std::string>> entries;
  absl::Status s = read_->ForEachWithPrefix(dbs_.coverage, U32Key(doc),
                                            [&](absl::string_view k, absl::string_view v) {
                                              FieldReader in(k);
                                              in.U32();
                                              entries.emplace_back(in.U32(), std::string(v));
                                              return true;
                                            });
  if (!s.ok()) return s;
  for (const auto& [num, value] : entries) {
    absl::StatusOr<crdt::AuthorKey> author = AuthorKeyOf(num);
    if (!author.ok()) return author.status();
    crdt::ByteReader in(value);
    absl::StatusOr<crdt::RangeSet> seqs = crdt::RangeSet::Decode(&in, SIZE_MAX);
    if (!seqs.ok() || !in.empty()) return Damaged("coverage");
    if (!fn(*author, *seqs)) break;
  }
  return absl::OkStatus();
}

absl::Status StoreTxn::PutLog(uint32_t doc, const crdt::AuthorKey& author, uint64_t first,
                              uint64_t last, absl::string_view batch) {
  absl::StatusOr<std::string> key = DocAuthorKey(doc, author, true);
  if (!key.ok()) return key.status();
  AppendU64(&*key, first);
  AppendU64(&*key, last);
  // Two different batches for one range (equivocation, or a compaction and
  // a cut) are both kept: the key ends with a digest of the bytes.
  key->append(Blake2b256(batch).substr(0, 8));
  return write().Put(dbs_.log, *key, batch);
}

absl::Status StoreTxn::EraseLog(const std::string& key) {
  absl::StatusOr<bool> erased = write().Del(dbs_.log, key);
  return erased.status();
}

absl::Status StoreTxn::ForEachLog(uint32_t doc, const crdt::AuthorKey& author, uint64_t first,
                                  uint64_t last, absl::FunctionRef<bool(const LogEntry&)> fn) {
  absl::StatusOr<std::string> prefix = DocAuthorKey(doc, author, false);
  if (!prefix.ok()) return prefix.status();
  if (prefix->empty()) return absl::OkStatus();
  absl::Status bad;
  absl::Status s = read_->ForEachWithPrefix(dbs_.log, *prefix, [&](absl::string_view k, absl::string_view v) {
    FieldReader in(k.substr(prefix->size()));
    LogEntry e;
    e.first = in.U64();
    e.last = in.U64();
    if (!in.ok()) {
      bad = Damaged("log key");
      return false;
    }
    if (e.first > last) return false;  // sorted by first
    if (e.last < first) return true;
    e.key = std::string(k);
    e.bytes = v;
    return fn(e);
  });
  return s.ok() ? bad : s;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StoreTxn::LegacyHeld(
    size_t count_max) {
  std::vector<std::pair<std::string, std::string>> out;
  absl::Status s = read_->ForEachWithPrefix(dbs_.held, "", [&](absl::string_view k, absl::string_view v) {
    out.emplace_back(std::string(k), std::string(v));
    return out.size() < count_max;
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status StoreTxn::EraseLegacyHeld(const std::string& key) {
  return write().Del(dbs_.held, key).status();
}

absl::StatusOr<uint32_t> StoreTxn::FormatVersion() {
  absl::StatusOr<std::optional<absl::string_view>> format = read_->Get(dbs_.meta, kMetaFormat);
  if (!format.ok()) return format.status();
  if (!format->has_value()) return Damaged("format version missing");
  FieldReader in(**format);
  const uint32_t version = in.U32();
  if (!in.done()) return Damaged("format version");
  return version;
}

absl::Status StoreTxn::SetFormatVersion(uint32_t version) {
  return write().Put(dbs_.meta, kMetaFormat, U32Key(version));
}

std::string StoreTxn::WaitingKey(const crdt::AuthorKey& author, absl::string_view document,
                                 uint64_t first, absl::string_view batch) {
  std::string key(author.view());
  AppendU8(&key, static_cast<uint8_t>(document.size()));
  key.append(document.data(), document.size());
  AppendU64(&key, first);
  key.append(Blake2b256(batch).substr(0, 8));
  return key;
}

absl::Status StoreTxn::PutWaiting(const crdt::AuthorKey& author, absl::string_view document,
                                  uint64_t first, uint64_t since_ms, absl::string_view batch) {
  const std::string key = WaitingKey(author, document, first, batch);
  std::string value;
  AppendU64(&value, since_ms);
  value.append(batch.data(), batch.size());
  return write().Put(dbs_.waiting, key, value);
}

absl::StatusOr<uint64_t> StoreTxn::CountWaiting() { return read_->CountEntries(dbs_.waiting); }

namespace {

// Parses a `waiting` entry; false if it is damaged.
bool ParseWaiting(absl::string_view k, absl::string_view v, WaitingEntry* e) {
  if (k.size() < crdt::kAuthorKeyBytes + 1 + 8 + 8 || v.size() < 8) return false;
  absl::StatusOr<crdt::AuthorKey> author = crdt::AuthorKey::FromBytes(k.substr(0, crdt::kAuthorKeyBytes));
  if (!author.ok()) return false;
  e->key = std::string(k);
  e->author = *author;
  FieldReader in(k.substr(crdt::kAuthorKeyBytes));
  e->document = std::string(in.Bytes(in.U8()));
  in.U64();
  in.Bytes(8);
  FieldReader value(v.substr(0, 8));
  e->since_ms = value.U64();
  e->bytes = v.substr(8);
  return in.done() && value.ok();
}

}  // namespace

absl::StatusOr<std::pair<uint64_t, uint64_t>> StoreTxn::WaitingOf(const crdt::AuthorKey& author) {
  std::pair<uint64_t, uint64_t> out{0, 0};
  absl::Status s = read_->ForEachWithPrefix(dbs_.waiting, author.view(),
                                            [&](absl::string_view, absl::string_view v) {
                                              ++out.first;
                                              out.second += v.size();
                                              return true;
                                            });
  if (!s.ok()) return s;
  return out;
}

absl::Status StoreTxn::ForEachWaiting(absl::FunctionRef<bool(const WaitingEntry&)> fn) {
  bool bad = false;
  absl::Status s = read_->ForEachWithPrefix(dbs_.waiting, "", [&](absl::string_view k, absl::string_view v) {
    WaitingEntry e;
    if (!ParseWaiting(k, v, &e)) {
      bad = true;
      return false;
    }
    return fn(e);
  });
  if (!s.ok()) return s;
  return bad ? Damaged("waiting batch") : absl::OkStatus();
}

absl::Status StoreTxn::EraseWaiting(const std::string& key) {
  return write().Del(dbs_.waiting, key).status();
}

absl::Status StoreTxn::PutInertClaim(const crdt::AuthorKey& claimed, uint32_t doc) {
  std::string key(claimed.view());
  AppendU32(&key, doc);
  return write().Put(dbs_.inert_claims, key, "");
}

absl::StatusOr<std::vector<uint32_t>> StoreTxn::InertClaimDocuments(const crdt::AuthorKey& claimed) {
  std::vector<uint32_t> docs;
  bool bad = false;
  absl::Status s = read_->ForEachWithPrefix(dbs_.inert_claims, claimed.view(),
                                            [&](absl::string_view k, absl::string_view) {
                                              FieldReader in(k.substr(crdt::kAuthorKeyBytes));
                                              docs.push_back(in.U32());
                                              bad = !in.done();
                                              return !bad;
                                            });
  if (!s.ok()) return s;
  if (bad) return Damaged("inert claim");
  return docs;
}

absl::Status StoreTxn::EraseInertClaim(const crdt::AuthorKey& claimed, uint32_t doc) {
  std::string key(claimed.view());
  AppendU32(&key, doc);
  return write().Del(dbs_.inert_claims, key).status();
}

absl::StatusOr<std::optional<DocumentRecord>> StoreTxn::FindDocumentByNum(uint32_t num) {
  absl::StatusOr<std::optional<absl::string_view>> id = read_->Get(dbs_.document_ids, U32Key(num));
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::optional<DocumentRecord>();
  return FindDocument(std::string(**id));
}

namespace {

// `equivocations` value: u64 seq ‖ u32 length of the first batch ‖ first
// batch ‖ second batch. Format 1 keyed records by (doc, author, dot) with an
// empty value; they are told apart by their key length.
constexpr size_t kProofKeyBytes = 8;

std::string EncodeProof(const EquivocationProof& proof) {
  std::string v;
  AppendU64(&v, proof.seq);
  AppendU32(&v, static_cast<uint32_t>(proof.first_batch.size()));
  v += proof.first_batch;
  v += proof.second_batch;
  return v;
}

absl::StatusOr<EquivocationProof> DecodeProof(absl::string_view v) {
  FieldReader in(v);
  EquivocationProof proof;
  proof.seq = in.U64();
  proof.first_batch = std::string(in.Bytes(in.U32()));
  proof.second_batch = std::string(in.Rest());
  if (!in.ok() || proof.second_batch.empty()) return Damaged("equivocation proof");
  return proof;
}

}  // namespace

absl::Status StoreTxn::PutEquivocationProof(uint32_t doc, const crdt::AuthorKey& author,
                                            const EquivocationProof& proof) {
  absl::StatusOr<std::string> key = DocAuthorKey(doc, author, true);
  if (!key.ok()) return key.status();
  return write().Put(dbs_.equivocations, *key, EncodeProof(proof));
}

absl::StatusOr<std::optional<EquivocationProof>> StoreTxn::GetEquivocationProof(
    uint32_t doc, const crdt::AuthorKey& author) {
  absl::StatusOr<std::string> key = DocAuthorKey(doc, author, false);
  if (!key.ok()) return key.status();
  if (key->empty()) return std::optional<EquivocationProof>();
  absl::StatusOr<std::optional<absl::string_view>> v = read_->Get(dbs_.equivocations, *key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<EquivocationProof>();
  absl::StatusOr<EquivocationProof> proof = DecodeProof(**v);
  if (!proof.ok()) return proof.status();
  return std::optional<EquivocationProof>(*std::move(proof));
}

absl::StatusOr<std::vector<std::pair<crdt::AuthorKey, EquivocationProof>>>
StoreTxn::EquivocationProofs(uint32_t doc) {
  std::vector<std::pair<uint32_t, EquivocationProof>> raws;
  absl::Status bad;
  absl::Status s = read_->ForEachWithPrefix(
      dbs_.equivocations, U32Key(doc), [&](absl::string_view k, absl::string_view v) {
        if (k.size() != kProofKeyBytes) return true;
        absl::StatusOr<EquivocationProof> proof = DecodeProof(v);
        if (!proof.ok()) {
          bad = proof.status();
          return false;
        }
        FieldReader in(k.substr(4));
        raws.emplace_back(in.U32(), *std::move(proof));
        return true;
      });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  std::vector<std::pair<crdt::AuthorKey, EquivocationProof>> out;
  for (auto& [num, proof] : raws) {
    absl::StatusOr<crdt::AuthorKey> author = AuthorKeyOf(num);
    if (!author.ok()) return author.status();
    out.emplace_back(*author, std::move(proof));
  }
  return out;
}

absl::StatusOr<uint64_t> StoreTxn::CountEquivocations(uint32_t doc) {
  uint64_t n = 0;
  absl::Status s = read_->ForEachWithPrefix(dbs_.equivocations, U32Key(doc),
                                            [&](absl::string_view k, absl::string_view) {
                                              if (k.size() == kProofKeyBytes) ++n;
                                              return true;
                                            });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<std::vector<std::tuple<uint32_t, crdt::AuthorKey, uint64_t>>>
StoreTxn::LegacyEquivocations() {
  std::vector<std::tuple<uint32_t, uint32_t, uint64_t>> raws;
  absl::Status s = read_->ForEachWithPrefix(dbs_.equivocations, "",
                                            [&](absl::string_view k, absl::string_view) {
                                              if (k.size() == kProofKeyBytes) return true;
                                              FieldReader in(k);
                                              const uint32_t doc = in.U32();
                                              const uint32_t author = in.U32();
                                              raws.emplace_back(doc, author, in.U64());
                                              return true;
                                            });
  if (!s.ok()) return s;
  std::vector<std::tuple<uint32_t, crdt::AuthorKey, uint64_t>> out;
  for (const auto& [doc, num, n] : raws) {
    absl::StatusOr<crdt::AuthorKey> author = AuthorKeyOf(num);
    if (!author.ok()) return author.status();
    out.emplace_back(doc, *author, n);
  }
  return out;
}

absl::Status StoreTxn::EraseLegacyEquivocations() {
  std::vector<std::string> keys;
  absl::Status s = read_->ForEachWithPrefix(dbs_.equivocations, "",
                                            [&](absl::string_view k, absl::string_view) {
                                              if (k.size() != kProofKeyBytes) keys.emplace_back(k);
                                              return true;
                                            });
  if (!s.ok()) return s;
  for (const std::string& k : keys) {
    if (absl::StatusOr<bool> d = write().Del(dbs_.equivocations, k); !d.ok()) return d.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> StoreTxn::GetLog(absl::string_view key) {
  return GetCopy(dbs_.log, key);
}

absl::StatusOr<uint64_t> StoreTxn::LastChangeSeq() {
  absl::StatusOr<Cursor> c = read_->OpenCursor(dbs_.changes);
  if (!c.ok()) return c.status();
  absl::StatusOr<bool> found = c->Last();
  if (!found.ok()) return found.status();
  if (!*found) return uint64_t{0};
  FieldReader in(c->key());
  const uint64_t seq = in.U64();
  if (!in.done()) return Damaged("change key");
  return seq;
}

absl::Status StoreTxn::AppendChange(ChangeRecord change) {
  absl::StatusOr<uint64_t> last = LastChangeSeq();
  if (!last.ok()) return last.status();
  change.seq = *last + 1;
  std::string value;
  crdt::AppendLengthPrefixed(&value, change.document);
  value.push_back(static_cast<char>((change.remote ? 1 : 0) |
                                    (change.paths_truncated || change.paths.size() > kChangePathsKept ? 2 : 0)));
  value.append(change.author.view().data(), crdt::kAuthorKeyBytes);
  const size_t kept = std::min(change.paths.size(), kChangePathsKept);
  crdt::AppendVarint(&value, kept);
  for (size_t i = 0; i < kept; ++i) crdt::AppendLengthPrefixed(&value, change.paths[i]);
  if (absl::Status s = write().Put(dbs_.changes, U64Value(change.seq), value, MDB_APPEND); !s.ok()) {
    return s;
  }
  if (change.seq > kChangesKept) {
    absl::StatusOr<bool> erased = write().Del(dbs_.changes, U64Value(change.seq - kChangesKept));
    if (!erased.ok()) return erased.status();
  }
  return absl::OkStatus();
}

absl::Status StoreTxn::ForEachChangeAfter(uint64_t seq,
                                          absl::FunctionRef<bool(const ChangeRecord&)> fn) {
  absl::Status bad;
  absl::Status s = read_->ForEachInRange(
      dbs_.changes, U64Value(seq + 1), "", [&](absl::string_view k, absl::string_view v) {
        ChangeRecord c;
        FieldReader key(k);
        c.seq = key.U64();
        crdt::ByteReader in(v);
        absl::StatusOr<absl::string_view> doc = in.LengthPrefixed(crdt::kDocumentIdBytesMax, "doc");
        absl::StatusOr<uint8_t> flags = in.Byte("flags");
        absl::StatusOr<absl::string_view> author = in.Bytes(crdt::kAuthorKeyBytes, "author");
        absl::StatusOr<uint64_t> count = in.Varint("paths");
        if (!key.done() || !doc.ok() || !flags.ok() || !author.ok() || !count.ok() ||
            *count > kChangePathsKept) {
          bad = Damaged("change record");
          return false;
        }
        c.document = std::string(*doc);
        c.remote = (*flags & 1) != 0;
        c.paths_truncated = (*flags & 2) != 0;
        c.author = *crdt::AuthorKey::FromBytes(*author);
        for (uint64_t i = 0; i < *count; ++i) {
          absl::StatusOr<absl::string_view> p = in.LengthPrefixed(1u << 20, "path");
          if (!p.ok()) {
            bad = Damaged("change record path");
            return false;
          }
          c.paths.emplace_back(*p);
        }
        return fn(c);
      });
  return s.ok() ? bad : s;
}

}  // namespace edgesync::internal
