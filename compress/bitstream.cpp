#include "compress/bitstream.hpp"

#include "runtime/error.hpp"

namespace dsg::compress {

void BitWriter::put(uint64_t value, int nbits) {
  if (nbits < 0 || nbits > 32) throw Error(strfmt("BitWriter::put: nbits %d is outside 0..32", nbits));
  if ((value >> nbits) != 0)
    throw Error(strfmt("BitWriter::put: value %llu does not fit in %d bits", (unsigned long long)value, nbits));
  acc_ |= value << nacc_;  // nacc_ < 32 and value < 2^32: no overflow
  nacc_ += nbits;
  if (nacc_ >= 32) {
    for (int i = 0; i < 4; ++i) bytes_.push_back(uint8_t(acc_ >> (8 * i)));
    acc_ >>= 32;
    nacc_ -= 32;
  }
}

std::vector<uint8_t> BitWriter::finish() {
  for (; nacc_ > 0; nacc_ -= 8) {
    bytes_.push_back(uint8_t(acc_));
    acc_ >>= 8;
  }
  std::vector<uint8_t> out = std::move(bytes_);
  bytes_.clear();
  acc_ = 0;
  nacc_ = 0;
  return out;
}

BitReader::BitReader(const uint8_t* data, size_t size_bytes) : data_(data), size_(data ? size_bytes : 0) {}

void BitReader::refill() {
  while (nbuf_ <= 56 && pos_ < size_) {
    buf_ |= uint64_t(data_[pos_++]) << nbuf_;
    nbuf_ += 8;
  }
}

void BitReader::refill_or_throw(int nbits) {
  refill();
  if (nbuf_ < nbits)
    throw Error(strfmt("bit stream truncated: need %d bits, %zu left", nbits, bits_left()));
}

uint32_t BitReader::get(int nbits) {
  if (nbits < 0 || nbits > 32) throw Error(strfmt("BitReader::get: nbits %d is outside 0..32", nbits));
  if (nbuf_ < nbits) refill_or_throw(nbits);
  uint32_t v = uint32_t(buf_ & ((uint64_t(1) << nbits) - 1));
  buf_ >>= nbits;
  nbuf_ -= nbits;
  return v;
}

}  // namespace dsg::compress
