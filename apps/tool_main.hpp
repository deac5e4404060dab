// The error boundary shared by DSG's command-line tools: library code throws, the tool reports.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace dsg::apps {

// Exit codes of dsgtrain, dsgeval and dsgcompress (README "Exit codes"):
//   0  success (also --help and --version)
//   1  runtime error: the run started and failed (bad config or model, missing data, I/O, a
//      diverging run...); one line "TOOL: error: MESSAGE" on stderr
//   2  usage error: the command line is wrong (unknown option, missing or bad value, conflicting
//      options, an output extension that contradicts the format); the usage, then
//      "TOOL: error: MESSAGE" on stderr; nothing was run or written
enum ExitCode : int { kOk = 0, kRuntimeError = 1, kUsageError = 2 };

// Runs `body` and returns its exit status. A dsg::Error (or any std::exception) becomes one line
// "TOOL: error: MESSAGE (hint: HINT)" on stderr and exit status kRuntimeError; on a terminal the line first
// clears a progress line that may be showing.
inline int run_reporting_errors(const char* tool, const std::function<int()>& body) {
  auto report = [tool](const std::string& message, const std::string& hint) {
    set_progress_line_active(false);
    std::fflush(stdout);
    std::fprintf(stderr, "%s%s: error: %s%s%s\n", ::isatty(STDERR_FILENO) ? "\r\033[K" : "", tool, message.c_str(),
                 hint.empty() ? "" : " (hint: ", hint.empty() ? "" : (hint + ")").c_str());
    return int(kRuntimeError);
  };
  try {
    return body();
  } catch (const Error& e) {
    return report(e.what(), e.hint());
  } catch (const std::exception& e) {
    return report(e.what(), "");
  }
}

}  // namespace dsg::apps
