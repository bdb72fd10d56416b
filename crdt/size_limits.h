// File: crdt/size_limits.h
//
// Every size a document, a delta or a peer can make us hold has a limit here.
// Limits on what we accept are at least as large as what we let a local
// transaction produce, so a batch a replica may author is never refused by
// another replica for its size.

#ifndef EDGESYNC_CRDT_SIZE_LIMITS_H_
#define EDGESYNC_CRDT_SIZE_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace edgesync::crdt {

// A document id is non-empty UTF-8.
inline constexpr size_t kDocumentIdBytesMax = 255;
// A map key is UTF-8 (may be empty). It becomes part of LMDB keys, which
// are at most 511 bytes.
inline constexpr size_t kMapKeyBytesMax = 255;
// A set element is a scalar; its canonical encoding (1 tag byte + payload)
// is at most this long, so string elements hold at most 254 bytes.
inline constexpr size_t kSetElementBytesMax = 255;
// Depth of a path, and of a JSON value nested at a path.
inline constexpr size_t kPathDepthMax = 64;
// A string or bytes value.
inline constexpr size_t kValueBytesMax = 64u << 20;
// JSON text handed to us in one call.
inline constexpr size_t kJsonBytesMax = 96u << 20;
// Elements (register values, set members, counter updates, markers) one
// transaction may write, and mutations it may hold.
inline constexpr size_t kTransactionEntriesMax = 4u << 20;
// The encoded delta of one batch, authored or received. A transaction whose
// delta would exceed it fails to commit with kResourceExhausted.
inline constexpr size_t kDeltaBytesMax = 160u << 20;
// Rows one delta may carry (a transaction writes at most
// kTransactionEntriesMax; compaction splits larger ranges).
inline constexpr size_t kDeltaRowsMax = kTransactionEntriesMax;
// The encoded bytes of the distinct paths of one delta. Rows share their
// paths in memory (decoding interns them), so this and the decompressed
// size bound what decoding a delta can allocate, however often a path is
// repeated: a path of 16 KiB repeated by 4 Mi rows costs 16 KiB, not 64 GiB.
inline constexpr size_t kDeltaPathBytesMax = kDeltaBytesMax;
// Variants one row may hold: an honest row has one; more only when its
// author equivocated. Joins keep the smallest this many.
inline constexpr size_t kRowVariantsMax = 16;
// Distinct ranges in one author's part of a causal context carried by a
// delta (a compacted delta of a long history may carry many).
inline constexpr size_t kContextRangesMax = 16u << 20;
// The largest dot number (seq) accepted: far beyond any real history, and
// low enough that range arithmetic never overflows.
inline constexpr uint64_t kDotMax = uint64_t{1} << 62;
// Distinct authors referenced by one delta.
inline constexpr size_t kDeltaAuthorsMax = 1u << 20;

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_SIZE_LIMITS_H_
