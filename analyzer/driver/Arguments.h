// asyncstate-tidy's own flags. Everything else is clang-tidy's and is passed on
// untouched, so the driver accepts exactly what clang-tidy accepts.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace asyncstate_tidy {

enum class OutputFormat { Text, Json, Sarif };

struct DriverOptions {
  OutputFormat Format = OutputFormat::Text;
  bool MigrationReport = false;
  bool Help = false;
  std::string ExportFixes;  // as given by the user, if any
  std::string Baseline;     // --baseline FILE
  bool UpdateBaseline = false;
  std::optional<std::string> DiffBase;  // --diff BASE
  unsigned Jobs = 0;                    // -j N; 0 when not given
  std::string WorkerInventory;          // internal: a -j worker writes its UDF classes here
  // clang-tidy's flags (argv[0] first, without --export-fixes and source files);
  // ChecksIndex points at --checks if given.
  std::vector<std::string> TidyArgs;
  std::optional<size_t> ChecksIndex;
  std::vector<std::string> Sources;       // clang-tidy's positional arguments
  std::vector<std::string> CompilerArgs;  // `--` and what follows it
  std::string BuildPath;                  // -p
  bool Fix = false;                       // --fix, --fix-errors or --fix-notes
  bool HeaderFilter = false;              // --header-filter given
  bool LineFilter = false;                // --line-filter given

  // What the driver does beyond passing everything on to clang-tidy.
  bool structured() const {
    return Format != OutputFormat::Text || MigrationReport || !Baseline.empty() || DiffBase || Jobs > 0;
  }
  // Text output that the driver renders itself, because it filters or merges findings.
  bool rendersText() const { return Format == OutputFormat::Text && (!Baseline.empty() || DiffBase || Jobs > 0); }
};

// Fills Error and returns nullopt on a malformed asyncstate-tidy flag.
std::optional<DriverOptions> parseArguments(int Argc, const char** Argv, std::string& Error);

// The text printed ahead of clang-tidy's own --help.
const char* driverHelp();

}  // namespace asyncstate_tidy
