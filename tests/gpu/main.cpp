// dsg_gpu_tests: the cross-device tests, run only where a CUDA device is present. Without one it
// prints why and exits with 77, which CTest reports as "skipped" (SKIP_RETURN_CODE), never as
// passed; scripts/gpu_check.sh treats it as a failure.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

#include "runtime/device.hpp"
#include "runtime/log.hpp"

int main(int argc, char* argv[]) {
  dsg::set_log_quiet(true);
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string(argv[i]).rfind("--list", 0) == 0;
  std::string reason;
  if (!listing && dsg::cuda_device_count(&reason) == 0) {
    const std::string prefix = "no CUDA device: ";
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
    std::printf("dsg_gpu_tests: skipped: no CUDA device: %s\n", reason.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
