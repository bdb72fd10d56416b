// File: lib/replica/store_location.h
//
// Where a store lives: the machine (its machine id) and its LMDB data file
// (device and inode). A copied store (`cp -a`, a restored VM image or SD
// card) would reissue its author's seqs with different content, which sync
// cannot repair, so a store opened somewhere else than it recorded refuses
// to commit (docs/operating.md "A copied store"). `mv` on one file system
// keeps the inode and is allowed.

#ifndef EDGESYNC_LIB_REPLICA_STORE_LOCATION_H_
#define EDGESYNC_LIB_REPLICA_STORE_LOCATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "lib/store/replica_store.h"

namespace edgesync::internal {

// The location of the store in `dir`: /etc/machine-id (else
// /var/lib/dbus/machine-id, else "") and the device and inode of
// dir/data.mdb. kUnavailable if the data file cannot be stat'ed.
absl::StatusOr<StoreLocation> CurrentStoreLocation(const std::string& dir);

// The message every commit of a copied store fails with.
std::string CopiedStoreMessage(const std::string& dir, const StoreLocation& recorded,
                               const StoreLocation& here);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_STORE_LOCATION_H_
