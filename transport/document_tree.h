// File: transport/document_tree.h
//
// DocumentTree: a replica's listed documents placed in a 16-ary tree by a
// 64-bit hash of their id, each with a 64-bit digest of its listing entry.
// Two sync peers whose summaries differ walk it together from the root,
// comparing the (count, digest) of the children of every node that
// differed, so that a round where k documents differ lists about k of
// them instead of all (docs/sync-protocol.md, "Drill-down").

#ifndef EDGESYNC_TRANSPORT_DOCUMENT_TREE_H_
#define EDGESYNC_TRANSPORT_DOCUMENT_TREE_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgesync::transport {

inline constexpr int kTreeFanout = 16;
// 4 bits of the key per level: at this depth a node is one key.
inline constexpr int kTreeDepthMax = 16;
// A differing node with at most this many documents on either side is
// listed rather than opened.
inline constexpr uint64_t kTreeLeafDocuments = 8;

// The keys [lo, lo + 16^(16 - depth) - 1]. Thread-compatible value type.
struct TreeNode {
  uint64_t lo = 0;
  int depth = 0;

  uint64_t hi() const;
  TreeNode Child(int c) const;
  friend bool operator==(const TreeNode&, const TreeNode&) = default;
};

// What one side holds under a node. The digest is the XOR of the digests of
// its documents (0 when empty). Thread-compatible value type.
struct NodeDigest {
  uint64_t count = 0;
  uint64_t digest = 0;
  friend bool operator==(const NodeDigest&, const NodeDigest&) = default;
};

// A document's place in the tree: the first 8 bytes (big-endian) of
// BLAKE2b-64 of its id.
uint64_t DocumentTreeKey(absl::string_view id);
// A 64-bit digest of a document's canonical listing entry (BLAKE2b-64).
uint64_t DocumentEntryDigest(absl::string_view entry);

// Whether a node that differs is listed whole rather than opened: one side
// holds nothing under it, neither holds more than kTreeLeafDocuments, or it
// is a single key.
bool ListWhole(const NodeDigest& mine, const NodeDigest& peer, int depth);

// Build with Add, then Finish; then const. Thread-compatible.
class DocumentTree {
 public:
  void Add(uint64_t key, uint64_t digest);
  void Finish();

  NodeDigest Digest(const TreeNode& node) const;
  // The digests of the 16 children of each node, in order.
  std::vector<NodeDigest> ChildDigests(const std::vector<TreeNode>& nodes) const;

 private:
  std::vector<std::pair<uint64_t, uint64_t>> keyed_;  // (key, digest), sorted after Finish
};

// One step of the walk. `opened` are the nodes both sides opened at this
// depth; `mine` and `peer` the 16 child digests of each, in order. Appends
// the children that differ to `next` (to open) or `listed` (to list whole).
void Descend(const std::vector<TreeNode>& opened, const std::vector<NodeDigest>& mine,
             const std::vector<NodeDigest>& peer, std::vector<TreeNode>* next,
             std::vector<TreeNode>* listed);

// Whether `key` lies under one of `nodes` (sorted by lo, disjoint).
bool UnderAny(const std::vector<TreeNode>& nodes, uint64_t key);

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_DOCUMENT_TREE_H_
