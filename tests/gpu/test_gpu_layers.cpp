// Every layer case of tests/cases/ run on CUDA device 0 against the CPU path
// (tests/support/device_cases.hpp), in dsg_gpu_tests.
#include <catch2/catch.hpp>

#include "support/device_cases.hpp"

using namespace dsg;

TEST_CASE("every layer case on CUDA matches the CPU path", "[gpu][layers]") {
  REQUIRE(!test::device_cases().empty());
  Context target;
  target.device = Device::cuda(0);
  for (const test::DeviceCase& c : test::device_cases()) {
    DYNAMIC_SECTION(c.name) { test::run_device_case(c, target, /*check_copies=*/true); }
  }
}
