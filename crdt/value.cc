#include "crdt/value.h"

#include <bit>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "crdt/size_limits.h"
#include "crdt/utf8.h"
#include "crdt/varint.h"

namespace edgesync::crdt {

namespace {

constexpr uint64_t kSignBit = uint64_t{1} << 63;

// Maps int64 and double bits to unsigned integers whose big-endian bytes
// sort like the numbers, so canonical order is numeric order within a type.
uint64_t OrderedBits(ValueType type, uint64_t bits) {
  if (type == ValueType::kInt) return bits ^ kSignBit;
  return (bits & kSignBit) ? ~bits : bits ^ kSignBit;
}

uint64_t UnorderedBits(ValueType type, uint64_t ordered) {
  if (type == ValueType::kInt) return ordered ^ kSignBit;
  return (ordered & kSignBit) ? ordered ^ kSignBit : ~ordered;
}

}  // namespace

Value Value::Bool(bool b) {
  Value v;
  v.type_ = ValueType::kBool;
  v.bits_ = b ? 1 : 0;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.type_ = ValueType::kInt;
  v.bits_ = static_cast<uint64_t>(i);
  return v;
}

absl::StatusOr<Value> Value::Double(double d) {
  if (std::isnan(d)) return absl::InvalidArgumentError("NaN is not a storable value");
  if (std::isinf(d)) return absl::InvalidArgumentError("infinity is not a storable value");
  if (d == 0.0) d = 0.0;  // folds -0.0 into 0.0
  Value v;
  v.type_ = ValueType::kDouble;
  v.bits_ = std::bit_cast<uint64_t>(d);
  return v;
}

absl::StatusOr<Value> Value::String(std::string s) {
  if (s.size() > kValueBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("string of ", s.size(), " bytes is over the limit of ", kValueBytesMax));
  }
  if (!IsValidUtf8(s)) return absl::InvalidArgumentError("string is not valid UTF-8");
  Value v;
  v.type_ = ValueType::kString;
  v.bytes_ = std::move(s);
  return v;
}

absl::StatusOr<Value> Value::Bytes(std::string b) {
  if (b.size() > kValueBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes value of ", b.size(), " bytes is over the limit of ", kValueBytesMax));
  }
  Value v;
  v.type_ = ValueType::kBytes;
  v.bytes_ = std::move(b);
  return v;
}

bool Value::bool_value() const {
  ES_CHECK(type_ == ValueType::kBool);
  return bits_ != 0;
}

int64_t Value::int_value() const {
  ES_CHECK(type_ == ValueType::kInt);
  return static_cast<int64_t>(bits_);
}

double Value::double_value() const {
  ES_CHECK(type_ == ValueType::kDouble);
  return std::bit_cast<double>(bits_);
}

const std::string& Value::bytes_value() const {
  ES_CHECK(type_ == ValueType::kString || type_ == ValueType::kBytes);
  return bytes_;
}

void Value::AppendCanonical(std::string* out) const {
  out->push_back(static_cast<char>(type_));
  switch (type_) {
    case ValueType::kNull:
      break;
    case ValueType::kBool:
      out->push_back(static_cast<char>(bits_));
      break;
    case ValueType::kInt:
    case ValueType::kDouble:
      AppendFixed64BigEndian(out, OrderedBits(type_, bits_));
      break;
    case ValueType::kString:
    case ValueType::kBytes:
      out->append(bytes_);
      break;
  }
}

std::string Value::Canonical() const {
  std::string out;
  AppendCanonical(&out);
  return out;
}

absl::StatusOr<Value> Value::FromCanonical(absl::string_view bytes) {
  ByteReader in(bytes);
  absl::StatusOr<uint8_t> tag = in.Byte("value type");
  if (!tag.ok()) return tag.status();
  Value v;
  switch (static_cast<ValueType>(*tag)) {
    case ValueType::kNull:
      break;
    case ValueType::kBool: {
      absl::StatusOr<uint8_t> b = in.Byte("bool value");
      if (!b.ok()) return b.status();
      if (*b > 1) return absl::InvalidArgumentError("bool value is neither 0 nor 1");
      v = Bool(*b == 1);
      break;
    }
    case ValueType::kInt: {
      absl::StatusOr<uint64_t> bits = in.Fixed64BigEndian("int value");
      if (!bits.ok()) return bits.status();
      v = Int(static_cast<int64_t>(UnorderedBits(ValueType::kInt, *bits)));
      break;
    }
    case ValueType::kDouble: {
      absl::StatusOr<uint64_t> bits = in.Fixed64BigEndian("double value");
      if (!bits.ok()) return bits.status();
      const double d = std::bit_cast<double>(UnorderedBits(ValueType::kDouble, *bits));
      if (std::bit_cast<uint64_t>(d) == std::bit_cast<uint64_t>(-0.0)) {
        return absl::InvalidArgumentError("double value -0.0 is not canonical");
      }
      absl::StatusOr<Value> dv = Double(d);
      if (!dv.ok()) return dv.status();
      v = *std::move(dv);
      break;
    }
    case ValueType::kString: {
      absl::StatusOr<Value> sv = String(std::string(in.rest()));
      if (!sv.ok()) return sv.status();
      return sv;
    }
    case ValueType::kBytes: {
      absl::StatusOr<Value> bv = Bytes(std::string(in.rest()));
      if (!bv.ok()) return bv.status();
      return bv;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown value type ", *tag));
  }
  if (!in.empty()) return absl::InvalidArgumentError("trailing bytes after value");
  return v;
}

bool operator==(const Value& a, const Value& b) {
  return a.type_ == b.type_ && a.bits_ == b.bits_ && a.bytes_ == b.bytes_;
}

std::strong_ordering operator<=>(const Value& a, const Value& b) {
  return a.Canonical() <=> b.Canonical();
}

}  // namespace edgesync::crdt
