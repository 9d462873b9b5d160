#include "driver/Findings.h"

#include "clang/Tooling/DiagnosticsYaml.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <tuple>

namespace asyncstate_tidy {

std::string canonicalPath(const std::string& Path) {
  if (Path.empty()) return Path;
  llvm::SmallString<256> Real;
  if (!llvm::sys::fs::real_path(Path, Real)) return std::string(Real);
  llvm::SmallString<256> Absolute(Path);
  llvm::sys::fs::make_absolute(Absolute);
  llvm::sys::path::remove_dots(Absolute, true);
  return std::string(Absolute);
}

Position LineTable::at(const std::string& File, unsigned Offset) {
  auto It = LineStarts.find(File);
  if (It == LineStarts.end()) {
    std::vector<unsigned> Starts;
    if (auto Buffer = llvm::MemoryBuffer::getFile(File, /*IsText=*/false, /*RequiresNullTerminator=*/false)) {
      const llvm::StringRef Text = (*Buffer)->getBuffer();
      Starts.push_back(0);
      for (size_t I = 0; I < Text.size(); ++I)
        if (Text[I] == '\n') Starts.push_back(static_cast<unsigned>(I + 1));
    }
    It = LineStarts.emplace(File, std::move(Starts)).first;
  }
  const std::vector<unsigned>& Starts = It->second;
  if (Starts.empty()) return {};
  const auto Line = std::upper_bound(Starts.begin(), Starts.end(), Offset) - 1;
  return {static_cast<unsigned>(Line - Starts.begin()) + 1, Offset - *Line + 1};
}

bool loadFindings(const std::string& YamlPath, std::vector<Finding>& Findings, std::string& Error) {
  auto Buffer = llvm::MemoryBuffer::getFile(YamlPath);
  if (!Buffer) return true;
  clang::tooling::TranslationUnitDiagnostics Exported;
  llvm::yaml::Input Input((*Buffer)->getBuffer());
  Input >> Exported;
  if (Input.error()) {
    Error = "cannot parse the diagnostics clang-tidy exported to " + YamlPath;
    return false;
  }
  LineTable Lines;
  for (const clang::tooling::Diagnostic& D : Exported.Diagnostics) {
    Finding F;
    F.Check = D.DiagnosticName;
    F.Message = D.Message.Message;
    F.File = canonicalPath(D.Message.FilePath);
    F.Offset = D.Message.FileOffset;
    F.IsError = D.DiagLevel == clang::tooling::Diagnostic::Error;
    if (!F.File.empty()) F.At = Lines.at(F.File, F.Offset);
    for (const auto& FileFix : D.Message.Fix)
      for (const clang::tooling::Replacement& R : FileFix.getValue()) {
        Edit E;
        E.File = canonicalPath(R.getFilePath().str());
        E.Offset = R.getOffset();
        E.Length = R.getLength();
        E.Text = R.getReplacementText().str();
        E.Begin = Lines.at(E.File, E.Offset);
        E.End = Lines.at(E.File, E.Offset + E.Length);
        F.Fixes.push_back(std::move(E));
      }
    Findings.push_back(std::move(F));
  }
  std::stable_sort(Findings.begin(), Findings.end(), [](const Finding& A, const Finding& B) {
    return std::tie(A.File, A.Offset, A.Check) < std::tie(B.File, B.Offset, B.Check);
  });
  return true;
}

void Inventory::record(clang::tidy::asyncstate::UdfClassRecord Record) {
  Record.File = canonicalPath(Record.File);
  for (auto& Range : Record.Ranges) Range.first = canonicalPath(Range.first);
  for (auto& Known : Classes)
    if (Known.Name == Record.Name && Known.File == Record.File && Known.Line == Record.Line) {
      Known.InMainFile |= Record.InMainFile;
      return;
    }
  Classes.push_back(std::move(Record));
}

}  // namespace asyncstate_tidy
