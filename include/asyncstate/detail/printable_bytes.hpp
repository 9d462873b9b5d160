#pragma once
// How error messages of the core and of every backend show keys, which are arbitrary bytes.

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace asyncstate::detail {

// Printable ASCII as is, the rest (and the backslash) as \xNN; at most maxChars, then "...".
inline std::string printableBytes(std::string_view bytes, std::size_t maxChars = 64) {
  std::string out;
  for (unsigned char c : bytes) {
    if (out.size() >= maxChars) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace asyncstate::detail
