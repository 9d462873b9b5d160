#include "driver/Arguments.h"

#include "llvm/ADT/StringRef.h"

namespace asyncstate_tidy {

namespace {

// clang-tidy (llvm::cl) accepts -flag and --flag, with `=value` or a separate value.
std::optional<std::string> flagValue(llvm::StringRef Arg, llvm::StringRef Name, int& I, int Argc, const char** Argv,
                                     bool& Missing) {
  if (!Arg.consume_front("--")) Arg.consume_front("-");
  if (!Arg.consume_front(Name)) return std::nullopt;
  if (Arg.consume_front("=")) return Arg.str();
  if (!Arg.empty()) return std::nullopt;
  if (I + 1 >= Argc) {
    Missing = true;
    return std::string();
  }
  return std::string(Argv[++I]);
}

bool isFlag(llvm::StringRef Arg, llvm::StringRef Name) {
  if (!Arg.consume_front("--")) Arg.consume_front("-");
  return Arg == Name;
}

}  // namespace

std::optional<DriverOptions> parseArguments(int Argc, const char** Argv, std::string& Error) {
  DriverOptions Options;
  Options.TidyArgs.push_back(Argc > 0 ? Argv[0] : "asyncstate-tidy");
  for (int I = 1; I < Argc; ++I) {
    const llvm::StringRef Arg = Argv[I];
    if (Arg == "--") {  // compiler arguments follow; none of them are ours
      for (; I < Argc; ++I) Options.TidyArgs.push_back(Argv[I]);
      break;
    }
    bool Missing = false;
    if (auto Format = flagValue(Arg, "format", I, Argc, Argv, Missing)) {
      if (*Format == "text")
        Options.Format = OutputFormat::Text;
      else if (*Format == "json")
        Options.Format = OutputFormat::Json;
      else if (*Format == "sarif")
        Options.Format = OutputFormat::Sarif;
      else {
        Error = "--format must be text, json or sarif, not '" + *Format + "'";
        return std::nullopt;
      }
      continue;
    }
    if (isFlag(Arg, "migration-report")) {
      Options.MigrationReport = true;
      continue;
    }
    if (isFlag(Arg, "help") || isFlag(Arg, "help-hidden") || isFlag(Arg, "help-list")) Options.Help = true;
    const int Before = I;
    if (auto Path = flagValue(Arg, "export-fixes", I, Argc, Argv, Missing))
      Options.ExportFixes = *Path;
    else if (flagValue(Arg, "checks", I, Argc, Argv, Missing))
      Options.ChecksIndex = Options.TidyArgs.size();
    if (Missing) {
      Error = "missing value after " + Arg.str();
      return std::nullopt;
    }
    for (int J = Before; J <= I; ++J) Options.TidyArgs.push_back(Argv[J]);
  }
  return Options;
}

const char* driverHelp() {
  return "asyncstate-tidy: clang-tidy with the asyncstate-* checks built in.\n"
         "\n"
         "Every clang-tidy flag is accepted (-p, --checks, --fix, --export-fixes,\n"
         "--warnings-as-errors, --config-file, ...). Additional flags:\n"
         "\n"
         "  --format=text|json|sarif  text: clang-tidy's usual output (default);\n"
         "                            json: one JSON document on stdout;\n"
         "                            sarif: SARIF 2.1.0 on stdout, for GitHub code scanning\n"
         "  --migration-report        after the diagnostics, report per UDF class whether\n"
         "                            it is async-ready and why not (turns on\n"
         "                            asyncstate-sync-state-access, -raw-future and\n"
         "                            -blocking-callback)\n"
         "\n"
         "The exit status is clang-tidy's: non-zero on compiler errors, on findings\n"
         "promoted by --warnings-as-errors, and on unusable input.\n"
         "\n"
         "clang-tidy's own options follow.\n\n";
}

}  // namespace asyncstate_tidy
