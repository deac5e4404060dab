#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "runtime/log.hpp"

int main(int argc, char* argv[]) {
  dsg::set_log_quiet(true);
  return Catch::Session().run(argc, argv);
}
