#include "driver/ChangedLines.h"

#include "driver/Findings.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

namespace asyncstate_tidy {

namespace {

bool runGit(const std::vector<llvm::StringRef>& Args, std::string& Output, std::string& Error) {
  llvm::ErrorOr<std::string> Git = llvm::sys::findProgramByName("git");
  if (!Git) {
    Error = "--diff needs git on PATH";
    return false;
  }
  llvm::SmallString<128> OutPath, ErrPath;
  if (llvm::sys::fs::createTemporaryFile("asyncstate-tidy-git", "out", OutPath) ||
      llvm::sys::fs::createTemporaryFile("asyncstate-tidy-git", "err", ErrPath)) {
    Error = "cannot create a temporary file for git's output";
    return false;
  }
  const llvm::FileRemover RemoveOut(OutPath), RemoveErr(ErrPath);
  std::vector<llvm::StringRef> Argv{"git"};
  Argv.insert(Argv.end(), Args.begin(), Args.end());
  const std::optional<llvm::StringRef> Redirects[] = {llvm::StringRef(), llvm::StringRef(OutPath),
                                                      llvm::StringRef(ErrPath)};
  std::string ExecError;
  const int Status = llvm::sys::ExecuteAndWait(*Git, Argv, std::nullopt, Redirects, 0, 0, &ExecError);
  auto read = [](llvm::StringRef Path) {
    auto Buffer = llvm::MemoryBuffer::getFile(Path);
    return Buffer ? (*Buffer)->getBuffer().str() : std::string();
  };
  if (Status != 0) {
    std::string Command = "git";
    for (llvm::StringRef Arg : Args) Command += " " + Arg.str();
    Error = Command + " failed: " + (ExecError.empty() ? llvm::StringRef(read(ErrPath)).trim().str() : ExecError);
    return false;
  }
  Output = read(OutPath);
  return true;
}

}  // namespace

bool ChangedLines::load(const std::string& Base, std::string& Error) {
  std::string Toplevel, Diff;
  if (!runGit({"rev-parse", "--show-toplevel"}, Toplevel, Error)) return false;
  Toplevel = llvm::StringRef(Toplevel).trim().str();
  if (!runGit({"-c", "core.quotePath=false", "diff", "-U0", "--no-color", "--no-ext-diff", "--no-renames",
               "--src-prefix=a/", "--dst-prefix=b/", Base, "--"},
              Diff, Error))
    return false;
  FileLines* Current = nullptr;
  llvm::StringRef Rest(Diff);
  while (!Rest.empty()) {
    llvm::StringRef Line;
    std::tie(Line, Rest) = Rest.split('\n');
    if (Line.consume_front("+++ ")) {
      Current = nullptr;
      if (!Line.consume_front("b/")) continue;  // /dev/null: the file was deleted
      const std::string Path = Line.rtrim("\t").str();
      Current = &Files[canonicalPath(Toplevel + "/" + Path)];
      Current->RelativePath = Path;
      continue;
    }
    // @@ -a[,b] +c[,d] @@: d lines from c on are new; d = 0 is a pure deletion.
    if (!Current || !Line.consume_front("@@ -")) continue;
    const size_t Plus = Line.find(" +");
    if (Plus == llvm::StringRef::npos) continue;
    llvm::StringRef Range = Line.substr(Plus + 2);
    Range = Range.take_until([](char C) { return C == ' '; });
    auto [StartText, CountText] = Range.split(',');
    unsigned Start = 0, Count = 1;
    if (StartText.getAsInteger(10, Start) || (!CountText.empty() && CountText.getAsInteger(10, Count))) continue;
    if (Count > 0) Current->Lines.push_back({Start, Start + Count - 1});
  }
  for (auto It = Files.begin(); It != Files.end();) It = It->second.Lines.empty() ? Files.erase(It) : std::next(It);
  return true;
}

std::vector<std::string> ChangedLines::changedHeaders() const {
  std::vector<std::string> Headers;
  for (const auto& [File, Changed] : Files) {
    const llvm::StringRef Extension = llvm::sys::path::extension(File);
    if (llvm::is_contained({".h", ".hh", ".hpp", ".hxx", ".h++", ".inl", ".ipp"}, Extension.lower()))
      Headers.push_back(File);
  }
  return Headers;
}

namespace {

bool includes(const std::string& Source, llvm::StringRef HeaderName) {
  auto Buffer = llvm::MemoryBuffer::getFile(Source);
  if (!Buffer) return false;
  llvm::StringRef Rest = (*Buffer)->getBuffer();
  while (!Rest.empty()) {
    llvm::StringRef Line;
    std::tie(Line, Rest) = Rest.split('\n');
    Line = Line.ltrim();
    if (!Line.consume_front("#") || !Line.ltrim().starts_with("include")) continue;
    const size_t At = Line.find(HeaderName);
    if (At == llvm::StringRef::npos || At + HeaderName.size() >= Line.size()) continue;
    const char Before = At > 0 ? Line[At - 1] : ' ', After = Line[At + HeaderName.size()];
    if ((Before == '"' || Before == '<' || Before == '/') && (After == '"' || After == '>')) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> sourcesToAnalyze(const ChangedLines& Changes, const std::vector<std::string>& Sources) {
  std::vector<std::string> Result;
  for (const std::string& Source : Sources)
    if (Changes.changed(canonicalPath(Source))) Result.push_back(Source);
  for (const std::string& Header : Changes.changedHeaders()) {
    bool Included = false;
    for (const std::string& Source : Sources)
      if (includes(Source, llvm::sys::path::filename(Header))) {
        Included = true;
        if (!llvm::is_contained(Result, Source)) Result.push_back(Source);
      }
    if (!Included && llvm::sys::fs::exists(Header)) Result.push_back(Header);
  }
  return Result;
}

bool ChangedLines::changed(const std::string& CanonicalFile, unsigned Line) const {
  auto It = Files.find(CanonicalFile);
  if (It == Files.end()) return false;
  for (const auto& [First, Last] : It->second.Lines)
    if (First <= Line && Line <= Last) return true;
  return false;
}

std::string ChangedLines::lineFilter() const {
  llvm::json::Array Filter;
  for (const auto& [File, Changed] : Files) {
    llvm::json::Array Lines;
    for (const auto& [First, Last] : Changed.Lines)
      Lines.push_back(llvm::json::Array{static_cast<int64_t>(First), static_cast<int64_t>(Last)});
    Filter.push_back(llvm::json::Object{{"name", Changed.RelativePath}, {"lines", std::move(Lines)}});
  }
  std::string Text;
  llvm::raw_string_ostream(Text) << llvm::json::Value(std::move(Filter));
  return Text;
}

}  // namespace asyncstate_tidy
