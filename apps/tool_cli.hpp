// The command-line conventions shared by dsgtrain, dsgeval and dsgcompress (CLI11 based):
//   parse_command_line   --version, --help, and misuse -> the usage and the error on stderr, exit 2;
//   positive()           the validator of counts (--epochs, --iterations, --batches, ...): > 0;
//   thread_count()       the validator of --threads (>= 1); warn_thread_count() warns when a
//                        machine gets more threads than it has cores.
// The exit codes are the table in apps/tool_main.hpp.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "apps/tool_main.hpp"

#ifndef DSG_VERSION
#define DSG_VERSION "unknown"
#endif

namespace dsg::apps {

// "dsgtrain 0.1.0 (CUDA: on, MPI: off, ONNX: on)": the project version (CMake's project(dsg
// VERSION ...)) and the optional parts this build has.
inline std::string version_line(const char* tool) {
#ifdef DSG_WITH_CUDA
  const char* cuda = "on";
#else
  const char* cuda = "off";
#endif
#ifdef DSG_WITH_MPI
  const char* mpi = "on";
#else
  const char* mpi = "off";
#endif
#if defined(DSG_BUILD_ONNX) && DSG_BUILD_ONNX
  const char* onnx = "on";
#else
  const char* onnx = "off";
#endif
  return std::string(tool) + " " + DSG_VERSION + " (CUDA: " + cuda + ", MPI: " + mpi + ", ONNX: " + onnx + ")";
}

// A check after parsing failed: the usage and "TOOL: error: MESSAGE" on stderr; returns kUsageError.
inline int usage_error(const CLI::App& app, const char* tool, const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s\n%s: error: %s\n", app.help().c_str(), tool, message.c_str());
  return kUsageError;
}

// Parses argv into `app`. Returns the exit status when the tool should stop now: kOk after
// --version (the version line on stdout) or --help (the usage on stdout); kUsageError after misuse
// (unknown option, missing or bad value, missing argument), with the usage and then one line
// "TOOL: error: MESSAGE" on stderr. std::nullopt: go on.
inline std::optional<int> parse_command_line(CLI::App& app, const char* tool, int argc, char** argv) {
  app.add_flag("--version", "print the version and the build's options (CUDA, MPI, ONNX), then exit");
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) break;
    if (std::strcmp(argv[i], "--version") == 0) {
      std::printf("%s\n", version_line(tool).c_str());
      return kOk;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return kOk;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return kOk;
  } catch (const CLI::ParseError& e) {
    return usage_error(app, tool, e.what());
  }
  return std::nullopt;
}

// Counts: a finite number > 0 ("--epochs 0" is refused, not read as "the config's max_iter").
inline CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
        if (!(v > 0) || !std::isfinite(v)) return "must be a positive number, got " + s;
        return "";
      },
      "POSITIVE");
}

// --threads: an integer >= 1.
inline CLI::Validator thread_count() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        long long v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not an integer";
        if (v < 1) return "must be at least 1, got " + s;
        return "";
      },
      "INT>=1");
}

// One warning line on stderr when `threads` per process times `processes` on this machine exceeds
// its cores (oversubscribed threads spin and wait for each other: many times slower, not faster).
inline void warn_thread_count(const char* tool, int threads, int processes = 1) {
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores == 0 || int64_t(threads) * processes <= int64_t(cores)) return;
  std::fprintf(stderr, "%s: warning: --threads %d%s exceeds the %u cores of this machine; expect it to run slower\n",
               tool, threads, processes > 1 ? (" x " + std::to_string(processes) + " processes").c_str() : "", cores);
}

}  // namespace dsg::apps
