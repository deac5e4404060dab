// Runs one of DSG's command-line tools from the build directory as a user would, for the CLI
// tests: exit status and the captured output.
#pragma once
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace dsg::test {

struct ToolRun {
  int status;          // exit status, -1 when the tool did not exit normally (a crash)
  std::string output;  // stdout, and stderr when requested
};

inline ToolRun run_tool(const std::string& tool, const std::string& args, bool with_stderr = true) {
  std::string cmd = std::string(DSG_BINARY_DIR) + "/" + tool + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The last non-empty line of `s` (where the tools print their one-line errors).
inline std::string last_line(const std::string& s) {
  auto end = s.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  auto start = s.rfind('\n', end);
  size_t from = start == std::string::npos ? 0 : start + 1;
  return s.substr(from, end - from + 1);
}

}  // namespace dsg::test
