// libFuzzer target for the .dsgz reader (built by scripts/fuzz_dsgz.sh with clang
// -fsanitize=fuzzer,address,undefined; not part of dsg_tests). Checksums are not verified so the
// fuzzer reaches the section and blob parsers; every input must either parse or throw dsg::Error,
// and what parses must decode.
#include <cstddef>
#include <cstdint>

#include "compress/dsgz.hpp"
#include "runtime/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dsg::compress::DsgzModel m = dsg::compress::read_dsgz(data, size, /*verify_checksums=*/false);
    for (const auto& b : m.blobs)
      if (b.count() <= (int64_t(1) << 22)) (void)dsg::compress::decode_values(b);
  } catch (const dsg::Error&) {
  }
  return 0;
}
