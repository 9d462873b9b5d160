// --diff BASE: the lines `git diff -U0 BASE` adds or changes, per file, as
// clang-tidy-diff.py reads them.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate_tidy {

// The sources to analyze for a diff: the changed ones among Sources, plus for each
// changed header the sources that include it directly, or the header itself (as
// clang-tidy-diff.py does) when none does.
std::vector<std::string> sourcesToAnalyze(const class ChangedLines& Changes, const std::vector<std::string>& Sources);

class ChangedLines {
 public:
  // Runs git in the working directory's repository; false (and Error) if git fails.
  bool load(const std::string& Base, std::string& Error);

  bool changed(const std::string& CanonicalFile) const { return Files.count(CanonicalFile) != 0; }
  // The changed files that are not translation units of their own (headers).
  std::vector<std::string> changedHeaders() const;
  bool changed(const std::string& CanonicalFile, unsigned Line) const;
  // clang-tidy's --line-filter value for the changed lines.
  std::string lineFilter() const;

 private:
  struct FileLines {
    std::string RelativePath;                          // as git prints it
    std::vector<std::pair<unsigned, unsigned>> Lines;  // 1-based, inclusive
  };
  std::map<std::string, FileLines> Files;  // by canonical path; only files with added lines
};

}  // namespace asyncstate_tidy
