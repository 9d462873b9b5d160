#pragma once
// Prometheus text exposition (format 0.0.4) of a MetricsSnapshot.
//
// Label values are user data (state names, keys): they are made valid UTF-8 first (a
// byte that is not part of a valid UTF-8 sequence is written as the text \xNN) and then
// escaped as the format requires (backslash, double quote, line feed), so any key
// yields a scrape that parses.

#include <asyncstate/metrics_registry.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

namespace asyncstate {

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

namespace detail {

// Length of the valid UTF-8 sequence starting at text[i], or 0 when it is not one.
inline std::size_t utf8SequenceLength(std::string_view text, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  std::uint32_t min = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  std::uint32_t code = lead & (0x7F >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not valid UTF-8.
  if (code < min || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return 0;
  return length;
}

}  // namespace detail

// Valid UTF-8 with every invalid byte replaced by the four characters \xNN.
inline std::string toValidUtf8(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (const std::size_t n = detail::utf8SequenceLength(text, i); n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      const auto b = static_cast<unsigned char>(text[i]);
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
      ++i;
    }
  }
  return out;
}

// A label value as it appears between the quotes.
inline std::string escapeLabelValue(std::string_view value) {
  std::string out;
  for (const char c : toValidUtf8(value)) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

// HELP text: backslash and line feed are escaped (quotes are not).
inline std::string escapeHelp(std::string_view help) {
  std::string out;
  for (const char c : toValidUtf8(help)) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

// Shortest text that reads back as the same double; +Inf, -Inf and NaN as Prometheus spells them.
inline std::string formatPrometheusValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

namespace detail {

inline void writeLabels(std::ostream& out, const MetricLabels& labels, std::string_view extraName = {},
                        std::string_view extraValue = {}) {
  if (labels.empty() && extraName.empty()) return;
  out << '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out << ',';
    first = false;
    out << name << "=\"" << escapeLabelValue(value) << '"';
  }
  if (!extraName.empty()) {
    if (!first) out << ',';
    out << extraName << "=\"" << extraValue << '"';
  }
  out << '}';
}

}  // namespace detail

inline void writePrometheusText(std::ostream& out, const MetricsSnapshot& snapshot) {
  for (const MetricFamily& family : snapshot.families) {
    out << "# HELP " << family.name << ' ' << escapeHelp(family.help) << '\n';
    out << "# TYPE " << family.name << ' ' << toString(family.type) << '\n';
    for (const MetricSample& sample : family.samples) {
      if (family.type != MetricType::Histogram) {
        out << family.name;
        detail::writeLabels(out, sample.labels);
        out << ' ' << formatPrometheusValue(sample.value) << '\n';
        continue;
      }
      const HistogramData& h = sample.histogram;
      for (std::size_t i = 0; i < h.cumulative.size(); ++i) {
        const std::string le = i < h.bounds.size() ? formatPrometheusValue(h.bounds[i]) : "+Inf";
        out << family.name << "_bucket";
        detail::writeLabels(out, sample.labels, "le", le);
        out << ' ' << h.cumulative[i] << '\n';
      }
      out << family.name << "_sum";
      detail::writeLabels(out, sample.labels);
      out << ' ' << formatPrometheusValue(h.sum) << '\n';
      out << family.name << "_count";
      detail::writeLabels(out, sample.labels);
      out << ' ' << h.count() << '\n';
    }
  }
}

inline std::string toPrometheusText(const MetricsSnapshot& snapshot) {
  std::ostringstream out;
  writePrometheusText(out, snapshot);
  return out.str();
}

}  // namespace asyncstate
