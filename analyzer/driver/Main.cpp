// asyncstate-tidy: clang-tidy's own main with the asyncstate module linked in, plus
// SARIF/JSON output, the migration report, baselines, -j and --diff, all built from
// the diagnostics clang-tidy exports (so NOLINT, --line-filter and de-duplication
// apply exactly as in text mode).
#include "driver/Arguments.h"
#include "driver/Baseline.h"
#include "driver/ChangedLines.h"
#include "driver/Findings.h"
#include "driver/Formats.h"
#include "driver/MigrationReport.h"
#include "driver/Workers.h"

#include "clang-tidy/tool/ClangTidyMain.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <fcntl.h>
#include <unistd.h>
#include <cstdio>

using namespace asyncstate_tidy;

namespace {

int runClangTidy(const std::vector<std::string>& Args) {
  std::vector<const char*> Argv;
  for (const std::string& Arg : Args) Argv.push_back(Arg.c_str());
  Argv.push_back(nullptr);
  return clang::tidy::clangTidyMain(static_cast<int>(Args.size()), Argv.data());
}

std::vector<std::string> commandLine(std::vector<std::string> Flags, const std::string& ExportFixes,
                                     const std::vector<std::string>& Sources,
                                     const std::vector<std::string>& CompilerArgs) {
  if (!ExportFixes.empty()) Flags.push_back("--export-fixes=" + ExportFixes);
  Flags.insert(Flags.end(), Sources.begin(), Sources.end());
  Flags.insert(Flags.end(), CompilerArgs.begin(), CompilerArgs.end());
  return Flags;
}

// JSON and SARIF own stdout; clang-tidy's text diagnostics would corrupt them.
class StdoutSilenced {
 public:
  StdoutSilenced() {
    llvm::outs().flush();
    std::fflush(stdout);
    Saved = dup(STDOUT_FILENO);
    const int Null = open("/dev/null", O_WRONLY);
    if (Saved >= 0 && Null >= 0) dup2(Null, STDOUT_FILENO);
    if (Null >= 0) close(Null);
  }
  ~StdoutSilenced() {
    llvm::outs().flush();
    std::fflush(stdout);
    if (Saved >= 0) {
      dup2(Saved, STDOUT_FILENO);
      close(Saved);
    }
  }
  StdoutSilenced(const StdoutSilenced&) = delete;
  StdoutSilenced& operator=(const StdoutSilenced&) = delete;

 private:
  int Saved = -1;
};

// A temporary directory for the exported diagnostics, removed with everything in it.
class ScratchDirectory {
 public:
  bool create(std::string& Error) {
    llvm::SmallString<128> Created;
    if (std::error_code EC = llvm::sys::fs::createUniqueDirectory("asyncstate-tidy", Created)) {
      Error = "cannot create a temporary directory: " + EC.message();
      return false;
    }
    Path = std::string(Created);
    return true;
  }
  ~ScratchDirectory() {
    if (!Path.empty()) llvm::sys::fs::remove_directories(Path);
  }
  std::string Path;
};

int fail(const std::string& Error, int Status = 2) {
  llvm::errs() << "asyncstate-tidy: error: " << Error << "\n";
  return Status;
}

std::string currentDirectory() {
  llvm::SmallString<256> Cwd;
  if (llvm::sys::fs::current_path(Cwd)) return "";
  return canonicalPath(std::string(Cwd));
}

}  // namespace

int main(int Argc, const char** Argv) {
  std::string Error;
  std::optional<DriverOptions> Options = parseArguments(Argc, Argv, Error);
  if (!Options) return fail(Error);
  const std::vector<std::string> PassThrough =
      commandLine(Options->TidyArgs, Options->ExportFixes, Options->Sources, Options->CompilerArgs);
  if (Options->Help) {
    llvm::outs() << driverHelp();
    return runClangTidy(PassThrough);
  }
  if (!Options->WorkerInventory.empty()) {  // one file of a -j run
    Inventory Udfs;
    clang::tidy::asyncstate::setUdfInventory(&Udfs);
    const int Status = runClangTidy(PassThrough);
    clang::tidy::asyncstate::setUdfInventory(nullptr);
    if (!writeInventory(Options->WorkerInventory, Udfs, Error)) return fail(Error);
    return Status;
  }
  if (!Options->structured()) return runClangTidy(PassThrough);
  const bool RecordsBaseline =
      !Options->Baseline.empty() && (Options->UpdateBaseline || !llvm::sys::fs::exists(Options->Baseline));
  if (RecordsBaseline && Options->DiffBase)
    return fail("--diff sees only changed lines, so it does not record a baseline: record " + Options->Baseline +
                " with a run over the whole project");

  std::vector<std::string> Flags = Options->TidyArgs;
  if (Options->MigrationReport) {
    const std::string Needed = "asyncstate-sync-state-access,asyncstate-raw-future,asyncstate-blocking-callback";
    if (Options->ChecksIndex) {
      std::string& Checks = Flags[*Options->ChecksIndex];
      // `--checks X` keeps its value in the next argument.
      std::string& Value = Checks.find('=') == std::string::npos ? Flags[*Options->ChecksIndex + 1] : Checks;
      Value += "," + Needed;
    } else {
      Flags.insert(Flags.begin() + 1, "--checks=" + Needed);
    }
  }

  // Without source files, -j and --diff take every file of the -p compilation database.
  std::vector<std::string> Sources = Options->Sources;
  if (Sources.empty() && !Options->BuildPath.empty() && (Options->Jobs > 0 || Options->DiffBase))
    if (!databaseFiles(Options->BuildPath, Sources, Error)) return fail(Error);

  ChangedLines Changes;
  if (Options->DiffBase) {
    if (!Changes.load(*Options->DiffBase, Error)) return fail(Error);
    std::vector<std::string> Changed = sourcesToAnalyze(Changes, Sources);
    if (Changed.empty())
      llvm::errs() << "asyncstate-tidy: no file to analyze changed since " << *Options->DiffBase << "\n";
    Sources = std::move(Changed);
    // Changed headers are reported too; the line filter keeps every unchanged line out.
    if (!Options->HeaderFilter) Flags.push_back("--header-filter=.*");
    Flags.push_back("--line-filter=" + Changes.lineFilter());
  }

  ScratchDirectory Scratch;
  if (!Scratch.create(Error)) return fail(Error);
  std::vector<Finding> Findings;
  Inventory Udfs;
  int Status = 0;
  if (Options->Jobs > 0 && !Sources.empty()) {
    const std::string Executable = llvm::sys::fs::getMainExecutable(Argv[0], reinterpret_cast<void*>(&fail));
    const WorkerOutput Workers = runWorkers(Executable, Flags, Sources, Options->CompilerArgs, Options->Jobs,
                                            Scratch.Path, Options->MigrationReport);
    Status = Workers.Status;
    for (const std::string& Exported : Workers.ExportFiles)
      if (!loadFindings(Exported, Findings, Error)) return fail(Error, Status ? Status : 2);
    for (const std::string& Classes : Workers.InventoryFiles)
      if (!readInventory(Classes, Udfs, Error)) return fail(Error, Status ? Status : 2);
  } else if (!Sources.empty() || !Options->DiffBase) {
    const std::string Exported = Scratch.Path + "/diagnostics.yaml";
    clang::tidy::asyncstate::setUdfInventory(Options->MigrationReport ? &Udfs : nullptr);
    if (Options->Format == OutputFormat::Text && !Options->rendersText()) {
      Status = runClangTidy(commandLine(Flags, Exported, Sources, Options->CompilerArgs));
    } else {
      const StdoutSilenced Silence;
      Status = runClangTidy(commandLine(Flags, Exported, Sources, Options->CompilerArgs));
    }
    clang::tidy::asyncstate::setUdfInventory(nullptr);
    if (!loadFindings(Exported, Findings, Error)) return fail(Error, Status ? Status : 2);
  }
  if (Options->DiffBase) {  // exact paths, where clang-tidy's line filter matches path suffixes
    std::vector<Finding> OnChangedLines;
    for (Finding& F : Findings)
      if (F.IsError || F.File.empty() || Changes.changed(F.File, F.At.Line)) OnChangedLines.push_back(std::move(F));
    Findings = std::move(OnChangedLines);
  }

  const std::string Root = Options->Baseline.empty() ? currentDirectory() : baselineRoot(Options->Baseline);
  fingerprint(Findings, Root);
  std::optional<BaselineOutcome> Outcome;
  // clang-tidy failing without a single diagnostic (unusable arguments, a crash) is no
  // state to record or compare.
  const bool RunFailed = Status != 0 && Findings.empty();
  if (!Options->Baseline.empty() && !RunFailed) {
    if (RecordsBaseline) {
      unsigned Recorded = 0;
      if (!writeBaseline(Options->Baseline, Findings, Root, Recorded, Error)) return fail(Error);
      llvm::errs() << "asyncstate-tidy: recorded " << Recorded << " finding" << (Recorded == 1 ? "" : "s") << " in "
                   << Options->Baseline << "\n";
      Status = 0;
    } else {
      std::vector<BaselineEntry> Entries;
      if (!readBaseline(Options->Baseline, Entries, Error)) return fail(Error);
      Outcome = BaselineOutcome{Root, compareWithBaseline(Findings, Entries)};
      // A --diff run sees only part of the project; what it did not analyze is not fixed.
      if (Options->DiffBase) Outcome->Comparison.Absent.clear();
      const BaselineComparison& C = Outcome->Comparison;
      llvm::errs() << "asyncstate-tidy: baseline " << Options->Baseline << ": " << C.New << " new, " << C.Unchanged
                   << " suppressed by the baseline, " << C.Absent.size() << " in the baseline no longer found\n";
      Status = C.New > 0 ? 1 : 0;
    }
    for (const Finding& F : Findings)
      if (F.IsError) Status = 1;
  }

  std::optional<MigrationReport> Report;
  if (Options->MigrationReport) Report.emplace(Udfs, Findings);
  const BaselineOutcome* Baseline = Outcome ? &*Outcome : nullptr;
  switch (Options->Format) {
    case OutputFormat::Text:
      if (Options->rendersText()) writeText(llvm::outs(), Findings);
      if (Report) Report->print(llvm::outs());
      break;
    case OutputFormat::Json:
      writeJson(llvm::outs(), Findings, Report ? std::optional<llvm::json::Value>(Report->toJson()) : std::nullopt,
                Baseline);
      break;
    case OutputFormat::Sarif:
      writeSarif(llvm::outs(), Findings, Baseline);
      if (Report) Report->print(llvm::errs());
      break;
  }
  llvm::outs().flush();

  if (!Options->ExportFixes.empty()) {
    std::vector<Finding> Reported;
    for (const Finding& F : Findings)
      if (F.State != BaselineState::Unchanged) Reported.push_back(F);
    if (!exportFixes(Options->ExportFixes, Sources.empty() ? "" : canonicalPath(Sources.front()), Reported, Error))
      return fail(Error);
  }
  return Status;
}
