#include "transport/document_tree.h"

#include <sodium.h>

#include <algorithm>
#include <limits>

#include "crdt/check.h"

namespace edgesync::transport {

namespace {

uint64_t Blake64(absl::string_view bytes) {
  unsigned char out[8];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  uint64_t v = 0;
  for (unsigned char c : out) v = (v << 8) | c;
  return v;
}

int ShiftAt(int depth) { return 4 * (kTreeDepthMax - depth); }

}  // namespace

uint64_t TreeNode::hi() const {
  if (depth == 0) return std::numeric_limits<uint64_t>::max();
  return lo + ((uint64_t{1} << ShiftAt(depth)) - 1);
}

TreeNode TreeNode::Child(int c) const {
  ES_CHECK(depth < kTreeDepthMax && c >= 0 && c < kTreeFanout);
  return TreeNode{lo + (static_cast<uint64_t>(c) << ShiftAt(depth + 1)), depth + 1};
}

uint64_t DocumentTreeKey(absl::string_view id) { return Blake64(id); }

uint64_t DocumentEntryDigest(absl::string_view entry) { return Blake64(entry); }

bool ListWhole(const NodeDigest& mine, const NodeDigest& peer, int depth) {
  return mine.count == 0 || peer.count == 0 ||
         std::max(mine.count, peer.count) <= kTreeLeafDocuments || depth >= kTreeDepthMax;
}

void DocumentTree::Add(uint64_t key, uint64_t digest) { keyed_.emplace_back(key, digest); }

void DocumentTree::Finish() { std::sort(keyed_.begin(), keyed_.end()); }

NodeDigest DocumentTree::Digest(const TreeNode& node) const {
  auto begin = std::lower_bound(keyed_.begin(), keyed_.end(), std::make_pair(node.lo, uint64_t{0}));
  NodeDigest d;
  for (auto it = begin; it != keyed_.end() && it->first <= node.hi(); ++it) {
    ++d.count;
    d.digest ^= it->second;
  }
  return d;
}

std::vector<NodeDigest> DocumentTree::ChildDigests(const std::vector<TreeNode>& nodes) const {
  std::vector<NodeDigest> out;
  out.reserve(nodes.size() * kTreeFanout);
  for (const TreeNode& n : nodes) {
    for (int c = 0; c < kTreeFanout; ++c) out.push_back(Digest(n.Child(c)));
  }
  return out;
}

void Descend(const std::vector<TreeNode>& opened, const std::vector<NodeDigest>& mine,
             const std::vector<NodeDigest>& peer, std::vector<TreeNode>* next,
             std::vector<TreeNode>* listed) {
  ES_CHECK(mine.size() == opened.size() * kTreeFanout && peer.size() == mine.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i] == peer[i]) continue;
    const TreeNode child = opened[i / kTreeFanout].Child(static_cast<int>(i % kTreeFanout));
    (ListWhole(mine[i], peer[i], child.depth) ? listed : next)->push_back(child);
  }
}

bool UnderAny(const std::vector<TreeNode>& nodes, uint64_t key) {
  auto it = std::upper_bound(nodes.begin(), nodes.end(), key,
                             [](uint64_t k, const TreeNode& n) { return k < n.lo; });
  if (it == nodes.begin()) return false;
  --it;
  return key <= it->hi();
}

}  // namespace edgesync::transport
