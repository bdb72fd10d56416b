// File: tests/replica/path_bomb.h
//
// The path bomb of the security issue's finding 2, for the tests that feed
// it to a replica (tests/replica/decode_bomb_test.cc, through bundle
// import) and to a node (tests/node/bomb_test.cc, pushed by a peer): a
// signed batch of a few kilobytes whose delta repeats one 16,448-byte path
// in every row, and a signed batch whose delta does not decode at all.

#ifndef EDGESYNC_TESTS_REPLICA_PATH_BOMB_H_
#define EDGESYNC_TESTS_REPLICA_PATH_BOMB_H_

#include <zstd.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "crdt/hlc.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"
#include "transport/batch.h"
#include "transport/signing_key.h"

namespace edgesync::testing {

// The document both batches below write to.
inline constexpr char kBombDocument[] = "bomb";

namespace path_bomb_internal {

inline void Lp(std::string* out, const std::string& bytes) {
  crdt::AppendVarint(out, bytes.size());
  out->append(bytes);
}

// `delta` signed by `key` as its batch of seq 1 in kBombDocument, stamped now.
inline std::string Seal(const transport::SigningKey& key, const std::string& delta) {
  transport::BatchHeader h;
  h.document = kBombDocument;
  h.author = key.public_key();
  h.seq_first = 1;
  h.seq_last = 1;
  h.hlc = crdt::HlcFromMillis(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count()));
  return transport::SealBatch(h, delta, key).value();
}

}  // namespace path_bomb_internal

// A batch of `key` for seqs 1..1 whose delta holds `rows` map markers, all
// at one path 64 keys of 255 bytes deep (16,448 encoded bytes), dots
// 1..rows, front-coded so each row after the first costs 4 bytes; zstd
// makes the whole batch a few kilobytes. Its rows' dots lie outside the
// header's range, so it is refused after decoding.
inline std::string PathBomb(const transport::SigningKey& key, uint64_t rows) {
  using path_bomb_internal::Lp;
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
  return path_bomb_internal::Seal(key, delta);
}

// A batch of `key` with a valid signature whose delta is not a zstd frame:
// its decoding fails.
inline std::string UndecodableBatch(const transport::SigningKey& key) {
  std::string delta = "\x01\x01";
  crdt::AppendVarint(&delta, 4096);
  delta += std::string(64, '\x5a');
  return path_bomb_internal::Seal(key, delta);
}

}  // namespace edgesync::testing

#endif  // EDGESYNC_TESTS_REPLICA_PATH_BOMB_H_
