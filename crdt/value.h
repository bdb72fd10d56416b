// File: crdt/value.h
//
// Value: one scalar of a document: null, bool, int64, double, string (UTF-8)
// or bytes. Int 1 and double 1.0 are different values; -0.0 is stored as 0.0;
// NaN and infinities are refused, so every value has one canonical encoding
// and equal values are equal bytes.
//
//   absl::StatusOr<Value> v = Value::Double(2.5);
//   std::string bytes = v->Canonical();   // tag byte + payload

#ifndef EDGESYNC_CRDT_VALUE_H_
#define EDGESYNC_CRDT_VALUE_H_

#include <compare>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::crdt {

// The tag byte of the canonical encoding; persisted and on the wire, so
// never renumbered.
enum class ValueType : uint8_t {
  kNull = 0,
  kBool = 1,
  kInt = 2,
  kDouble = 3,
  kString = 4,
  kBytes = 5,
};

// A scalar value. Thread-compatible value type.
class Value {
 public:
  // Null.
  Value() = default;

  static Value Null() { return Value(); }
  static Value Bool(bool b);
  static Value Int(int64_t i);
  // kInvalidArgument for NaN or an infinity. -0.0 becomes 0.0.
  static absl::StatusOr<Value> Double(double d);
  // kInvalidArgument if `s` is not valid UTF-8 or is over kValueBytesMax.
  static absl::StatusOr<Value> String(std::string s);
  // kInvalidArgument if over kValueBytesMax.
  static absl::StatusOr<Value> Bytes(std::string b);

  ValueType type() const { return type_; }
  bool is_null() const { return type_ == ValueType::kNull; }
  // REQUIRES: the matching type().
  bool bool_value() const;
  int64_t int_value() const;
  double double_value() const;
  // The string or bytes payload. REQUIRES: type() is kString or kBytes.
  const std::string& bytes_value() const;

  // The canonical encoding: the type tag, then for bool one byte; for int
  // the two's complement bits with the sign bit flipped, 8 bytes big-endian;
  // for double the IEEE 754 bits with the sign bit flipped when positive and
  // all bits flipped when negative, 8 bytes big-endian; for string and bytes
  // the payload (its length is implied by the enclosing frame). Byte order of
  // encodings is therefore numeric order within a type.
  std::string Canonical() const;
  void AppendCanonical(std::string* out) const;
  // Parses a canonical encoding that spans all of `bytes`; kInvalidArgument
  // on anything that Canonical() would not produce.
  static absl::StatusOr<Value> FromCanonical(absl::string_view bytes);

  // Total order of canonical encodings (type tag first).
  friend bool operator==(const Value& a, const Value& b);
  friend std::strong_ordering operator<=>(const Value& a, const Value& b);

 private:
  ValueType type_ = ValueType::kNull;
  uint64_t bits_ = 0;  // bool, int64 or double bits
  std::string bytes_;  // string or bytes payload
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_VALUE_H_
