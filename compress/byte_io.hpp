// Little-endian byte writing and bounds-checked reading for the .dsgz container. ByteReader throws
// dsg::Error (never reads out of bounds) whatever the input.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace dsg::compress {

class ByteWriter {
 public:
  template <class T>
  void put(T value) {
    for (size_t i = 0; i < sizeof(T); ++i) bytes_.push_back(uint8_t(uint64_t(value) >> (8 * i)));
  }
  void put_f32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    put<uint32_t>(u);
  }
  void put_bytes(const uint8_t* p, size_t n) { bytes_.insert(bytes_.end(), p, p + n); }
  void put_bytes(const std::vector<uint8_t>& v) { put_bytes(v.data(), v.size()); }
  // A u32 length followed by the bytes.
  void put_block(const std::vector<uint8_t>& v) {
    put<uint32_t>(uint32_t(v.size()));
    put_bytes(v);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  // `what` names the thing being read, for messages ("section 'ip1/0'").
  ByteReader(const uint8_t* data, size_t size, std::string what) : p_(data), n_(size), what_(std::move(what)) {}
  template <class T>
  T get() {
    need(sizeof(T));
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(p_[pos_ + i]) << (8 * i);
    pos_ += sizeof(T);
    return T(v);
  }
  float get_f32() {
    uint32_t u = get<uint32_t>();
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  }
  // A pointer to the next n bytes (skipped).
  const uint8_t* take(uint64_t n) {
    need(n);
    const uint8_t* q = p_ + pos_;
    pos_ += size_t(n);
    return q;
  }
  size_t left() const { return n_ - pos_; }
  size_t pos() const { return pos_; }
  void need(uint64_t n) const {
    if (n > n_ - pos_)
      throw Error(what_ + strfmt(" is truncated: %llu more bytes needed at offset %zu, %zu left",
                                 static_cast<unsigned long long>(n), pos_, n_ - pos_));
  }
  const std::string& what() const { return what_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace dsg::compress
