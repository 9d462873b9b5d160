// Baselines: a committed record of accepted findings, so CI reports only new ones.
//
// A finding's fingerprint hashes its check, its file relative to the baseline's
// directory, the flagged source line with whitespace collapsed, its message, and its
// index among findings with the same four in that file. Line numbers are left out on
// purpose: lines added above, reindentation or a moved function keep the fingerprint;
// editing the flagged line changes it.
#pragma once

#include "driver/Findings.h"

#include <string>
#include <vector>

namespace asyncstate_tidy {

struct BaselineEntry {
  std::string Fingerprint;
  std::string Check;
  std::string File;  // relative to the baseline file's directory
  std::string Message;
  std::string Line;  // the flagged line, whitespace collapsed
};

struct BaselineComparison {
  unsigned New = 0;
  unsigned Unchanged = 0;
  std::vector<BaselineEntry> Absent;  // recorded, no longer found
};

// The directory whose relative paths the fingerprints use.
std::string baselineRoot(const std::string& BaselinePath);

// Sets Finding::Fingerprint for every finding (Findings sorted as sortFindings leaves them).
void fingerprint(std::vector<Finding>& Findings, const std::string& Root);

bool readBaseline(const std::string& Path, std::vector<BaselineEntry>& Entries, std::string& Error);

// Records every finding except compiler errors, sorted, one entry per finding.
bool writeBaseline(const std::string& Path, const std::vector<Finding>& Findings, const std::string& Root,
                   unsigned& Recorded, std::string& Error);

// Marks each finding New or Unchanged; compiler errors are always new.
BaselineComparison compareWithBaseline(std::vector<Finding>& Findings, const std::vector<BaselineEntry>& Entries);

}  // namespace asyncstate_tidy
