// Logging in glog/Caffe line format ("I1122 15:10:00.123456  1234 dsg] message") so existing
// Caffe log parsers work. spdlog stays behind this header to keep compile times down.
#pragma once
#include <string>

namespace dsg {

void log_info(const std::string& message);
void log_warn(const std::string& message);
void log_error(const std::string& message);
// Quiet mode drops info lines (tests use it).
void set_log_quiet(bool quiet);
// Only error lines (the ranks other than 0 of a data-parallel run).
void set_log_errors_only();
// While a terminal progress line is shown, log lines first clear it (dsgtrain redraws it).
void set_progress_line_active(bool active);

}  // namespace dsg
