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
  // clang-tidy's arguments (argv[0] first); ChecksIndex points at --checks if given.
  std::vector<std::string> TidyArgs;
  std::optional<size_t> ChecksIndex;
};

// Fills Error and returns nullopt on a malformed asyncstate-tidy flag.
std::optional<DriverOptions> parseArguments(int Argc, const char** Argv, std::string& Error);

// The text printed ahead of clang-tidy's own --help.
const char* driverHelp();

}  // namespace asyncstate_tidy
