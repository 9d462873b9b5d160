#include "driver/Workers.h"

#include "clang/Tooling/CompilationDatabase.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <atomic>
#include <thread>

namespace asyncstate_tidy {

WorkerOutput runWorkers(const std::string& Executable, const std::vector<std::string>& Flags,
                        const std::vector<std::string>& Sources, const std::vector<std::string>& CompilerArgs,
                        unsigned Jobs, const std::string& Directory, bool WithInventory) {
  const size_t Count = Sources.size();
  std::vector<std::string> ErrFiles(Count), Failures(Count);
  std::vector<int> Statuses(Count, 0);
  WorkerOutput Output;
  for (size_t I = 0; I < Count; ++I) {
    const std::string Stem = Directory + "/" + std::to_string(I);
    Output.ExportFiles.push_back(Stem + ".yaml");
    if (WithInventory) Output.InventoryFiles.push_back(Stem + ".classes.json");
    ErrFiles[I] = Stem + ".stderr";
  }
  std::atomic<size_t> Next{0};
  auto work = [&] {
    for (size_t I = Next++; I < Count; I = Next++) {
      std::vector<std::string> Args = Flags;
      Args[0] = Executable;
      Args.push_back("--export-fixes=" + Output.ExportFiles[I]);
      if (WithInventory) Args.push_back("--asyncstate-worker-inventory=" + Output.InventoryFiles[I]);
      Args.push_back(Sources[I]);
      Args.insert(Args.end(), CompilerArgs.begin(), CompilerArgs.end());
      std::vector<llvm::StringRef> Argv(Args.begin(), Args.end());
      // stdout carries clang-tidy's text rendering, which the parent redoes from the export.
      const std::optional<llvm::StringRef> Redirects[] = {llvm::StringRef(), llvm::StringRef(),
                                                          llvm::StringRef(ErrFiles[I])};
      std::string Message;
      bool Failed = false;
      Statuses[I] = llvm::sys::ExecuteAndWait(Executable, Argv, std::nullopt, Redirects, 0, 0, &Message, &Failed);
      if (Failed || Statuses[I] < 0)
        Failures[I] = "asyncstate-tidy: error: the worker for " + Sources[I] +
                      " failed: " + (Message.empty() ? "it crashed" : Message) + "\n";
    }
  };
  std::vector<std::thread> Threads;
  for (unsigned T = 0; T < std::min<size_t>(Jobs, Count); ++T) Threads.emplace_back(work);
  for (std::thread& Thread : Threads) Thread.join();

  for (size_t I = 0; I < Count; ++I) {
    if (auto Buffer = llvm::MemoryBuffer::getFile(ErrFiles[I])) llvm::errs() << (*Buffer)->getBuffer();
    llvm::errs() << Failures[I];
    if (Output.Status == 0 && Statuses[I] != 0) Output.Status = Statuses[I] > 0 ? Statuses[I] : 2;
  }
  llvm::errs().flush();
  return Output;
}

bool databaseFiles(const std::string& BuildPath, std::vector<std::string>& Files, std::string& Error) {
  std::string LoadError;
  std::unique_ptr<clang::tooling::CompilationDatabase> Database =
      clang::tooling::CompilationDatabase::autoDetectFromDirectory(BuildPath, LoadError);
  if (!Database) {
    Error = "no compilation database in " + BuildPath + ": " + LoadError;
    return false;
  }
  Files = Database->getAllFiles();
  std::sort(Files.begin(), Files.end());
  Files.erase(std::unique(Files.begin(), Files.end()), Files.end());
  return true;
}

bool writeInventory(const std::string& Path, const Inventory& Classes, std::string& Error) {
  llvm::json::Array List;
  for (const auto& Class : Classes.classes()) {
    llvm::json::Array Ranges;
    for (const auto& [File, Range] : Class.Ranges)
      Ranges.push_back(llvm::json::Array{File, static_cast<int64_t>(Range.first), static_cast<int64_t>(Range.second)});
    List.push_back(llvm::json::Object{{"name", Class.Name},
                                      {"file", Class.File},
                                      {"line", static_cast<int64_t>(Class.Line)},
                                      {"reported", Class.Reported},
                                      {"ranges", std::move(Ranges)}});
  }
  std::error_code EC;
  llvm::raw_fd_ostream Out(Path, EC, llvm::sys::fs::OF_Text);
  if (EC) {
    Error = "cannot write " + Path + ": " + EC.message();
    return false;
  }
  Out << llvm::json::Value(std::move(List));
  return true;
}

bool readInventory(const std::string& Path, Inventory& Classes, std::string& Error) {
  auto Buffer = llvm::MemoryBuffer::getFile(Path);
  if (!Buffer) return true;  // the worker stopped before it got there; its status says why
  llvm::Expected<llvm::json::Value> Document = llvm::json::parse((*Buffer)->getBuffer());
  const llvm::json::Array* List = Document ? Document->getAsArray() : nullptr;
  if (!List) {
    if (!Document) llvm::consumeError(Document.takeError());
    Error = "cannot parse the UDF classes a worker wrote to " + Path;
    return false;
  }
  for (const llvm::json::Value& Item : *List) {
    const llvm::json::Object* Object = Item.getAsObject();
    if (!Object) continue;
    clang::tidy::asyncstate::UdfClassRecord Record;
    Record.Name = Object->getString("name").value_or("").str();
    Record.File = Object->getString("file").value_or("").str();
    Record.Line = static_cast<unsigned>(Object->getInteger("line").value_or(0));
    Record.Reported = Object->getBoolean("reported").value_or(false);
    if (const llvm::json::Array* Ranges = Object->getArray("ranges"))
      for (const llvm::json::Value& Range : *Ranges) {
        const llvm::json::Array* Triple = Range.getAsArray();
        if (!Triple || Triple->size() != 3) continue;
        Record.Ranges.push_back({(*Triple)[0].getAsString().value_or("").str(),
                                 {static_cast<unsigned>((*Triple)[1].getAsInteger().value_or(0)),
                                  static_cast<unsigned>((*Triple)[2].getAsInteger().value_or(0))}});
      }
    Classes.record(std::move(Record));
  }
  return true;
}

}  // namespace asyncstate_tidy
