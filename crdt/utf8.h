// File: crdt/utf8.h
//
// Strict UTF-8 validation (RFC 3629): no overlong forms, no surrogates, no
// code points above U+10FFFF.

#ifndef EDGESYNC_CRDT_UTF8_H_
#define EDGESYNC_CRDT_UTF8_H_

#include "absl/strings/string_view.h"

namespace edgesync::crdt {

bool IsValidUtf8(absl::string_view s);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_UTF8_H_
