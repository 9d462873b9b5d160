// The diagnostics of one asyncstate-tidy run, read back from the file clang-tidy
// exports with --export-fixes, with line and column resolved for every location.
#pragma once

#include "utils/UdfInventory.h"

#include "clang/Tooling/Core/Diagnostic.h"

#include <map>
#include <string>
#include <vector>

namespace asyncstate_tidy {

struct Position {
  unsigned Line = 0;         // 1-based; 0 when the file could not be read
  unsigned Column = 0;       // 1-based, in bytes, as clang counts (text and JSON output)
  unsigned Utf16Column = 0;  // 1-based, in UTF-16 code units, as SARIF counts
};

struct Edit {
  std::string File;
  unsigned Offset = 0;
  unsigned Length = 0;
  std::string Text;
  Position Begin, End;
};

// Where a finding stands against a baseline (SARIF's baselineState).
enum class BaselineState { None, New, Unchanged, Absent };

struct Note {
  std::string Message;
  std::string File;
  Position At;
};

struct Finding {
  std::string Check;
  std::string Message;
  std::string File;  // empty for diagnostics without a location
  unsigned Offset = 0;
  Position At;
  bool IsError = false;
  std::vector<Edit> Fixes;
  std::vector<Note> Notes;
  std::string LineText;     // the flagged source line, as written
  std::string Fingerprint;  // stable across unrelated edits, see Baseline.h
  BaselineState State = BaselineState::None;
  clang::tooling::Diagnostic Exported;  // as clang-tidy exported it, for --export-fixes
};

// Maps file offsets to lines and columns.
class LineTable {
 public:
  Position at(const std::string& File, unsigned Offset);
  // The text of a 1-based line without its line break; empty if unknown.
  std::string line(const std::string& File, unsigned Line);

 private:
  struct Lines {
    std::string Text;
    std::vector<unsigned> Starts;
  };
  const Lines& load(const std::string& File);
  std::map<std::string, Lines> Files;
};

// Appends the diagnostics of one exported file. Returns false (and sets Error) when
// the file exists but cannot be parsed; a missing file means clang-tidy produced no
// diagnostics file, i.e. no findings.
bool loadFindings(const std::string& YamlPath, std::vector<Finding>& Findings, std::string& Error);

// Sorts by file, offset and check, and drops repeats (a header's finding reported by
// several translation units of a -j run).
void sortFindings(std::vector<Finding>& Findings);

// Writes clang-tidy's --export-fixes YAML for the given findings.
bool exportFixes(const std::string& Path, const std::string& MainSourceFile, const std::vector<Finding>& Findings,
                 std::string& Error);

// A canonical absolute path, so paths from the AST and from clang-tidy compare.
std::string canonicalPath(const std::string& Path);

// Collects UDF classes from every translation unit, once each.
class Inventory : public clang::tidy::asyncstate::UdfInventory {
 public:
  void record(clang::tidy::asyncstate::UdfClassRecord Record) override;
  const std::vector<clang::tidy::asyncstate::UdfClassRecord>& classes() const { return Classes; }

 private:
  std::vector<clang::tidy::asyncstate::UdfClassRecord> Classes;
};

}  // namespace asyncstate_tidy
