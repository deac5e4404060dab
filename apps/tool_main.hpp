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

// Runs `body` and returns its exit status. A dsg::Error (or any std::exception) becomes one line
// "TOOL: error: MESSAGE (hint: HINT)" on stderr and exit status 1; on a terminal the line first
// clears a progress line that may be showing.
inline int run_reporting_errors(const char* tool, const std::function<int()>& body) {
  auto report = [tool](const std::string& message, const std::string& hint) {
    set_progress_line_active(false);
    std::fflush(stdout);
    std::fprintf(stderr, "%s%s: error: %s%s%s\n", ::isatty(STDERR_FILENO) ? "\r\033[K" : "", tool, message.c_str(),
                 hint.empty() ? "" : " (hint: ", hint.empty() ? "" : (hint + ")").c_str());
    return 1;
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
