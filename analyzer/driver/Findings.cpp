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

namespace {

// UTF-16 code units in a UTF-8 byte range: one per character, two for the
// characters beyond the BMP (4-byte sequences); continuation bytes add nothing.
unsigned utf16Units(llvm::StringRef Utf8) {
  unsigned Units = 0;
  for (const char C : Utf8) {
    const auto Byte = static_cast<unsigned char>(C);
    if ((Byte & 0xC0) == 0x80) continue;
    Units += Byte >= 0xF0 ? 2 : 1;
  }
  return Units;
}

}  // namespace

const LineTable::Lines& LineTable::load(const std::string& File) {
  auto It = Files.find(File);
  if (It == Files.end()) {
    Lines Table;
    if (auto Buffer = llvm::MemoryBuffer::getFile(File, /*IsText=*/false, /*RequiresNullTerminator=*/false)) {
      Table.Text = (*Buffer)->getBuffer().str();
      Table.Starts.push_back(0);
      for (size_t I = 0; I < Table.Text.size(); ++I)
        if (Table.Text[I] == '\n') Table.Starts.push_back(static_cast<unsigned>(I + 1));
    }
    It = Files.emplace(File, std::move(Table)).first;
  }
  return It->second;
}

std::string LineTable::line(const std::string& File, unsigned Line) {
  const Lines& Table = load(File);
  if (Line == 0 || Line > Table.Starts.size()) return "";
  const size_t Begin = Table.Starts[Line - 1];
  const size_t End = Line < Table.Starts.size() ? Table.Starts[Line] - 1 : Table.Text.size();
  return llvm::StringRef(Table.Text).slice(Begin, End).rtrim("\r").str();
}

Position LineTable::at(const std::string& File, unsigned Offset) {
  const Lines& Table = load(File);
  if (Table.Starts.empty()) return {};
  const auto Line = std::upper_bound(Table.Starts.begin(), Table.Starts.end(), Offset) - 1;
  const llvm::StringRef Before = llvm::StringRef(Table.Text).slice(*Line, Offset);
  return {static_cast<unsigned>(Line - Table.Starts.begin()) + 1, Offset - *Line + 1, utf16Units(Before) + 1};
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
    if (!F.File.empty()) {
      F.At = Lines.at(F.File, F.Offset);
      F.LineText = Lines.line(F.File, F.At.Line);
    }
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
    for (const clang::tooling::DiagnosticMessage& Message : D.Notes) {
      Note N{Message.Message, canonicalPath(Message.FilePath), {}};
      if (!N.File.empty()) N.At = Lines.at(N.File, Message.FileOffset);
      F.Notes.push_back(std::move(N));
    }
    F.Exported = D;
    Findings.push_back(std::move(F));
  }
  sortFindings(Findings);
  return true;
}

void sortFindings(std::vector<Finding>& Findings) {
  auto Key = [](const Finding& F) { return std::tie(F.File, F.Offset, F.Check, F.Message); };
  // The key is total up to repeats, which are dropped, so the order is deterministic.
  std::sort(Findings.begin(), Findings.end(), [&](const Finding& A, const Finding& B) { return Key(A) < Key(B); });
  Findings.erase(std::unique(Findings.begin(), Findings.end(),
                             [&](const Finding& A, const Finding& B) { return Key(A) == Key(B); }),
                 Findings.end());
}

bool exportFixes(const std::string& Path, const std::string& MainSourceFile, const std::vector<Finding>& Findings,
                 std::string& Error) {
  clang::tooling::TranslationUnitDiagnostics Document;
  Document.MainSourceFile = MainSourceFile;
  for (const Finding& F : Findings) Document.Diagnostics.push_back(F.Exported);
  std::error_code EC;
  llvm::raw_fd_ostream Out(Path, EC, llvm::sys::fs::OF_Text);
  if (EC) {
    Error = "cannot write " + Path + ": " + EC.message();
    return false;
  }
  llvm::yaml::Output Yaml(Out);
  Yaml << Document;
  return true;
}

void Inventory::record(clang::tidy::asyncstate::UdfClassRecord Record) {
  Record.File = canonicalPath(Record.File);
  for (auto& Range : Record.Ranges) Range.first = canonicalPath(Range.first);
  for (auto& Known : Classes)
    if (Known.Name == Record.Name && Known.File == Record.File && Known.Line == Record.Line) {
      Known.Reported |= Record.Reported;
      return;
    }
  Classes.push_back(std::move(Record));
}

}  // namespace asyncstate_tidy
