// Path front-coding as an amplifier (issue: security, finding 2): a delta
// whose rows each repeat a 16,448-byte path for a few bytes once made
// `edgesync import` abort with std::bad_alloc (4 Mi rows x 16 KiB). Now an
// untrusted author's batch is refused on its header before any decoding,
// and decoding interns paths, so even a trusted author's bomb costs the
// decompressed bytes plus its distinct path bytes.

#include <sys/resource.h>
#include <zstd.h>

#include "crdt/size_limits.h"
#include "crdt/varint.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

// Peak resident set of this process so far, in bytes.
uint64_t PeakRssBytes() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

void Lp(std::string* out, absl::string_view bytes) {
  crdt::AppendVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

// A batch of `key` for seqs 1..1 whose delta holds `rows` map markers, all
// at one path 64 keys of 255 bytes deep (16,448 encoded bytes), dots
// 1..rows, front-coded so each row after the first costs 4 bytes; zstd
// makes the whole batch a few kilobytes. Its rows' dots lie outside the
// header's range, so it is refused after decoding.
std::string PathBomb(const transport::SigningKey& key, uint64_t rows) {
  std::string path;
  for (int i = 0; i < 64; ++i) Lp(&path, std::string(255, 'a'));
  std::string body;
  crdt::AppendVarint(&body, 1);
  body.append(key.public_key().view().data(), crdt::kAuthorKeyBytes);
  crdt::AppendVarint(&body, 1);  // context: one range 1..rows
  crdt::AppendVarint(&body, 0);
  crdt::AppendVarint(&body, rows - 1);
  crdt::AppendVarint(&body, rows);
  std::string col[10];
  crdt::AppendVarint(&col[0], 0);
  crdt::AppendVarint(&col[0], rows);
  for (uint64_t i = 0; i < rows; ++i) {
    crdt::AppendVarint(&col[1], 1);
    col[2].push_back('\0');  // map marker
    if (i == 0) {
      crdt::AppendVarint(&col[3], 0);
      Lp(&col[3], path);
    } else {
      crdt::AppendVarint(&col[3], path.size());
      Lp(&col[3], "");
    }
    crdt::AppendVarint(&col[5], 1);
  }
  for (const std::string& c : col) Lp(&body, c);
  std::string frame(ZSTD_compressBound(body.size()), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), body.data(), body.size(), 3));
  std::string delta = "\x01\x01";
  crdt::AppendVarint(&delta, body.size());
  delta += frame;
  transport::BatchHeader h;
  h.document = "bomb";
  h.author = key.public_key();
  h.seq_first = 1;
  h.seq_last = 1;
  h.hlc = crdt::HlcFromMillis(SystemMillis());
  return transport::SealBatch(h, delta, key).value();
}

TEST(DecodeBombTest, AnUntrustedBombIsRefusedBeforeDecoding) {
  ScratchDir dir;
  auto r = MustOpen(dir.Sub("r"));
  const transport::SigningKey stranger = transport::SigningKey::Generate().value();
  const std::string bomb = PathBomb(stranger, crdt::kDeltaRowsMax);
  EXPECT_LT(bomb.size(), 8000u);
  ES_ASSERT_OK(WriteFile(dir.Sub("bomb.bundle"), MakeBundle({bomb})));
  const uint64_t before = PeakRssBytes();
  absl::StatusOr<BundleReport> rep = r->ImportBundle(dir.Sub("bomb.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.rejected, 1u);
  EXPECT_EQ(r->stats().rejected_untrusted, 1u);
  EXPECT_LT(PeakRssBytes() - before, uint64_t{16} << 20) << "decoded before the trust check";
}

TEST(DecodeBombTest, ATrustedBombCostsItsDistinctBytesNotItsRepetitions) {
  ScratchDir dir;
  auto r = MustOpen(dir.Sub("r"));
  const transport::SigningKey insider = transport::SigningKey::Generate().value();
  ES_ASSERT_OK(r->Trust(insider.public_key().Hex()));
  // 1 Mi rows: 16 GiB of path copies without interning.
  const std::string bomb = PathBomb(insider, uint64_t{1} << 20);
  ES_ASSERT_OK(WriteFile(dir.Sub("bomb.bundle"), MakeBundle({bomb})));
  const uint64_t before = PeakRssBytes();
  absl::StatusOr<BundleReport> rep = r->ImportBundle(dir.Sub("bomb.bundle"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->batches.rejected, 1u);
  EXPECT_EQ(rep->batches.applied, 0u);
  const uint64_t grew = PeakRssBytes() - before;
  std::cout << "[ bomb     ] trusted 1 Mi-row path bomb of " << bomb.size()
            << " bytes: peak RSS grew " << (grew >> 20) << " MiB" << std::endl;
  EXPECT_LT(grew, uint64_t{512} << 20);
  EXPECT_TRUE(MustIds(*r).empty());
}

}  // namespace
}  // namespace edgesync::testing
