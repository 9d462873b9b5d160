// The UDF classes a translation unit defines, for the driver's migration report.
// The plugin never installs a sink, so the checks pay nothing for it there.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace clang::tidy::asyncstate {

struct UdfClassRecord {
  std::string Name;  // qualified, as written in the report
  std::string File;  // absolute path of the class definition
  unsigned Line = 0;
  // Defined in a file given to the tool, or in a header whose diagnostics
  // HeaderFilterRegex (command line or .clang-tidy) lets through.
  bool Reported = false;
  // File offsets of the class body and of out-of-line member definitions, so
  // diagnostics can be attributed to the class they occur in.
  std::vector<std::pair<std::string, std::pair<unsigned, unsigned>>> Ranges;
};

class UdfInventory {
 public:
  virtual ~UdfInventory() = default;
  virtual void record(UdfClassRecord Record) = 0;
};

void setUdfInventory(UdfInventory* Inventory);
UdfInventory* udfInventory();

}  // namespace clang::tidy::asyncstate
