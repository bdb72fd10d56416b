#include "lib/replica/store_location.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace edgesync::internal {

namespace {

std::string MachineId() {
  for (const char* file : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    std::ifstream in(file);
    std::string id;
    if (!in || !std::getline(in, id)) continue;
    id = std::string(absl::StripAsciiWhitespace(id));
    if (!id.empty() && id.size() <= kMachineIdBytesMax) return id;
  }
  return "";
}

std::string Describe(const StoreLocation& l) {
  return absl::StrCat("machine ", l.machine_id.empty() ? "(unknown)" : l.machine_id,
                      ", data file device ", l.device, " inode ", l.inode);
}

}  // namespace

absl::StatusOr<StoreLocation> CurrentStoreLocation(const std::string& dir) {
  const std::string file = absl::StrCat(dir, "/data.mdb");
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot stat \"", file, "\": ", std::strerror(errno)));
  }
  StoreLocation l;
  l.machine_id = MachineId();
  l.device = static_cast<uint64_t>(st.st_dev);
  l.inode = static_cast<uint64_t>(st.st_ino);
  return l;
}

std::string CopiedStoreMessage(const std::string& dir, const StoreLocation& recorded,
                               const StoreLocation& here) {
  return absl::StrCat(
      "the store in \"", dir, "\" was copied from elsewhere (recorded: ", Describe(recorded),
      "; here: ", Describe(here),
      "): a copy must not write with the same key, or its new batches would reuse seqs the "
      "original issues with other content. It still receives and relays batches. To write here, "
      "give the copy a new identity: edgesync rekey ",
      dir, " (then trust the new key on its peers)");
}

}  // namespace edgesync::internal
