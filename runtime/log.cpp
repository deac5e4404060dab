#include "runtime/log.hpp"

#include <atomic>
#include <cstdio>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace dsg {
namespace {

std::atomic<bool> progress_active{false};

void clear_progress_line() {
  if (progress_active.load()) std::fputs("\r\033[K", stderr);
}

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("dsg", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%L%m%d %H:%M:%S.%f %6t dsg] %v");
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return *instance;
}

}  // namespace

void log_info(const std::string& message) {
  if (!logger().should_log(spdlog::level::info)) return;
  clear_progress_line();
  logger().info(message);
}
void log_warn(const std::string& message) {
  clear_progress_line();
  logger().warn(message);
}
void log_error(const std::string& message) {
  clear_progress_line();
  logger().error(message);
}
void set_progress_line_active(bool active) { progress_active = active; }
void set_log_quiet(bool quiet) { logger().set_level(quiet ? spdlog::level::warn : spdlog::level::info); }
void set_log_errors_only() { logger().set_level(spdlog::level::err); }

}  // namespace dsg
