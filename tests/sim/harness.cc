#include "tests/sim/harness.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "crdt/path.h"
#include "lib/replica/replica_core.h"
#include "lib/store/document_state.h"
#include "lib/sync/replica_sync_store.h"
#include "transport/sync_session.h"

namespace edgesync::sim {

namespace tsim = transport::sim;

uint64_t SimClock::NowMillis() {
  const int64_t t =
      static_cast<int64_t>(kEpochMs + queue_->now_us() / tsim::kMicrosPerMilli) + skew_ms;
  return t < 1 ? 1 : static_cast<uint64_t>(t);
}

uint64_t SimClock::BootMillis() { return queue_->now_us() / tsim::kMicrosPerMilli; }

std::string MakeIdentity(const std::string& dir, tsim::Random& rng) {
  std::filesystem::create_directories(dir);
  const std::string seed = rng.Bytes(crypto_sign_SEEDBYTES);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(seed.data()));
  const std::string hex =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(sk), sizeof sk)) +
      "\n";
  const std::string path = dir + "/identity.key";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) std::abort();
  if (::write(fd, hex.data(), hex.size()) != static_cast<ssize_t>(hex.size())) std::abort();
  ::close(fd);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(pk), sizeof pk));
}

std::string ScratchRoot() {
  struct stat st;
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) {
    return "/dev/shm";
  }
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

ScratchDir::ScratchDir() {
  std::string tmpl = ScratchRoot() + "/edgesync-sim-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  if (keep) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

absl::StatusOr<TrustedReplicas> OpenTrustedReplicas(const std::string& dir, int count,
                                                    tsim::Random& rng,
                                                    const tsim::EventQueue* time) {
  TrustedReplicas out;
  for (int i = 0; i < count; ++i) {
    const std::string replica_dir = absl::StrCat(dir, "/r", i);
    out.keys_hex.push_back(MakeIdentity(replica_dir, rng));
    out.clocks.push_back(std::make_unique<SimClock>(time));
    ReplicaOptions o;
    o.durability = Durability::kFast;
    o.clock = out.clocks.back().get();
    o.boot_clock = out.clocks.back().get();
    absl::StatusOr<std::unique_ptr<Replica>> opened = Replica::Open(replica_dir, o);
    if (!opened.ok()) return opened.status();
    out.replicas.push_back(*std::move(opened));
  }
  for (int i = 0; i < count; ++i) {
    for (int j = 0; j < count; ++j) {
      if (i == j) continue;
      absl::Status s =
          out.replicas[static_cast<size_t>(i)]->Trust(out.keys_hex[static_cast<size_t>(j)]);
      if (!s.ok()) return s;
    }
  }
  return out;
}

PairSync SyncPair(Replica& a, Replica& b, size_t max_message_bytes) {
  PairSync r;
  internal::ReplicaSyncStore store_a(a.core_ptr());
  internal::ReplicaSyncStore store_b(b.core_ptr());
  transport::SessionOptions o;
  o.max_message_bytes = max_message_bytes;
  absl::StatusOr<std::unique_ptr<transport::SyncSession>> sa =
      transport::SyncSession::Create(&store_a, o);
  absl::StatusOr<std::unique_ptr<transport::SyncSession>> sb =
      transport::SyncSession::Create(&store_b, o);
  if (!sa.ok() || !sb.ok()) {
    r.status = sa.ok() ? sb.status() : sa.status();
    return r;
  }
  for (bool busy = true; busy && r.status.ok();) {
    busy = false;
    absl::StatusOr<std::optional<std::string>> ma = (*sa)->NextMessage();
    absl::StatusOr<std::optional<std::string>> mb = (*sb)->NextMessage();
    if (!ma.ok() || !mb.ok()) {
      r.status = ma.ok() ? mb.status() : ma.status();
      break;
    }
    if (ma->has_value()) {
      busy = true;
      if (absl::Status s = (*sb)->Receive(**ma); !s.ok()) r.status = s;
    }
    if (mb->has_value()) {
      busy = true;
      r.bytes_to_a += (*mb)->size();
      ++r.messages_to_a;
      if (absl::Status s = (*sa)->Receive(**mb); !s.ok()) r.status = s;
    }
  }
  r.rounds_a = (*sa)->stats().rounds;
  r.rounds_b = (*sb)->stats().rounds;
  r.batches_applied_a = (*sa)->stats().batches_applied;
  r.synced = (*sa)->synced() && (*sb)->synced();
  return r;
}

absl::StatusOr<LogSize> StoredLog(Replica& holder, const std::string& document,
                                  const std::string& author_hex) {
  absl::StatusOr<crdt::AuthorKey> author = crdt::AuthorKey::FromHex(author_hex);
  if (!author.ok()) return author.status();
  LogSize size;
  absl::Status s =
      holder.core().store().Read([&](edgesync::internal::StoreTxn& txn) -> absl::Status {
        size = LogSize();
        absl::StatusOr<std::optional<edgesync::internal::DocumentRecord>> doc =
            txn.FindDocument(document);
        if (!doc.ok() || !doc->has_value()) return doc.status();
        return txn.ForEachLog((*doc)->num, *author, 1, crdt::kDotMax,
                              [&](const edgesync::internal::LogEntry& e) {
                                size.bytes += e.bytes.size();
                                ++size.batches;
                                return true;
                              });
      });
  if (!s.ok()) return s;
  return size;
}

absl::StatusOr<uint64_t> StoredRows(Replica& holder, const std::string& document) {
  uint64_t rows = 0;
  absl::Status s =
      holder.core().store().Read([&](edgesync::internal::StoreTxn& txn) -> absl::Status {
        rows = 0;
        absl::StatusOr<std::optional<edgesync::internal::DocumentRecord>> doc =
            txn.FindDocument(document);
        if (!doc.ok() || !doc->has_value()) return doc.status();
        edgesync::internal::DocumentRecord record = **doc;
        edgesync::internal::DocumentState state(&txn, &record);
        return state.ForEachRowUnder(crdt::Path(), [&](const crdt::RowKey&, const crdt::RowValue&) {
          ++rows;
          return true;
        });
      });
  if (!s.ok()) return s;
  return rows;
}

std::string FormatDuration(uint64_t us) {
  if (us < tsim::kMicrosPerMilli) return absl::StrCat(us, "us");
  if (us < tsim::kMicrosPerSecond) return absl::StrFormat("%.1fms", static_cast<double>(us) / 1e3);
  if (us < 3 * 60 * tsim::kMicrosPerSecond) {
    return absl::StrFormat("%.1fs", static_cast<double>(us) / 1e6);
  }
  if (us < 3 * tsim::kMicrosPerHour) {
    return absl::StrFormat("%.1fmin", static_cast<double>(us) / 6e7);
  }
  if (us < 3 * tsim::kMicrosPerDay) {
    return absl::StrFormat("%.1fh", static_cast<double>(us) / 3.6e9);
  }
  return absl::StrFormat("%.1fd", static_cast<double>(us) / 8.64e10);
}

}  // namespace edgesync::sim
