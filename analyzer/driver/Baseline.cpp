#include "driver/Baseline.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MD5.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <map>
#include <set>
#include <tuple>

namespace asyncstate_tidy {

namespace {

constexpr int64_t FormatVersion = 1;

std::string collapseWhitespace(llvm::StringRef Text) {
  std::string Result;
  bool PendingSpace = false;
  for (const char C : Text.trim()) {
    if (llvm::isSpace(C)) {
      PendingSpace = true;
      continue;
    }
    if (PendingSpace) Result += ' ';
    PendingSpace = false;
    Result += C;
  }
  return Result;
}

std::string relativeTo(const std::string& Root, const std::string& File) {
  llvm::StringRef Path(File);
  if (!Root.empty() && Path.consume_front(Root) && Path.consume_front("/")) return Path.str();
  return File;
}

BaselineEntry entryFor(const Finding& F, const std::string& Root) {
  return {F.Fingerprint, F.Check, relativeTo(Root, F.File), F.Message, collapseWhitespace(F.LineText)};
}

}  // namespace

std::string baselineRoot(const std::string& BaselinePath) {
  llvm::SmallString<256> Absolute(BaselinePath);
  llvm::sys::fs::make_absolute(Absolute);
  return canonicalPath(std::string(llvm::sys::path::parent_path(Absolute)));
}

void fingerprint(std::vector<Finding>& Findings, const std::string& Root) {
  std::map<std::tuple<std::string, std::string, std::string, std::string>, unsigned> Seen;
  for (Finding& F : Findings) {
    const BaselineEntry E = entryFor(F, Root);
    const unsigned Index = Seen[{E.Check, E.File, E.Line, E.Message}]++;
    llvm::MD5 Hash;
    for (llvm::StringRef Part : {llvm::StringRef("asyncstate/v1"), llvm::StringRef(E.Check), llvm::StringRef(E.File),
                                 llvm::StringRef(E.Line), llvm::StringRef(E.Message)}) {
      Hash.update(Part);
      Hash.update(llvm::ArrayRef<uint8_t>{0});
    }
    Hash.update(std::to_string(Index));
    llvm::MD5::MD5Result Digest;
    Hash.final(Digest);
    F.Fingerprint = std::string(Digest.digest());
  }
}

bool readBaseline(const std::string& Path, std::vector<BaselineEntry>& Entries, std::string& Error) {
  auto Buffer = llvm::MemoryBuffer::getFile(Path);
  if (!Buffer) {
    Error = "cannot read the baseline " + Path + ": " + Buffer.getError().message();
    return false;
  }
  llvm::Expected<llvm::json::Value> Document = llvm::json::parse((*Buffer)->getBuffer());
  if (!Document) {
    Error = "the baseline " + Path + " is not JSON: " + llvm::toString(Document.takeError());
    return false;
  }
  const llvm::json::Object* Root = Document->getAsObject();
  const llvm::json::Array* List = Root ? Root->getArray("findings") : nullptr;
  if (!Root || Root->getInteger("version") != FormatVersion || !List) {
    Error = "the baseline " + Path + " is not an asyncstate-tidy baseline (version 1 with a \"findings\" list)";
    return false;
  }
  for (const llvm::json::Value& Item : *List) {
    const llvm::json::Object* Entry = Item.getAsObject();
    auto field = [&](llvm::StringRef Name) {
      auto Value = Entry ? Entry->getString(Name) : std::nullopt;
      return Value ? Value->str() : std::string();
    };
    BaselineEntry E{field("fingerprint"), field("check"), field("file"), field("message"), field("line")};
    if (E.Fingerprint.empty()) {
      Error = "the baseline " + Path + " has an entry without a fingerprint";
      return false;
    }
    Entries.push_back(std::move(E));
  }
  return true;
}

bool writeBaseline(const std::string& Path, const std::vector<Finding>& Findings, const std::string& Root,
                   unsigned& Recorded, std::string& Error) {
  std::vector<BaselineEntry> Entries;
  for (const Finding& F : Findings)
    if (!F.IsError) Entries.push_back(entryFor(F, Root));
  // Sorted by what a reviewer reads, so the file diffs well when findings come and go.
  std::sort(Entries.begin(), Entries.end(), [](const BaselineEntry& A, const BaselineEntry& B) {
    return std::tie(A.File, A.Check, A.Message, A.Line, A.Fingerprint) <
           std::tie(B.File, B.Check, B.Message, B.Line, B.Fingerprint);
  });
  llvm::json::Array List;
  for (const BaselineEntry& E : Entries)
    List.push_back(llvm::json::Object{{"fingerprint", E.Fingerprint},
                                      {"check", E.Check},
                                      {"file", E.File},
                                      {"message", E.Message},
                                      {"line", E.Line}});
  llvm::json::Object Document{{"version", FormatVersion}, {"tool", "asyncstate-tidy"}, {"findings", std::move(List)}};
  // Written next to the target and renamed over it, so a failed run never leaves half a baseline.
  const std::string Temporary = Path + ".tmp";
  {
    std::error_code EC;
    llvm::raw_fd_ostream Out(Temporary, EC, llvm::sys::fs::OF_Text);
    if (EC) {
      Error = "cannot write the baseline " + Path + ": " + EC.message();
      return false;
    }
    Out << llvm::formatv("{0:2}", llvm::json::Value(std::move(Document))) << "\n";
  }
  if (std::error_code EC = llvm::sys::fs::rename(Temporary, Path)) {
    Error = "cannot write the baseline " + Path + ": " + EC.message();
    return false;
  }
  Recorded = static_cast<unsigned>(Entries.size());
  return true;
}

BaselineComparison compareWithBaseline(std::vector<Finding>& Findings, const std::vector<BaselineEntry>& Entries) {
  std::set<std::string> Recorded;
  for (const BaselineEntry& E : Entries) Recorded.insert(E.Fingerprint);
  BaselineComparison Result;
  std::set<std::string> Matched;
  for (Finding& F : Findings) {
    const bool Known = !F.IsError && Recorded.count(F.Fingerprint);
    F.State = Known ? BaselineState::Unchanged : BaselineState::New;
    if (Known) Matched.insert(F.Fingerprint);
    ++(Known ? Result.Unchanged : Result.New);
  }
  for (const BaselineEntry& E : Entries)
    if (!Matched.count(E.Fingerprint)) Result.Absent.push_back(E);
  return Result;
}

}  // namespace asyncstate_tidy
