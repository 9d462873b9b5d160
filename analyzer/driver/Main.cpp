// asyncstate-tidy: clang-tidy's own main with the asyncstate module linked in, plus
// SARIF/JSON output and the migration report built from the diagnostics clang-tidy
// exports (so NOLINT, --line-filter and de-duplication apply exactly as in text mode).
#include "driver/Arguments.h"
#include "driver/Findings.h"
#include "driver/Formats.h"
#include "driver/MigrationReport.h"

#include "clang-tidy/tool/ClangTidyMain.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
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

}  // namespace

int main(int Argc, const char** Argv) {
  std::string Error;
  std::optional<DriverOptions> Options = parseArguments(Argc, Argv, Error);
  if (!Options) {
    llvm::errs() << "asyncstate-tidy: error: " << Error << "\n";
    return 2;
  }
  if (Options->Help) llvm::outs() << driverHelp();
  if (Options->Help || (Options->Format == OutputFormat::Text && !Options->MigrationReport))
    return runClangTidy(Options->TidyArgs);

  std::vector<std::string> Args = Options->TidyArgs;
  if (Options->MigrationReport) {
    const std::string Needed = "asyncstate-sync-state-access,asyncstate-raw-future,asyncstate-blocking-callback";
    if (Options->ChecksIndex) {
      std::string& Checks = Args[*Options->ChecksIndex];
      // `--checks X` keeps its value in the next argument.
      std::string& Value = Checks.find('=') == std::string::npos ? Args[*Options->ChecksIndex + 1] : Checks;
      Value += "," + Needed;
    } else {
      Args.insert(Args.begin() + 1, "--checks=" + Needed);
    }
  }
  std::string ExportPath = Options->ExportFixes;
  std::optional<llvm::FileRemover> RemoveExport;
  if (ExportPath.empty()) {
    llvm::SmallString<128> Temporary;
    if (std::error_code EC = llvm::sys::fs::createTemporaryFile("asyncstate-tidy", "yaml", Temporary)) {
      llvm::errs() << "asyncstate-tidy: error: cannot create a temporary file: " << EC.message() << "\n";
      return 2;
    }
    ExportPath = std::string(Temporary);
    RemoveExport.emplace(ExportPath);
    // An empty file would read as "no diagnostics" if clang-tidy never gets to write it.
    llvm::sys::fs::remove(ExportPath);
    Args.insert(Args.begin() + 1, "--export-fixes=" + ExportPath);
  }

  Inventory Udfs;
  clang::tidy::asyncstate::setUdfInventory(Options->MigrationReport ? &Udfs : nullptr);
  int Status = 0;
  if (Options->Format == OutputFormat::Text) {
    Status = runClangTidy(Args);
  } else {
    const StdoutSilenced Silence;
    Status = runClangTidy(Args);
  }
  clang::tidy::asyncstate::setUdfInventory(nullptr);

  std::vector<Finding> Findings;
  if (!loadFindings(ExportPath, Findings, Error)) {
    llvm::errs() << "asyncstate-tidy: error: " << Error << "\n";
    return Status ? Status : 2;
  }
  std::optional<MigrationReport> Report;
  if (Options->MigrationReport) Report.emplace(Udfs, Findings);

  switch (Options->Format) {
    case OutputFormat::Text: Report->print(llvm::outs()); break;
    case OutputFormat::Json:
      writeJson(llvm::outs(), Findings, Report ? std::optional<llvm::json::Value>(Report->toJson()) : std::nullopt);
      break;
    case OutputFormat::Sarif:
      writeSarif(llvm::outs(), Findings);
      if (Report) Report->print(llvm::errs());
      break;
  }
  llvm::outs().flush();
  return Status;
}
