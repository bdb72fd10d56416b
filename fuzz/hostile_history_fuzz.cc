// File: fuzz/hostile_history_fuzz.cc
//
// Structure-aware fuzzing of the replica's claim rules (lib/replica/claims.h)
// against a hostile trusted author. From the input bytes it derives a history
// of 3 to 5 authors writing to one document: puts, deletes, counter adds and
// set adds/removes on the top-level paths /p0../p7, one transaction per batch
// or a crdt::Compact of a run of the author's own batches. Before writing, an
// author may join a prefix of another author's batches, so contexts name
// other authors' dots. Honest authors join only honest batches. One author is
// malicious: its batches start from real transactions (it joins honest
// batches too) but may carry arbitrary extra claims (on any author, on its
// own seqs, on both replicas' keys; near, just past the kClaimAheadMax
// window, far ahead, up to crdt::kDotMax = 2^62), odd seq ranges, any HLC
// (far future too) and equivocations (a second, different batch for seqs it
// already used).
//
// Every batch is delivered to two fresh replicas on tmpfs, each trusting
// every author and the other replica, in two input-chosen orders with
// duplicates, one batch per ApplyBatches call, on a clock that never moves
// (so nothing expires). Then, aborting on any violation:
//
// P3a (same batches, same state: rule 0). If both replicas hold the same
//   logged batches and equivocation proofs, their version vectors and
//   Document::Digest() values are equal. (Which batches end up held may
//   depend on order: the kClaimAheadMax verdict depends on what the replica
//   held when the batch arrived, and a batch covered by a compaction that a
//   proof later takes out was never stored.)
// P3b (after re-sending). Every batch is re-sent to both replicas in one
//   order until neither replica's version vector nor waiting count changes
//   (a rejected batch is accepted again once covered; at most 6 rounds).
//   Then both replicas hold the same batches: equal waiting counts, equal
//   version vectors, equal digests.
// P2 (honest writes the claims cannot reach). A path that exactly one
//   operation of the whole history touched, a put of an integer by an honest
//   author H, reads that integer on both replicas (after the first delivery
//   and after re-sending), unless some batch not authored by H claims (has
//   in its context) a dot of the row that put wrote. Claims on other dots,
//   far-ahead claims, equivocations, odd seq ranges and future HLCs of the
//   malicious author must not hide it.
// P1 (commits never fail). Each replica then commits a local transaction
//   (a put and a set add) on the document: OK, with a batch (seq_first > 0).
//
// A failing input is kept by libFuzzer; reproduce with
//   BUILD_DIR/fuzz/hostile_history_fuzz CRASH_FILE

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crdt/compaction.h"
#include "crdt/compact_codec.h"
#include "crdt/delta.h"
#include "crdt/hlc.h"
#include "crdt/join.h"
#include "crdt/memory_store.h"
#include "crdt/path.h"
#include "crdt/size_limits.h"
#include "crdt/transaction_builder.h"
#include "crdt/tree.h"
#include "crdt/value.h"
#include "edgesync/replica.h"
#include "lib/replica/claims.h"
#include "lib/replica/replica_core.h"
#include "lib/store/element_hash.h"
#include "lib/store/replica_store.h"
#include "transport/batch.h"
#include "transport/signing_key.h"

namespace edgesync {
namespace {

constexpr char kDoc[] = "doc";
constexpr int kPaths = 8;
constexpr int kStepsMax = 24;
constexpr uint64_t kNowMs = 1'800'000'000'000;  // the replicas' clock; never moves

// The scratch directory of this process (removed at exit and on a violation).
std::string* g_scratch = nullptr;

[[noreturn]] void Violation(const std::string& what) {
  std::fprintf(stderr, "hostile_history_fuzz: property violated: %s\n", what.c_str());
  std::fflush(stderr);
  if (g_scratch != nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(*g_scratch, ignored);
  }
  std::abort();
}

// Counts of what the properties checked, printed at exit when
// HOSTILE_HISTORY_STATS is set (to see that they are exercised).
struct Checked {
  uint64_t inputs = 0;
  uint64_t p3a = 0;
  uint64_t p3b_resent = 0;
  uint64_t p2_paths = 0;
  uint64_t p2_claimed = 0;
  uint64_t waiting_left = 0;
} g_checked;

// The input as a stream of choices; zeros once exhausted.
class Choices {
 public:
  Choices(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | U8();
    return v;
  }
  // A number in [0, n). REQUIRES: n > 0.
  size_t Below(size_t n) { return n <= 256 ? U8() % n : static_cast<size_t>(U64() % n); }

 private:
  const uint8_t* data_;
  size_t size_;
};

class FixedClock : public WallClock {
 public:
  uint64_t NowMillis() override { return kNowMs; }
};

// A key pair from a fixed seed, so every run of an input signs the same bytes.
transport::SigningKey KeyFromSeed(uint8_t seed_byte) {
  std::array<unsigned char, crypto_sign_SEEDBYTES> seed{};
  seed.fill(seed_byte);
  std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
  if (crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data()) != 0) std::abort();
  absl::StatusOr<transport::SigningKey> key = transport::SigningKey::FromSecretKey(
      absl::string_view(reinterpret_cast<const char*>(sk.data()), sk.size()));
  if (!key.ok()) std::abort();
  return *std::move(key);
}

struct Sent {
  std::string bytes;
  crdt::Delta delta;  // as sealed (context included)
  int author = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t hlc = 0;
};

struct Author {
  explicit Author(transport::SigningKey k)
      : key(std::move(k)), state(internal::Blake2bElementHash) {}
  transport::SigningKey key;
  crdt::MemoryStore state;
  uint64_t next_dot = 1;
  std::vector<Sent> own;       // honest: its live batches, in seq order (compaction sources)
  std::vector<size_t> joined;  // per author: how many of its sent batches were joined
};

// One operation of the history on a path.
struct Touch {
  int author = 0;
  bool put = false;
  int64_t value = 0;
  std::vector<crdt::Dot> dots;  // put: the dots of the rows it wrote at the path
};

crdt::Path PathOf(int i) { return crdt::Path::Parse(absl::StrCat("/p", i)).value(); }

// The environment shared by all inputs: keys and a scratch directory.
struct Env {
  Env() {
    if (!transport::InitSodium().ok()) std::abort();
    for (int i = 0; i < 5; ++i) authors.push_back(KeyFromSeed(static_cast<uint8_t>(i + 1)));
    for (int i = 0; i < 2; ++i) replicas.push_back(KeyFromSeed(static_cast<uint8_t>(i + 101)));
    struct stat st;
    std::string base;
    if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";
    } else {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string tmpl = base + "/edgesync-hostile-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir = tmpl;
    g_scratch = &dir;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(Get().dir, ignored);
      if (std::getenv("HOSTILE_HISTORY_STATS") != nullptr) {
        std::fprintf(stderr,
                     "hostile_history_fuzz: %llu histories; P3a checked %llu, re-sent %llu, "
                     "waiting left %llu; P2 paths checked %llu, skipped as claimed %llu\n",
                     static_cast<unsigned long long>(g_checked.inputs),
                     static_cast<unsigned long long>(g_checked.p3a),
                     static_cast<unsigned long long>(g_checked.p3b_resent),
                     static_cast<unsigned long long>(g_checked.waiting_left),
                     static_cast<unsigned long long>(g_checked.p2_paths),
                     static_cast<unsigned long long>(g_checked.p2_claimed));
      }
    });
  }
  static Env& Get() {
    static Env* env = new Env();
    return *env;
  }
  std::vector<transport::SigningKey> authors;
  std::vector<transport::SigningKey> replicas;
  std::string dir;
};

// A fresh replica in `dir` whose identity is `key` (planted before Open).
std::unique_ptr<Replica> OpenReplica(const std::string& dir, const transport::SigningKey& key,
                                     WallClock* clock) {
  if (::mkdir(dir.c_str(), 0700) != 0) Violation(absl::StrCat("mkdir ", dir));
  const std::string hex = absl::StrCat(absl::BytesToHexString(key.secret_bytes()), "\n");
  const std::string file = dir + "/identity.key";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, hex.data(), hex.size()) != static_cast<ssize_t>(hex.size())) {
    Violation("cannot write identity file");
  }
  ::close(fd);
  ReplicaOptions options;
  options.clock = clock;
  options.durability = Durability::kFast;
  options.map_bytes_initial = uint64_t{4} << 20;
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, options);
  if (!r.ok()) Violation(absl::StrCat("Replica::Open: ", r.status().ToString()));
  if ((*r)->public_key_hex() != key.public_key().Hex()) Violation("planted identity not used");
  return *std::move(r);
}

uint64_t Waiting(Replica& r) {
  uint64_t n = 0;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint64_t> c = txn.CountWaiting();
    if (!c.ok()) return c.status();
    n = *c;
    return absl::OkStatus();
  });
  if (!s.ok()) Violation(absl::StrCat("CountWaiting: ", s.ToString()));
  return n;
}

// What rule 0 says the state is a function of (with the accepted authors,
// here the same on both replicas): the logged batches and the equivocation
// proofs, as bytes, sorted.
std::vector<std::string> HeldBatches(Replica& r) {
  std::vector<std::string> held;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    held.clear();
    for (internal::Dbi db : {txn.dbs().log, txn.dbs().equivocations}) {
      absl::Status es = txn.read().ForEachWithPrefix(db, "", [&](absl::string_view, absl::string_view v) {
        held.emplace_back(v);
        return true;
      });
      if (!es.ok()) return es;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) Violation(absl::StrCat("reading the log: ", s.ToString()));
  std::sort(held.begin(), held.end());
  return held;
}

std::string Digest(Replica& r) {
  absl::StatusOr<std::string> d = r.document(kDoc).Digest();
  if (!d.ok()) Violation(absl::StrCat("Digest: ", d.status().ToString()));
  return *d;
}

VersionVectors Vectors(Replica& r) {
  absl::StatusOr<VersionVectors> v = r.GetVersionVectors();
  if (!v.ok()) Violation(absl::StrCat("GetVersionVectors: ", v.status().ToString()));
  return *v;
}

class History {
 public:
  explicit History(Choices* in) : in_(in) {}

  // Builds the history; false if the input makes no usable one.
  bool Build() {
    Env& env = Env::Get();
    const int n = 3 + static_cast<int>(in_->Below(3));
    malicious_ = static_cast<int>(in_->Below(static_cast<size_t>(n)));
    for (int i = 0; i < n; ++i) {
      authors_.emplace_back(env.authors[static_cast<size_t>(i)]);
      authors_.back().joined.assign(static_cast<size_t>(n), 0);
    }
    sent_by_.assign(static_cast<size_t>(n), {});
    const int steps = 4 + static_cast<int>(in_->Below(kStepsMax - 3));
    for (int step = 0; step < steps; ++step) {
      const int a = static_cast<int>(in_->Below(static_cast<size_t>(n)));
      JoinSome(a);
      const uint64_t hlc = crdt::HlcFromMillis(kNowMs - 100000 + static_cast<uint64_t>(step) * 10);
      bool ok;
      if (a == malicious_) {
        ok = MaliciousBatch(a, hlc);
      } else if (authors_[static_cast<size_t>(a)].own.size() >= 2 && in_->U8() % 4 == 0) {
        ok = CompactRun(a);
      } else {
        ok = HonestBatch(a, hlc);
      }
      if (!ok) return false;
    }
    return !all_.empty();
  }

  const std::vector<Sent>& all() const { return all_; }
  const std::map<int, std::vector<Touch>>& touches() const { return touches_; }
  int malicious() const { return malicious_; }
  const crdt::AuthorKey& KeyOf(int a) const {
    return authors_[static_cast<size_t>(a)].key.public_key();
  }

 private:
  // Joins a further prefix of some other author's batches (honest authors:
  // only honest ones).
  void JoinSome(int a) {
    Author& me = authors_[static_cast<size_t>(a)];
    const int rounds = in_->U8() % 3;
    for (int r = 0; r < rounds; ++r) {
      const int b = static_cast<int>(in_->Below(authors_.size()));
      if (b == a || (a != malicious_ && b == malicious_)) continue;
      const std::vector<size_t>& theirs = sent_by_[static_cast<size_t>(b)];
      size_t& done = me.joined[static_cast<size_t>(b)];
      if (done >= theirs.size()) continue;
      const size_t upto = done + 1 + in_->Below(theirs.size() - done);
      for (; done < upto; ++done) {
        if (!crdt::Join(&me.state, all_[theirs[done]].delta).ok()) Violation("author join failed");
      }
    }
  }

  // Runs 0-3 random operations; records what each touched.
  absl::Status Ops(int a, crdt::TransactionBuilder& txn, int count,
                   std::vector<std::pair<int, Touch>>* touched) {
    for (int i = 0; i < count; ++i) {
      const int kind = in_->U8() % 5;
      const int p = in_->U8() % kPaths;
      const int64_t v = static_cast<int8_t>(in_->U8());
      const crdt::Path path = PathOf(p);
      absl::Status s;
      Touch t;
      t.author = a;
      switch (kind) {
        case 0:
          s = txn.Put(path, crdt::Tree::Scalar(crdt::Value::Int(v)));
          t.put = true;
          t.value = v;
          break;
        case 1:
          s = txn.Delete(path);
          break;
        case 2:
          s = txn.CounterAdd(path, v);
          break;
        case 3:
          s = txn.SetAdd(path, crdt::Value::Int(v % 4));
          break;
        default:
          s = txn.SetRemove(path, crdt::Value::Int(v % 4));
          break;
      }
      if (!s.ok()) return s;
      touched->emplace_back(p, t);
    }
    return absl::OkStatus();
  }

  // The dots of `author`'s rows at `path` in `state` within [first, last].
  static std::vector<crdt::Dot> DotsAt(crdt::MemoryStore& state, int path,
                                       const crdt::AuthorKey& author, uint64_t first,
                                       uint64_t last) {
    std::vector<crdt::Dot> dots;
    absl::Status s = state.ForEachRowAt(PathOf(path), [&](const crdt::RowKey& k,
                                                          const crdt::RowValue&) {
      if (k.dot.author == author && k.dot.n >= first && k.dot.n <= last) dots.push_back(k.dot);
      return true;
    });
    if (!s.ok()) Violation("ForEachRowAt failed");
    return dots;
  }

  void Record(int a, std::vector<std::pair<int, Touch>>& touched, crdt::MemoryStore& state,
              uint64_t first, uint64_t last) {
    // Only the last put to a path in a transaction survives in it.
    for (size_t i = 0; i < touched.size(); ++i) {
      auto& [p, t] = touched[i];
      if (t.put) t.dots = DotsAt(state, p, KeyOf(a), first, last);
      touches_[p].push_back(t);
    }
  }

  size_t Push(Sent s) {
    all_.push_back(std::move(s));
    const size_t at = all_.size() - 1;
    sent_by_[static_cast<size_t>(all_[at].author)].push_back(at);
    return at;
  }

  bool HonestBatch(int a, uint64_t hlc) {
    Author& me = authors_[static_cast<size_t>(a)];
    crdt::TransactionBuilder txn(&me.state, me.key.public_key(), me.next_dot, hlc);
    std::vector<std::pair<int, Touch>> touched;
    if (!Ops(a, txn, 1 + in_->U8() % 3, &touched).ok()) return false;
    absl::StatusOr<crdt::Delta> delta = txn.Finish();
    if (!delta.ok()) return false;
    const uint64_t first = me.next_dot;
    const uint64_t last = me.next_dot + txn.dots_used() - 1;
    Record(a, touched, me.state, first, last);
    me.next_dot += txn.dots_used();
    if (delta->empty()) return true;
    transport::BatchHeader h{kDoc, me.key.public_key(), first, last, hlc};
    absl::StatusOr<std::string> bytes = transport::SealBatch(h, crdt::EncodeCompact(*delta), me.key);
    if (!bytes.ok()) Violation(absl::StrCat("honest SealBatch: ", bytes.status().ToString()));
    Sent s{*std::move(bytes), *std::move(delta), a, first, last, hlc};
    me.own.push_back(s);
    Push(std::move(s));
    return true;
  }

  // Replaces a run of the author's own batches with one compacted batch
  // (the originals were sent too: both get delivered).
  bool CompactRun(int a) {
    Author& me = authors_[static_cast<size_t>(a)];
    const size_t i = in_->Below(me.own.size() - 1);
    const size_t j = i + 1 + in_->Below(me.own.size() - i - 1);
    std::vector<const crdt::Delta*> sources;
    uint64_t hlc = 0;
    for (size_t k = i; k <= j; ++k) {
      sources.push_back(&me.own[k].delta);
      hlc = std::max(hlc, me.own[k].hlc);
    }
    const uint64_t first = me.own[i].first;
    const uint64_t last = me.own[j].last;
    absl::StatusOr<crdt::Delta> compacted =
        crdt::Compact(&me.state, me.key.public_key(), first, last, sources);
    if (!compacted.ok()) Violation(absl::StrCat("crdt::Compact: ", compacted.status().ToString()));
    transport::BatchHeader h{kDoc, me.key.public_key(), first, last, hlc};
    h.compacted = true;
    absl::StatusOr<std::string> bytes =
        transport::SealBatch(h, crdt::EncodeCompact(*compacted), me.key);
    if (!bytes.ok()) Violation(absl::StrCat("compacted SealBatch: ", bytes.status().ToString()));
    Sent s{*std::move(bytes), *std::move(compacted), a, first, last, hlc};
    me.own.erase(me.own.begin() + static_cast<std::ptrdiff_t>(i),
                 me.own.begin() + static_cast<std::ptrdiff_t>(j) + 1);
    me.own.insert(me.own.begin() + static_cast<std::ptrdiff_t>(i), s);
    Push(std::move(s));
    return true;
  }

  // A seq range of `target` for a claim.
  std::pair<uint64_t, uint64_t> ClaimRange(const crdt::AuthorKey& target, int target_index) {
    uint64_t lo = 1;
    uint64_t hi = 1;
    switch (in_->U8() % 7) {
      case 0:  // near
        lo = 1 + in_->U8() % 8;
        hi = lo + in_->U8() % 8;
        break;
      case 1:  // at the edge of the window
        lo = internal::kClaimAheadMax - 8 + in_->U8() % 24;
        hi = lo + in_->U8() % 4;
        break;
      case 2:  // everything
        lo = 1;
        hi = crdt::kDotMax;
        break;
      case 3:  // far ahead
        lo = 1 + in_->U64() % crdt::kDotMax;
        hi = lo + in_->U8();
        break;
      case 4: {  // exactly a batch the target sent (a legitimate-looking claim)
        const std::vector<size_t>* theirs =
            target_index >= 0 ? &sent_by_[static_cast<size_t>(target_index)] : nullptr;
        if (theirs != nullptr && !theirs->empty()) {
          const Sent& s = all_[(*theirs)[in_->Below(theirs->size())]];
          lo = s.first;
          hi = s.last;
        }
        break;
      }
      case 5: {  // just past what the target wrote
        const uint64_t next =
            target_index >= 0 ? authors_[static_cast<size_t>(target_index)].next_dot : 1;
        lo = next + in_->U8() % 4;
        hi = lo + in_->U8() % 4;
        break;
      }
      default:  // a single dot
        lo = hi = 1 + in_->U8() % 64;
        break;
    }
    (void)target;
    hi = std::min(std::max(lo, hi), crdt::kDotMax);
    lo = std::min(lo, hi);
    return {lo, hi};
  }

  bool MaliciousBatch(int a, uint64_t honest_hlc) {
    Author& me = authors_[static_cast<size_t>(a)];
    const uint8_t mode = in_->U8();
    // Equivocation: a different batch for seqs already used, built on a copy.
    const bool equivocate = (mode & 1) != 0 && me.next_dot > 1;
    const uint64_t first_dot = equivocate ? 1 + in_->Below(me.next_dot - 1) : me.next_dot;
    if (first_dot > crdt::kDotMax - 64) return true;  // its seqs are used up
    crdt::MemoryStore scratch = me.state;
    crdt::MemoryStore& state = equivocate ? scratch : me.state;
    crdt::TransactionBuilder txn(&state, me.key.public_key(), first_dot, honest_hlc);
    std::vector<std::pair<int, Touch>> touched;
    if (!Ops(a, txn, in_->U8() % 4, &touched).ok()) return false;
    absl::StatusOr<crdt::Delta> delta = txn.Finish();
    if (!delta.ok()) return false;
    const uint64_t used = std::max<uint64_t>(1, txn.dots_used());
    uint64_t first = first_dot;
    uint64_t last = first_dot + used - 1;
    for (auto& [p, t] : touched) touches_[p].push_back(t);  // malicious: no dots needed
    if (!equivocate) me.next_dot = std::max(me.next_dot, last + 1);
    // Odd seq ranges (still holding every row: the rest is malformed anyway).
    switch ((mode >> 1) & 3) {
      case 1:
        last += in_->U8();
        break;
      case 2:
        first = std::max<uint64_t>(1, first - std::min<uint64_t>(first - 1, in_->U8() % 8));
        break;
      case 3:
        last = std::max(first, crdt::kDotMax - in_->U8() % 2);
        break;
      default:
        break;
    }
    if ((mode & 0x80) == 0 || in_->U8() % 8 != 0) delta->context.Insert(me.key.public_key(), first, last);
    if (!equivocate) me.next_dot = std::max(me.next_dot, std::min(last, crdt::kDotMax - 1) + 1);
    // Extra claims on anyone: the authors, itself, the replicas.
    const int claims = in_->U8() % 4;
    Env& env = Env::Get();
    for (int c = 0; c < claims; ++c) {
      const size_t t = in_->Below(authors_.size() + 2);
      const int target_index = t < authors_.size() ? static_cast<int>(t) : -1;
      const crdt::AuthorKey target =
          t < authors_.size() ? KeyOf(static_cast<int>(t)) : env.replicas[t - authors_.size()].public_key();
      const auto [lo, hi] = ClaimRange(target, target_index);
      delta->context.Insert(target, lo, hi);
    }
    uint64_t hlc = honest_hlc;
    switch ((mode >> 3) & 3) {
      case 1:  // far future
        hlc = crdt::HlcFromMillis(kNowMs + 1 + in_->U64() % (uint64_t{1} << 40));
        break;
      case 2:  // anything
        hlc = in_->U64();
        break;
      case 3:  // the past
        hlc = in_->U64() % honest_hlc;
        break;
      default:
        break;
    }
    if (delta->empty()) delta->context.Insert(me.key.public_key(), first, last);
    transport::BatchHeader h{kDoc, me.key.public_key(), first, last, hlc};
    h.compacted = (mode & 0x20) != 0;
    absl::StatusOr<std::string> bytes = transport::SealBatch(h, crdt::EncodeCompact(*delta), me.key);
    if (!bytes.ok()) return true;  // SealBatch refuses it: nothing to send
    Push(Sent{*std::move(bytes), *std::move(delta), a, first, last, hlc});
    return true;
  }

  Choices* in_;
  int malicious_ = 0;
  std::vector<Author> authors_;
  std::vector<Sent> all_;
  std::vector<std::vector<size_t>> sent_by_;  // per author: indexes into all_
  std::map<int, std::vector<Touch>> touches_;
};

// An order of all batches with a few duplicates.
std::vector<size_t> DeliveryOrder(Choices* in, size_t count) {
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  for (size_t i = count; i > 1; --i) std::swap(order[i - 1], order[in->Below(i)]);
  const int dups = in->U8() % 6;
  for (int d = 0; d < dups; ++d) {
    const size_t what = in->Below(count);
    const size_t where = in->Below(order.size() + 1);
    order.insert(order.begin() + static_cast<std::ptrdiff_t>(where), what);
  }
  return order;
}

// P2 on one replica.
void CheckHonestPaths(const History& h, Replica& r, const char* when) {
  for (const auto& [p, list] : h.touches()) {
    if (list.size() != 1 || !list[0].put || list[0].author == h.malicious()) continue;
    const Touch& t = list[0];
    if (t.dots.empty()) Violation("honest put wrote no row");
    bool claimed = false;
    for (const Sent& s : h.all()) {
      if (s.author == t.author) continue;
      for (const crdt::Dot& d : t.dots) {
        if (s.delta.context.Of(d.author).Contains(d.n)) claimed = true;
      }
    }
    if (claimed) {
      ++g_checked.p2_claimed;
      continue;
    }
    ++g_checked.p2_paths;
    absl::StatusOr<std::string> got = r.document(kDoc).Get(absl::StrCat("/p", p));
    const std::string want = absl::StrCat(t.value);
    if (!got.ok() || *got != want) {
      Violation(absl::StrCat("P2 (", when, "): /p", p, " written only by honest author ", t.author,
                             " (", want, ", dot ", t.dots[0].n, ") reads ",
                             got.ok() ? *got : got.status().ToString()));
    }
  }
}

void Run(const uint8_t* data, size_t size) {
  Env& env = Env::Get();
  Choices in(data, size);
  History history(&in);
  if (!history.Build()) return;
  ++g_checked.inputs;
  const std::vector<Sent>& all = history.all();
  std::vector<std::vector<size_t>> orders;
  orders.push_back(DeliveryOrder(&in, all.size()));
  orders.push_back(DeliveryOrder(&in, all.size()));

  static uint64_t run = 0;
  const std::string root = absl::StrCat(env.dir, "/", ++run);
  if (::mkdir(root.c_str(), 0700) != 0) Violation("mkdir");
  FixedClock clock;
  {
    std::unique_ptr<Replica> replicas[2] = {
        OpenReplica(root + "/r0", env.replicas[0], &clock),
        OpenReplica(root + "/r1", env.replicas[1], &clock)};
    for (auto& r : replicas) {
      for (const transport::SigningKey& k : env.authors) {
        if (!r->Trust(k.public_key().Hex()).ok()) Violation("Trust");
      }
      for (const transport::SigningKey& k : env.replicas) {
        if (!r->Trust(k.public_key().Hex()).ok()) Violation("Trust");
      }
    }
    for (int i = 0; i < 2; ++i) {
      for (size_t b : orders[static_cast<size_t>(i)]) {
        (void)replicas[i]->ApplyBatches({all[b].bytes});
      }
    }
    Replica& r0 = *replicas[0];
    Replica& r1 = *replicas[1];
    // P3a.
    if (HeldBatches(r0) == HeldBatches(r1)) {
      if (Vectors(r0) != Vectors(r1)) Violation("P3a: version vectors differ");
      if (Digest(r0) != Digest(r1)) Violation("P3a: digests differ");
      ++g_checked.p3a;
    }
    CheckHonestPaths(history, r0, "first delivery, replica 0");
    CheckHonestPaths(history, r1, "first delivery, replica 1");
    // P3b: re-send everything until nothing changes. Without a claim or
    // quarantine rejection, and with the same batches held, the first
    // delivery is that fixpoint already (the other rejections do not
    // depend on order).
    const bool resend = r0.stats().rejected_claims != 0 || r1.stats().rejected_claims != 0 ||
                        r0.stats().rejected_equivocated != 0 ||
                        r1.stats().rejected_equivocated != 0 || HeldBatches(r0) != HeldBatches(r1);
    if (resend) ++g_checked.p3b_resent;
    for (int round = 0; resend && round < 6; ++round) {
      bool changed = false;
      for (auto& r : replicas) {
        const VersionVectors before = Vectors(*r);
        const uint64_t waiting_before = Waiting(*r);
        for (const Sent& s : all) (void)r->ApplyBatches({s.bytes});
        if (Vectors(*r) != before || Waiting(*r) != waiting_before) changed = true;
      }
      if (!changed) break;
    }
    {
      const uint64_t w0 = Waiting(r0);
      const uint64_t w1 = Waiting(r1);
      if (w0 != w1) Violation(absl::StrCat("P3b: waiting batches ", w0, " vs ", w1));
      if (Vectors(r0) != Vectors(r1)) Violation("P3b: version vectors differ");
      if (Digest(r0) != Digest(r1)) Violation("P3b: digests differ");
      if (w0 != 0) ++g_checked.waiting_left;
    }
    CheckHonestPaths(history, r0, "after re-sending, replica 0");
    CheckHonestPaths(history, r1, "after re-sending, replica 1");
    // P1.
    for (auto& r : replicas) {
      Transaction t = r->document(kDoc).Begin();
      if (!t.Put("/local", "1").ok() || !t.SetAdd("/local_set", "2").ok()) {
        Violation("buffering a local write failed");
      }
      absl::StatusOr<CommitInfo> info = t.Commit();
      if (!info.ok()) Violation(absl::StrCat("P1: commit failed: ", info.status().ToString()));
      if (info->seq_first == 0) Violation("P1: commit produced no batch");
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);
}

}  // namespace
}  // namespace edgesync

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgesync::Run(data, size);
  return 0;
}
