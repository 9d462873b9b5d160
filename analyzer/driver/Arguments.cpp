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

// clang-tidy 19's options that take a value (which may be the next argument);
// every other argument not starting with '-' is a source file.
constexpr llvm::StringLiteral ValueOptions[] = {"checks",
                                                "warnings-as-errors",
                                                "header-filter",
                                                "exclude-header-filter",
                                                "line-filter",
                                                "format-style",
                                                "config",
                                                "config-file",
                                                "store-check-profile",
                                                "vfsoverlay",
                                                "extra-arg",
                                                "extra-arg-before",
                                                "p",
                                                "load"};

// -j N, -jN, -j=N, --jobs N, --jobs=N.
std::optional<std::string> jobsValue(llvm::StringRef Arg, int& I, int Argc, const char** Argv, bool& Missing) {
  if (auto Value = flagValue(Arg, "jobs", I, Argc, Argv, Missing)) return Value;
  if (!Arg.consume_front("-j")) return std::nullopt;
  Arg.consume_front("=");
  if (!Arg.empty()) return Arg.str();
  if (I + 1 >= Argc) {
    Missing = true;
    return std::string();
  }
  return std::string(Argv[++I]);
}

}  // namespace

std::optional<DriverOptions> parseArguments(int Argc, const char** Argv, std::string& Error) {
  DriverOptions Options;
  Options.TidyArgs.push_back(Argc > 0 ? Argv[0] : "asyncstate-tidy");
  for (int I = 1; I < Argc; ++I) {
    const llvm::StringRef Arg = Argv[I];
    if (Arg == "--") {  // compiler arguments follow; none of them are ours
      for (; I < Argc; ++I) Options.CompilerArgs.push_back(Argv[I]);
      break;
    }
    bool Missing = false;
    auto missing = [&] {
      Error = "missing value after " + Arg.str();
      return std::nullopt;
    };
    if (auto Format = flagValue(Arg, "format", I, Argc, Argv, Missing)) {
      if (Missing) return missing();
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
    if (isFlag(Arg, "update-baseline")) {
      Options.UpdateBaseline = true;
      continue;
    }
    if (auto Path = flagValue(Arg, "baseline", I, Argc, Argv, Missing)) {
      if (Missing || Path->empty()) return missing();
      Options.Baseline = *Path;
      continue;
    }
    if (auto Base = flagValue(Arg, "diff", I, Argc, Argv, Missing)) {
      if (Missing || Base->empty()) return missing();
      Options.DiffBase = *Base;
      continue;
    }
    if (auto Path = flagValue(Arg, "asyncstate-worker-inventory", I, Argc, Argv, Missing)) {
      if (Missing) return missing();
      Options.WorkerInventory = *Path;
      continue;
    }
    if (auto Jobs = jobsValue(Arg, I, Argc, Argv, Missing)) {
      if (Missing) return missing();
      unsigned N = 0;
      if (llvm::StringRef(*Jobs).getAsInteger(10, N) || N == 0) {
        Error = "-j needs a positive number of jobs, not '" + *Jobs + "'";
        return std::nullopt;
      }
      Options.Jobs = N;
      continue;
    }
    if (auto Path = flagValue(Arg, "export-fixes", I, Argc, Argv, Missing)) {
      if (Missing) return missing();
      Options.ExportFixes = *Path;
      continue;
    }
    if (isFlag(Arg, "help") || isFlag(Arg, "help-hidden") || isFlag(Arg, "help-list")) Options.Help = true;
    if (isFlag(Arg, "fix") || isFlag(Arg, "fix-errors") || isFlag(Arg, "fix-notes")) Options.Fix = true;
    if (!Arg.starts_with("-")) {
      Options.Sources.push_back(Arg.str());
      continue;
    }
    const int Before = I;
    for (llvm::StringRef Name : ValueOptions) {
      const std::optional<std::string> Value = flagValue(Arg, Name, I, Argc, Argv, Missing);
      if (!Value) continue;
      if (Name == "checks") Options.ChecksIndex = Options.TidyArgs.size();
      if (Name == "p") Options.BuildPath = *Value;
      Options.HeaderFilter |= Name == "header-filter";
      Options.LineFilter |= Name == "line-filter";
      break;
    }
    if (Missing) return missing();
    for (int J = Before; J <= I; ++J) Options.TidyArgs.push_back(Argv[J]);
  }
  if (Options.UpdateBaseline && Options.Baseline.empty()) {
    Error = "--update-baseline needs --baseline FILE";
    return std::nullopt;
  }
  if (Options.Jobs > 0 && Options.Fix) {
    Error =
        "--fix cannot be combined with -j (workers would rewrite shared headers at the same time): "
        "write the fixes with --export-fixes FILE and apply them with clang-apply-replacements";
    return std::nullopt;
  }
  if (Options.DiffBase && Options.LineFilter) {
    Error = "--diff sets clang-tidy's --line-filter itself; give one or the other";
    return std::nullopt;
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
         "  --baseline=FILE           if FILE does not exist, record today's findings in it;\n"
         "                            if it does, report only findings not recorded there\n"
         "  --update-baseline         with --baseline: record today's findings even if FILE exists\n"
         "  -j N, --jobs=N            analyze the files (or, without files, every file of the\n"
         "                            -p compilation database) in N parallel processes\n"
         "  --diff=BASE               analyze only the files `git diff BASE` changes and report\n"
         "                            only findings on changed lines\n"
         "\n"
         "The exit status is clang-tidy's: non-zero on compiler errors, on findings\n"
         "promoted by --warnings-as-errors, and on unusable input. With --baseline it is\n"
         "1 when there are new findings (or compiler errors), 0 otherwise; 2 on unusable\n"
         "input.\n"
         "\n"
         "clang-tidy's own options follow.\n\n";
}

}  // namespace asyncstate_tidy
