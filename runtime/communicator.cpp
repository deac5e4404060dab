#include "runtime/communicator.hpp"

#include <cstring>

namespace dsg {

void LocalCommunicator::allgather(const void* in, void* out, int64_t bytes) {
  if (bytes > 0 && in != out) std::memmove(out, in, size_t(bytes));
}

uint64_t fingerprint_bytes(const void* data, size_t bytes, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed;
  // Eight bytes per step (FNV-1a over 64-bit words), then the tail byte by byte.
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace dsg
