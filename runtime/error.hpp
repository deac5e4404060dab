// DSG's error type. Library code throws dsg::Error (never exits); apps/ catch it, print the
// message (and hint) on one line and exit non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace dsg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, std::string hint = "")
      : std::runtime_error(message), hint_(std::move(hint)) {}
  // A suggestion for the user ("install dataset-fashion-mnist", ...); may be empty.
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

// printf-style formatting into a std::string.
std::string strfmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace dsg

// Throws dsg::Error with the source location when `cond` is false. `msg` is any expression
// convertible to std::string (use dsg::strfmt for formatting).
#define DSG_CHECK(cond, msg)                                                      \
  do {                                                                            \
    if (!(cond)) throw ::dsg::Error(std::string(msg));                            \
  } while (0)
