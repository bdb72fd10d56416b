#include "lib/replica/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "lib/replica/apply_report.h"
#include "lib/store/key_codec.h"
#include "lib/util/file_util.h"

namespace edgesync::internal {

namespace {

constexpr size_t kMagicBytes = 8;
constexpr size_t kHeaderBytes = kMagicBytes + 8;
constexpr size_t kChecksumBytes = 32;

crdt::RangeSet ToRangeSet(const SeqRanges& ranges) {
  crdt::RangeSet out;
  for (const auto& [first, last] : ranges) {
    if (first >= 1 && first <= last && last <= crdt::kDotMax) out.Insert(first, last);
  }
  return out;
}

SeqRanges FromRangeSet(const crdt::RangeSet& set) {
  SeqRanges out;
  for (const crdt::Range& r : set.ranges()) out.emplace_back(r.first, r.last);
  return out;
}

// Reads a file sequentially with exact-size reads.
class FileReader {
 public:
  static absl::StatusOr<std::unique_ptr<FileReader>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "open", path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "stat", path);
    }
    return std::unique_ptr<FileReader>(new FileReader(path, fd, static_cast<uint64_t>(st.st_size)));
  }
  ~FileReader() { ::close(fd_); }

  uint64_t size() const { return size_; }
  absl::Status Rewind() {
    if (::lseek(fd_, 0, SEEK_SET) != 0) return ErrnoStatus(errno, "seek", path_);
    return absl::OkStatus();
  }
  // Reads exactly n bytes; kDataLoss if the file ends first.
  absl::StatusOr<std::string> Read(size_t n) {
    std::string out(n, '\0');
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::read(fd_, out.data() + done, n - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read", path_);
      }
      if (r == 0) return absl::DataLossError(absl::StrCat("bundle \"", path_, "\" is truncated"));
      done += static_cast<size_t>(r);
    }
    return out;
  }

 private:
  FileReader(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_;
  uint64_t size_;
};

absl::Status Corrupt(const std::string& file, absl::string_view why) {
  return absl::DataLossError(absl::StrCat("bundle \"", file, "\" is corrupt: ", why));
}

}  // namespace

absl::StatusOr<VersionVectors> ReadVersionVectors(ReplicaCore& core, absl::string_view prefix) {
  VersionVectors out;
  absl::Status s = core.store().Read([&](StoreTxn& txn) -> absl::Status {
    out.clear();
    std::vector<DocumentRecord> docs;
    absl::Status ds = txn.ForEachDocument(prefix, [&](const DocumentRecord& d) {
      docs.push_back(d);
      return true;
    });
    if (!ds.ok()) return ds;
    for (const DocumentRecord& d : docs) {
      VersionVector& vv = out[d.id];
      absl::Status cs = txn.ForEachCoverage(d.num, [&](const crdt::AuthorKey& a, const crdt::RangeSet& seqs) {
        if (!seqs.empty()) vv[a.Hex()] = FromRangeSet(seqs);
        return true;
      });
      if (!cs.ok()) return cs;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<BundleReport> ExportBundle(ReplicaCore& core, const std::string& file,
                                          const BundleExportOptions& options) {
  if (absl::Status s = core.EnsureDurable(); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer = AtomicFileWriter::Create(file, 0644);
  if (!writer.ok()) return writer.status();
  crypto_generichash_state hash;
  crypto_generichash_init(&hash, nullptr, 0, kChecksumBytes);
  auto append = [&](absl::string_view bytes) {
    crypto_generichash_update(&hash, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    return (*writer)->Append(bytes);
  };
  BundleReport report;
  // The count is patched in after the batches: write a placeholder header,
  // collect, then write everything in order.
  std::vector<std::string> batches;
  std::vector<std::string> proofs;
  absl::Status s = core.store().Read([&](StoreTxn& txn) -> absl::Status {
    batches.clear();
    proofs.clear();
    report = BundleReport();
    std::vector<DocumentRecord> docs;
    absl::Status ds = txn.ForEachDocument(options.prefix, [&](const DocumentRecord& d) {
      docs.push_back(d);
      return true;
    });
    if (!ds.ok()) return ds;
    for (const DocumentRecord& d : docs) {
      bool any = false;
      std::vector<std::pair<crdt::AuthorKey, crdt::RangeSet>> covered;
      absl::Status cs = txn.ForEachCoverage(d.num, [&](const crdt::AuthorKey& a, const crdt::RangeSet& seqs) {
        covered.emplace_back(a, seqs);
        return true;
      });
      if (!cs.ok()) return cs;
      for (const auto& [author, seqs] : covered) {
        crdt::RangeSet wanted = seqs;
        if (options.only_missing) {
          auto doc_it = options.since.find(d.id);
          if (doc_it != options.since.end()) {
            auto a_it = doc_it->second.find(author.Hex());
            if (a_it != doc_it->second.end()) wanted = seqs.Minus(ToRangeSet(a_it->second));
          }
        }
        for (const crdt::Range& r : wanted.ranges()) {
          absl::Status ls = txn.ForEachLog(d.num, author, r.first, r.last, [&](const LogEntry& e) {
            batches.emplace_back(e.bytes);
            any = true;
            return true;
          });
          if (!ls.ok()) return ls;
        }
      }
      absl::StatusOr<std::vector<std::pair<crdt::AuthorKey, EquivocationProof>>> held =
          txn.EquivocationProofs(d.num);
      if (!held.ok()) return held.status();
      for (auto& [author, proof] : *held) {
        proofs.push_back(std::move(proof.first_batch));
        proofs.push_back(std::move(proof.second_batch));
        any = true;
      }
      if (any) ++report.documents;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  // A batch overlapping two wanted ranges was collected twice.
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  // Equivocation proofs go last, each pair together: an importer applies
  // the author's accepted batches before it learns of the quarantine.
  batches.insert(batches.end(), proofs.begin(), proofs.end());
  std::string header(kBundleMagic, kMagicBytes);
  AppendU64(&header, batches.size());
  if (absl::Status a = append(header); !a.ok()) return a;
  for (const std::string& b : batches) {
    std::string len;
    AppendU32(&len, static_cast<uint32_t>(b.size()));
    if (absl::Status a = append(len); !a.ok()) return a;
    if (absl::Status a = append(b); !a.ok()) return a;
  }
  std::string checksum(kChecksumBytes, '\0');
  crypto_generichash_final(&hash, reinterpret_cast<unsigned char*>(checksum.data()), kChecksumBytes);
  if (absl::Status a = (*writer)->Append(checksum); !a.ok()) return a;
  report.bytes = (*writer)->bytes_written();
  if (absl::Status c = (*writer)->Commit(); !c.ok()) return c;
  report.batches.applied = batches.size();
  return report;
}

absl::StatusOr<BundleReport> ImportBundle(ReplicaCore& core, const std::string& file) {
  absl::StatusOr<std::unique_ptr<FileReader>> in = FileReader::Open(file);
  if (!in.ok()) return in.status();
  FileReader& r = **in;
  if (r.size() < kHeaderBytes + kChecksumBytes) return Corrupt(file, "shorter than a header");
  const uint64_t body_bytes = r.size() - kChecksumBytes;

  // Pass 1: structure and checksum, before anything is applied.
  crypto_generichash_state hash;
  crypto_generichash_init(&hash, nullptr, 0, kChecksumBytes);
  auto hashed = [&](const std::string& bytes) {
    crypto_generichash_update(&hash, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  };
  absl::StatusOr<std::string> header = r.Read(kHeaderBytes);
  if (!header.ok()) return header.status();
  if (header->compare(0, kMagicBytes, kBundleMagic) != 0) return Corrupt(file, "not an edgesync bundle");
  hashed(*header);
  FieldReader count_reader(absl::string_view(*header).substr(kMagicBytes));
  const uint64_t count = count_reader.U64();
  if (count > body_bytes / 4) return Corrupt(file, "batch count exceeds the file size");
  uint64_t offset = kHeaderBytes;
  for (uint64_t i = 0; i < count; ++i) {
    if (offset + 4 > body_bytes) return Corrupt(file, "truncated batch length");
    absl::StatusOr<std::string> len_bytes = r.Read(4);
    if (!len_bytes.ok()) return len_bytes.status();
    hashed(*len_bytes);
    FieldReader len_reader(*len_bytes);
    const uint32_t len = len_reader.U32();
    if (len > transport::kBatchBytesMax) return Corrupt(file, "batch over the size limit");
    offset += 4;
    if (offset + len > body_bytes) return Corrupt(file, "truncated batch");
    // Hash in pieces so a large batch is never held twice.
    uint64_t left = len;
    while (left > 0) {
      const size_t piece = static_cast<size_t>(std::min<uint64_t>(left, 1u << 20));
      absl::StatusOr<std::string> bytes = r.Read(piece);
      if (!bytes.ok()) return bytes.status();
      hashed(*bytes);
      left -= piece;
    }
    offset += len;
  }
  if (offset != body_bytes) return Corrupt(file, "trailing bytes before the checksum");
  absl::StatusOr<std::string> stored = r.Read(kChecksumBytes);
  if (!stored.ok()) return stored.status();
  std::string computed(kChecksumBytes, '\0');
  crypto_generichash_final(&hash, reinterpret_cast<unsigned char*>(computed.data()), kChecksumBytes);
  if (sodium_memcmp(computed.data(), stored->data(), kChecksumBytes) != 0) {
    return Corrupt(file, "checksum mismatch");
  }

  // Pass 2: verify and apply each batch as if it came off the wire.
  if (absl::Status s = r.Rewind(); !s.ok()) return s;
  if (absl::StatusOr<std::string> h = r.Read(kHeaderBytes); !h.ok()) return h.status();
  BundleReport report;
  report.bytes = r.size();
  std::set<std::string> docs;
  for (uint64_t i = 0; i < count; ++i) {
    absl::StatusOr<std::string> len_bytes = r.Read(4);
    if (!len_bytes.ok()) return len_bytes.status();
    FieldReader len_reader(*len_bytes);
    absl::StatusOr<std::string> batch = r.Read(len_reader.U32());
    if (!batch.ok()) return batch.status();
    ApplyResult result = core.ApplyBatch(*batch);
    // Only documents this import touched: rejected batches (an untrusted
    // author's, say, each naming another document) must not grow the set.
    if (result.outcome != ApplyOutcome::kRejected && !result.document.empty()) {
      docs.insert(result.document);
    }
    switch (result.outcome) {
      case ApplyOutcome::kApplied:
        ++report.batches.applied;
        break;
      case ApplyOutcome::kDuplicate:
        ++report.batches.duplicate;
        break;
      case ApplyOutcome::kHeld:
        ++report.batches.held;
        break;
      case ApplyOutcome::kRejected:
        AddRejection(report.batches, i + 1, result.status);
        break;
    }
    report.batches.applied += result.released;
    report.batches.held -= std::min(report.batches.held, result.released);
    if (result.equivocation) ++report.batches.equivocations;
  }
  report.documents = docs.size();
  (void)core.ExpireWaitingBatches();
  return report;
}

}  // namespace edgesync::internal
